package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.core.http.ErrorResponses;
import dev.mtlsproxy.core.http.Hosts;
import dev.mtlsproxy.core.http.RequestTarget;
import dev.mtlsproxy.core.log.LogText;
import dev.mtlsproxy.core.metrics.ProxyMetrics;
import dev.mtlsproxy.core.identity.NegotiatedTls;
import dev.mtlsproxy.core.policy.PolicyDecision;
import dev.mtlsproxy.core.policy.PolicyRequest;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpContent;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.util.ReferenceCountUtil;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Decides each request before anything reaches a backend: normalises the target, matches the route, checks the
 * client against the route's rules. Allowed requests (and refusals of a dry-run route, which are only reported)
 * continue with the normalised target and Host: the backend receives exactly the path and host that were checked.
 * Anything else is answered here with 400/403/404/405/417/421 and its body is discarded unread.
 */
final class AuthorizationHandler extends ChannelInboundHandlerAdapter {

    private static final Logger log = LoggerFactory.getLogger(AuthorizationHandler.class);
    /** Refusals, one JSON line each; a logger of its own so operators can route it to their audit store. */
    private static final Logger audit = LoggerFactory.getLogger("dev.mtlsproxy.audit");

    private final String listener;
    private final Supplier<ProxyRuntime> runtime;
    private final ProxyMetrics metrics;
    /** Releasing the body of a refused request. Event-loop confined. */
    private boolean discarding;

    AuthorizationHandler(String listener, Supplier<ProxyRuntime> runtime, ProxyMetrics metrics) {
        this.listener = listener;
        this.runtime = runtime;
        this.metrics = metrics;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (msg instanceof HttpRequest request) {
            authorize(ctx, request);
        } else if (discarding && msg instanceof HttpContent) {
            discarding = !(msg instanceof LastHttpContent);
            ReferenceCountUtil.release(msg);
        } else {
            ctx.fireChannelRead(msg);
        }
    }

    private void authorize(ChannelHandlerContext ctx, HttpRequest request) {
        ProxyRuntime rt = runtime.get();
        Exchange exchange = ctx.channel().attr(Exchange.KEY).get();
        RequestTarget target;
        try {
            target = RequestTarget.parse(request.uri());
        } catch (RequestTarget.InvalidTargetException e) {
            log.info("event=bad_request remote={} problem=\"{}\"", ctx.channel().remoteAddress(),
                    LogText.quoted(e.getMessage()));
            refuse(ctx, request, exchange, HttpResponseStatus.BAD_REQUEST, true);
            return;
        }
        String hostHeader = request.headers().get(HttpHeaderNames.HOST);
        // RequestGuard lets a request without Host through only as HTTP/1.0. One in absolute-form still names its
        // host, and a server takes it from there (RFC 9112 3.2.2, as nginx does): the policy judges that host and
        // the backend receives it, rather than the endpoint's name that a request naming no host at all gets.
        boolean hostFromTarget = hostHeader == null && target.authority() != null;
        if (hostFromTarget) {
            hostHeader = target.authority();
        }
        String host = Hosts.normalise(hostHeader);
        if (host == null || (target.authority() != null && !target.authority().isEmpty()
                && !host.equals(Hosts.normalise(target.authority())))) {
            log.info("event=bad_request remote={} problem=\"invalid Host\"", ctx.channel().remoteAddress());
            refuse(ctx, request, exchange, HttpResponseStatus.BAD_REQUEST, true);
            return;
        }
        exchange.path = target.path();
        NegotiatedTls tls = ctx.channel().attr(NegotiatedTls.KEY).get();
        PolicyRequest policyRequest = new PolicyRequest(request.method().name(), host, target.path(),
                tls == null ? null : tls.serverName());
        PolicyDecision decision = rt.policy().decide(exchange.peer(), policyRequest, exchange.time());
        exchange.request = policyRequest;
        exchange.decision = decision;
        exchange.runtime = rt;
        countDecision(decision);
        if (decision.outcome() == PolicyDecision.Outcome.DENY) {
            // Deny and dry-run deny alike leave an audit line: the point of dry-run is to see what would break.
            audit.info("{}", AuditLine.json(listener, String.valueOf(ctx.channel().remoteAddress()), exchange.peer(),
                    rt.policy(), policyRequest.method(), target.path(), decision));
        }
        if (decision.forwards()) {
            allow(ctx, request, exchange, target, hostHeader, hostFromTarget);
            return;
        }
        switch (decision.outcome()) {
            case DENY -> refuse(ctx, request, exchange, HttpResponseStatus.FORBIDDEN, false);
            case NO_ROUTE -> refuse(ctx, request, exchange, HttpResponseStatus.NOT_FOUND, false);
            case METHOD_NOT_ALLOWED -> refuse(ctx, request, exchange, HttpResponseStatus.METHOD_NOT_ALLOWED, false);
            // The client may retry on a connection for the host it means (RFC 9110 15.5.20).
            case MISDIRECTED -> refuse(ctx, request, exchange, HttpResponseStatus.MISDIRECTED_REQUEST, false);
            case ALLOW -> throw new IllegalStateException("allowed requests are forwarded above");
        }
    }

