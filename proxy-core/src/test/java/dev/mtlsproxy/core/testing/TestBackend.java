package dev.mtlsproxy.core.testing;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelOption;
import io.netty.channel.ChannelPromise;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpRequest;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.DefaultHttpContent;
import io.netty.handler.codec.http.DefaultHttpHeaders;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.DefaultLastHttpContent;
import io.netty.handler.codec.http.EmptyHttpHeaders;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpChunkedInput;
import io.netty.handler.codec.http.HttpContent;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.handler.codec.http.QueryStringDecoder;
import io.netty.handler.codec.http.websocketx.BinaryWebSocketFrame;
import io.netty.handler.codec.http.websocketx.CloseWebSocketFrame;
import io.netty.handler.codec.http.websocketx.ContinuationWebSocketFrame;
import io.netty.handler.codec.http.websocketx.PingWebSocketFrame;
import io.netty.handler.codec.http.websocketx.PongWebSocketFrame;
import io.netty.handler.codec.http.websocketx.TextWebSocketFrame;
import io.netty.handler.codec.http.websocketx.WebSocket13FrameDecoder;
import io.netty.handler.codec.http.websocketx.WebSocket13FrameEncoder;
import io.netty.handler.codec.http.websocketx.WebSocketFrame;
import io.netty.handler.codec.http.websocketx.WebSocketServerHandshakerFactory;
import io.netty.handler.ssl.ClientAuth;
import io.netty.handler.ssl.OpenSslContextOption;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslProvider;
import io.netty.handler.ssl.SslHandler;
import io.netty.handler.ssl.SslHandshakeCompletionEvent;
import io.netty.handler.stream.ChunkedInput;
import io.netty.handler.stream.ChunkedStream;
import io.netty.handler.stream.ChunkedWriteHandler;
import io.netty.pkitesting.X509Bundle;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.GlobalEventExecutor;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import javax.net.ssl.SSLPeerUnverifiedException;

/**
 * A real HTTP/1.1 backend on a loopback port, plain or TLS (optionally requiring a client certificate), that records
 * every request it receives. Behaviour by path:
 * <ul>
 *   <li>{@code /echo}: streams the request body back, chunked</li>
 *   <li>{@code /download?bytes=N}: streams N bytes of a known pattern, with back-pressure</li>
 *   <li>{@code /stall?bytes=N}: sends N bytes of a chunked body, then nothing more, never ending it</li>
 *   <li>{@code /trailers}: a chunked body followed by the trailer {@code x-checksum: c0ffee}</li>
 *   <li>{@code /slow?ms=N}: answers after N ms</li>
 *   <li>{@code /hang}: never answers</li>
 *   <li>{@code /early?status=N}: answers N as soon as the request head arrives, before reading the body (as a
 *       server refusing an upload does), then reads and drops the body; {@code &ms=M}: M ms after the head</li>
 *   <li>{@code /close}: reads the request, then closes the connection without an answer</li>
 *   <li>{@code /health}: 200, or 503 after {@link #healthy(boolean) healthy(false)}</li>
 *   <li>{@code /ws?ms=N}: a WebSocket echo (text, binary, fragments, ping), accepted after N ms (default 0); its
 *       101 names the endpoint ({@code x-endpoint}: the port), and so does its answer to the text message
 *       {@code endpoint?} ({@code endpoint=PORT}), so that a test can tell which endpoint a tunnel is on</li>
 *   <li>{@code /ws-greets}: the same echo from a server that greets on connect: its 101 and a text frame
 *       {@code welcome} go out in one write</li>
 *   <li>{@code /integrity/...}: see {@link IntegrityBody}: echoes what it received (method, target,
 *       {@code x-request-id}, body length and SHA-256) and answers a body of a requested size and pattern</li>
 *   <li>anything else: {@code 200 hello from backend}, after counting the body</li>
 * </ul>
 * With {@link #closeReusedConnections(boolean) closeReusedConnections(true)}, a request arriving on a connection
 * that already served one is neither answered nor recorded: the connection is closed, as by a keep-alive timeout
 * that fired while the request was on its way.
 */
public final class TestBackend implements AutoCloseable {

