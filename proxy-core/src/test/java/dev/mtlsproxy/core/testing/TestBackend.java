package dev.mtlsproxy.core.testing;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.DefaultHttpContent;
import io.netty.handler.codec.http.DefaultHttpHeaders;
import io.netty.handler.codec.http.DefaultHttpResponse;
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
import io.netty.handler.stream.ChunkedStream;
import io.netty.handler.stream.ChunkedWriteHandler;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A real HTTP/1.1 backend on a loopback port that records every request it receives. Behaviour by path:
 * <ul>
 *   <li>{@code /echo}: streams the request body back, chunked</li>
 *   <li>{@code /download?bytes=N}: streams N bytes of a known pattern, with back-pressure</li>
 *   <li>{@code /slow?ms=N}: answers after N ms</li>
 *   <li>{@code /hang}: never answers</li>
 *   <li>anything else: {@code 200 hello from backend}, after counting the body</li>
 * </ul>
 */
public final class TestBackend implements AutoCloseable {

    /** What the backend saw of one request. Headers are a copy. */
    public record Recorded(String method, String uri, HttpHeaders headers, long bodyBytes) {
    }

    private final EventLoopGroup group;
    private final Channel server;
    private final BlockingQueue<Recorded> requests = new LinkedBlockingQueue<>();
    private final AtomicInteger connections = new AtomicInteger();

    private TestBackend(EventLoopGroup group, Channel server) {
        this.group = group;
        this.server = server;
    }

    public static TestBackend start() throws InterruptedException {
        EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
        TestBackend[] self = new TestBackend[1];
        Channel server = new ServerBootstrap()
                .group(group)
                .channel(NioServerSocketChannel.class)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        self[0].connections.incrementAndGet();
                        ch.pipeline().addLast(new HttpServerCodec(), new ChunkedWriteHandler(),
                                self[0].new Handler());
                    }
                })
                .bind("127.0.0.1", 0).sync().channel();
        self[0] = new TestBackend(group, server);
        return self[0];
    }

    public int port() {
        return ((InetSocketAddress) server.localAddress()).getPort();
    }

    public String url() {
        return "http://127.0.0.1:" + port();
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

    @Override
    public void close() {
        server.close().syncUninterruptibly();
        group.shutdownGracefully(0, 2, TimeUnit.SECONDS).syncUninterruptibly();
    }

    /** Per connection; event-loop confined. */
    private final class Handler extends ChannelInboundHandlerAdapter {
        private HttpRequest request;
        private long bodyBytes;

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (msg instanceof HttpRequest r) {
                request = r;
                bodyBytes = 0;
                if (path().equals("/echo")) {
                    HttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
                    HttpUtil.setTransferEncodingChunked(head, true);
                    ctx.write(head);
                }
            }
            if (msg instanceof HttpContent content) {
                bodyBytes += content.content().readableBytes();
                boolean last = content instanceof LastHttpContent;
                if (path().equals("/echo")) {
                    if (content.content().isReadable()) {
                        ctx.write(new DefaultHttpContent(content.content().retain()));
                    }
                    if (last) {
                        ctx.writeAndFlush(LastHttpContent.EMPTY_LAST_CONTENT);
                    }
                }
                content.release();
                if (last) {
                    requests.add(new Recorded(request.method().name(), request.uri(),
                            new DefaultHttpHeaders().add(request.headers()), bodyBytes));
                    respond(ctx);
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
            switch (path()) {
                case "/echo", "/hang" -> {
                    // already answered while streaming, or never
                }
                case "/download" -> {
                    HttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
                    HttpUtil.setTransferEncodingChunked(head, true);
                    ctx.write(head);
                    ctx.writeAndFlush(new HttpChunkedInput(new ChunkedStream(new PatternStream(param("bytes")),
                            64 * 1024)));
                }
                case "/slow" -> ctx.executor().schedule(() -> ctx.writeAndFlush(text("slow hello\n")),
                        param("ms"), TimeUnit.MILLISECONDS);
                default -> ctx.writeAndFlush(text("hello from backend\n"));
            }
        }

        private FullHttpResponse text(String body) {
            ByteBuf content = Unpooled.copiedBuffer(body, StandardCharsets.UTF_8);
            FullHttpResponse r = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK, content);
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

    /** The bytes of {@code /download}: byte i is {@code (byte) i}, so a test can check any prefix cheaply. */
    public static final class PatternStream extends InputStream {
        private final long length;
        private long position;

        public PatternStream(long length) {
            this.length = length;
        }

        @Override
        public int read() {
            return position < length ? (int) (position++ & 0xff) : -1;
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
            return n;
        }
    }
}