    private void countDecision(PolicyDecision decision) {
        if (decision.outcome() == PolicyDecision.Outcome.ALLOW
                || decision.outcome() == PolicyDecision.Outcome.DENY) {
            metrics.decision(decision.routeName(), decision.ruleLabel(), decision.label());
        }
        // no route, wrong method, misdirected: not a policy decision about an identity
    }

    private void allow(ChannelHandlerContext ctx, HttpRequest request, Exchange exchange, RequestTarget target,
            String hostHeader, boolean hostFromTarget) {
        String expect = request.headers().get(HttpHeaderNames.EXPECT);
        if (expect != null && !HttpHeaderValues.CONTINUE.contentEqualsIgnoreCase(expect.trim())) {
            refuse(ctx, request, exchange, HttpResponseStatus.EXPECTATION_FAILED, false);
            return;
        }
        request.setUri(target.pathAndQuery());
        if (hostHeader != null) {
            // The backend gets the host the routes were matched on, as it gets the path that was checked.
            String forwarded = Hosts.forwarded(hostHeader);
            // The same instance when already canonical: the usual case costs nothing.
            if (forwarded != hostHeader || hostFromTarget) {
                request.headers().set(HttpHeaderNames.HOST, forwarded);
            }
        }
        if (expect != null) {
            // Authorised: the body is welcome. The proxy answers the expectation itself (as nginx does) rather than
            // relaying it, so a refused request never reaches the point of inviting a body. In HTTP/1.0, which has
            // no interim responses, it is ignored (RFC 9110 10.1.1): it must not reach the backend as HTTP/1.1's.
            request.headers().remove(HttpHeaderNames.EXPECT);
            if (!HttpVersion.HTTP_1_0.equals(request.protocolVersion())) {
                ctx.writeAndFlush(new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.CONTINUE,
                        Unpooled.EMPTY_BUFFER));
            }
        }
        ctx.fireChannelRead(request);
    }

    /**
     * Answers the request here. The connection stays open only when no body follows, since reading a body just to
     * discard it would let a refused client make us do work; with a body pending we close after the response.
     */
    private void refuse(ChannelHandlerContext ctx, HttpRequest request, Exchange exchange,
            HttpResponseStatus status, boolean hostile) {
        boolean bodyFollows = !(request instanceof LastHttpContent)
                && (HttpUtil.isTransferEncodingChunked(request) || HttpUtil.getContentLength(request, 0L) > 0);
        boolean keepAlive = !hostile && !bodyFollows && HttpUtil.isKeepAlive(request);
        discarding = !(request instanceof LastHttpContent);
        ReferenceCountUtil.release(request);
        FullHttpResponse response = ErrorResponses.of(status, keepAlive);
        if (status == HttpResponseStatus.METHOD_NOT_ALLOWED && exchange.decision != null) {
            response.headers().set(HttpHeaderNames.ALLOW, exchange.decision.route().allowHeader());
        }
        exchange.answerLocally(ctx, response, keepAlive);
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
        if (discarding && ctx.channel().isActive()) {
            // Reads during discard are only for a bodiless request's empty terminator in the next packet.
            ctx.read();
        }
        ctx.fireChannelReadComplete();
    }
}
