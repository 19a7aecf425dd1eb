package dev.mtlsproxy.core.http;

import dev.mtlsproxy.config.HttpLimits;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.CombinedChannelDuplexHandler;
import io.netty.handler.codec.http.HttpDecoderConfig;
import io.netty.handler.codec.http.HttpMessage;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpRequestEncoder;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseDecoder;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpStatusClass;
import io.netty.util.AsciiString;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * HTTP/1.1 client codec for backend connections: Netty's {@code HttpClientCodec} as the proxy uses it (a response to
 * HEAD has no body, whatever length it announces; 1xx responses precede the final one), with a response decoder that
 * reuses one instance of the field names and status-line words backends send on nearly every response.
 *
 * <p>Decoding the backend's response head was a third of what the proxy allocated per request, and young-generation
 * pauses came about every 1.3 s under load. Netty's decoder copies every field name into a new {@link AsciiString}
 * and the version, status code and reason phrase into new strings; sharing one instance of the common ones took the
 * allocation per request down by 14% (docs/BENCHMARKS.md). Only bytes that match a known spelling exactly are
 * replaced, so the names reach the client as the backend wrote them.
 *
 * <p>CONNECT is never forwarded (RequestGuard refuses it), so unlike {@code HttpClientCodec} this codec has no tunnel
 * mode after a 2xx to CONNECT.
 */
public final class BackendHttpCodec extends CombinedChannelDuplexHandler<HttpResponseDecoder, HttpRequestEncoder> {

    /** Field names as backends commonly spell them: canonical capitalisation, and lower case (HTTP/2-era servers). */
    private static final AsciiString[][] NAMES_BY_LENGTH = byLength(
            "Date", "Server", "Content-Type", "Content-Length", "Connection", "Keep-Alive", "Transfer-Encoding",
            "Cache-Control", "ETag", "Last-Modified", "Expires", "Vary", "Location", "Set-Cookie", "Accept-Ranges",
            "Content-Encoding", "Age", "Pragma", "Strict-Transport-Security", "X-Content-Type-Options",
            "X-Frame-Options", "Access-Control-Allow-Origin", "Content-Security-Policy", "Content-Disposition");
    /** Reason phrases of the common statuses, so that HttpResponseStatus.valueOf finds its constant. */
    private static final String[] REASONS = Arrays.stream(new HttpResponseStatus[] {HttpResponseStatus.OK,
            HttpResponseStatus.CREATED, HttpResponseStatus.ACCEPTED, HttpResponseStatus.NO_CONTENT,
            HttpResponseStatus.PARTIAL_CONTENT, HttpResponseStatus.MOVED_PERMANENTLY, HttpResponseStatus.FOUND,
            HttpResponseStatus.SEE_OTHER, HttpResponseStatus.NOT_MODIFIED, HttpResponseStatus.TEMPORARY_REDIRECT,
            HttpResponseStatus.PERMANENT_REDIRECT, HttpResponseStatus.BAD_REQUEST, HttpResponseStatus.UNAUTHORIZED,
            HttpResponseStatus.FORBIDDEN, HttpResponseStatus.NOT_FOUND, HttpResponseStatus.METHOD_NOT_ALLOWED,
            HttpResponseStatus.CONFLICT, HttpResponseStatus.TOO_MANY_REQUESTS,
            HttpResponseStatus.INTERNAL_SERVER_ERROR, HttpResponseStatus.BAD_GATEWAY,
            HttpResponseStatus.SERVICE_UNAVAILABLE, HttpResponseStatus.GATEWAY_TIMEOUT,
            HttpResponseStatus.CONTINUE, HttpResponseStatus.SWITCHING_PROTOCOLS})
            .map(s -> s.reasonPhrase().toString()).toArray(String[]::new);
    private static final String HTTP_1_1 = "HTTP/1.1";
    private static final String[] STATUS_CODES = new String[600];

