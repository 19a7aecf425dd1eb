package dev.mtlsproxy.app.admin;

import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPipeline;
import io.netty.handler.codec.DecoderResult;
import io.netty.handler.codec.http.DefaultFullHttpRequest;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.HttpMessage;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.TooLongHttpContentException;

/**
 * {@link HttpObjectAggregator} whose refusals are the endpoints' to answer, like any other response: Netty's writes
 * its 413 and 417 itself the moment it decides, so they overtook the answers to requests pipelined before them (a
 * reload still running), took the HEAD-or-not of the wrong request in the codec, and, the request never reaching the
 * handlers after it, left its request timeout running to close the kept-alive connection later as if it were slow.
 *
 * <p>A body over the cap is passed on as a request whose {@link DecoderResult} failed with a
 * {@link TooLongHttpContentException}: answered 413 in its turn, then the connection is closed, as nginx does (the
 * rest of the body may still be on its way). An expectation other than {@code 100-continue} is ignored, as nginx
 * ignores it (RFC 9110 10.1.1 lets a server answer 417; no client of the admin listener sends one).
 */
final class RequestAggregator extends HttpObjectAggregator {

    RequestAggregator(int maxContentLength) {
        super(maxContentLength);
    }

    /**
     * 100 Continue when the client waits for it and its body fits; null otherwise. Not Netty's: on a refusal it also
     * fires an event on which the decoder forgets the body it was reading, and what the client sends next is read as
     * a new request, when this listener goes on reading the body (ignored expectation) or closes after its 413.
     */
    @Override
    protected Object newContinueResponse(HttpMessage start, int maxContentLength, ChannelPipeline pipeline) {
        if (!HttpUtil.is100ContinueExpected(start) || HttpUtil.getContentLength(start, -1L) > maxContentLength) {
            return null; // a body announced over the cap is refused by handleOversizedMessage next
        }
        start.headers().remove(HttpHeaderNames.EXPECT);
        return new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.CONTINUE, Unpooled.EMPTY_BUFFER);
    }

    @Override
    protected void handleOversizedMessage(ChannelHandlerContext ctx, HttpMessage oversized) {
        if (!(oversized instanceof HttpRequest request)) {
            throw new IllegalStateException("the admin listener aggregates requests only");
        }
        // The caller releases what was aggregated so far: only the head is passed on.
        FullHttpRequest refused = new DefaultFullHttpRequest(request.protocolVersion(), request.method(),
                request.uri(), Unpooled.EMPTY_BUFFER);
        refused.headers().set(request.headers());
        refused.setDecoderResult(DecoderResult.failure(new TooLongHttpContentException(
                HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE.reasonPhrase())));
        ctx.fireChannelRead(refused);
    }
}
