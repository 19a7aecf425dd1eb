package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.core.backend.Backend;
import dev.mtlsproxy.core.http.ErrorResponses;
import dev.mtlsproxy.core.http.ForwardedHeaders;
import dev.mtlsproxy.core.metrics.ProxyMetrics;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ConnectTimeoutException;
import io.netty.channel.EventLoop;
import io.netty.handler.codec.http.HttpContent;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpStatusClass;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.ScheduledFuture;
import java.net.ConnectException;
import java.util.ArrayDeque;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Relays an authorised exchange to its backend and the response back, streaming both bodies with back-pressure.
 *
 * <p>The backend connection lives on this connection's event loop (pooled per loop), so both channels are driven
 * from one thread and every field here is event-loop confined. Neither side auto-reads: the client is read only
 * while the backend accepts writes, the backend only while the client does, so a slow reader on either side stops
 * the other instead of growing the heap. Writes are flushed once per read batch.
 *
 * <p>Failures map to statuses while no response byte has been sent: connect failure 502, no response headers in
 * time 504. After that the only honest signal is closing the client connection, which a client sees as a
 * truncated response, never as a complete one.
 */
final class ForwardingHandler extends ChannelInboundHandlerAdapter {

    private static final Logger log = LoggerFactory.getLogger(ForwardingHandler.class);

    private final Supplier<ProxyRuntime> runtime;
    private final BackendConnector connector;
    private final String xfccBy;
    private final ProxyMetrics metrics;

    private ChannelHandlerContext ctx;
    private ProxyRuntime rt;
    private Exchange exchange;
    private Backend backend;
    /** The leased backend connection; null before it is connected and after the exchange. */
    private Channel upstream;
    /** Request parts that arrived while the backend connection was being established (at most one read's worth). */
    private final ArrayDeque<Object> pendingUntilConnected = new ArrayDeque<>();
    private boolean requestComplete;
    private boolean clientKeepAlive;
    private boolean clientHttp10;
    private boolean backendKeepAlive;
    private boolean skippingInterim;
    private ScheduledFuture<?> responseTimeout;
    /** When the request head went to the backend, for the backend response-time metric. */
    private long sentNanos;

    ForwardingHandler(Supplier<ProxyRuntime> runtime, BackendConnector connector, String xfccBy,
            ProxyMetrics metrics) {
        this.runtime = runtime;
        this.connector = connector;
        this.xfccBy = xfccBy;
        this.metrics = metrics;
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        this.ctx = ctx;
    }

