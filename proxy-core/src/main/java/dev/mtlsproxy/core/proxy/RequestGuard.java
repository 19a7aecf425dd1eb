package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.core.http.ErrorResponses;
import dev.mtlsproxy.core.http.ForwardedHeaders;
import dev.mtlsproxy.core.http.RequestHeadTimeoutException;
import dev.mtlsproxy.core.http.StrictHttpServerCodec;
import dev.mtlsproxy.core.log.LogText;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.DecoderResultProvider;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.TooLongHttpHeaderException;
import io.netty.handler.codec.http.TooLongHttpLineException;
import io.netty.handler.codec.TooLongFrameException;
import io.netty.util.ReferenceCountUtil;
import java.util.Iterator;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Admits a request only when its framing is unambiguous, and opens its {@link Exchange}. A version other than
 * HTTP/1.0 or HTTP/1.1 gets 505, a method with lower-case letters 400.
 *
 * <p>Anything the strict codec could not decode (both Content-Length and Transfer-Encoding, differing duplicate
 * Content-Length, a malformed chunk, an oversized head) and any Transfer-Encoding other than plain {@code chunked},
 * a Host header that is missing or repeated, or a Connection header naming Content-Length, Transfer-Encoding or
 * Host (which would make a hop-by-hop strip remove the framing we checked), gets 400 (an oversized head 414 or 431,
 * see {@link StrictHttpServerCodec#statusForFailedHead}) and the connection is closed: after a framing error the
 * position of the next request in the byte stream is unknown, so nothing more on this connection can be trusted.
 * A request already being forwarded when its body turns out malformed is cut off: the backend connection is closed
 * with the body incomplete, so the backend never sees a complete request either.
 */
final class RequestGuard extends ChannelInboundHandlerAdapter {

    private static final Logger log = LoggerFactory.getLogger(RequestGuard.class);

    private final Exchange.Recorder recorder;
    /** Once set, every further message is dropped while the connection closes. Event-loop confined. */
    private boolean rejected;
    /** The client's address as the access log shows it: fixed for the connection, so formatted once. */
    private String client;

    RequestGuard(Exchange.Recorder recorder) {
        this.recorder = recorder;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (rejected) {
            ReferenceCountUtil.release(msg);
            return;
        }
        if (msg instanceof HttpRequest request) {
            if (client == null) {
                client = String.valueOf(ctx.channel().remoteAddress());
            }
            Exchange exchange = new Exchange(ctx.channel(), client, recorder, request.method().name(),
                    request.uri());
            ctx.channel().attr(Exchange.KEY).set(exchange);
        }
        if (msg instanceof HttpRequest request && isMisspelledVersion(request.protocolVersion())) {
            ReferenceCountUtil.release(msg);
            reject(ctx, "malformed request: version not spelled HTTP/1.x", HttpResponseStatus.BAD_REQUEST);
            return;
        }
        if (msg instanceof HttpRequest request && isUnsupportedVersion(request.protocolVersion())) {
            ReferenceCountUtil.release(msg);
            reject(ctx, "unsupported version " + request.protocolVersion().text(),
                    HttpResponseStatus.HTTP_VERSION_NOT_SUPPORTED);
            return;
        }
        String problem = problem(msg);
        if (problem == null) {
            ctx.fireChannelRead(msg);
            return;
        }
        // An oversized head says so (414, 431); any other refusal here is a 400.
        HttpResponseStatus status = msg instanceof HttpRequest failed && failed.decoderResult().isFailure()
                ? StrictHttpServerCodec.statusForFailedHead(failed.decoderResult().cause())
                : HttpResponseStatus.BAD_REQUEST;
        ReferenceCountUtil.release(msg);
        reject(ctx, problem, status);
    }

    /**
     * Netty reads any "HTTP/x.y" as a version. Only 1.0 and 1.1 are HTTP/1 as the rest of this pipeline knows it:
     * "HTTP/1.2" would skip the Host requirement of 1.1, and every request is forwarded as HTTP/1.1.
     */
    private static boolean isUnsupportedVersion(HttpVersion version) {
        return !version.equals(HttpVersion.HTTP_1_1) && !version.equals(HttpVersion.HTTP_1_0);
    }

    /**
     * The protocol name is case-sensitive (RFC 9112, 2.3), but Netty upper-cases it, so {@code http/1.1} would pass
     * as HTTP/1.1 to a backend that may refuse it or read it otherwise. Only the exact spellings decode to Netty's
     * own constants; any other instance equal to one of them was written another way.
     */
    private static boolean isMisspelledVersion(HttpVersion version) {
        return version != HttpVersion.HTTP_1_1 && version != HttpVersion.HTTP_1_0
                && (version.equals(HttpVersion.HTTP_1_1) || version.equals(HttpVersion.HTTP_1_0));
    }

    private static String problem(Object msg) {
        if (msg instanceof DecoderResultProvider provider && provider.decoderResult().isFailure()) {
            Throwable cause = provider.decoderResult().cause();
            if (cause instanceof RequestHeadTimeoutException) {
                return cause.getMessage();
            }
            if (cause instanceof TooLongHttpLineException) {
                return "request head too large: request line";
            }
            if (cause instanceof TooLongHttpHeaderException) {
                return "request head too large: header fields";
            }
            return cause instanceof TooLongFrameException ? "request head too large" : "malformed request: "
                    + cause.getMessage();
        }
        if (!(msg instanceof HttpRequest request)) {
            return null;
        }
        if (!isUpperCase(request.method().name())) {
            // Methods are case-sensitive, and rules name them upper-cased: "delete" is not covered by a deny on
            // DELETE, yet Django upper-cases the method it is given. nginx refuses such methods as well.
            return "method not in upper case";
        }
        if (HttpMethod.CONNECT.equals(request.method())) {
            // A reverse proxy has no tunnel to open. RequestTarget refuses CONNECT's authority-form target, but an
            // absolute-form one would reach a backend, whose 2xx would end HTTP on that pooled connection.
            return "CONNECT is not supported";
        }
        // contains() first: most requests have neither field, and getAll builds a list even for none.
        HttpHeaders headers = request.headers();
        if (headers.contains(HttpHeaderNames.TRANSFER_ENCODING)) {
            List<String> transferEncodings = headers.getAll(HttpHeaderNames.TRANSFER_ENCODING);
            if (transferEncodings.size() > 1 || !transferEncodings.get(0).trim().equalsIgnoreCase("chunked")) {
                return "unsupported Transfer-Encoding";
            }
        }
        if (headers.contains(HttpHeaderNames.CONNECTION)) {
            for (String connection : headers.getAll(HttpHeaderNames.CONNECTION)) {
                for (String token : connection.split(",")) {
                    if (ForwardedHeaders.isProtectedFromConnection(token.trim())) {
                        return "Connection names " + token.trim();
                    }
                }
            }
        }
        int hosts = hostFields(headers);
        if (hosts > 1 || (hosts == 0 && request.protocolVersion().equals(HttpVersion.HTTP_1_1))) {
            return "missing or repeated Host";
        }
        return null;
    }

    private static boolean isUpperCase(String method) {
        for (int i = 0; i < method.length(); i++) {
            char c = method.charAt(i);
            if (c >= 'a' && c <= 'z') {
                return false;
            }
        }
        return true;
    }

    /** How many Host fields: 0, 1, or 2 for more than one. */
    private static int hostFields(HttpHeaders headers) {
        Iterator<String> values = headers.valueStringIterator(HttpHeaderNames.HOST);
        int fields = 0;
        while (fields < 2 && values.hasNext()) {
            values.next();
            fields++;
        }
        return fields;
    }

    /** Answers {@code status} unless a response has already begun, where closing is the only signal left. */
    private void reject(ChannelHandlerContext ctx, String problem, HttpResponseStatus status) {
        rejected = true;
        Exchange exchange = ctx.channel().attr(Exchange.KEY).get();
        // The decoder's messages quote what the client sent (a header name, a version, a Content-Length).
        log.info("event=bad_request remote={} problem=\"{}\"", ctx.channel().remoteAddress(), LogText.quoted(problem));
        if (exchange != null && exchange.responseStarted) {
            ctx.close();
            return;
        }
        var response = ErrorResponses.of(status, false);
        if (exchange != null) {
            exchange.answerLocally(ctx, response, false);
        } else {
            ctx.writeAndFlush(response);
            LingeringClose.close(ctx.channel());
        }
    }
}