    /**
     * What the backend saw of one request. Headers and trailers are copies; {@code clientCertificate} is the subject
     * of the certificate the proxy presented over TLS, or null.
     */
    public record Recorded(String method, String uri, HttpHeaders headers, long bodyBytes, HttpHeaders trailers,
            String clientCertificate, String bodySha256) {
    }

    private final EventLoopGroup group;
    private final ServerBootstrap bootstrap;
    private final int port;
    private volatile Channel server;
    private final BlockingQueue<Recorded> requests = new LinkedBlockingQueue<>();
    private final AtomicInteger connections = new AtomicInteger();
    private final AtomicInteger open = new AtomicInteger();
    /** Accepted connections, closed with the server: a stopped backend must not keep them open and silent. */
    private final ChannelGroup accepted = new DefaultChannelGroup(GlobalEventExecutor.INSTANCE);
    private final AtomicLong downloadBytes = new AtomicLong();
    private volatile boolean healthy = true;
    private final AtomicInteger healthPasses = new AtomicInteger();
    private final AtomicInteger healthFailures = new AtomicInteger();
    private volatile String lastHealthCheckHost;
    private volatile boolean closeReusedConnections;
    /** How many of the next connections are closed as soon as they are accepted (or their handshake is done). */
    private final AtomicInteger closingNewConnections = new AtomicInteger();
    private final String scheme;

    private TestBackend(EventLoopGroup group, ServerBootstrap bootstrap, Channel server, String scheme) {
        this.group = group;
        this.bootstrap = bootstrap;
        this.server = server;
        this.port = ((InetSocketAddress) server.localAddress()).getPort();
        this.scheme = scheme;
    }

    public static TestBackend start() throws InterruptedException {
        return start(null);
    }

    /** @param tls a server context, see {@link #tlsContext}; null for plain HTTP */
    public static TestBackend start(SslContext tls) throws InterruptedException {
        return start(tls, 0);
    }

    /** A plain HTTP backend on a given loopback port: a backend coming (back) up where the proxy expects it. */
    public static TestBackend startOn(int port) throws InterruptedException {
        return start(null, port);
    }