    // ---- client -> backend -------------------------------------------------------------------------------------

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (msg instanceof HttpRequest request) {
            startExchange(request);
        }
        if (msg instanceof HttpContent content) {
            if (exchange == null) {
                // The rest of a body whose exchange already ended (the backend answered early): dropped, and the
                // connection is closing because that exchange left the request incomplete.
                content.release();
                return;
            }
            exchange.bytesIn += content.content().readableBytes();
            requestComplete = content instanceof LastHttpContent;
            if (upstream != null) {
                upstream.write(content);
            } else {
                pendingUntilConnected.add(content);
            }
        }
    }

    private void startExchange(HttpRequest request) {
        exchange = ctx.channel().attr(Exchange.KEY).get();
        rt = exchange.runtime != null ? exchange.runtime : runtime.get();
        backend = rt.backend(exchange.decision.route().backend());
        exchange.backend = backend.endpoint();
        requestComplete = false;
        skippingInterim = false;
        clientKeepAlive = HttpUtil.isKeepAlive(request);
        clientHttp10 = request.protocolVersion().equals(HttpVersion.HTTP_1_0);
        ForwardedHeaders.forBackend(request.headers(), ctx.channel().remoteAddress(), exchange.peer(), xfccBy);
        // Backend connections are always HTTP/1.1 keep-alive, whatever the client speaks.
        request.setProtocolVersion(HttpVersion.HTTP_1_1);
        pendingUntilConnected.add(request);

        Channel pooled = backend.pool().acquire(ctx.channel().eventLoop());
        if (pooled != null) {
            attach(pooled);
            return;
        }
        ChannelFuture connect = connector.connect(ctx.channel().eventLoop(), backend);
        connect.addListener((ChannelFutureListener) f -> {
            backend.health().set(f.isSuccess());
            if (!f.isSuccess()) {
                metrics.backendConnectError(backend.name(), connectErrorReason(f.cause()));
                backendFailed(f.cause(), "connect");
            } else if (exchange == null || !ctx.channel().isActive()) {
                f.channel().close();
            } else {
                attach(f.channel());
            }
        });
    }

    private void attach(Channel channel) {
        upstream = channel;
        channel.pipeline().get(BackendHandler.class).owner = this;
        Object msg;
        while ((msg = pendingUntilConnected.poll()) != null) {
            channel.write(msg);
        }
        channel.flush();
        sentNanos = System.nanoTime();
        // Read the response from now on, even while the request body still streams: a backend may answer early.
        channel.read();
        if (requestComplete) {
            armResponseTimeout();
        } else if (channel.isWritable()) {
            ctx.read();
        }
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
        if (upstream != null) {
            upstream.flush();
            if (requestComplete) {
                armResponseTimeout();
            } else if (upstream.isWritable()) {
                ctx.read();
            }
        }
        ctx.fireChannelReadComplete();
    }

    /** The backend drained its write buffer: resume reading the request body. */
    void backendWritable() {
        if (exchange != null && !requestComplete && upstream != null && upstream.isWritable()) {
            ctx.read();
        }
    }

    private void armResponseTimeout() {
        if (responseTimeout != null || exchange == null || exchange.responseStarted) {
            return;
        }
        long nanos = backend.responseTimeout().toNanos();
        responseTimeout = ctx.executor().schedule(() -> {
            responseTimeout = null;
            if (exchange != null && !exchange.responseStarted) {
                backendFailed(null, "response timeout after " + backend.responseTimeout());
            }
        }, nanos, TimeUnit.NANOSECONDS);
    }

    // ---- backend -> client -------------------------------------------------------------------------------------

    void backendRead(Object msg) {
        if (exchange == null) {
            ReferenceCountUtil.release(msg);
            return;
        }
        if (msg instanceof HttpResponse response) {
            if (response.status().codeClass() == HttpStatusClass.INFORMATIONAL) {
                // 1xx from the backend: the proxy already answered any Expect itself; 101 is not offered upstream.
                skippingInterim = true;
                ReferenceCountUtil.release(msg);
                return;
            }
            cancelResponseTimeout();
            metrics.backendResponse(backend.name(), System.nanoTime() - sentNanos);
            exchange.responseStarted = true;
            backendKeepAlive = HttpUtil.isKeepAlive(response);
            prepareForClient(response);
        }
        if (msg instanceof HttpContent content) {
            if (skippingInterim) {
                skippingInterim = !(content instanceof LastHttpContent);
                content.release();
                return;
            }
            exchange.bytesOut += content.content().readableBytes();
            if (content instanceof LastHttpContent) {
                ctx.write(content);
                responseComplete();
                return;
            }
            ctx.write(content);
        } else {
            ctx.write(msg);
        }
    }

    private void prepareForClient(HttpResponse response) {
        ForwardedHeaders.forClient(response.headers());
        exchange.status = response.status().code();
        boolean sized = HttpUtil.isContentLengthSet(response);
        if (!sized && mayHaveBody(response)) {
            if (clientHttp10) {
                // HTTP/1.0 has no chunked coding: the body is delimited by closing the connection.
                response.headers().remove(HttpHeaderNames.TRANSFER_ENCODING);
                clientKeepAlive = false;
            } else {
                // Chunked from the backend, or close-delimited: chunked to the client keeps its connection open.
                response.headers().set(HttpHeaderNames.TRANSFER_ENCODING, HttpHeaderValues.CHUNKED);
            }
        }
        response.setProtocolVersion(HttpVersion.HTTP_1_1);
        if (!clientKeepAlive) {
            response.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
        }
    }

    private boolean mayHaveBody(HttpResponse response) {
        int code = response.status().code();
        return !exchange.method.equals("HEAD") && code != 204 && code != 304;
    }

    void backendReadComplete() {
        ctx.flush();
        if (upstream != null && exchange != null && exchange.responseStarted && ctx.channel().isWritable()) {
            upstream.read();
        }
    }

    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) {
        // The client drained: resume reading the response.
        if (ctx.channel().isWritable() && upstream != null && exchange != null && exchange.responseStarted) {
            upstream.read();
        }
        ctx.fireChannelWritabilityChanged();
    }

    private void responseComplete() {
        Channel used = upstream;
        boolean reusable = backendKeepAlive && requestComplete;
        boolean closeClient = !clientKeepAlive || !requestComplete;
        exchange.finish(exchange.status);
        endExchange();
        if (closeClient) {
            ctx.flush();
            ctx.channel().close();
        } else {
            ctx.flush();
        }
        release(used, reusable);
    }

    private void release(Channel channel, boolean reusable) {
        if (channel == null) {
            return;
        }
        channel.pipeline().get(BackendHandler.class).owner = null;
        if (reusable && backend.pool().release(channel)) {
            // An idle pooled connection keeps a read pending so a close by the backend is noticed while idle.
            channel.read();
        } else {
            channel.close();
        }
    }

    // ---- failures ----------------------------------------------------------------------------------------------

    /** The backend connection failed or closed before the response was complete. */
    void backendFailed(Throwable cause, String what) {
        if (exchange == null) {
            return;
        }
        String reason = describe(cause, what);
        metrics.backendFailed(backend.name(), what.equals("connect") ? "connect_error"
                : what.startsWith("response timeout") ? "timeout" : "failed");
        Channel failed = upstream;
        if (exchange.responseStarted) {
            log.warn("event=backend_failed backend={} endpoint={} cause=\"{}\" after=response_started",
                    backend.name(), backend.endpoint(), reason);
            exchange.finish(exchange.status);
            endExchange();
            ctx.channel().close();
        } else {
            boolean timeout = what.startsWith("response timeout");
            HttpResponseStatus status = timeout ? HttpResponseStatus.GATEWAY_TIMEOUT : HttpResponseStatus.BAD_GATEWAY;
            log.warn("event=backend_failed backend={} endpoint={} cause=\"{}\" status={}",
                    backend.name(), backend.endpoint(), reason, status.code());
            boolean keepAlive = clientKeepAlive && requestComplete;
            Exchange failedExchange = exchange;
            endExchange();
            failedExchange.answerLocally(ctx, ErrorResponses.of(status, keepAlive), keepAlive);
        }
        if (failed != null) {
            failed.pipeline().get(BackendHandler.class).owner = null;
            failed.close();
        }
    }

    private static String connectErrorReason(Throwable cause) {
        if (cause instanceof ConnectTimeoutException) {
            return "timeout";
        }
        return cause instanceof ConnectException ? "refused" : "other";
    }

    private static String describe(Throwable cause, String what) {
        if (cause instanceof ConnectTimeoutException) {
            return "connect timeout";
        }
        if (cause instanceof ConnectException) {
            return "connection refused";
        }
        if (cause == null) {
            return what;
        }
        return what + ": " + cause.getClass().getSimpleName()
                + (cause.getMessage() == null ? "" : " " + cause.getMessage().replace('"', '\''));
    }

    private void endExchange() {
        cancelResponseTimeout();
        Object msg;
        while ((msg = pendingUntilConnected.poll()) != null) {
            ReferenceCountUtil.release(msg);
        }
        exchange = null;
        upstream = null;
    }

    private void cancelResponseTimeout() {
        if (responseTimeout != null) {
            responseTimeout.cancel(false);
            responseTimeout = null;
        }
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
        if (evt instanceof IdleStateEvent) {
            if (exchange != null && !exchange.responseStarted) {
                backendFailed(null, "response timeout: connection idle");
            }
            ctx.close();
            return;
        }
        ctx.fireUserEventTriggered(evt);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        if (exchange != null) {
            // Client went away mid-exchange: the backend connection is in an unknown state, never reuse it.
            exchange.finish(0, "client_closed");
            Channel abandoned = upstream;
            endExchange();
            if (abandoned != null) {
                abandoned.pipeline().get(BackendHandler.class).owner = null;
                abandoned.close();
            }
        }
        ctx.fireChannelInactive();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        log.debug("event=client_connection_error remote={} cause={}", ctx.channel().remoteAddress(),
                cause.toString());
        ctx.close();
    }

    /** Opens backend connections on a given event loop. */
    interface BackendConnector {
        ChannelFuture connect(EventLoop loop, Backend backend);
    }
}