    static {
        for (int code = 100; code < STATUS_CODES.length; code++) {
            STATUS_CODES[code] = Integer.toString(code);
        }
    }

    /** Methods of requests encoded on this connection whose final response is not decoded yet. Event-loop confined. */
    private final ArrayDeque<HttpMethod> methods = new ArrayDeque<>();

    public BackendHttpCodec() {
        HttpDecoderConfig config = new HttpDecoderConfig()
                .setMaxInitialLineLength(HttpLimits.DEFAULT.maxInitialLineLength().toIntBytes())
                .setMaxHeaderSize(64 * 1024)
                .setMaxChunkSize(64 * 1024)
                .setAllowDuplicateContentLengths(false)
                .setStrictLineParsing(true)
                .setValidateHeaders(true);
        init(new Decoder(config), new Encoder());
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

    private final class Decoder extends HttpResponseDecoder {
        Decoder(HttpDecoderConfig config) {
            super(config);
        }

        @Override
        protected boolean isContentAlwaysEmpty(HttpMessage msg) {
            // A 1xx precedes the final response to the same request: it does not consume that request's method.
            if (((HttpResponse) msg).status().codeClass() == HttpStatusClass.INFORMATIONAL) {
                return super.isContentAlwaysEmpty(msg);
            }
            HttpMethod method = methods.poll();
            return HttpMethod.HEAD.equals(method) || super.isContentAlwaysEmpty(msg);
        }

        @Override
        protected AsciiString splitHeaderName(byte[] sb, int start, int length) {
            if (length < NAMES_BY_LENGTH.length) {
                for (AsciiString name : NAMES_BY_LENGTH[length]) {
                    if (sameBytes(name, sb, start, length)) {
                        return name;
                    }
                }
            }
            return super.splitHeaderName(sb, start, length);
        }

        @Override
        protected String splitFirstWordInitialLine(byte[] sb, int start, int length) {
            return sameAscii(HTTP_1_1, sb, start, length)
                    ? HTTP_1_1 : super.splitFirstWordInitialLine(sb, start, length);
        }

        @Override
        protected String splitSecondWordInitialLine(byte[] sb, int start, int length) {
            if (length == 3) {
                int code = (sb[start] - '0') * 100 + (sb[start + 1] - '0') * 10 + (sb[start + 2] - '0');
                if (code >= 100 && code < STATUS_CODES.length && sameAscii(STATUS_CODES[code], sb, start, length)) {
                    return STATUS_CODES[code];
                }
            }
            return super.splitSecondWordInitialLine(sb, start, length);
        }

        @Override
        protected String splitThirdWordInitialLine(byte[] sb, int start, int length) {
            for (String reason : REASONS) {
                if (sameAscii(reason, sb, start, length)) {
                    return reason;
                }
            }
            return super.splitThirdWordInitialLine(sb, start, length);
        }
    }

    private static boolean sameBytes(AsciiString name, byte[] sb, int start, int length) {
        return name.length() == length && Arrays.equals(name.array(), name.arrayOffset(),
                name.arrayOffset() + length, sb, start, start + length);
    }

    private static boolean sameAscii(String s, byte[] sb, int start, int length) {
        if (s.length() != length) {
            return false;
        }
        for (int i = 0; i < length; i++) {
            if (s.charAt(i) != sb[start + i]) {
                return false;
            }
        }
        return true;
    }

    private static AsciiString[][] byLength(String... canonical) {
        List<AsciiString> names = new ArrayList<>();
        for (String name : canonical) {
            names.add(AsciiString.cached(name));
            names.add(AsciiString.cached(name.toLowerCase(Locale.ROOT)));
        }
        int longest = names.stream().mapToInt(AsciiString::length).max().orElse(0);
        AsciiString[][] table = new AsciiString[longest + 1][];
        for (int length = 0; length <= longest; length++) {
            int l = length;
            table[length] = names.stream().filter(n -> n.length() == l).toArray(AsciiString[]::new);
        }
        return table;
    }
}
