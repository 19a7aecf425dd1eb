package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.config.Durations;
import dev.mtlsproxy.core.backend.Backend;
import dev.mtlsproxy.core.backend.BackendFailures;
import dev.mtlsproxy.core.backend.Endpoint;
import dev.mtlsproxy.core.http.ErrorResponses;
import dev.mtlsproxy.core.http.ForwardedHeaders;
import dev.mtlsproxy.core.http.Upgrades;
import dev.mtlsproxy.core.log.LogText;
import dev.mtlsproxy.core.policy.PolicyDecision;
import dev.mtlsproxy.core.policy.PolicyRequest;
import dev.mtlsproxy.core.identity.PeerIdentity;
import dev.mtlsproxy.core.metrics.ProxyMetrics;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.EventLoop;
import io.netty.handler.codec.http.HttpContent;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpStatusClass;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.handler.ssl.SslHandler;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.util.AsciiString;
import io.netty.util.AttributeKey;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.ScheduledFuture;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Relays an authorised exchange to an endpoint of its backend and the response back, streaming both bodies with
 * back-pressure; relays a WebSocket upgrade as a byte tunnel.
 *
 * <p>The backend connection lives on this connection's event loop (pooled per endpoint and loop), so both channels
 * are driven from one thread and every field here is event-loop confined. Neither side auto-reads: the client is
 * read only while the backend accepts writes, the backend only while the client does, so a slow reader on either
 * side stops the other instead of growing the heap. Writes are flushed once per read batch. Relayed writes carry
 * void promises: nothing waits on a single write (writability is the flow control), and a write that fails
 * surfaces as {@code exceptionCaught} on its channel, which ends the exchange as the close that follows would.
 *
 * <p>Endpoints are picked round robin among the healthy ones. A request whose connection attempt fails (TCP or TLS)
 * is retried on another endpoint, since nothing of it was sent; once any of it has been written to a backend it is
 * not retried, with one exception: a bodiless request with an idempotent method (GET, HEAD, OPTIONS, TRACE, PUT,
 * DELETE) on a connection that the backend closed before answering is sent once more, on a new connection to the
 * same endpoint. On a pooled connection that is the race of a backend's keep-alive timeout with the reuse of its
 * idle connection; on a new one, a backend that closes connections as it accepts them or right after the TLS
 * handshake (at its connection limit, or shutting down): the request is written as soon as the connection is up, so
 * the close arrives after it, and a backend that never read it looks the same as one that read it and died. RFC
 * 9110 (section 9.2.2) lets a client retry such a request, and nginx does. Failures map to statuses while no response
 * byte has been sent: no healthy endpoint 503, connect or TLS failure 502, no response headers in time 504. After
 * that the only honest signal is closing the client connection, which a client sees as a truncated response, never
 * as a complete one.
 */
final class ForwardingHandler extends ChannelInboundHandlerAdapter {

    private static final Logger log = LoggerFactory.getLogger(ForwardingHandler.class);

    /**
     * On a client connection that became a WebSocket tunnel: the request that opened it, as the policy judged it.
     * A tunnel has no next request to be refused, so a reload judges this one again (see {@link Reverification}).
     */
    static final AttributeKey<PolicyRequest> TUNNELLED_REQUEST =
            AttributeKey.valueOf(ForwardingHandler.class, "tunnelledRequest");

    /** User event: judge the WebSocket tunnel again by the current policy (a reload happened). */
    static final Object REVIEW_TUNNEL = new Object() {
        @Override
        public String toString() {
            return "REVIEW_TUNNEL";
        }
    };

    /** Client pipeline handlers that only make sense for HTTP; a WebSocket tunnel removes them. */
    private static final List<String> HTTP_ONLY_HANDLERS = List.of("sequence", "guard", "authorize", "http");
    /** RFC 9110, section 9.2.2. */
    private static final Set<HttpMethod> IDEMPOTENT = Set.of(HttpMethod.GET, HttpMethod.HEAD, HttpMethod.OPTIONS,
            HttpMethod.TRACE, HttpMethod.PUT, HttpMethod.DELETE);

    private final Supplier<ProxyRuntime> runtime;
    private final BackendConnector connector;
    private final String xfccBy;
    private final ProxyMetrics metrics;
    /**
     * The listener's idle timeout: also how long a closed tunnel's backend may take nothing of its last bytes before
     * its connection is cut ({@link TunnelBackendDrain}).
     */
    private final Duration idleTimeout;