    private static TestBackend start(SslContext tls, int port) throws InterruptedException {
        EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
        TestBackend[] self = new TestBackend[1];
        ServerBootstrap bootstrap = new ServerBootstrap()
                .group(group)
                .channel(NioServerSocketChannel.class)
                // listenAgain() binds the port while connections accepted on it are still open
                .option(ChannelOption.SO_REUSEADDR, true)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        self[0].connections.incrementAndGet();
                        self[0].accepted.add(ch);
                        self[0].open.incrementAndGet();
                        ch.closeFuture().addListener(f -> self[0].open.decrementAndGet());
                        if (tls != null) {
                            ch.pipeline().addLast(tls.newHandler(ch.alloc()));
                        }
                        if (self[0].closingNewConnections.getAndUpdate(n -> Math.max(0, n - 1)) > 0) {
                            ch.pipeline().addLast(new ClosingAtOnce(tls != null));
                            return;
                        }
                        ch.pipeline().addLast("http", new HttpServerCodec());
                        ch.pipeline().addLast(new Exchanges(), new ChunkedWriteHandler(), self[0].new Handler());
                    }
                });
        Channel server = bootstrap.bind("127.0.0.1", port).sync().channel();
        self[0] = new TestBackend(group, bootstrap, server, tls == null ? "http" : "https");
        return self[0];
    }

    /**
     * A server TLS context with this certificate; with {@code clientCa} set, a client certificate issued by it is
     * required.
     */
    public static SslContext tlsContext(TestPki.Issued certificate, X509Bundle clientCa) {
        return tlsContext(certificate, clientCa, new String[0]);
    }

    /** As {@link #tlsContext(TestPki.Issued, X509Bundle)}, accepting only these key exchange groups (BoringSSL). */
    public static SslContext tlsContext(TestPki.Issued certificate, X509Bundle clientCa, String... groups) {
        try {
            SslContextBuilder builder = SslContextBuilder.forServer(certificate.bundle().getKeyPair().getPrivate(),
                    certificate.bundle().getCertificatePath());
            if (groups.length > 0) {
                builder.sslProvider(SslProvider.OPENSSL).option(OpenSslContextOption.GROUPS, groups);
            }
            if (clientCa != null) {
                builder.clientAuth(ClientAuth.REQUIRE).trustManager(clientCa.getCertificate());
            }
            return builder.build();
        } catch (Exception e) {
            throw new IllegalStateException("cannot build the test backend's TLS context", e);
        }
    }

    public int port() {
        return port;
    }

    /**
     * Stops accepting connections (new ones are refused) while those already open keep being served: an endpoint
     * going down gracefully, as one draining for a restart does.
     */
    public void stopListening() {
        server.close().syncUninterruptibly();
    }

    /**
     * Stops as a killed process does: new connections are refused and every open one is closed at once, whatever
     * it was doing (a request on its way, an answer half sent, a WebSocket tunnel).
     */
    public void stopWithConnections() {
        server.close().syncUninterruptibly();
        accepted.close().syncUninterruptibly();
    }

    /**
     * A request whose exchange was under way when {@link #stopGracefully()} came; {@code tunnel} when it had become a
     * WebSocket tunnel.
     */
    public record InFlight(String method, String uri, HttpHeaders headers, boolean tunnel) {
    }

    /**
     * Stops as nginx or Envoy do on {@code SIGQUIT}/{@code SIGTERM}: new connections are refused and idle keep-alive
     * connections closed at once, while every exchange under way (a request being read, an answer being written, a
     * WebSocket tunnel) is served to its end; its answer then says {@code Connection: close} if its head is still to
     * go, and the connection closes once it is written. Returns those exchanges, as they stood at the stop.
     */
    public List<InFlight> stopGracefully() {
        server.close().syncUninterruptibly();
        // On the backend's one event loop, where every connection lives: none turns from idle to busy meanwhile.
        return group.next().submit(() -> {
            List<InFlight> inFlight = new ArrayList<>();
            for (Channel ch : accepted) {
                Exchanges exchanges = ch.pipeline().get(Exchanges.class);
                InFlight under = exchanges == null ? null : exchanges.drain();
                if (under == null) {
                    ch.close();
                } else {
                    inFlight.add(under);
                }
            }
            return inFlight;
        }).syncUninterruptibly().getNow();
    }

    /**
     * Requests being read or answered now, WebSocket tunnels aside: what {@link #stopGracefully()} would let finish,
     * so that a test can stop this backend while a request of its own is under way.
     */
    public List<InFlight> exchangesUnderWay() {
        return group.next().submit(() -> accepted.stream().map(ch -> ch.pipeline().get(Exchanges.class))
                .filter(e -> e != null && e.current != null && !e.tunnel).map(Exchanges::underWay).toList())
                .syncUninterruptibly().getNow();
    }

    /** Accepts connections on the same port again, after {@link #stopListening()} or {@link #stopWithConnections}. */
    public void listenAgain() throws InterruptedException {
        server = bootstrap.bind("127.0.0.1", port).sync().channel();
    }

    /** {@code http://127.0.0.1:port} or {@code https://127.0.0.1:port}. */
    public String url() {
        return scheme + "://127.0.0.1:" + port();
    }

    /** The next request the backend received, or null if none arrives within the timeout. */
    public Recorded nextRequest(long timeout, TimeUnit unit) throws InterruptedException {
        return requests.poll(timeout, unit);
    }

    /** Requests received and not yet taken. */
    public int pendingRequests() {
        return requests.size();
    }

    /** TCP connections accepted so far. */
    public int connectionsAccepted() {
        return connections.get();
    }

    /** TCP connections open now. */
    public int openConnections() {
        return open.get();
    }

    /** Bytes of {@code /download} bodies handed to the network so far, over all requests. */
    public long downloadBytesProduced() {
        return downloadBytes.get();
    }

    /** How many {@code /health} requests were answered 200 ({@code true}) or 503 ({@code false}) so far. */
    public int healthChecksAnswered(boolean passing) {
        return (passing ? healthPasses : healthFailures).get();
    }

    /** The Host of the latest {@code /health} request, or null before the first. */
    public String lastHealthCheckHost() {
        return lastHealthCheckHost;
    }

    /** What {@code /health} answers from now on. */
    public void healthy(boolean healthy) {
        this.healthy = healthy;
    }

    /** See the class comment: the keep-alive race, on every reused connection. */
    public void closeReusedConnections(boolean close) {
        this.closeReusedConnections = close;
    }

    /**
     * The next {@code count} connections are closed as soon as they are accepted, before anything is read from them;
     * over TLS, as soon as the handshake is done. A backend at its connection limit does this (Node's
     * {@code maxConnections}), as does one shutting down. {@link Integer#MAX_VALUE}: every connection from now on.
     */
    public void closeNewConnections(int count) {
        closingNewConnections.set(count);
    }

    @Override
    public void close() {
        if (group.isShuttingDown()) {
            return; // a test stopped it already, to see the proxy cope
        }
        server.close().syncUninterruptibly();
        accepted.close().syncUninterruptibly();
        group.shutdownGracefully(0, 2, TimeUnit.SECONDS).syncUninterruptibly();
    }

    /**
     * Per connection, between the codec and the handlers: whether an exchange is under way, for
     * {@link #stopGracefully()}. An exchange lasts from its request head until both its request and its answer have
     * ended; a 101 makes it a tunnel, which lasts as long as the connection. Event-loop confined.
     */
    private static final class Exchanges extends ChannelDuplexHandler {
        /** The head of the exchange under way, null while the connection is idle. */
        private HttpRequest current;
        private boolean reading;
        private boolean answering;
        private boolean tunnel;
        private boolean draining;

        /** Null when the connection is idle (then the caller closes it), else its exchange, closed when it ends. */
        InFlight drain() {
            draining = true;
            return underWay();
        }

        InFlight underWay() {
            return current == null ? null : new InFlight(current.method().name(), current.uri(),
                    new DefaultHttpHeaders().add(current.headers()), tunnel);
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (msg instanceof HttpRequest r && !tunnel) {
                current = r;
                reading = true;
                answering = true;
            }
            if (msg instanceof LastHttpContent && !tunnel) {
                reading = false;
            }
            ctx.fireChannelRead(msg);
            endIfDone(ctx.newSucceededFuture());
        }

        @Override
        public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
            if (msg instanceof HttpResponse r && r.status().code() == 101) {
                tunnel = true;
            } else if (msg instanceof HttpResponse r && draining) {
                HttpUtil.setKeepAlive(r, false);
            }
            if (msg instanceof LastHttpContent && !tunnel) {
                answering = false;
                ChannelPromise written = promise.unvoid();
                ctx.write(msg, written);
                endIfDone(written);
                return;
            }
            ctx.write(msg, promise);
        }

        private void endIfDone(ChannelFuture written) {
            if (!reading && !answering && current != null) {
                current = null;
                if (draining) {
                    written.addListener(ChannelFutureListener.CLOSE);
                }
            }
        }
    }

    /** Per connection; event-loop confined. */
    private final class Handler extends ChannelInboundHandlerAdapter {
        private HttpRequest request;
        private long bodyBytes;
        /** The body's digest, only for {@code /integrity/}: hashing every body would slow the streaming tests. */
        private MessageDigest bodyDigest;
        private int requestsOnConnection;

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (msg instanceof WebSocketFrame frame) {
                webSocket(ctx, frame);
                return;
            }
            if (msg instanceof HttpRequest && ++requestsOnConnection > 1 && closeReusedConnections
                    || !ctx.channel().isActive()) {
                ReferenceCountUtil.release(msg);
                ctx.close();
                return;
            }
            if (msg instanceof HttpRequest r) {
                request = r;
                bodyBytes = 0;
                bodyDigest = path().startsWith(IntegrityBody.PATH) ? sha256() : null;
                if (path().equals("/echo")) {
                    HttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
                    HttpUtil.setTransferEncodingChunked(head, true);
                    ctx.write(head);
                }
                if (path().equals("/early")) {
                    FullHttpResponse early = text(HttpResponseStatus.valueOf((int) param("status")),
                            "answered early\n");
                    ctx.executor().schedule(() -> ctx.writeAndFlush(early), param("ms"), TimeUnit.MILLISECONDS);
                }
            }
            if (msg instanceof HttpContent content) {
                bodyBytes += content.content().readableBytes();
                if (bodyDigest != null) {
                    bodyDigest.update(content.content().nioBuffer());
                }
                boolean last = content instanceof LastHttpContent;
                if (path().equals("/echo")) {
                    if (content.content().isReadable()) {
                        ctx.write(new DefaultHttpContent(content.content().retain()));
                    }
                    if (last) {
                        ctx.writeAndFlush(LastHttpContent.EMPTY_LAST_CONTENT);
                    }
                }
                HttpHeaders trailers = last ? new DefaultHttpHeaders().add(((LastHttpContent) content)
                        .trailingHeaders()) : null;
                content.release();
                if (last) {
                    String sha256 = bodyDigest == null ? null : HexFormat.of().formatHex(bodyDigest.digest());
                    requests.add(new Recorded(request.method().name(), request.uri(),
                            new DefaultHttpHeaders().add(request.headers()), bodyBytes, trailers,
                            clientCertificate(ctx), sha256));
                    if (sha256 != null) {
                        integrity(ctx, trailers, sha256);
                    } else {
                        respond(ctx);
                    }
                }
            }
        }

        @Override
        public void channelReadComplete(ChannelHandlerContext ctx) {
            ctx.flush();
        }

        private String path() {
            return new QueryStringDecoder(request.uri()).path();
        }

        private long param(String name) {
            var values = new QueryStringDecoder(request.uri()).parameters().get(name);
            return values == null ? 0 : Long.parseLong(values.get(0));
        }

        private void respond(ChannelHandlerContext ctx) {
            // Every path under /ws is the WebSocket endpoint: a test may need a tunnel whose path says something.
            switch (path().startsWith("/ws/") ? "/ws" : path()) {
                case "/echo", "/hang", "/early" -> {
                    // already answered while streaming, or never
                }
                case "/download" -> {
                    HttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
                    HttpUtil.setTransferEncodingChunked(head, true);
                    ctx.write(head);
                    ctx.writeAndFlush(new HttpChunkedInput(new ChunkedStream(new PatternStream(param("bytes"),
                            downloadBytes), 64 * 1024)));
                }
                case "/stall" -> {
                    HttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
                    HttpUtil.setTransferEncodingChunked(head, true);
                    ctx.write(head);
                    ctx.writeAndFlush(new DefaultHttpContent(Unpooled.wrappedBuffer(new byte[(int) param("bytes")])));
                }
                case "/trailers" -> {
                    HttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
                    HttpUtil.setTransferEncodingChunked(head, true);
                    ctx.write(head);
                    LastHttpContent last = new DefaultLastHttpContent(Unpooled.copiedBuffer("trailers follow\n",
                            StandardCharsets.UTF_8));
                    last.trailingHeaders().set("x-checksum", "c0ffee");
                    ctx.writeAndFlush(last);
                }
                case "/close" -> ctx.close();
                case "/health" -> {
                    lastHealthCheckHost = request.headers().get(HttpHeaderNames.HOST);
                    boolean ok = healthy;
                    // Counted before the answer leaves, so a proxy never acts on one not counted yet.
                    (ok ? healthPasses : healthFailures).incrementAndGet();
                    ctx.writeAndFlush(ok ? text("ok\n") : text(HttpResponseStatus.SERVICE_UNAVAILABLE, "unhealthy\n"));
                }
                case "/ws" -> {
                    DefaultFullHttpRequest upgrade = new DefaultFullHttpRequest(request.protocolVersion(),
                            request.method(), request.uri(), Unpooled.EMPTY_BUFFER, request.headers(),
                            EmptyHttpHeaders.INSTANCE);
                    HttpHeaders endpoint = new DefaultHttpHeaders().set("x-endpoint", port);
                    ctx.executor().schedule(() -> new WebSocketServerHandshakerFactory("ws://localhost/ws", null,
                            false, 1 << 20).newHandshaker(upgrade).handshake(ctx.channel(), upgrade, endpoint,
                                    ctx.newPromise()), param("ms"), TimeUnit.MILLISECONDS);
                }
                case "/ws-greets" -> greetingUpgrade(ctx);
                case "/slow" -> ctx.executor().schedule(() -> ctx.writeAndFlush(text("slow hello\n")),
                        param("ms"), TimeUnit.MILLISECONDS);
                default -> ctx.writeAndFlush(text("hello from backend\n"));
            }
        }

        /**
         * Accepts the upgrade by hand, since the handshaker flushes its 101 alone: the 101 and the greeting share one
         * buffer, so they share a TLS record and reach the proxy in one read. Written from the codec's context, past
         * its encoder, which takes no raw bytes; then the codec makes way for the frame codec of {@code /ws}.
         */
        private void greetingUpgrade(ChannelHandlerContext ctx) {
            ByteBuf both = ctx.alloc().buffer();
            both.writeCharSequence("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Accept: " + webSocketAccept(request.headers().get("sec-websocket-key"))
                    + "\r\n\r\n", StandardCharsets.US_ASCII);
            byte[] greeting = "welcome".getBytes(StandardCharsets.UTF_8);
            both.writeByte(0x81).writeByte(greeting.length).writeBytes(greeting); // FIN, text, unmasked
            ChannelPipeline pipeline = ctx.pipeline();
            pipeline.context("http").writeAndFlush(both);
            pipeline.addAfter("http", "ws-encoder", new WebSocket13FrameEncoder(false));
            pipeline.addAfter("http", "ws-decoder", new WebSocket13FrameDecoder(true, false, 1 << 20));
            pipeline.remove("http");
        }

        /** RFC 6455 section 4.2.2: base64 of the SHA-1 of the client's key and the protocol's GUID. */
        private static String webSocketAccept(String key) {
            try {
                byte[] digest = MessageDigest.getInstance("SHA-1").digest(
                        (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").getBytes(StandardCharsets.US_ASCII));
                return Base64.getEncoder().encodeToString(digest);
            } catch (NoSuchAlgorithmException e) {
                throw new IllegalStateException("every JDK has SHA-1", e);
            }
        }

        private void webSocket(ChannelHandlerContext ctx, WebSocketFrame frame) {
            // Fragments are echoed as fragments: a message split over several frames comes back the same way.
            if (frame instanceof TextWebSocketFrame text && text.isFinalFragment()
                    && text.text().equals("endpoint?")) {
                ctx.writeAndFlush(new TextWebSocketFrame("endpoint=" + port));
            } else if (frame instanceof TextWebSocketFrame) {
                ctx.writeAndFlush(new TextWebSocketFrame(frame.isFinalFragment(), 0, frame.content().retain()));
            } else if (frame instanceof BinaryWebSocketFrame) {
                ctx.writeAndFlush(new BinaryWebSocketFrame(frame.isFinalFragment(), 0, frame.content().retain()));
            } else if (frame instanceof ContinuationWebSocketFrame) {
                ctx.writeAndFlush(new ContinuationWebSocketFrame(frame.isFinalFragment(), 0,
                        frame.content().retain()));
            } else if (frame instanceof PingWebSocketFrame ping) {
                ctx.writeAndFlush(new PongWebSocketFrame(ping.content().retain()));
            } else if (frame instanceof CloseWebSocketFrame close) {
                // the close frame itself goes back: writing it hands it over
                ctx.writeAndFlush(close).addListener(ChannelFutureListener.CLOSE);
                return;
            }
            frame.release();
        }

        private String clientCertificate(ChannelHandlerContext ctx) {
            SslHandler tls = ctx.pipeline().get(SslHandler.class);
            if (tls == null) {
                return null;
            }
            try {
                Certificate[] chain = tls.engine().getSession().getPeerCertificates();
                return ((X509Certificate) chain[0]).getSubjectX500Principal().getName();
            } catch (SSLPeerUnverifiedException e) {
                return null;
            }
        }

        /** {@code /integrity/}: the echo in headers, then the body, as {@link IntegrityBody} describes. */
        private void integrity(ChannelHandlerContext ctx, HttpHeaders trailers, String sha256) {
            HttpRequest r = request;
            long bytes = param("bytes");
            boolean chunked = param("chunked") == 1;
            boolean close = param("close") == 1;
            HttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
            HttpHeaders h = head.headers();
            String requestId = r.headers().get(IntegrityBody.REQUEST_ID);
            if (requestId != null) {
                h.set(IntegrityBody.REQUEST_ID, requestId);
            }
            h.set("x-seen-method", r.method().name())
                    .set("x-seen-target", r.uri())
                    .set("x-seen-length", bodyBytes)
                    .set("x-seen-sha256", sha256)
                    .set("x-endpoint", port);
            String trailerSha = trailers.get(IntegrityBody.SHA256_TRAILER);
            if (trailerSha != null) {
                h.set("x-seen-trailer", trailerSha);
            }
            if (chunked) {
                HttpUtil.setTransferEncodingChunked(head, true);
            } else {
                HttpUtil.setContentLength(head, bytes);
            }
            if (close) {
                h.set(HttpHeaderNames.CONNECTION, "close");
            }
            IntegrityBody body = new IntegrityBody((int) param("pattern"), bytes, chunked,
                    r.method().name().equals("HEAD"));
            Runnable send = () -> {
                if (!ctx.channel().isActive()) {
                    return;
                }
                if (param("interim") == 1) {
                    // Past the codec, whose encoder would take the 103 for the answer to this request.
                    ctx.pipeline().context("http").write(Unpooled.copiedBuffer("HTTP/1.1 103 Early Hints\r\n"
                            + "Link: </style.css>; rel=preload\r\n\r\n", StandardCharsets.US_ASCII));
                }
                ctx.write(head);
                if (param("trickle") == 1) {
                    trickle(ctx, body, close);
                } else {
                    finish(ctx.writeAndFlush(body), close);
                }
            };
            long headMs = param("headMs");
            if (headMs > 0) {
                ctx.executor().schedule(send, headMs, TimeUnit.MILLISECONDS);
            } else {
                send.run();
            }
        }

        /** The body in pieces a few milliseconds apart: a backend producing its answer as it goes. */
        private void trickle(ChannelHandlerContext ctx, IntegrityBody body, boolean close) {
            HttpContent piece = body.readChunk(ctx.alloc());
            if (piece instanceof LastHttpContent) {
                finish(ctx.writeAndFlush(piece), close);
                return;
            }
            ctx.writeAndFlush(piece);
            ctx.executor().schedule(() -> {
                if (ctx.channel().isActive()) {
                    trickle(ctx, body, close);
                }
            }, 5, TimeUnit.MILLISECONDS);
        }

        private static void finish(io.netty.channel.ChannelFuture written, boolean close) {
            if (close) {
                written.addListener(ChannelFutureListener.CLOSE);
            }
        }

        private FullHttpResponse text(String body) {
            return text(HttpResponseStatus.OK, body);
        }

        private FullHttpResponse text(HttpResponseStatus status, String body) {
            ByteBuf content = Unpooled.copiedBuffer(body, StandardCharsets.UTF_8);
            FullHttpResponse r = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, status, content);
            r.headers().set(HttpHeaderNames.CONTENT_TYPE, "text/plain")
                    .setInt(HttpHeaderNames.CONTENT_LENGTH, content.readableBytes())
                    .set("x-backend", "test");
            return r;
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close().addListener(ChannelFutureListener.CLOSE);
        }
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every JDK has SHA-256", e);
        }
    }

    /**
     * The body {@code /integrity/} answers, and what the rest of that path means. The backend echoes, as response
     * headers, the request's {@code x-request-id} and what it received: {@code x-seen-method}, {@code x-seen-target},
     * {@code x-seen-length}, {@code x-seen-sha256} (of the body) and, when the request had the trailer
     * {@code x-body-sha256}, {@code x-seen-trailer} with its value; {@code x-endpoint} is the backend's port. Query
     * parameters shape the answer:
     * <ul>
     *   <li>{@code bytes=N}: a body of N bytes, byte i being {@link #at(int, long) at(pattern, i)}</li>
     *   <li>{@code pattern=P}: so two answers of the same length differ in every byte unless P matches mod 256</li>
     *   <li>{@code chunked=1}: chunked, ending with the trailer {@code x-body-length: N}; else Content-Length</li>
     *   <li>{@code headMs=M}: the head M ms after the request ended; {@code trickle=1}: the body in 16 KiB pieces
     *       5 ms apart</li>
     *   <li>{@code close=1}: {@code Connection: close}, and the connection closes once the answer is written</li>
 *   <li>{@code interim=1}: a {@code 103 Early Hints} before the answer</li>
     * </ul>
     * A HEAD request gets the same head and no body.
     */
    public static final class IntegrityBody implements ChunkedInput<HttpContent> {
        public static final String PATH = "/integrity/";
        public static final String REQUEST_ID = "x-request-id";
        public static final String SHA256_TRAILER = "x-body-sha256";
        public static final String LENGTH_TRAILER = "x-body-length";
        private static final int PIECE = 16 * 1024;

        private final int pattern;
        private final long length;
        private final boolean chunked;
        private long offset;
        private boolean ended;

        IntegrityBody(int pattern, long length, boolean chunked, boolean headOnly) {
            this.pattern = pattern;
            this.length = headOnly ? 0 : length;
            this.chunked = chunked;
        }

        /**
         * Byte {@code i} of a body with this pattern. The {@code i >>> 8} term makes a piece shifted by a multiple of
         * 256 bytes (a lost or repeated buffer) differ from what belongs there.
         */
        public static byte at(int pattern, long i) {
            return (byte) (pattern + i + 7 * (i >>> 8));
        }

        /** The body with this pattern, for checking one as it streams in. */
        public static BodyPatternCheck.Pattern pattern(int pattern) {
            return (from, into, length) -> {
                for (int i = 0; i < length; i++) {
                    into[i] = at(pattern, from + i);
                }
            };
        }

        @Override
        public boolean isEndOfInput() {
            return ended;
        }

        @Override
        public void close() {
        }

        @Deprecated
        @Override
        public HttpContent readChunk(ChannelHandlerContext ctx) {
            return readChunk(ctx.alloc());
        }

        @Override
        public HttpContent readChunk(ByteBufAllocator allocator) {
            if (offset < length) {
                int n = (int) Math.min(PIECE, length - offset);
                // Filled as an array and written once: under paranoid leak detection every ByteBuf call records
                // a stack trace.
                byte[] bytes = new byte[n];
                for (int i = 0; i < n; i++) {
                    bytes[i] = at(pattern, offset + i);
                }
                offset += n;
                ByteBuf piece = allocator.buffer(n).writeBytes(bytes);
                if (offset == length && !chunked) {
                    // A sized body ends with its last byte: the proxy may send the next request on this connection
                    // as soon as that arrives, and the codec must have finished this response by then.
                    ended = true;
                    return new DefaultLastHttpContent(piece);
                }
                return new DefaultHttpContent(piece);
            }
            ended = true;
            LastHttpContent last = new DefaultLastHttpContent();
            if (chunked) {
                last.trailingHeaders().set(LENGTH_TRAILER, length);
            }
            return last;
        }

        @Override
        public long length() {
            return length;
        }

        @Override
        public long progress() {
            return offset;
        }
    }

    /** Closes its connection once it is open, or once the TLS handshake on it succeeded; reads nothing. */
    private static final class ClosingAtOnce extends ChannelInboundHandlerAdapter {
        private final boolean afterHandshake;

        ClosingAtOnce(boolean afterHandshake) {
            this.afterHandshake = afterHandshake;
        }

        @Override
        public void channelActive(ChannelHandlerContext ctx) {
            if (!afterHandshake) {
                ctx.close();
            }
            ctx.fireChannelActive();
        }

        @Override
        public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
            if (evt instanceof SslHandshakeCompletionEvent) {
                ctx.close();
            }
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            ReferenceCountUtil.release(msg);
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close();
        }
    }

    /** The bytes of {@code /download}: byte i is {@code (byte) i}, so a test can check any prefix cheaply. */
    public static final class PatternStream extends InputStream {
        /** Byte i of the stream, for checking one as it streams in. */
        public static final BodyPatternCheck.Pattern PATTERN = (from, into, length) -> {
            for (int i = 0; i < length; i++) {
                into[i] = (byte) (from + i);
            }
        };

        private final long length;
        private final AtomicLong produced;
        private long position;

        public PatternStream(long length) {
            this(length, new AtomicLong());
        }

        PatternStream(long length, AtomicLong produced) {
            this.length = length;
            this.produced = produced;
        }

        @Override
        public int read() {
            if (position >= length) {
                return -1;
            }
            produced.incrementAndGet();
            return (int) (position++ & 0xff);
        }

        /**
         * ChunkedStream sizes its chunks by available(); the default of 0 plus its one-byte pushback would make
         * every chunk one byte long.
         */
        @Override
        public int available() {
            return (int) Math.min(Integer.MAX_VALUE, length - position);
        }

        @Override
        public int read(byte[] b, int off, int len) {
            if (position >= length) {
                return -1;
            }
            int n = (int) Math.min(len, length - position);
            for (int i = 0; i < n; i++) {
                b[off + i] = (byte) (position + i);
            }
            position += n;
            produced.addAndGet(n);
            return n;
        }
    }
}
