package dev.mtlsproxy.bench;

import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollSocketChannel;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.handler.codec.http.DefaultFullHttpRequest;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.HttpClientCodec;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpObject;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslHandler;
import io.netty.handler.ssl.SslHandshakeCompletionEvent;
import io.netty.util.concurrent.GlobalEventExecutor;
import java.net.InetSocketAddress;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;
import org.HdrHistogram.Recorder;

/**
 * The load itself: connections, requests and what happened to them. Counters are cumulative; {@link LoadGen}
 * snapshots them at the start and the end of the measured window.
 *
 * <p>Pipeline of every connection, in order:
 * <pre>
 *   tls        SslHandler (absent with --plain)
 *   http       HttpClientCodec
 *   exchange   Exchange: sends requests, records outcomes (new per connection, event-loop confined)
 * </pre>
 */
final class Load implements AutoCloseable {

    enum Mode {
        /** Connections that each send requests back to back. */
        KEEPALIVE,
        /**
         * A new TLS connection per request: a full handshake, or a resumed one when the run's TLS context keeps
         * sessions and the server accepts them.
         */
        HANDSHAKE,
        /** A new connection per attempt with a client certificate the server must refuse. */
        UNTRUSTED,
        /** Opens connections, one request each, and leaves them open and idle. */
        IDLE
    }

    /**
     * One run: what to do against which server. {@code slots}: connections (KEEPALIVE) or connections in progress at
     * once (the others); {@code total}: connections to open in all (IDLE).
     */
    record Run(Mode mode, Options.Target target, SslContext tls, int slots, int total) {
    }

    /** Pause before replacing a connection that failed, so a dead server does not turn into a busy loop. */
    private static final long RETRY_DELAY_MILLIS = 10;

    final LongAdder ok = new LongAdder();
    final LongAdder non200 = new LongAdder();
    /** Connections that ended without the expected outcome: reset, handshake failure on a trusted client, ... */
    final LongAdder errors = new LongAdder();
    /**
     * UNTRUSTED mode: connections refused, either without any HTTP response (the handshake aborted: ours, HAProxy) or
     * with an HTTP error status (nginx completes the handshake and answers 400).
     */
    final LongAdder refused = new LongAdder();
    /** UNTRUSTED mode: the part of {@link #refused} that got an HTTP error response rather than a closed handshake. */
    final LongAdder refusedOverHttp = new LongAdder();
    /** UNTRUSTED mode: connections that got a 2xx or 3xx response, i.e. reached the backend. Must stay 0. */
    final LongAdder accepted = new LongAdder();
    final LongAdder handshakes = new LongAdder();
    /** The part of {@link #handshakes} that resumed a session (an abbreviated handshake, no certificates sent). */
    final LongAdder resumed = new LongAdder();
    /** Microseconds: per request (KEEPALIVE), connect to response end (HANDSHAKE), connect to refusal (UNTRUSTED). */
    final Recorder latency = new Recorder(3);
    final AtomicInteger open = new AtomicInteger();
    volatile String session = "-";

    private final Options options;
    private final Mode mode;
    private final Run run;
    private final SslContext tls;
    private final EventLoopGroup group;
    private final Bootstrap bootstrap;
    private final InetSocketAddress address;
    private final ChannelGroup channels = new DefaultChannelGroup(GlobalEventExecutor.INSTANCE);
    private final AtomicInteger launched = new AtomicInteger();
    private volatile boolean running = true;

    private final int port;

