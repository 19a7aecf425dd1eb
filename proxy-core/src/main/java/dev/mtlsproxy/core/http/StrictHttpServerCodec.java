package dev.mtlsproxy.core.http;

import dev.mtlsproxy.config.HttpLimits;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import io.netty.channel.CombinedChannelDuplexHandler;
import io.netty.handler.codec.http.HttpDecoderConfig;
import io.netty.handler.codec.http.HttpMessage;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpRequestDecoder;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseEncoder;
import io.netty.handler.codec.http.HttpStatusClass;
import java.util.ArrayDeque;
import java.util.List;

/**
 * HTTP/1.1 server codec that refuses ambiguous framing instead of repairing it.
 *
 * <p>Netty's {@code HttpServerCodec} silently drops Content-Length when Transfer-Encoding is also present (RFC 7230
 * allows that); a proxy must not, because the backend may frame the same bytes differently (request smuggling). Here
 * that case, differing duplicate Content-Length, bad chunk sizes, bare-LF lines and oversized heads all produce a
 * failed {@code DecoderResult}, which {@link RequestGuard} turns into 400 and a closed connection.
 *
 * <p>Like HttpServerCodec, the encoder remembers each request's method so that a response to HEAD is encoded
 * without a body even when it announces one.
 */
public final class StrictHttpServerCodec
        extends CombinedChannelDuplexHandler<HttpRequestDecoder, HttpResponseEncoder> {

    /** Methods of decoded requests whose final response is not yet encoded. Event-loop confined. */
    private final ArrayDeque<HttpMethod> methods = new ArrayDeque<>();

    public StrictHttpServerCodec(HttpLimits limits) {
        HttpDecoderConfig config = new HttpDecoderConfig()
                .setMaxInitialLineLength(limits.maxInitialLineLength().toIntBytes())
                .setMaxHeaderSize(limits.maxHeaderSize().toIntBytes())
                .setMaxChunkSize(64 * 1024)
                .setAllowDuplicateContentLengths(false)
                .setStrictLineParsing(true)
                .setUseRfc9112TransferEncoding(true)
                .setValidateHeaders(true);
        init(new Decoder(config), new Encoder());
    }

    private final class Decoder extends HttpRequestDecoder {
        Decoder(HttpDecoderConfig config) {
            super(config);
        }

        @Override
        protected void decode(ChannelHandlerContext ctx, io.netty.buffer.ByteBuf buffer, List<Object> out)
                throws Exception {
            int before = out.size();
            super.decode(ctx, buffer, out);
            for (int i = before; i < out.size(); i++) {
                if (out.get(i) instanceof HttpRequest request) {
                    methods.add(request.method());
                }
            }
        }

        @Override
        protected void handleTransferEncodingChunkedWithContentLength(HttpMessage message) {
            throw new IllegalArgumentException("both Content-Length and Transfer-Encoding");
        }
    }

    private final class Encoder extends HttpResponseEncoder {
        private HttpMethod current;

        @Override
        public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) throws Exception {
            if (msg instanceof HttpResponse response
                    && response.status().codeClass() != HttpStatusClass.INFORMATIONAL) {
                current = methods.poll();
            }
            super.write(ctx, msg, promise);
        }

        @Override
        protected boolean isContentAlwaysEmpty(HttpResponse msg) {
            return HttpMethod.HEAD.equals(current) || super.isContentAlwaysEmpty(msg);
        }
    }
}
