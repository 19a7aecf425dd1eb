package dev.mtlsproxy.core.http;

import static java.nio.charset.StandardCharsets.US_ASCII;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.groups.Tuple.tuple;

import dev.mtlsproxy.config.HttpLimits;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.DecoderResult;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.DefaultHttpContent;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.HttpContent;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.handler.codec.http.TooLongHttpHeaderException;
import io.netty.handler.codec.http.TooLongHttpLineException;
import io.netty.util.ReferenceCountUtil;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The codec on an EmbeddedChannel: raw bytes in, decoded messages out, and the reverse for responses. Every message
 * read is copied into plain values and released at once, so the paranoid leak detector sees nothing left behind.
 */
class StrictHttpServerCodecTest {

    private EmbeddedChannel channel;

    @BeforeEach
    void open() {
        channel = new EmbeddedChannel(new StrictHttpServerCodec(HttpLimits.DEFAULT));
    }

    @AfterEach
    void close() {
        channel.finishAndReleaseAll();
    }

    // ---- what decodes -------------------------------------------------------------------------------------------

    @Test
    void aCleanBodilessRequestDecodesAsOneCompleteMessage() {
        List<Decoded> decoded = decode("GET /orders?id=7 HTTP/1.1\r\nHost: api.example.com\r\nAccept: */*\r\n\r\n");

        assertThat(decoded).hasSize(1);
        Decoded request = decoded.get(0);
        assertThat(request.result().isSuccess()).isTrue();
        assertThat(request.method()).isEqualTo(HttpMethod.GET);
        assertThat(request.uri()).isEqualTo("/orders?id=7");
        assertThat(request.host()).isEqualTo("api.example.com");
        assertThat(request.last()).as("head and end in one message").isTrue();
    }

    @Test
    void pipelinedBodilessRequestsDecodeAsOneCompleteMessageEach() {
        List<Decoded> decoded = decode("GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
                + "POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
                + "DELETE /c HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");

        assertThat(decoded).extracting(Decoded::isRequest, Decoded::uri, Decoded::last).containsExactly(
                tuple(true, "/a", true),
                tuple(true, "/b", false),
                tuple(false, null, true),
                tuple(true, "/c", true));
        assertThat(decoded.get(2).body()).isEqualTo("hi");
    }

    @Test
    void chunkedBodyDecodesWithSuccess() {
        List<Decoded> decoded = decode("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");

        assertThat(decoded).allSatisfy(d -> assertThat(d.result().isSuccess()).isTrue());
        assertThat(decoded.get(0).method()).isEqualTo(HttpMethod.POST);
        assertThat(bodyOf(decoded)).isEqualTo("hello world");
        assertThat(decoded.get(decoded.size() - 1).last()).isTrue();
    }

    @Test
    void contentLengthBodyDecodesWithSuccess() {
        List<Decoded> decoded = decode("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");

        assertThat(decoded).allSatisfy(d -> assertThat(d.result().isSuccess()).isTrue());
        assertThat(bodyOf(decoded)).isEqualTo("hello");
        assertThat(decoded.get(decoded.size() - 1).last()).isTrue();
    }

    @Test
    void headerBlockJustUnderTheLimitDecodesWithSuccess() {
        String request = "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + "a".repeat(16 * 1024 - 100) + "\r\n\r\n";

        assertThat(decode(request).get(0).result().isSuccess()).isTrue();
    }

    // ---- what fails ---------------------------------------------------------------------------------------------

    @Test
    void contentLengthTogetherWithChunkedFails() {
        List<Decoded> decoded = decode("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n");

        Decoded request = decoded.get(0);
        assertThat(request.result().isFailure()).isTrue();
        assertThat(request.result().cause())
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("both Content-Length and Transfer-Encoding");
        assertThat(decoded).as("nothing after the failure, least of all the smuggled request").hasSize(1);
    }