    private ChannelHandlerContext ctx;
    private Exchange exchange;
    private Backend backend;
    /** The request head when its client sent no Host (HTTP/1.0): each endpoint tried gives it its own. */
    private HttpRequest hostless;
    /** The endpoint of the current attempt; endpoints already tried for this request are in {@link #tried}. */
    private Endpoint endpoint;
    private final List<Endpoint> tried = new ArrayList<>(2);
    /** Increments per connection attempt, so a late connect result for an abandoned attempt is recognised. */
    private int attempt;
    /** Why the last connection attempt failed, for the 502 when no endpoint is left to try. */
    private String lastConnectFailure;
    /** The current backend connection came from the pool, as the retry log line says when the backend closed it. */
    private boolean upstreamReused;
    /**
     * The request head while the exchange may still be sent once more (see the class comment): bodiless,
     * idempotent, not yet replayed, and nothing received from the backend.
     */
    private HttpRequest replayable;
    /** The leased backend connection; null before it is connected and after the exchange. */
    private Channel upstream;
    /*
     * Written and not yet flushed, per side: a read batch ends with a flush only when it wrote something. Without
     * these, every keep-alive request paid for two flushes through a pipeline with nothing to send (the request is
     * flushed when the connection is attached, the response when it completes).
     */
    private boolean backendUnflushed;
    private boolean clientUnflushed;
    /** The request head and body parts that arrived before a connection was ready (at most one read's worth). */
    private final ArrayDeque<Object> pendingUntilConnected = new ArrayDeque<>();
    private boolean requestComplete;
    /** The request announced no body: once answered, nothing of it is left unread on the connection. */
    private boolean requestBodiless;
    private boolean clientKeepAlive;
    private boolean clientHttp10;
    private boolean backendKeepAlive;
    private boolean skippingInterim;
    /** The request asked for a WebSocket upgrade, which the backend may accept with 101. */
    private boolean webSocketRequested;
    /** The Sec-WebSocket-Accept a 101 must carry to answer that upgrade request; null without one. */
    private String webSocketAccept;
    /** Raw bytes both ways: the backend switched to WebSocket. */
    private boolean tunnel;
    /**
     * While {@link #switchingProtocols} takes the HTTP handlers out of both pipelines. A codec being removed hands
     * on at once the bytes it read past the HTTP (a frame the backend sent with its 101, one the client sent with its
     * request), when the other pipeline may still have its codec, whose encoder throws on raw bytes. Such bytes wait
     * here, owned by this handler until relayed at the end of the switch or released by {@link #endExchange}.
     */
    private boolean switching;
    private final ArrayDeque<ByteBuf> heldForClient = new ArrayDeque<>();
    private final ArrayDeque<ByteBuf> heldForBackend = new ArrayDeque<>();
    /*
     * Timers are lazy: one scheduled check per kind per connection, moved only when a deadline comes sooner, and
     * disarmed by a flag rather than cancelled. Scheduling and cancelling a task per request cost two priority-queue
     * operations each on every keep-alive request; now a check is scheduled about once per timeout period, and a
     * check that finds nothing armed ends. Closing the connection cancels what is scheduled.
     */
    /** The current exchange waits for response headers until responseDeadline (System.nanoTime). */
    private boolean responseArmed;
    private long responseDeadline;
    private Duration responseTimeoutValue;
    private ScheduledFuture<?> responseTimer;
    private long responseTimerAt;
    /** The current exchange's response body is watched for idleness. */
    private boolean bodyIdleArmed;
    private ScheduledFuture<?> bodyIdleTimer;
    private long bodyIdleTimerAt;
    /** Since when the response body has been waited for without any bytes arriving. */
    private long bodyIdleSince;
    /** The tunnel's next review by the policy, when its grant can lapse with time. */
    private ScheduledFuture<?> tunnelReview;
    /** When the request head went to the backend, for the backend response-time metric. */
    private long sentNanos;
    /**
     * The backend sent the current exchange's response headers: it counts as {@code ok} when the exchange ends,
     * unless {@link #fail} counts it as timeout or failed first (one result per request).
     */
    private boolean backendOkPending;
    /** Per-connection parts of the forwarded headers, built on the first request. */
    private AsciiString clientIp;
    private PeerIdentity xfccPeer;
    private AsciiString xfcc;

    ForwardingHandler(Supplier<ProxyRuntime> runtime, BackendConnector connector, String xfccBy,
            ProxyMetrics metrics, Duration idleTimeout) {
        this.runtime = runtime;
        this.connector = connector;
        this.xfccBy = xfccBy;
        this.metrics = metrics;
        this.idleTimeout = idleTimeout;
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        this.ctx = ctx;
    }

