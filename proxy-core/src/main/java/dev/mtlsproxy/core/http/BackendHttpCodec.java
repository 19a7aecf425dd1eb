package dev.mtlsproxy.core.http;

import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.CombinedChannelDuplexHandler;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpRequestEncoder;
import java.util.ArrayDeque;
import java.util.List;

/**
 * HTTP/1.1 client codec for backend connections: Netty's request encoder, and {@link BackendResponseDecoder}, which
 * relays most of a response's head as the backend's bytes instead of decoding it into objects. The encoder records
 * each request's method, because a response to HEAD has no body whatever length it announces.
 *
 * <p>CONNECT is never forwarded (RequestGuard refuses it), so unlike {@code HttpClientCodec} this codec has no tunnel
 * mode after a 2xx to CONNECT.
 */
public final class BackendHttpCodec extends CombinedChannelDuplexHandler<BackendResponseDecoder, HttpRequestEncoder> {

    /** Methods of requests encoded on this connection whose final response is not decoded yet. Event-loop confined. */
    private final ArrayDeque<HttpMethod> methods = new ArrayDeque<>();

    public BackendHttpCodec() {
        init(new BackendResponseDecoder(methods), new Encoder());
    }

    private final class Encoder extends HttpRequestEncoder {
        @Override
        protected void encode(ChannelHandlerContext ctx, Object msg, List<Object> out) throws Exception {
            if (msg instanceof HttpRequest request) {
                methods.add(request.method());
            }
            super.encode(ctx, msg, out);
        }
    }
}