    @Test
    void chunkedTogetherWithContentLengthFailsInEitherOrder() {
        Decoded request = decode("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                + "Content-Length: 40\r\n\r\n0\r\n\r\n").get(0);

        assertThat(request.result().isFailure()).isTrue();
        assertThat(request.result().cause()).hasMessage("both Content-Length and Transfer-Encoding");
    }

    @Test
    void twoDifferingContentLengthsFail() {
        Decoded request = decode("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
                + "hello!").get(0);

        assertThat(request.result().isFailure()).isTrue();
        assertThat(request.result().cause()).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("Multiple Content-Length values found");
    }

    @Test
    void commaSeparatedContentLengthsFail() {
        Decoded request = decode("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!").get(0);

        assertThat(request.result().isFailure()).isTrue();
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"Content-Length: 0\r\nContent-Length: 4", "Content-Length: 4\r\nContent-Length: 4"})
    void severalContentLengthsFailInHttp10Too(String lengths) {
        // Netty itself refuses these only in HTTP/1.1, and in 1.0 would frame the body by the first value.
        Decoded request = decode("POST / HTTP/1.0\r\n" + lengths + "\r\n\r\nabcd").get(0);

        assertThat(request.result().isFailure()).isTrue();
        assertThat(request.result().cause()).hasMessageContaining("Multiple Content-Length values found");
    }

    @Test
    void oneContentLengthWithALeadingZeroIsNotTakenForSeveral() {
        // The decoder rewrites "04" as 4: the one case where it sets Content-Length with a single value sent.
        List<Decoded> decoded = decode("POST / HTTP/1.0\r\nContent-Length: 04\r\n\r\nabcd");

        assertThat(decoded.get(0).result().isSuccess()).isTrue();
        assertThat(bodyOf(decoded)).isEqualTo("abcd");
    }