    // ---- client -> backend -------------------------------------------------------------------------------------

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (tunnel) {
            tunnelFromClient(msg);
            return;
        }
        if (msg instanceof HttpRequest request) {
            startExchange(request);
            return;
        }
        if (msg instanceof HttpContent content) {
            if (exchange == null) {
                // The rest of a body whose exchange already ended (the backend answered early): dropped, and the
                // connection is closing because that exchange left the request incomplete.
                content.release();
                return;
            }
            requestPartRead(content);
            if (upstream != null) {
                upstream.write(content, upstream.voidPromise());
                backendUnflushed = true;
            } else {
                pendingUntilConnected.add(content);
            }
        }
    }

    /** Counts a part of the request's body; at its end, cleans the trailers and marks the request complete. */
    private void requestPartRead(HttpContent content) {
        exchange.bytesIn += content.content().readableBytes();
        if (content instanceof LastHttpContent last) {
            ForwardedHeaders.trailersForBackend(last.trailingHeaders());
            requestComplete = true;
        }
    }

    /** The client's address for X-Forwarded-For: fixed for the connection, so formatted once. */
    private AsciiString clientIp() {
        if (clientIp == null) {
            clientIp = new AsciiString(ForwardedHeaders.clientIp(ctx.channel().remoteAddress()));
        }
        return clientIp;
    }

    /**
     * The XFCC value: the identity is captured once per connection (and never changes on it), so the header is
     * built once, not per request.
     */
    private AsciiString xfcc(PeerIdentity peer) {
        if (peer != xfccPeer || xfcc == null) {
            xfcc = new AsciiString(ForwardedHeaders.clientCertHeader(peer, xfccBy));
            xfccPeer = peer;
        }
        return xfcc;
    }

    private void startExchange(HttpRequest request) {
        exchange = ctx.channel().attr(Exchange.KEY).get();
        ProxyRuntime rt = exchange.runtime != null ? exchange.runtime : runtime.get();
        backend = rt.backend(exchange.decision.route().backend());
        endpoint = null;
        tried.clear();
        lastConnectFailure = null;
        requestComplete = false;
        requestBodiless = !HttpUtil.isTransferEncodingChunked(request) && HttpUtil.getContentLength(request, 0L) == 0;
        skippingInterim = false;
        clientKeepAlive = HttpUtil.isKeepAlive(request);
        clientHttp10 = request.protocolVersion().equals(HttpVersion.HTTP_1_0);
        webSocketRequested = Upgrades.isWebSocketRequest(request);
        webSocketAccept = webSocketRequested ? Upgrades.expectedAccept(request) : null;
        // A bodiless request the decoder joined with its end (StrictHttpServerCodec) has the shared empty buffer for
        // content, which survives being written twice; any other content would not.
        replayable = requestBodiless && !webSocketRequested
                && (!(request instanceof HttpContent whole) || whole.content() == Unpooled.EMPTY_BUFFER)
                && IDEMPOTENT.contains(request.method()) ? request : null;
        ForwardedHeaders.forBackend(request.headers(), clientIp(), xfcc(exchange.peer()));
        // RequestGuard let a request without Host through only as HTTP/1.0; it is forwarded as HTTP/1.1. One whose
        // target named its host got that as Host from AuthorizationHandler; only one that named none is hostless.
        hostless = clientHttp10 && !request.headers().contains(HttpHeaderNames.HOST) ? request : null;
        if (webSocketRequested) {
            Upgrades.keepWebSocketUpgrade(request.headers());
        }
        // Backend connections are always HTTP/1.1 keep-alive, whatever the client speaks.
        request.setProtocolVersion(HttpVersion.HTTP_1_1);
        if (request instanceof HttpContent whole) {
            // Head and end in one message: the request is complete before a connection is chosen.
            requestPartRead(whole);
        }
        pendingUntilConnected.add(request);
        connectNext();
    }

    /**
     * Leases a connection to the next healthy endpoint this request has not tried, or answers 503 (none was
     * healthy) or 502 (every one failed to connect).
     */
    private void connectNext() {
        Endpoint next = backend.pick(tried);
        if (next == null) {
            if (tried.isEmpty()) {
                fail("no healthy endpoint", "unavailable", HttpResponseStatus.SERVICE_UNAVAILABLE);
            } else {
                fail(lastConnectFailure, "connect_error", HttpResponseStatus.BAD_GATEWAY);
            }
            return;
        }
        if (endpoint != null) {
            metrics.backendRetried(backend.name());
            log.warn("event=backend_retry backend={} endpoint={} cause=\"{}\" next={}", backend.name(),
                    endpoint.display(), LogText.quoted(lastConnectFailure), next.display());
        }
        endpoint = next;
        tried.add(next);
        exchange.backend = next.display();
        if (hostless != null) {
            hostless.headers().set(HttpHeaderNames.HOST, next.hostHeader()); // nothing of the request was sent yet
        }
        EventLoop loop = ctx.channel().eventLoop();
        Channel pooled = next.pool().acquire(loop);
        if (pooled != null) {
            upstreamReused = true;
            attach(pooled);
            return;
        }
        connect(next, loop);
    }

    /** Opens a new connection to {@code next}; the request waits in {@link #pendingUntilConnected} meanwhile. */
    private void connect(Endpoint next, EventLoop loop) {
        upstreamReused = false;
        int thisAttempt = ++attempt;
        Exchange forExchange = exchange;
        Future<Channel> connect = connector.connect(loop, next);
        connect.addListener(f -> {
            boolean current = thisAttempt == attempt && exchange == forExchange && ctx.channel().isActive();
            if (!f.isSuccess()) {
                next.connectFailed();
                metrics.backendConnectError(backend.name(), BackendFailures.connectReason(f.cause()));
                if (current) {
                    lastConnectFailure = BackendFailures.describe(f.cause());
                    connectNext();
                }
            } else if (current) {
                attach(connect.getNow());
            } else {
                connect.getNow().close();
            }
        });
    }

    /**
     * Sends the request on {@code channel}, which is active: both callers hand over a channel that was active a
     * moment before on this event loop, with nothing in between that could close it. {@code BackendPool.acquire}
     * checks {@code isActive()} just before it returns; {@link Endpoint#connect} succeeds, on this loop, from the
     * listener of a successful connect or TLS handshake, and Netty runs the listener in {@link #connect} right
     * there. A close (a reset from the backend, an idle timer) is handled by this loop later, never in between.
     */
    private void attach(Channel channel) {
        upstream = channel;
        channel.pipeline().get(BackendHandler.class).owner = this;
        Object msg;
        while ((msg = pendingUntilConnected.poll()) != null) {
            channel.write(msg, channel.voidPromise());
        }
        channel.flush();
        backendUnflushed = false;
        sentNanos = System.nanoTime();
        // Read the response from now on, even while the request body still streams: a backend may answer early.
        channel.read();
        if (requestComplete) {
            armResponseTimeout(sentNanos);
        } else if (channel.isWritable()) {
            ctx.read();
        }
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
        if (upstream != null) {
            if (backendUnflushed) {
                backendUnflushed = false;
                upstream.flush();
            }
            if (tunnel) {
                if (upstream.isWritable()) {
                    ctx.read();
                }
            } else if (requestComplete) {
                if (!responseArmed) {
                    armResponseTimeout(System.nanoTime());
                }
                keepReadArmed();
            } else if (upstream.isWritable()) {
                ctx.read();
            }
        }
        ctx.fireChannelReadComplete();
    }

    /**
     * The request is complete: asks for the client's next bytes now rather than when the response has been
     * written. With auto-read off, a read loop that ends with no read pending makes the epoll transport drop the
     * socket's read interest, and the next read adds it back: two {@code epoll_ctl} calls per request on every
     * keep-alive connection. Asking here, before the loop ends, keeps the interest. It reads nothing early in the
     * usual case (a client waits for its response); a pipelined request that does arrive is held by the
     * {@link ExchangeSequencer}, which then declines further reads, so what is held stays bounded by one read.
     * Not after a WebSocket upgrade request: the codec keeps what follows it undecoded, so nothing would hold the
     * reads back.
     */
    private void keepReadArmed() {
        if (!webSocketRequested && clientKeepAlive) {
            ctx.read();
        }
    }

    /** The backend drained its write buffer: resume reading the request body (or the client's tunnel bytes). */
    void backendWritable() {
        if (upstream != null && upstream.isWritable() && (tunnel || (exchange != null && !requestComplete))) {
            ctx.read();
        }
    }

    /** @param now System.nanoTime(), from the caller: attaching a connection has just read it for the metric */
    private void armResponseTimeout(long now) {
        if (responseArmed || exchange == null || exchange.responseStarted) {
            return;
        }
        responseArmed = true;
        responseTimeoutValue = backend.responseTimeout();
        responseDeadline = now + responseTimeoutValue.toNanos();
        scheduleResponseCheck(responseDeadline);
    }

    private void scheduleResponseCheck(long at) {
        if (responseTimer != null) {
            if (responseTimerAt - at <= 0) {
                return; // the scheduled check comes first and re-schedules itself for what remains
            }
            responseTimer.cancel(false);
        }
        responseTimerAt = at;
        responseTimer = ctx.executor().schedule(this::checkResponseDeadline, at - System.nanoTime(),
                TimeUnit.NANOSECONDS);
    }

    private void checkResponseDeadline() {
        responseTimer = null;
        if (!responseArmed) {
            return;
        }
        if (responseDeadline - System.nanoTime() > 0) {
            scheduleResponseCheck(responseDeadline);
            return;
        }
        responseArmed = false;
        if (exchange != null && !exchange.responseStarted) {
            fail("response timeout: no response headers within " + Durations.format(responseTimeoutValue),
                    "timeout", HttpResponseStatus.GATEWAY_TIMEOUT);
        }
    }

    // ---- backend -> client -------------------------------------------------------------------------------------

    void backendRead(Object msg) {
        if (exchange == null) {
            ReferenceCountUtil.release(msg);
            return;
        }
        replayable = null; // the backend has answered something: it has the request
        if (tunnel) {
            tunnelFromBackend(msg);
            return;
        }
        if (msg instanceof HttpResponse response) {
            if (response.status().code() == HttpResponseStatus.SWITCHING_PROTOCOLS.code()) {
                switchingProtocols(response);
                return;
            }
            if (response.status().codeClass() == HttpStatusClass.INFORMATIONAL) {
                // 1xx from the backend: the proxy already answered any Expect itself.
                skippingInterim = true;
                ReferenceCountUtil.release(msg);
                return;
            }
            cancelResponseTimeout();
            metrics.backendResponse(backend.name(), System.nanoTime() - sentNanos);
            backendOkPending = true;
            exchange.responseStarted = true;
            backendKeepAlive = HttpUtil.isKeepAlive(response);
            prepareForClient(response);
            if (!(msg instanceof LastHttpContent)) {
                armBodyIdleTimer(); // a whole response has no body left to wait for
            }
        }
        if (msg instanceof HttpContent content) {
            if (skippingInterim) {
                skippingInterim = !(content instanceof LastHttpContent);
                content.release();
                return;
            }
            exchange.bytesOut += content.content().readableBytes();
            if (content instanceof LastHttpContent last) {
                if (!last.trailingHeaders().isEmpty()) {
                    ForwardedHeaders.forClient(last.trailingHeaders());
                }
                ctx.write(content, ctx.voidPromise());
                responseComplete();
                return;
            }
            bodyIdleSince = System.nanoTime(); // the body is still coming: its idle time counts from here
            ctx.write(content, ctx.voidPromise());
        } else {
            ctx.write(msg, ctx.voidPromise());
        }
        clientUnflushed = true;
    }

    private void prepareForClient(HttpResponse response) {
        ForwardedHeaders.forClient(response.headers());
        exchange.status = response.status().code();
        boolean sized = HttpUtil.isContentLengthSet(response);
        if (clientHttp10) {
            // HTTP/1.0 has no chunked coding, and RFC 9112 6.1 allows no Transfer-Encoding in a response to it, even
            // one without a body (HEAD, 304), where the backend's field would otherwise go through.
            response.headers().remove(HttpHeaderNames.TRANSFER_ENCODING);
        }
        if (!sized && mayHaveBody(response)) {
            if (clientHttp10) {
                // The body is delimited by closing the connection.
                clientKeepAlive = false;
            } else {
                // Chunked from the backend, or close-delimited: chunked to the client keeps its connection open.
                response.headers().set(HttpHeaderNames.TRANSFER_ENCODING, HttpHeaderValues.CHUNKED);
            }
        }
        response.setProtocolVersion(HttpVersion.HTTP_1_1);
        if (!requestComplete) {
            // Answered before the upload ended: the connection closes after this response (lingering, when the
            // upload is still unfinished then, see responseComplete), so say so, or a client may send its next
            // request on it. Once said, it closes even if the upload ends while the response is being sent.
            clientKeepAlive = false;
        }
        if (!clientKeepAlive) {
            response.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
        } else if (clientHttp10) {
            // An HTTP/1.0 client keeps the connection only when told so (RFC 9112 C.2.2); as nginx says it.
            response.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.KEEP_ALIVE);
        }
    }

    private boolean mayHaveBody(HttpResponse response) {
        int code = response.status().code();
        return !exchange.method.equals("HEAD") && code != 204 && code != 304;
    }

    void backendReadComplete() {
        if (clientUnflushed) {
            clientUnflushed = false;
            ctx.flush();
        }
        if (upstream == null || exchange == null) {
            return;
        }
        // Still waiting for the final head (a 1xx came first, and the decoder asks for more only when a read
        // produced nothing), or relaying a body the client has room for.
        boolean awaitingHead = !tunnel && !exchange.responseStarted;
        if (awaitingHead || ctx.channel().isWritable()) {
            upstream.read();
        }
    }

    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) {
        // The client drained: resume reading the response.
        if (ctx.channel().isWritable() && upstream != null && exchange != null
                && (tunnel || exchange.responseStarted)) {
            bodyIdleSince = System.nanoTime();
            upstream.read();
        }
        ctx.fireChannelWritabilityChanged();
    }

    /**
     * Arms the body idle timeout: a backend that stops sending in the middle of a body, while the client is ready
     * for more, ends the response. Time spent waiting for a slow client does not count.
     */
    private void armBodyIdleTimer() {
        bodyIdleSince = System.nanoTime();
        bodyIdleArmed = true;
        scheduleBodyIdleCheck(bodyIdleSince + backend.bodyIdleTimeout().toNanos());
    }

    private void scheduleBodyIdleCheck(long at) {
        if (bodyIdleTimer != null) {
            if (bodyIdleTimerAt - at <= 0) {
                return; // the scheduled check comes first and re-schedules itself for what remains
            }
            bodyIdleTimer.cancel(false);
        }
        bodyIdleTimerAt = at;
        bodyIdleTimer = ctx.executor().schedule(this::checkBodyIdle, at - System.nanoTime(), TimeUnit.NANOSECONDS);
    }

    private void checkBodyIdle() {
        bodyIdleTimer = null;
        if (!bodyIdleArmed || exchange == null || tunnel) {
            return;
        }
        long timeout = backend.bodyIdleTimeout().toNanos();
        long now = System.nanoTime();
        long idle = now - bodyIdleSince;
        if (!ctx.channel().isWritable()) {
            // The client is the slow side: the backend is not being read, so it cannot be blamed.
            scheduleBodyIdleCheck(now + timeout);
        } else if (idle >= timeout) {
            fail("response body idle for " + Durations.format(backend.bodyIdleTimeout()), "timeout",
                    HttpResponseStatus.GATEWAY_TIMEOUT);
        } else {
            scheduleBodyIdleCheck(now + timeout - idle);
        }
    }

    private void responseComplete() {
        Channel used = upstream;
        Endpoint usedEndpoint = endpoint;
        boolean reusable = backendKeepAlive && requestComplete;
        exchange.finish(exchange.status);
        endExchange();
        clientUnflushed = false;
        ctx.flush();
        if (!requestComplete || (!clientKeepAlive && ExchangeSequencer.sentMore(ctx.channel()))) {
            // Answered before the client finished sending, or a client that asked for close sent more after it
            // (against RFC 9112 9.6): bytes may be unread, and a close with bytes unread is a reset that drops the
            // end of this response from the send buffer.
            LingeringClose.close(ctx.channel());
        } else if (!clientKeepAlive) {
            LingeringClose.closeAfterWrites(ctx.channel());
        }
        release(used, usedEndpoint, reusable);
    }

    private static void release(Channel channel, Endpoint endpoint, boolean reusable) {
        if (channel == null) {
            return;
        }
        channel.pipeline().get(BackendHandler.class).owner = null;
        if (reusable && endpoint.pool().release(channel)) {
            // An idle pooled connection keeps a read pending so a close by the backend is noticed while idle.
            channel.read();
        } else {
            channel.close();
        }
    }

    // ---- WebSocket tunnel --------------------------------------------------------------------------------------

    /**
     * 101 from the backend. Accepted only as the answer to a WebSocket upgrade request (anything else is a backend
     * out of step with the protocol); then the 101 goes to the client and both connections become byte tunnels.
     */
    private void switchingProtocols(HttpResponse response) {
        String refused = !webSocketRequested || !requestComplete ? "backend switched protocols unasked"
                : Upgrades.whyNotWebSocketAnswer(response, webSocketAccept);
        if (refused != null) {
            // No tunnel: the backend connection is closed, and the client's next bytes are read as a request.
            ReferenceCountUtil.release(response);
            fail(refused, "failed", HttpResponseStatus.BAD_GATEWAY);
            return;
        }
        cancelResponseTimeout();
        metrics.backendResponse(backend.name(), System.nanoTime() - sentNanos);
        metrics.backendSucceeded(backend.name()); // the 101 is the backend's answer; the tunnel has no failure
        exchange.responseStarted = true;
        exchange.status = response.status().code();
        tunnel = true;
        ForwardedHeaders.forClient(response.headers());
        Upgrades.keepWebSocketUpgrade(response.headers());
        response.setProtocolVersion(HttpVersion.HTTP_1_1);
        ctx.write(response);
        ctx.writeAndFlush(LastHttpContent.EMPTY_LAST_CONTENT);
        // Either side's leftover bytes may surface in either removal below: they are held until both are raw.
        switching = true;
        ChannelPipeline server = upstream.pipeline();
        for (String name : List.of("http", "idle")) {
            if (server.get(name) != null) {
                server.remove(name);
            }
        }
        // Bytes the client sent after its request are still undecoded in the codec (it stops after an upgrade
        // request); removing it hands them on as they are, to the tunnel.
        ChannelPipeline client = ctx.pipeline();
        for (String name : HTTP_ONLY_HANDLERS) {
            if (client.get(name) != null) {
                client.remove(name);
            }
        }
        switching = false;
        if (exchange == null) {
            return; // a side closed during the switch, and endExchange released what was held
        }
        // The backend's pooled-connection timeout is gone with its HTTP: the tunnel is bounded by the listener's, on
        // both connections together (see IdleTimeoutHandler).
        IdleTimeoutHandler backendIdle = new IdleTimeoutHandler(idleTimeout);
        server.addBefore("relay", "idle", backendIdle);
        IdleTimeoutHandler clientIdle = ctx.pipeline().get(IdleTimeoutHandler.class);
        if (clientIdle != null) {
            IdleTimeoutHandler.joinTunnel(clientIdle, backendIdle);
        }
        relayHeld();
        log.debug("event=websocket_tunnel backend={} endpoint={}", backend.name(), endpoint.display());
        // A reload between the decision and now re-judged open connections before this one was a tunnel; set
        // first, judged second, so that either that reload or this review sees the tunnel.
        ctx.channel().attr(TUNNELLED_REQUEST).set(exchange.request);
        if (!reviewTunnel("upgrade")) {
            return;
        }
        ctx.read();
        upstream.read();
    }

    /**
     * Judges the tunnel by the current policy now, closes it when that no longer forwards it, and otherwise arms a
     * review for when the allowing grant expires or the client certificate gets too close to its end.
     *
     * @return whether the tunnel is still open
     */
    private boolean reviewTunnel(String cause) {
        if (!tunnel || exchange == null) {
            return false;
        }
        Instant now = exchange.clock().instant();
        PolicyDecision decision = Reverification.judgeTunnel(exchange.listener(), ctx.channel(), runtime.get(), now,
                cause);
        if (decision != null && !decision.forwards()) {
            closeTunnel();
            return false;
        }
        if (tunnelReview != null) {
            tunnelReview.cancel(false);
            tunnelReview = null;
        }
        Instant lapses = decision == null ? null : decision.lapsesAt(exchange.peer());
        if (lapses != null) {
            // A millisecond past the instant: at it exactly, the grant or lifetime may still just hold.
            long delay = Math.max(Duration.between(now, lapses).toNanos(), 0) + TimeUnit.MILLISECONDS.toNanos(1);
            tunnelReview = ctx.executor().schedule(() -> reviewTunnel("expiry"), delay, TimeUnit.NANOSECONDS);
        }
        return true;
    }

    /** Both pipelines are raw now: what arrived during the switch goes on, in the order it arrived per side. */
    private void relayHeld() {
        if (!heldForClient.isEmpty()) {
            while (!heldForClient.isEmpty()) {
                ctx.write(heldForClient.poll(), ctx.voidPromise());
            }
            ctx.flush();
        }
        if (!heldForBackend.isEmpty()) {
            while (!heldForBackend.isEmpty()) {
                upstream.write(heldForBackend.poll(), upstream.voidPromise());
            }
            upstream.flush();
        }
    }

    private void tunnelFromClient(Object msg) {
        if (msg instanceof ByteBuf bytes && upstream != null && exchange != null) {
            exchange.bytesIn += bytes.readableBytes();
            if (switching) {
                heldForBackend.add(bytes);
                return;
            }
            upstream.write(bytes, upstream.voidPromise());
            backendUnflushed = true;
        } else {
            ReferenceCountUtil.release(msg);
        }
    }

    private void tunnelFromBackend(Object msg) {
        if (msg instanceof ByteBuf bytes) {
            exchange.bytesOut += bytes.readableBytes();
            if (switching) {
                heldForClient.add(bytes);
                return;
            }
            ctx.write(bytes, ctx.voidPromise());
            clientUnflushed = true;
        } else {
            // the codec's end marker of the 101 response; there is no HTTP any more
            ReferenceCountUtil.release(msg);
        }
    }

    /** Either side of a tunnel closed or failed: what was already relayed is flushed, then both close. */
    private void closeTunnel() {
        closeTunnel(false);
    }

    /**
     * @param cutBackend the backend stopped taking what waits for it: its connection is cut now rather than given
     *     another timeout to take it
     */
    private void closeTunnel(boolean cutBackend) {
        Channel backendSide = upstream;
        exchange.finish(exchange.status);
        endExchange();
        ctx.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener(ChannelFutureListener.CLOSE);
        if (backendSide != null) {
            backendSide.pipeline().get(BackendHandler.class).owner = null;
            if (cutBackend) {
                TunnelBackendDrain.cut(backendSide, idleTimeout, backend.name(), endpoint.display(), metrics);
            } else {
                TunnelBackendDrain.closeWhenWritten(backendSide, idleTimeout, backend.name(), endpoint.display(),
                        metrics);
            }
        }
    }

    /**
     * The tunnel's connections made no progress either way for the idle timeout, or one of them stopped taking what
     * waits for it (either side's {@link IdleTimeoutHandler} found it). A backend with bytes still waiting for it has
     * had its timeout to take them: it is cut, and that is logged. One still taking them (the client is the side that
     * stopped) gets them as at any end of a tunnel.
     */
    private void closeIdleTunnel() {
        IdleTimeoutHandler backendIdle = upstream == null ? null : upstream.pipeline().get(IdleTimeoutHandler.class);
        closeTunnel(backendIdle != null && backendIdle.stalled());
        ctx.close();
    }

    /** The backend connection's idle timeout passed while this exchange holds it: only a tunnel's is judged here. */
    void backendIdle() {
        if (tunnel && exchange != null) {
            closeIdleTunnel();
        }
    }

    // ---- failures ----------------------------------------------------------------------------------------------

    /** The backend connection failed or closed before the response was complete. */
    void backendFailed(Throwable cause, String what) {
        if (exchange == null) {
            return;
        }
        if (tunnel) {
            closeTunnel();
            return;
        }
        if (replayable != null && !exchange.responseStarted) {
            replayOnNewConnection(cause == null ? what : BackendFailures.describe(cause));
            return;
        }
        fail(cause == null ? what : BackendFailures.describe(cause), "failed", HttpResponseStatus.BAD_GATEWAY);
    }

    /**
     * The backend answered with bytes that are not a response we can relay. It had the request, so this is a 502,
     * never a replay: sending the request again would have the backend act on it twice.
     */
    void backendAnsweredInvalidly(Throwable cause) {
        replayable = null;
        backendFailed(cause, "invalid response");
    }

    /**
     * The backend closed a connection before answering a request that may be sent again: sends it once more on a new
     * connection to the same endpoint (other pooled connections to it may be just as stale). Not a connect failure:
     * the connection was made, and the endpoint stays in rotation.
     */
    private void replayOnNewConnection(String cause) {
        Channel stale = upstream;
        upstream = null;
        stale.pipeline().get(BackendHandler.class).owner = null;
        stale.close();
        metrics.backendRetried(backend.name());
        log.warn("event=backend_retry backend={} endpoint={} cause=\"{} connection: {}\" next={}",
                backend.name(), endpoint.display(), upstreamReused ? "reused" : "new", cause, endpoint.display());
        pendingUntilConnected.add(replayable);
        if (!(replayable instanceof LastHttpContent)) {
            pendingUntilConnected.add(LastHttpContent.EMPTY_LAST_CONTENT);
        }
        replayable = null;
        connect(endpoint, ctx.channel().eventLoop());
    }

    /**
     * Ends the exchange on a failure: with {@code status} while nothing of the response has been sent, else by
     * closing the client connection. The backend connection, if any, is closed: its state is unknown.
     *
     * @param result the {@code backend_requests_total} result label
     */
    private void fail(String cause, String result, HttpResponseStatus status) {
        backendOkPending = false;
        metrics.backendFailed(backend.name(), result);
        String at = endpoint == null ? "-" : endpoint.display();
        Channel failed = upstream;
        if (exchange.responseStarted) {
            log.warn("event=backend_failed backend={} endpoint={} cause=\"{}\" after=response_started",
                    backend.name(), at, LogText.quoted(cause));
            exchange.finish(exchange.status);
            endExchange();
            closeCuttingResponse();
        } else {
            log.warn("event=backend_failed backend={} endpoint={} cause=\"{}\" status={}", backend.name(), at,
                    LogText.quoted(cause), status.code());
            boolean keepAlive = clientKeepAlive && (requestComplete || requestBodiless);
            Exchange failedExchange = exchange;
            endExchange();
            failedExchange.answerLocally(ctx, ErrorResponses.of(status, keepAlive), keepAlive);
        }
        if (failed != null) {
            failed.pipeline().get(BackendHandler.class).owner = null;
            failed.close();
        }
    }

    /**
     * Closes the client connection in the middle of a response, without a TLS closure alert. RFC 9112 9.8 has a
     * client take a body delimited by the close (what an HTTP/1.0 client gets) as complete only after a
     * {@code close_notify}: sent here, it would pass the cut body off as the whole one. nginx does the same on an
     * error (no SSL shutdown alert for a connection in error). What was relayed so far is flushed first, so the client
     * sees how far the body got; the close starts below the SslHandler, which would otherwise send the alert.
     */
    private void closeCuttingResponse() {
        ctx.flush();
        ChannelHandlerContext tls = ctx.pipeline().context(SslHandler.class);
        (tls != null ? tls : ctx).close();
    }

    /**
     * The client stopped sending its request body: 408, as nginx's client_body_timeout answers, and not a backend
     * failure (backend_requests_total would blame the backend for a stalled client). The backend had part of the
     * request, so its connection is closed.
     */
    private void requestTimedOut() {
        log.info("event=request_timeout backend={} endpoint={} cause=\"request body idle\" status=408",
                backend.name(), endpoint.display());
        Channel abandoned = upstream;
        Exchange timedOut = exchange;
        endExchange();
        timedOut.answerLocally(ctx, ErrorResponses.of(HttpResponseStatus.REQUEST_TIMEOUT, false), false);
        abandoned.pipeline().get(BackendHandler.class).owner = null;
        abandoned.close();
    }

    private void endExchange() {
        if (backendOkPending) {
            // Complete, or the client went away mid-body: either way the backend did its part.
            backendOkPending = false;
            metrics.backendSucceeded(backend.name());
        }
        cancelResponseTimeout();
        bodyIdleArmed = false;
        releaseAll(pendingUntilConnected);
        releaseAll(heldForClient);
        releaseAll(heldForBackend);
        exchange = null;
        upstream = null;
        replayable = null;
        hostless = null;
    }

    private static void releaseAll(ArrayDeque<?> held) {
        Object msg;
        while ((msg = held.poll()) != null) {
            ReferenceCountUtil.release(msg);
        }
    }

    /** Disarms the response deadline; a scheduled check, if any, finds nothing to do and ends. */
    private void cancelResponseTimeout() {
        responseArmed = false;
    }

    /** The connection is closed: nothing scheduled may keep this handler (and its pipeline) reachable. */
    private void cancelTimers() {
        responseArmed = false;
        bodyIdleArmed = false;
        if (responseTimer != null) {
            responseTimer.cancel(false);
            responseTimer = null;
        }
        if (bodyIdleTimer != null) {
            bodyIdleTimer.cancel(false);
            bodyIdleTimer = null;
        }
        if (tunnelReview != null) {
            tunnelReview.cancel(false);
            tunnelReview = null;
        }
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
        if (evt == REVIEW_TUNNEL) {
            reviewTunnel("reload");
            return;
        }
        if (evt == LingeringClose.STARTED) {
            if (exchange != null && !tunnel) {
                // The guard answered 400 for a body found malformed while it was forwarded: no more of it comes.
                abandonExchange();
            }
            return;
        }
        if (evt instanceof IdleStateEvent) {
            if (tunnel && exchange != null) {
                closeIdleTunnel();
                return;
            }
            if (exchange != null && !exchange.responseStarted) {
                if (!requestComplete && upstream != null && upstream.isWritable()) {
                    // The backend takes the body and a read of the client is pending: the client stopped sending.
                    requestTimedOut();
                } else {
                    fail("response timeout: client connection idle", "timeout", HttpResponseStatus.GATEWAY_TIMEOUT);
                }
            }
            ctx.close();
            return;
        }
        ctx.fireUserEventTriggered(evt);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        cancelTimers();
        if (exchange != null) {
            if (tunnel) {
                closeTunnel();
            } else {
                abandonExchange();
            }
        }
        ctx.fireChannelInactive();
    }

    /**
     * The client went away mid-exchange, or will send no more of its request: the backend connection is in an
     * unknown state, never reused. The decision stays the policy's; status 0 (status_class none) says no response
     * head was sent, unless the exchange was already answered and recorded.
     */
    private void abandonExchange() {
        exchange.finish(exchange.responseStarted ? exchange.status : 0);
        Channel abandoned = upstream;
        endExchange();
        if (abandoned != null) {
            abandoned.pipeline().get(BackendHandler.class).owner = null;
            abandoned.close();
        }
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        log.debug("event=client_connection_error remote={} cause={}", ctx.channel().remoteAddress(),
                cause.toString());
        ctx.close();
    }

    /** Opens backend connections on a given event loop; the future completes once the connection speaks HTTP. */
    interface BackendConnector {
        Future<Channel> connect(EventLoop loop, Endpoint endpoint);
    }
}
