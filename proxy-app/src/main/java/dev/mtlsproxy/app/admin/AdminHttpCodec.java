package dev.mtlsproxy.app.admin;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import io.netty.channel.CombinedChannelDuplexHandler;
import io.netty.handler.codec.http.HttpDecoderConfig;
import io.netty.handler.codec.http.HttpMessage;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpObject;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpRequestDecoder;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseEncoder;
import io.netty.handler.codec.http.HttpStatusClass;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.util.ReferenceCountUtil;
import java.util.ArrayDeque;
import java.util.List;

/**
 * The admin listener's HTTP/1.1 codec: what Netty's {@code HttpServerCodec} does with its defaults (a response to
 * HEAD encoded without its body, a request framed both by Content-Length and chunked answered and then closed, at
 * most {@value #MAX_PIPELINE_DEPTH} requests waiting for their answers), and the one thing that codec cannot say:
 * whether the bytes received so far end inside a request ({@link #requestUnfinished()}). The connection's idle
 * tracking and its request timeout both go by that, so the first bytes of a pipelined request that arrive in the
 * same read as the end of the one before are a request arriving, not idle time.
 *
 * <p>A new instance per connection; event-loop confined, so plain fields.
 */
final class AdminHttpCodec extends CombinedChannelDuplexHandler<HttpRequestDecoder, HttpResponseEncoder> {

    /** HttpServerCodec's default: a client can queue this many requests before the connection is closed. */
    static final int MAX_PIPELINE_DEPTH = 128;

    /** Methods of the requests decoded and not yet answered, oldest first. */
    private final ArrayDeque<HttpMethod> methods = new ArrayDeque<>();
    /** Bytes of a request have arrived, its end not yet. */
    private boolean unfinished;
    private boolean closeAfterResponse;

    AdminHttpCodec() {
        init(new Decoder(), new Encoder());
    }

    /**
     * True when bytes of a request that has not arrived whole are held: a request head in part or whole with its
     * body still coming, or only the first bytes of a request line, which the decoder keeps until the line is
     * complete. Empty lines between requests, which a server ignores (RFC 9112, 2.2), start none.
     */
    boolean requestUnfinished() {
        return unfinished;
    }

    private final class Decoder extends HttpRequestDecoder {

        Decoder() {
            super(new HttpDecoderConfig());
        }

        /**
         * Each call of the superclass ends at the end of a request or where the bytes run out; the next request's
         * bytes, if the same read brought some, are the next call's. So a call that ends a request leaves the
         * connection between requests, and one that does not leaves it inside one as soon as it was given a byte
         * of a request.
         */
        @Override
        protected void decode(ChannelHandlerContext ctx, ByteBuf buffer, List<Object> out) throws Exception {
            boolean requestBytes = unfinished || startsARequest(buffer);
            int before = out.size();
            super.decode(ctx, buffer, out);
            boolean ended = false;
            for (int i = before; i < out.size(); i++) {
                Object decoded = out.get(i);
                if (decoded instanceof HttpRequest request) {
                    methods.add(request.method());
                }
                // a decoding failure ends the request too: the decoder discards what follows
                ended |= decoded instanceof LastHttpContent
                        || (decoded instanceof HttpObject o && o.decoderResult().isFailure());
            }
            unfinished = !ended && requestBytes;
            if (methods.size() > MAX_PIPELINE_DEPTH) {
                for (int i = before; i < out.size(); i++) {
                    ReferenceCountUtil.release(out.get(i));
                }
                out.subList(before, out.size()).clear();
                throw new IllegalStateException("more than " + MAX_PIPELINE_DEPTH + " requests wait for an answer");
            }
        }

        /** Whether {@code buffer} holds a byte the decoder does not skip as padding before a request line. */
        private static boolean startsARequest(ByteBuf buffer) {
            return buffer.forEachByte(b -> {
                char c = (char) (b & 0xFF);
                return Character.isISOControl(c) || Character.isWhitespace(c);
            }) >= 0;
        }

        @Override
        protected void handleTransferEncodingChunkedWithContentLength(HttpMessage message) {
            super.handleTransferEncodingChunkedWithContentLength(message);
            // Framed two ways: what follows on the connection cannot be trusted to be framed as we read it.
            closeAfterResponse = true;
        }
    }

    private final class Encoder extends HttpResponseEncoder {
        private HttpMethod answering;

        @Override
        public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) throws Exception {
            if (msg instanceof HttpResponse response && response.status().codeClass() != HttpStatusClass.INFORMATIONAL) {
                answering = methods.poll();
            }
            if (closeAfterResponse && msg instanceof LastHttpContent) {
                closeAfterResponse = false;
                promise = promise.unvoid().addListener(ChannelFutureListener.CLOSE);
            }
            super.write(ctx, msg, promise);
        }

        @Override
        protected boolean isContentAlwaysEmpty(HttpResponse msg) {
            return HttpMethod.HEAD.equals(answering) || super.isContentAlwaysEmpty(msg);
        }
    }
}
