package dev.mtlsproxy.app.demo;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufOutputStream;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
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
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpContent;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpObject;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpServerExpectContinueHandler;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The plaintext HTTP/1.1 backend of {@code mtls-proxy demo}: answers every request with 200 and a
 * small JSON object describing what arrived, so a newcomer can see what the proxy forwarded:
 * <pre>
 * { "backend" : "demo echo", "method" : "POST", "path" : "/orders?id=1",
 *   "identity" : "&lt;X-Forwarded-Client-Cert or null&gt;", "forwardedFor" : "&lt;X-Forwarded-For or null&gt;",
 *   "bodyBytes" : 1048576 }
 * </pre>
 * {@code path} is the request target as received, query included. The request body is streamed,
 * counted and dropped chunk by chunk (never aggregated), so the backend doubles as a sink for
 * uploads of any size. Keep-alive is honoured.
 *
 * <pre>
 * Child pipeline, in order:
 *   http      HttpServerCodec, default limits
 *   continue  HttpServerExpectContinueHandler: answers "Expect: 100-continue" (curl sends it for large bodies)
 *   echo      EchoHandler: counts the body, answers at the last chunk
 * </pre>
 */
public final class EchoBackend implements AutoCloseable {

    static final String X_FORWARDED_CLIENT_CERT = "X-Forwarded-Client-Cert";
    static final String X_FORWARDED_FOR = "X-Forwarded-For";

    /** Thread-safe once configured; shared by every connection. */
    private static final JsonFactory JSON = new JsonFactory();

    private final EventLoopGroup group;
    private final Channel serverChannel;
    private final AtomicBoolean closed = new AtomicBoolean();

    private EchoBackend(EventLoopGroup group, Channel serverChannel) {
        this.group = group;
        this.serverChannel = serverChannel;
    }

    /**
     * Binds {@code host:port} ({@code port} 0 picks a free one, see {@link #port()}) and serves until
     * {@link #close()}.
     *
     * @throws UncheckedIOException if the address cannot be bound
     */
    public static EchoBackend start(String host, int port) throws InterruptedException {
        Objects.requireNonNull(host, "host");
        // One thread serves both the listening socket and every connection: this is a demo backend.
        // Daemon threads: the proxy's lifecycle, not this backend's, decides when the JVM exits.
        EventLoopGroup group = new MultiThreadIoEventLoopGroup(
                1, new DefaultThreadFactory("demo-echo-backend", true), NioIoHandler.newFactory());
        boolean started = false;
        try {
            ChannelFuture bind = new ServerBootstrap()
                    .group(group)
                    .channel(NioServerSocketChannel.class)
                    .childHandler(new ChannelInitializer<SocketChannel>() {
                        @Override
                        protected void initChannel(SocketChannel channel) {
                            channel.pipeline()
                                    .addLast("http", new HttpServerCodec())
                                    .addLast("continue", new HttpServerExpectContinueHandler())
                                    .addLast("echo", new EchoHandler());
                        }
                    })
                    .bind(host, port)
                    .await();
            if (!bind.isSuccess()) {
                Throwable cause = bind.cause();
                String message = "cannot bind the demo echo backend to " + host + ":" + port;
                if (cause instanceof IOException io) {
                    throw new UncheckedIOException(message, io);
                }
                throw new IllegalStateException(message, cause);
            }
            started = true;
            return new EchoBackend(group, bind.channel());
        } finally {
            if (!started) {
                group.shutdownGracefully(0, 0, TimeUnit.SECONDS);
            }
        }
    }

    /** The bound port, the real one when started with port 0. */
    public int port() {
        return ((InetSocketAddress) serverChannel.localAddress()).getPort();
    }