    @ParameterizedTest(name = "Content-Length: {0}")
    @ValueSource(strings = {"+5", "-5", "0x5", "5a", "5 5", "99999999999999999999"})
    void contentLengthThatIsNotAPlainNumberFails(String length) {
        Decoded request = decode("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + length + "\r\n\r\nhello")
                .get(0);

        assertThat(request.result().isFailure()).isTrue();
    }

    @Test
    void chunkDataNotFollowedByCrlfFails() {
        List<Decoded> decoded = decode("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "5\r\nhelloXX\r\n0\r\n\r\n");

        Decoded last = decoded.get(decoded.size() - 1);
        assertThat(last.isRequest()).isFalse();
        assertThat(last.result().isFailure()).isTrue();
    }

    @Test
    void chunkSizeLineEndingInBareLfFails() {
        List<Decoded> decoded = decode("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "5\nhello\r\n0\r\n\r\n");

        Decoded last = decoded.get(decoded.size() - 1);
        assertThat(last.isRequest()).isFalse();
        assertThat(last.result().isFailure()).isTrue();
        assertThat(bodyOf(decoded)).as("no byte of the chunk was accepted").isEmpty();
    }

    @Test
    void malformedChunkSizeFailsTheContent() {
        List<Decoded> decoded = decode("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "zz\r\nhello\r\n0\r\n\r\n");

        assertThat(decoded.get(0).result().isSuccess()).as("the head itself was fine").isTrue();
        Decoded content = decoded.get(decoded.size() - 1);
        assertThat(content.isRequest()).isFalse();
        assertThat(content.result().isFailure()).isTrue();
        assertThat(content.result().cause()).isInstanceOf(NumberFormatException.class);
        assertThat(decoded).hasSize(2);
    }

    @Test
    void headerBlockOverMaxHeaderSizeFails() {
        String request = "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + "a".repeat(16 * 1024 + 1) + "\r\n\r\n";

        Decoded decoded = decode(request).get(0);

        assertThat(decoded.result().isFailure()).isTrue();
        assertThat(decoded.result().cause()).isInstanceOf(TooLongHttpHeaderException.class);
        assertThat(StrictHttpServerCodec.statusForFailedHead(decoded.result().cause()))
                .isEqualTo(HttpResponseStatus.REQUEST_HEADER_FIELDS_TOO_LARGE);
    }

    @Test
    void manySmallHeadersAddingUpOverTheLimitFail() {
        StringBuilder request = new StringBuilder("GET / HTTP/1.1\r\nHost: a\r\n");
        for (int i = 0; i < 600; i++) {
            request.append("X-H").append(i).append(": ").append("v".repeat(24)).append("\r\n");
        }
        request.append("\r\n");

        Decoded decoded = decode(request.toString()).get(0);

        assertThat(decoded.result().isFailure()).isTrue();
        assertThat(StrictHttpServerCodec.statusForFailedHead(decoded.result().cause()))
                .isEqualTo(HttpResponseStatus.REQUEST_HEADER_FIELDS_TOO_LARGE);
    }

    @Test
    void requestLineOverMaxInitialLineLengthFails() {
        Decoded decoded = decode("GET /" + "a".repeat(8 * 1024) + " HTTP/1.1\r\nHost: a\r\n\r\n").get(0);

        assertThat(decoded.result().isFailure()).isTrue();
        assertThat(decoded.result().cause()).isInstanceOf(TooLongHttpLineException.class);
        HttpResponseStatus status = StrictHttpServerCodec.statusForFailedHead(decoded.result().cause());
        assertThat(status.code()).isEqualTo(414);
        assertThat(status.reasonPhrase()).isEqualTo("URI Too Long");
    }

    @Test
    void anyOtherFailedHeadIsABadRequest() {
        Decoded decoded = decode("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
                .get(0);

        assertThat(decoded.result().isFailure()).isTrue();
        assertThat(StrictHttpServerCodec.statusForFailedHead(decoded.result().cause()))
                .isEqualTo(HttpResponseStatus.BAD_REQUEST);
    }

    @Test
    void bareLfLineEndingsFail() {
        Decoded decoded = decode("GET / HTTP/1.1\nHost: a\n\n").get(0);

        assertThat(decoded.result().isFailure()).isTrue();
    }

    @Test
    void bareLfInsideTheHeaderBlockFails() {
        Decoded decoded = decode("GET / HTTP/1.1\r\nHost: a\nX-Other: b\r\n\r\n").get(0);

        assertThat(decoded.result().isFailure()).isTrue();
    }

    @Test
    void whitespaceBeforeTheColonFails() {
        Decoded decoded = decode("POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello").get(0);

        assertThat(decoded.result().isFailure()).isTrue();
    }

    // ---- HEAD responses -----------------------------------------------------------------------------------------

    @Test
    void responseToHeadEncodesNoBodyEvenWhenItAnnouncesOne() {
        decode("HEAD /report HTTP/1.1\r\nHost: a\r\n\r\n");

        String wire = encode(announcingResponse(), LastHttpContent.EMPTY_LAST_CONTENT);

        assertThat(wire).startsWith("HTTP/1.1 200 OK\r\n");
        assertThat(wire).endsWith("\r\n\r\n");
        assertThat(wire).doesNotContain("0\r\n\r\n");
        assertThat(wire.indexOf("\r\n\r\n")).isEqualTo(wire.length() - 4);
    }

    @Test
    void sameResponseToGetIsChunkFramed() {
        // The control for the HEAD case: the same response to a GET does end with the last-chunk.
        decode("GET /report HTTP/1.1\r\nHost: a\r\n\r\n");

        String wire = encode(announcingResponse(), LastHttpContent.EMPTY_LAST_CONTENT);

        assertThat(wire).endsWith("\r\n\r\n0\r\n\r\n");
    }

    @Test
    void pipelinedResponsesArePairedWithTheirOwnRequestsMethod() {
        decode("GET /a HTTP/1.1\r\nHost: a\r\n\r\nHEAD /b HTTP/1.1\r\nHost: a\r\n\r\n");

        String toGet = encode(announcingResponse(), new DefaultHttpContent(Unpooled.copiedBuffer("body", US_ASCII)),
                LastHttpContent.EMPTY_LAST_CONTENT);
        String toHead = encode(announcingResponse(), LastHttpContent.EMPTY_LAST_CONTENT);

        assertThat(toGet).endsWith("\r\n\r\n4\r\nbody\r\n0\r\n\r\n");
        assertThat(toHead).endsWith("\r\n\r\n").doesNotContain("0\r\n\r\n");
    }

    @Test
    void interimResponseDoesNotUseUpTheHeadRequest() {
        decode("HEAD /b HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n");

        String interim = encode(new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.CONTINUE,
                Unpooled.EMPTY_BUFFER));
        String finalResponse = encode(announcingResponse(), LastHttpContent.EMPTY_LAST_CONTENT);

        assertThat(interim).isEqualTo("HTTP/1.1 100 Continue\r\n\r\n");
        assertThat(finalResponse).startsWith("HTTP/1.1 200 OK\r\n").endsWith("\r\n\r\n")
                .doesNotContain("0\r\n\r\n");
    }

    // ---- whether a request is on its way (what a drain asks) -----------------------------------------------------

    @Test
    void nothingIsUnfinishedBeforeTheFirstByteNorAfterARequestEnds() {
        assertThat(codec().hasUnfinishedRequest()).as("nothing read yet").isFalse();

        decode("GET /a HTTP/1.1\r\nHost: a\r\n\r\n");
        assertThat(codec().hasUnfinishedRequest()).as("a bodiless request read to its end").isFalse();

        decode("POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi");
        assertThat(codec().hasUnfinishedRequest()).as("a request with a body read to its end").isFalse();
    }

    @Test
    void aHeadPartlyReadIsUnfinishedEvenWhenItsLinesAreAlreadyDecoded() {
        decode("GET /a HTTP/1.1\r\nHost: a\r\n\r\n");

        // The request line and Host are complete lines: the decoder has taken them, and its buffer is empty.
        assertThat(decode("POST /b HTTP/1.1\r\nHost: a\r\n")).isEmpty();

        assertThat(codec().hasUnfinishedRequest()).isTrue();
        decode("Content-Length: 0\r\n\r\n");
        assertThat(codec().hasUnfinishedRequest()).as("its end decoded").isFalse();
    }

    @Test
    void aBodyPartlyReadIsUnfinished() {
        decode("POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nhi");

        assertThat(codec().hasUnfinishedRequest()).isTrue();
    }

    @Test
    void theStartOfTheNextRequestInTheReadThatEndedOneIsUnfinished() {
        List<Decoded> decoded = decode("GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HT");

        assertThat(decoded).extracting(Decoded::uri).containsExactly("/a");
        assertThat(codec().hasUnfinishedRequest()).isTrue();
    }

    private StrictHttpServerCodec codec() {
        return channel.pipeline().get(StrictHttpServerCodec.class);
    }

    // ---- helpers ------------------------------------------------------------------------------------------------

    /** A decoded message reduced to plain values; the message itself is released before this is returned. */
    record Decoded(boolean isRequest, HttpMethod method, String uri, String host, boolean last, String body,
            DecoderResult result) {
    }

    private List<Decoded> decode(String raw) {
        channel.writeInbound(Unpooled.copiedBuffer(raw, US_ASCII));
        List<Decoded> decoded = new ArrayList<>();
        Object msg;
        while ((msg = channel.readInbound()) != null) {
            try {
                decoded.add(describe(msg));
            } finally {
                ReferenceCountUtil.release(msg);
            }
        }
        return decoded;
    }

    private static Decoded describe(Object msg) {
        if (msg instanceof HttpRequest request) {
            // A failed head may come as a full request whose content is empty.
            return new Decoded(true, request.method(), request.uri(), request.headers().get(HttpHeaderNames.HOST),
                    msg instanceof LastHttpContent, "", request.decoderResult());
        }
        HttpContent content = (HttpContent) msg;
        return new Decoded(false, null, null, null, content instanceof LastHttpContent,
                content.content().toString(US_ASCII), content.decoderResult());
    }

    private static String bodyOf(List<Decoded> decoded) {
        StringBuilder body = new StringBuilder();
        decoded.stream().filter(d -> !d.isRequest()).forEach(d -> body.append(d.body()));
        return body.toString();
    }

    /** Writes each message outbound and returns everything the codec produced, as text. */
    private String encode(Object... messages) {
        for (Object message : messages) {
            channel.writeOutbound(message);
        }
        StringBuilder wire = new StringBuilder();
        ByteBuf buf;
        while ((buf = channel.readOutbound()) != null) {
            try {
                wire.append(buf.toString(US_ASCII));
            } finally {
                buf.release();
            }
        }
        return wire.toString();
    }

    private static HttpResponse announcingResponse() {
        HttpResponse response = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
        response.headers().set(HttpHeaderNames.CONTENT_LENGTH, 10);
        response.headers().set(HttpHeaderNames.TRANSFER_ENCODING, "chunked");
        return response;
    }
}
