package dev.mtlsproxy.core.http;

import static java.nio.charset.StandardCharsets.ISO_8859_1;
import static org.assertj.core.api.Assertions.assertThat;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.DecoderResult;
import io.netty.handler.codec.http.HttpContent;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpObject;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.util.ReferenceCountUtil;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Random responses, seeded so a failure can be replayed: however the bytes are split across reads, the decoder
 * must see the same responses as when they arrive whole; and a response with one byte changed must either decode
 * or fail with an {@link InvalidResponseException}, never throw anything else. Either way every buffer read from the
 * backend is released once what was decoded from it is.
 */
class BackendResponseDecoderRandomTest {

    private static final String[] NAMES = {"Content-Type", "Server", "Date", "ETag", "Set-Cookie", "X-Trace",
        "Cache-Control", "Vary", "Connection", "Keep-Alive", "x-odd-name", "Trailer"};
    private static final String[] VALUES = {"text/plain", "nginx", "keep-alive", "\"v1\"", "a=1; Path=/", "",
        "  padded  ", "close", "X-Trace", "\u00e9t\u00e9", "max-age=60, public"};

    static Stream<Long> seeds() {
        return IntStream.range(0, 200).mapToObj(i -> 0x5eedL * 31 + i);
    }

    @ParameterizedTest(name = "seed {0}")
    @MethodSource("seeds")
    void howTheBytesAreSplitDoesNotChangeWhatIsDecoded(long seed) {
        Random random = new Random(seed);
        StringBuilder stream = new StringBuilder();
        int responses = 1 + random.nextInt(4);
        for (int i = 0; i < responses; i++) {
            stream.append(randomResponse(random, i == responses - 1));
        }
        byte[] bytes = stream.toString().getBytes(ISO_8859_1);

        String whole = decode(bytes, new int[] {bytes.length}, responses);
        int[] splits = random.ints(1 + random.nextInt(12), 1, Math.max(2, bytes.length / 3)).toArray();
        String split = decode(bytes, splits, responses);

        assertThat(whole).doesNotContain("FAILED");
        assertThat(split).isEqualTo(whole);
    }

    @ParameterizedTest(name = "seed {0}")
    @MethodSource("seeds")
    void aResponseWithOneByteChangedDecodesOrFailsCleanly(long seed) {
        Random random = new Random(seed);
        byte[] bytes = randomResponse(random, true).getBytes(ISO_8859_1);
        bytes[random.nextInt(bytes.length)] = (byte) "\r\n\t :;,0aZ\u0000\u007f\u00ff".charAt(random.nextInt(13));

        String decoded = decode(bytes, new int[] {1 + random.nextInt(bytes.length)}, 1);

        assertThat(decoded).as("decoded or failed: reached only if nothing else was thrown").isNotEmpty();
    }

    /** A response with random fields and a body framed by length, chunks, or (last only) the connection's end. */
    private static String randomResponse(Random random, boolean last) {
        StringBuilder r = new StringBuilder("HTTP/1.1 ").append(new int[] {200, 201, 404, 500}[random.nextInt(4)])
                .append(random.nextBoolean() ? " Whatever" : "").append("\r\n");
        for (int i = random.nextInt(8); i > 0; i--) {
            String name = NAMES[random.nextInt(NAMES.length)];
            r.append(name).append(random.nextBoolean() ? ": " : ":").append(VALUES[random.nextInt(VALUES.length)])
                    .append("\r\n");
        }
        String body = "b".repeat(random.nextInt(40));
        int framing = random.nextInt(last ? 3 : 2);
        if (framing == 0) {
            r.append("Content-Length: ").append(body.length()).append("\r\n\r\n").append(body);
        } else if (framing == 1) {
            r.append("Transfer-Encoding: chunked\r\n\r\n");
            for (int at = 0; at < body.length(); ) {
                int n = Math.min(body.length() - at, 1 + random.nextInt(10));
                r.append(Integer.toHexString(n)).append(random.nextBoolean() ? ";ext=1" : "").append("\r\n")
                        .append(body, at, at + n).append("\r\n");
                at += n;
            }
            r.append("0\r\n").append(random.nextBoolean() ? "Checksum: x\r\n" : "").append("\r\n");
        } else {
            r.append("\r\n").append(body);
        }
        return r.toString();
    }

    /** Everything decoded from the bytes fed in pieces of the given sizes (cycled), then the connection closed. */
    private static String decode(byte[] bytes, int[] pieces, int requests) {
        ArrayDeque<HttpMethod> methods = new ArrayDeque<>();
        for (int i = 0; i < requests; i++) {
            methods.add(HttpMethod.GET);
        }
        EmbeddedChannel channel = new EmbeddedChannel(new BackendResponseDecoder(methods));
        List<ByteBuf> read = new ArrayList<>();
        StringBuilder seen = new StringBuilder();
        StringBuilder body = new StringBuilder();
        int at = 0;
        for (int p = 0; at < bytes.length; p++) {
            int n = Math.min(bytes.length - at, pieces[p % pieces.length]);
            ByteBuf piece = Unpooled.copiedBuffer(bytes, at, n);
            read.add(piece);
            channel.writeInbound(piece);
            at += n;
            drain(channel, seen, body);
        }
        channel.finish();
        drain(channel, seen, body);
        assertThat(read).as("every buffer read released").allMatch(b -> b.refCnt() == 0);
        return seen.append("unfinished body: ").append(body).toString();
    }

    private static void drain(EmbeddedChannel channel, StringBuilder seen, StringBuilder body) {
        for (Object o; (o = channel.readInbound()) != null; ) {
            try {
                DecoderResult result = ((HttpObject) o).decoderResult();
                if (result.isFailure()) {
                    assertThat(result.cause()).isInstanceOf(InvalidResponseException.class);
                    seen.append("FAILED ").append(result.cause().getMessage()).append('\n');
                    continue;
                }
                if (o instanceof HttpResponse response) {
                    seen.append(response.status()).append('|');
                    if (response.headers() instanceof RelayedHeaders relayed) {
                        seen.append(relayed.verbatim());
                    }
                    for (Map.Entry<String, String> field : response.headers()) {
                        seen.append(field.getKey()).append('=').append(field.getValue()).append(';');
                    }
                    seen.append('\n');
                }
                if (o instanceof HttpContent content) {
                    body.append(content.content().toString(ISO_8859_1));
                }
                if (o instanceof LastHttpContent last) {
                    seen.append("body ").append(body).append(" trailers ").append(last.trailingHeaders().entries())
                            .append('\n');
                    body.setLength(0);
                }
            } finally {
                ReferenceCountUtil.release(o);
            }
        }
    }
}
