package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.core.identity.PeerIdentity;
import dev.mtlsproxy.core.log.AccessLog;
import dev.mtlsproxy.core.log.AccessLogEntry;
import dev.mtlsproxy.core.policy.PolicyDecision;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.util.AttributeKey;
import java.time.Clock;
import java.time.Instant;
import java.util.Locale;

/**
 * Book-keeping of one request/response exchange, from request head to the end of the response. Mutable and
 * confined to the connection's event loop; it becomes an immutable {@link AccessLogEntry} exactly once.
 */
final class Exchange {

    static final AttributeKey<Exchange> KEY = AttributeKey.valueOf(Exchange.class, "exchange");

    private final Instant time;
    private final long startNanos;
    private final String connectionId;
    private final String client;
    private final PeerIdentity peer;
    final String method;
    String path;
    PolicyDecision decision;
    String backend;
    int status;
    long bytesIn;
    long bytesOut;
    /** Set when the first byte of a response (ours or the backend's) is written; after that only closing remains. */
    boolean responseStarted;
    private boolean finished;

    Exchange(Channel channel, Clock clock, String method, String rawTarget) {
        this.time = clock.instant();
        this.startNanos = System.nanoTime();
        this.connectionId = channel.id().asShortText();
        this.client = String.valueOf(channel.remoteAddress());
        this.peer = channel.attr(PeerIdentity.KEY).get();
        this.method = method;
        this.path = rawTarget;
    }

    PeerIdentity peer() {
        return peer;
    }

    /**
     * Ends the exchange and hands it to the access log; later calls do nothing, so every path that ends an exchange
     * may call it without coordinating.
     */
    void finish(AccessLog accessLog, int status, String decisionLabel) {
        if (finished) {
            return;
        }
        finished = true;
        accessLog.log(new AccessLogEntry(time, connectionId, client,
                decision == null ? null : decision.identity(),
                peer == null ? null : peer.displayName(),
                peer == null ? null : peer.sha256(),
                decision == null ? "-" : decision.routeName(),
                decisionLabel,
                method, path, status, bytesIn, bytesOut,
                (System.nanoTime() - startNanos) / 1_000,
                backend));
    }

    /**
     * Answers the exchange with a response the proxy made itself (400/403/404/502/504...), logs it, and closes the
     * connection after writing unless {@code keepAlive}.
     */
    void answerLocally(ChannelHandlerContext ctx, AccessLog accessLog, FullHttpResponse response, boolean keepAlive) {
        responseStarted = true;
        bytesOut += response.content().readableBytes();
        finish(accessLog, response.status().code());
        ChannelFuture written = ctx.writeAndFlush(response);
        if (!keepAlive) {
            written.addListener(ChannelFutureListener.CLOSE);
        }
    }

    void finish(AccessLog accessLog, int status) {
        finish(accessLog, status, decision == null ? "bad_request"
                : decision.outcome().name().toLowerCase(Locale.ROOT));
    }
}