    Load(Options options, Run run) {
        this.options = options;
        this.run = run;
        this.mode = run.mode();
        this.tls = run.tls();
        this.port = run.target().port();
        this.address = new InetSocketAddress(options.host(), port);
        this.group = new MultiThreadIoEventLoopGroup(options.threads(), EpollIoHandler.newFactory());
        this.bootstrap = new Bootstrap()
                .group(group)
                .channel(EpollSocketChannel.class)
                .option(ChannelOption.TCP_NODELAY, true)
                .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, 5_000)
                .handler(new ChannelInitializer<Channel>() {
                    @Override
                    protected void initChannel(Channel ch) {
                        channels.add(ch);
                        ChannelPipeline p = ch.pipeline();
                        if (tls != null) {
                            p.addLast("tls", tls.newHandler(ch.alloc(), options.serverName(), port));
                        }
                        p.addLast("http", new HttpClientCodec());
                        p.addLast("exchange", new Exchange(System.nanoTime()));
                    }
                });
    }

    /** Starts the load: KEEPALIVE opens its connections, the other modes start their concurrent slots. */
    void start() {
        for (int i = 0; i < run.slots(); i++) {
            connect();
        }
    }

    /** Stops starting new connections and requests; in-flight ones are closed by {@link #close()}. */
    void stop() {
        running = false;
    }

    @Override
    public void close() {
        running = false;
        channels.close().awaitUninterruptibly(5, TimeUnit.SECONDS);
        group.shutdownGracefully(0, 2, TimeUnit.SECONDS).awaitUninterruptibly(10, TimeUnit.SECONDS);
    }

    /** IDLE mode: connections opened so far plus those that failed, out of {@link Run#total()}. */
    int settled() {
        return open.get() + (int) errors.sum();
    }

    private void connect() {
        if (!running) {
            return;
        }
        if (mode == Mode.IDLE && launched.incrementAndGet() > run.total()) {
            return;
        }
        bootstrap.connect(address).addListener((ChannelFutureListener) f -> {
            if (!f.isSuccess()) {
                errors.increment();
                group.schedule(this::connect, RETRY_DELAY_MILLIS, TimeUnit.MILLISECONDS);
            }
        });
    }

    private FullHttpRequest request() {
        FullHttpRequest request = new DefaultFullHttpRequest(HttpVersion.HTTP_1_1, HttpMethod.GET, options.path(),
                Unpooled.EMPTY_BUFFER);
        request.headers().set(HttpHeaderNames.HOST, options.serverName() + ":" + port);
        if (mode == Mode.HANDSHAKE || mode == Mode.UNTRUSTED) {
            request.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
        }
        return request;
    }

    private static long micros(long fromNanos) {
        return Math.max(1, (System.nanoTime() - fromNanos) / 1_000);
    }

    /** One connection's exchanges. Plain fields: every method runs on the connection's event loop. */
    private final class Exchange extends SimpleChannelInboundHandler<HttpObject> {
        private final long connectedAt;
        private long sentAt;
        private int status;
        private boolean responded;

        Exchange(long connectedAt) {
            this.connectedAt = connectedAt;
        }

        @Override
        public void channelActive(ChannelHandlerContext ctx) {
            if (tls == null) {
                send(ctx);
            }
            ctx.fireChannelActive();
        }

        @Override
        public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
            if (evt instanceof SslHandshakeCompletionEvent event) {
                if (event.isSuccess()) {
                    handshakes.increment();
                    var engine = ctx.pipeline().get(SslHandler.class).engine();
                    if (ClientTls.resumed(engine)) {
                        resumed.increment();
                    }
                    if ("-".equals(session)) {
                        session = engine.getSession().getProtocol() + "/" + engine.getSession().getCipherSuite()
                                + "/" + ClientTls.group(engine);
                    }
                    send(ctx);
                } else {
                    // UNTRUSTED: the expected end (TLS 1.2, or 1.3 when the alert arrives first); counted on close.
                    ctx.close();
                }
            }
            ctx.fireUserEventTriggered(evt);
        }

        private void send(ChannelHandlerContext ctx) {
            if (!running) {
                ctx.close();
                return;
            }
            sentAt = System.nanoTime();
            ctx.writeAndFlush(request(), ctx.voidPromise());
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, HttpObject msg) {
            if (msg instanceof HttpResponse response) {
                status = response.status().code();
            }
            if (!(msg instanceof LastHttpContent)) {
                return;
            }
            responded = true;
            (status == 200 ? ok : non200).increment();
            switch (mode) {
                case KEEPALIVE -> {
                    latency.recordValue(micros(sentAt));
                    send(ctx);
                }
                case HANDSHAKE -> {
                    latency.recordValue(micros(connectedAt));
                    ctx.close();
                }
                case UNTRUSTED -> ctx.close();
                case IDLE -> {
                    open.incrementAndGet();
                    connect();
                }
            }
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            switch (mode) {
                case KEEPALIVE -> {
                    if (running) {
                        // The server closed a keep-alive connection during the run: count it and replace it.
                        errors.increment();
                        ctx.channel().eventLoop().schedule(Load.this::connect, RETRY_DELAY_MILLIS,
                                TimeUnit.MILLISECONDS);
                    }
                }
                case HANDSHAKE -> {
                    if (!responded && running) {
                        errors.increment();
                    }
                    connect();
                }
                case UNTRUSTED -> {
                    if (responded && status < 400) {
                        accepted.increment();
                    } else if (running) {
                        refused.increment();
                        if (responded) {
                            refusedOverHttp.increment();
                        }
                        latency.recordValue(micros(connectedAt));
                    }
                    connect();
                }
                case IDLE -> {
                    if (!responded) {
                        errors.increment();
                        connect();
                    } else if (running) {
                        // Closed by the server while we hold it idle.
                        open.decrementAndGet();
                        errors.increment();
                    }
                }
            }
            ctx.fireChannelInactive();
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            // The outcome is counted once, in channelInactive; UNTRUSTED expects exceptions here.
            ctx.close();
        }
    }
}
