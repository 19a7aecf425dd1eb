package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.core.identity.NegotiatedTls;
import dev.mtlsproxy.core.identity.PeerIdentity;
import dev.mtlsproxy.core.log.AccessLog;
import dev.mtlsproxy.core.log.AccessLogEntry;
import dev.mtlsproxy.core.metrics.ProxyMetrics;
import dev.mtlsproxy.core.policy.PolicyDecision;
import dev.mtlsproxy.core.policy.PolicyRequest;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.util.AttributeKey;
import java.time.Clock;
import java.time.Instant;

/**
 * Book-keeping of one request/response exchange, from request head to the end of the response. Mutable and
 * confined to the connection's event loop; it is recorded (access log line and metrics) exactly once.
 */
final class Exchange {

    static final AttributeKey<Exchange> KEY = AttributeKey.valueOf(Exchange.class, "exchange");

    /** Where finished exchanges are recorded; one per listener. */
    record Recorder(String listener, Clock clock, AccessLog accessLog, ProxyMetrics metrics) {
    }

    private final Recorder recorder;
    private final Instant time;
    private final long startNanos;
    private final String connectionId;
    private final String client;
    private final PeerIdentity peer;
    private final NegotiatedTls tls;
    final String method;
    String path;
    /** What the policy judged, once the target parsed; a WebSocket tunnel is judged by it again at each reload. */
    PolicyRequest request;
    PolicyDecision decision;
    /** The generation that decided this request; forwarding uses its backends, whatever a reload did since. */
    ProxyRuntime runtime;
    String backend;
    int status;
    long bytesIn;
    long bytesOut;
    /** Set when the first byte of a response (ours or the backend's) is written; after that only closing remains. */
    boolean responseStarted;
    private boolean finished;

    Exchange(Channel channel, String client, Recorder recorder, String method, String rawTarget) {
        this.recorder = recorder;
        this.time = recorder.clock().instant();
        this.startNanos = System.nanoTime();
        this.connectionId = channel.id().asShortText();
        this.client = client;
        this.peer = channel.attr(PeerIdentity.KEY).get();
        this.tls = channel.attr(NegotiatedTls.KEY).get();
        this.method = method;
        this.path = rawTarget;
        recorder.metrics().requestStarted(recorder.listener());
    }

    PeerIdentity peer() {
        return peer;
    }

    String listener() {
        return recorder.listener();
    }

    Clock clock() {
        return recorder.clock();
    }

    /** When the request arrived: the instant its policy decision is made at. */
    Instant time() {
        return time;
    }

    /**
     * Answers the exchange with a response the proxy made itself (400/403/404/502/504...), records it, and closes
     * the connection after writing unless {@code keepAlive}. Such a close comes with the request unread or not
     * trusted to have ended, so it lingers ({@link LingeringClose}): the client may still be sending.
     */
    void answerLocally(ChannelHandlerContext ctx, FullHttpResponse response, boolean keepAlive) {
        responseStarted = true;
        bytesOut += response.content().readableBytes();
        finish(response.status().code());
        ctx.writeAndFlush(response);
        if (!keepAlive) {
            LingeringClose.close(ctx.channel());
        }
    }

    /** The identity the access log names: for a refusal, the one its audit line names. */
    private String identity() {
        if (decision == null) {
            return null;
        }
        return decision.outcome() == PolicyDecision.Outcome.DENY && runtime != null && peer != null
                ? AuditLine.identity(decision, peer, runtime.policy()) : decision.identity();
    }

    void finish(int status) {
        finish(status, decision == null ? "bad_request" : decision.label());
    }

    /**
     * Ends the exchange and records it; later calls do nothing, so every path that ends an exchange may call it
     * without coordinating.
     */
    void finish(int status, String decisionLabel) {
        if (finished) {
            return;
        }
        finished = true;
        long nanos = System.nanoTime() - startNanos;
        String route = decision == null ? "-" : decision.routeName();
        recorder.metrics().requestFinished(recorder.listener(), route, method, status, decisionLabel, nanos,
                bytesIn, bytesOut);
        if (!recorder.accessLog().enabled()) {
            return;
        }
        recorder.accessLog().log(new AccessLogEntry(time, connectionId, client,
                identity(),
                peer == null ? null : peer.displayName(),
                peer == null ? null : peer.sha256(),
                route, decision == null ? "-" : decision.ruleLabel(), decisionLabel, method, path, status, bytesIn,
                bytesOut, nanos / 1_000, backend, tls == null ? null : tls.protocol(),
                tls == null ? null : tls.cipher(), tls == null ? null : tls.group()));
    }
}