    /**
     * Stops listening and closes every open connection; waits until the event loop has stopped.
     * Idempotent.
     */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        serverChannel.close().syncUninterruptibly();
        // No quiet period: nothing else is submitted to this private group once the listener is closed.
        group.shutdownGracefully(0, 5, TimeUnit.SECONDS).syncUninterruptibly();
    }

    @Override
    public String toString() {
        return "EchoBackend[" + serverChannel.localAddress() + "]";
    }

    /** What the response reports about a request, captured from its head. */
    private record RequestHead(
            HttpVersion version, String method, String path, String identity, String forwardedFor,
            boolean keepAlive) {

        static RequestHead of(HttpRequest request) {
            return new RequestHead(
                    request.protocolVersion(),
                    request.method().name(),
                    request.uri(),
                    request.headers().get(X_FORWARDED_CLIENT_CERT),
                    request.headers().get(X_FORWARDED_FOR),
                    HttpUtil.isKeepAlive(request));
        }
    }

    /**
     * One per connection; its fields are confined to the channel's event loop. Every {@code channelRead}
     * releases its message in {@code finally}: nothing is retained or forwarded.
     */
    static final class EchoHandler extends ChannelInboundHandlerAdapter {

        /** The request being received, null between requests. */
        private RequestHead head;
        private long bodyBytes;

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            try {
                if (msg instanceof HttpObject object && object.decoderResult().isFailure()) {
                    // The decoder discards everything after a malformed message: answer and close.
                    head = null;
                    respond(ctx, HttpVersion.HTTP_1_1, HttpResponseStatus.BAD_REQUEST,
                            Unpooled.EMPTY_BUFFER, false);
                    return;
                }
                if (msg instanceof HttpRequest request) {
                    head = RequestHead.of(request);
                    bodyBytes = 0;
                }
                // A FullHttpRequest is both a head and its content, so this is not an else-branch.
                if (msg instanceof HttpContent content && head != null) {
                    bodyBytes += content.content().readableBytes();
                    if (msg instanceof LastHttpContent) {
                        RequestHead finished = head;
                        head = null;
                        respond(ctx, finished.version(), HttpResponseStatus.OK,
                                json(ctx, finished, bodyBytes), finished.keepAlive());
                    }
                }
            } finally {
                ReferenceCountUtil.release(msg);
            }
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            // A demo backend has no one to report to; the client sees the connection close.
            ctx.close();
        }

        private static void respond(
                ChannelHandlerContext ctx, HttpVersion version, HttpResponseStatus status, ByteBuf body,
                boolean keepAlive) {
            FullHttpResponse response = new DefaultFullHttpResponse(version, status, body);
            response.headers().setInt(HttpHeaderNames.CONTENT_LENGTH, body.readableBytes());
            if (body.isReadable()) {
                response.headers().set(HttpHeaderNames.CONTENT_TYPE, HttpHeaderValues.APPLICATION_JSON);
            }
            if (!keepAlive) {
                response.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
            } else if (!version.isKeepAliveDefault()) {
                // HTTP/1.0 with "Connection: keep-alive" must hear it back, or the client closes.
                response.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.KEEP_ALIVE);
            }
            ChannelFuture written = ctx.writeAndFlush(response);
            if (!keepAlive) {
                written.addListener(ChannelFutureListener.CLOSE);
            }
        }

        private static ByteBuf json(ChannelHandlerContext ctx, RequestHead head, long bodyBytes) {
            ByteBuf buffer = ctx.alloc().buffer(256);
            // Typed as OutputStream: ByteBufOutputStream is also a DataOutput, which Jackson overloads on.
            OutputStream out = new ByteBufOutputStream(buffer);
            try (JsonGenerator json = JSON.createGenerator(out)) {
                json.useDefaultPrettyPrinter();
                json.writeStartObject();
                json.writeStringField("backend", "demo echo");
                json.writeStringField("method", head.method());
                json.writeStringField("path", head.path());
                writeNullableString(json, "identity", head.identity());
                writeNullableString(json, "forwardedFor", head.forwardedFor());
                json.writeNumberField("bodyBytes", bodyBytes);
                json.writeEndObject();
                json.writeRaw('\n');
            } catch (IOException e) {
                buffer.release();
                throw new UncheckedIOException("cannot write the echo response", e);
            }
            return buffer;
        }

        private static void writeNullableString(JsonGenerator json, String name, String value) throws IOException {
            if (value == null) {
                json.writeNullField(name);
            } else {
                json.writeStringField(name, value);
            }
        }
    }
}
