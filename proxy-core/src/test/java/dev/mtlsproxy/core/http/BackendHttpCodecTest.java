package dev.mtlsproxy.core.http;

import static java.nio.charset.StandardCharsets.ISO_8859_1;
import static java.nio.charset.StandardCharsets.US_ASCII;
import static org.assertj.core.api.Assertions.assertThat;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.DefaultFullHttpRequest;
import io.netty.handler.codec.http.HttpContent;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpObject;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.util.ReferenceCountUtil;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class BackendHttpCodecTest {

    final EmbeddedChannel channel = new EmbeddedChannel(new BackendHttpCodec());

    @AfterEach
    void close() {
        channel.finishAndReleaseAll();
    }

    private void send(HttpMethod method) {
        channel.writeOutbound(new DefaultFullHttpRequest(HttpVersion.HTTP_1_1, method, "/r", Unpooled.EMPTY_BUFFER));
        ReferenceCountUtil.release(channel.readOutbound());
    }

    private List<HttpObject> receive(String bytes) {
        channel.writeInbound(Unpooled.copiedBuffer(bytes, ISO_8859_1));
        List<HttpObject> objects = new ArrayList<>();
        for (Object o; (o = channel.readInbound()) != null; ) {
            objects.add((HttpObject) o);
        }
        return objects;
    }

    private static String body(List<HttpObject> objects) {
        StringBuilder b = new StringBuilder();
        for (HttpObject o : objects) {
            if (o instanceof HttpContent c) {
                ByteBuf content = c.content();
                b.append(content.toString(US_ASCII));
            }
            ReferenceCountUtil.release(o);
        }
        return b.toString();
    }

    @Test
    void fieldsTheProxyDoesNotActOnAreRelayedAsTheBackendsBytes() {
        send(HttpMethod.GET);
        List<HttpObject> objects = receive("HTTP/1.1 200 OK\r\nContent-Type: a\r\ncontent-type:b\r\n"
                + "Set-Cookie: x=1\r\nCONTENT-TYPE: c  \r\nSet-Cookie: y=2\r\nX-Odd: \u00e9\r\n"
                + "Content-Length: 2\r\n\r\nhi");

        HttpResponse response = (HttpResponse) objects.get(0);
        assertThat(((RelayedHeaders) response.headers()).verbatim()).isEqualTo("Content-Type: a\r\ncontent-type:b\r\n"
                + "Set-Cookie: x=1\r\nCONTENT-TYPE: c  \r\nSet-Cookie: y=2\r\nX-Odd: \u00e9\r\n");
        assertThat(names(response)).as("parsed: the framing field only").containsExactly("Content-Length");
        assertThat(response.status()).isSameAs(HttpResponseStatus.OK);
        assertThat(response.protocolVersion()).isSameAs(HttpVersion.HTTP_1_1);
        assertThat(body(objects)).isEqualTo("hi");
    }

    @Test
    void hopByHopFieldsAndTheFieldsConnectionNamesAreParsedForTheProxyToRemove() {
        send(HttpMethod.GET);
        List<HttpObject> objects = receive("HTTP/1.1 200 OK\r\nServer: s\r\nConnection: X-Trace, close\r\n"
                + "x-trace: 1\r\nKeep-Alive: timeout=5\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n");

        HttpResponse response = (HttpResponse) objects.get(0);
        assertThat(((RelayedHeaders) response.headers()).verbatim()).isEqualTo("Server: s\r\n");
        assertThat(names(response)).containsExactly("Connection", "x-trace", "Keep-Alive", "Upgrade",
                "Content-Length");
        assertThat(response.headers().get("X-Trace")).isEqualTo("1");
        body(objects);
    }

    @Test
    void aHeadArrivingOneByteAtATimeDecodesAsIfWhole() {
        send(HttpMethod.GET);
        String response = "\r\nHTTP/1.1 201 Created\r\nLocation: /o/1\r\nContent-Length: 5\r\n\r\nhello";
        List<HttpObject> objects = new ArrayList<>();
        for (char c : response.toCharArray()) {
            objects.addAll(receive(String.valueOf(c)));
        }
        HttpResponse head = (HttpResponse) objects.get(0);
        assertThat(head.status()).isSameAs(HttpResponseStatus.CREATED);
        assertThat(((RelayedHeaders) head.headers()).verbatim()).isEqualTo("Location: /o/1\r\n");
        assertThat(objects.get(objects.size() - 1)).isInstanceOf(LastHttpContent.class);
        assertThat(body(objects)).isEqualTo("hello");
    }

    @Test
    void aChunkedBodyIsDecodedWithItsExtensionsDroppedAndItsTrailersKept() {
        send(HttpMethod.GET);
        List<HttpObject> objects = receive("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "5;name=value\r\nhello\r\n6 ; x\r\n world\r\n0\r\nChecksum: abc\r\nContent-Length: 9\r\n\r\n");

        LastHttpContent last = (LastHttpContent) objects.get(objects.size() - 1);
        assertThat(last.trailingHeaders().get("Checksum")).isEqualTo("abc");
        assertThat(last.trailingHeaders().contains("Content-Length")).as("framing is no trailer's business").isFalse();
        assertThat(body(objects)).isEqualTo("hello world");
    }

    @Test
    void aBodyWithoutLengthOrChunksRunsUntilTheBackendCloses() {
        send(HttpMethod.GET);
        List<HttpObject> objects = receive("HTTP/1.0 200 OK\r\nServer: old\r\n\r\nall of ");
        objects.addAll(receive("this"));
        assertThat(objects).noneMatch(o -> o instanceof LastHttpContent);

        channel.finish();
        for (Object o; (o = channel.readInbound()) != null; ) {
            objects.add((HttpObject) o);
        }
        assertThat(objects.get(objects.size() - 1)).isInstanceOf(LastHttpContent.class);
        assertThat(body(objects)).isEqualTo("all of this");
    }

    @Test
    void noContentAndNotModifiedHaveNoBodyWhateverTheyAnnounce() {
        send(HttpMethod.GET);
        send(HttpMethod.GET);
        send(HttpMethod.GET);
        List<HttpObject> objects = receive("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"
                + "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"
                + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");

        assertThat(objects).filteredOn(o -> o instanceof HttpResponse)
                .extracting(o -> ((HttpResponse) o).status().code()).containsExactly(204, 304, 200);
        assertThat(body(objects)).isEqualTo("ok");
    }

    @Test
    void afterA101NothingMoreIsDecoded() {
        send(HttpMethod.GET);
        List<HttpObject> objects = receive("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                + "Connection: Upgrade\r\nSec-WebSocket-Accept: abc\r\n\r\nHTTP/1.1 200 OK\r\n\r\n");

        HttpResponse response = (HttpResponse) objects.get(0);
        assertThat(response.headers().get("Sec-WebSocket-Accept")).as("a 101 is parsed whole").isEqualTo("abc");
        assertThat(objects).hasSize(2).last().isInstanceOf(LastHttpContent.class);
        body(objects);
    }

    /** Each a response a client or another proxy could frame differently from us: never relayed. */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
            two Content-Lengths           | HTTP/1.1 200 OK\\r\\nContent-Length: 3\\r\\nContent-Length: 4\\r\\n\\r\\nabcd | more than one Content-Length
            a Content-Length list         | HTTP/1.1 200 OK\\r\\nContent-Length: 3, 3\\r\\n\\r\\nabc            | invalid Content-Length
            a signed Content-Length       | HTTP/1.1 200 OK\\r\\nContent-Length: +3\\r\\n\\r\\nabc              | invalid Content-Length
            an empty Content-Length       | HTTP/1.1 200 OK\\r\\nContent-Length: \\r\\n\\r\\n                   | invalid Content-Length
            a huge Content-Length         | HTTP/1.1 200 OK\\r\\nContent-Length: 1234567890123456789\\r\\n\\r\\n | invalid Content-Length
            length and chunks             | HTTP/1.1 200 OK\\r\\nContent-Length: 3\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\n | both Content-Length and Transfer-Encoding
            a coding besides chunked      | HTTP/1.1 200 OK\\r\\nTransfer-Encoding: gzip, chunked\\r\\n\\r\\n0\\r\\n\\r\\n | Transfer-Encoding other than chunked
            chunks in an HTTP/1.0 answer  | HTTP/1.0 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\n | Transfer-Encoding in an HTTP/1.0 response
            two Transfer-Encodings        | HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n | more than one Transfer-Encoding
            a folded field                | HTTP/1.1 200 OK\\r\\nX-A: 1\\r\\n folded\\r\\nContent-Length: 0\\r\\n\\r\\n | folded field line (obs-fold)
            space before a colon          | HTTP/1.1 200 OK\\r\\nContent-Length : 5\\r\\n\\r\\nhello     | whitespace between a field name and its colon
            a bare LF                     | HTTP/1.1 200 OK\\r\\nX-A: 1\\nContent-Length: 0\\r\\n\\r\\n  | line ending in a bare LF
            a bare CR                     | HTTP/1.1 200 OK\\r\\nX-A: 1\\rContent-Length: 0\\r\\n\\r\\n  | bare CR in the response head
            a NUL in a value              | HTTP/1.1 200 OK\\r\\nX-A: a\\u0000b\\r\\nContent-Length: 0\\r\\n\\r\\n | control character in the value of a field
            an empty name                 | HTTP/1.1 200 OK\\r\\n: v\\r\\nContent-Length: 0\\r\\n\\r\\n        | invalid field name
            a separator in a name         | HTTP/1.1 200 OK\\r\\nX(A): v\\r\\nContent-Length: 0\\r\\n\\r\\n    | invalid field name
            a two-digit status            | HTTP/1.1 20 OK\\r\\nContent-Length: 0\\r\\n\\r\\n             | invalid status line
            a status below 100            | HTTP/1.1 099 Odd\\r\\nContent-Length: 0\\r\\n\\r\\n           | invalid status line
            HTTP/2 in a status line       | HTTP/2 200 OK\\r\\nContent-Length: 0\\r\\n\\r\\n              | invalid status line
            a lower-case protocol name    | http/1.1 200 OK\\r\\nContent-Length: 0\\r\\n\\r\\n            | invalid status line
            no space after the status     | HTTP/1.1 200OK\\r\\nContent-Length: 0\\r\\n\\r\\n             | invalid status line
            a bad chunk size              | HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\nzz\\r\\nhello\\r\\n0\\r\\n\\r\\n | invalid chunk size
            a chunk longer than its size  | HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n5\\r\\nhello!\\r\\n0\\r\\n\\r\\n | chunk data not followed by CRLF
            a chunk size with a bare LF   | HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n5\\nhello\\r\\n0\\r\\n\\r\\n | chunk size line ending in a bare LF
            a chunk size over 2^60        | HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n10000000000000000\\r\\n | chunk size too large
            """)
    void aResponseThatCouldBeFramedTwoWaysFailsAndNothingAfterItIsDecoded(String what, String response,
            String reason) {
        send(HttpMethod.GET);
        send(HttpMethod.GET);
        List<HttpObject> objects = receive(unescape(response) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");

        HttpObject failed = objects.get(objects.size() - 1);
        assertThat(failed.decoderResult().isFailure()).as("the last thing decoded is the failure").isTrue();
        assertThat(failed.decoderResult().cause()).isInstanceOf(InvalidResponseException.class).hasMessage(reason);
        assertThat(objects).filteredOn(o -> o instanceof HttpResponse).hasSizeLessThanOrEqualTo(1);
        body(objects);
    }

    @Test
    void aHeadOver64KiBFails() {
        send(HttpMethod.GET);
        List<HttpObject> objects = receive("HTTP/1.1 200 OK\r\nX-Big: " + "a".repeat(64 * 1024) + "\r\n\r\n");

        assertThat(objects).hasSize(1);
        assertThat(objects.get(0).decoderResult().cause()).hasMessage("response head larger than 64 KiB");
    }

    private static String unescape(String csv) {
        return csv.replace("\\r", "\r").replace("\\n", "\n").replace("\\u0000", "\u0000");
    }

    private static List<String> names(HttpResponse response) {
        List<String> names = new ArrayList<>();
        for (Map.Entry<String, String> field : response.headers()) {
            names.add(field.getKey());
        }
        return names;
    }

    @Test
    void anUnusualReasonPhraseIsKept() {
        send(HttpMethod.GET);
        List<HttpObject> objects = receive("HTTP/1.1 200 Fine Thanks\r\nContent-Length: 0\r\n\r\n");
        HttpResponse response = (HttpResponse) objects.get(0);
        assertThat(response.status().code()).isEqualTo(200);
        assertThat(response.status().reasonPhrase()).isEqualTo("Fine Thanks");
        body(objects);
    }

    @Test
    void aResponseToHeadEndsAtItsHeadAndTheNextResponseIsReadWhole() {
        send(HttpMethod.HEAD);
        send(HttpMethod.GET);
        List<HttpObject> objects = receive("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
                + "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");

        assertThat(objects).filteredOn(o -> o instanceof HttpResponse).hasSize(2);
        assertThat(objects).filteredOn(o -> o instanceof LastHttpContent).hasSize(2);
        assertThat(body(objects)).isEqualTo("hello");
    }

    @Test
    void bytesPastTheLastResponseAskedForFailInsteadOfWaitingForTheNextRequest() {
        send(HttpMethod.HEAD);
        List<HttpObject> objects = receive("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");

        assertThat(objects).filteredOn(o -> o instanceof HttpResponse).hasSize(1);
        HttpObject failed = objects.get(objects.size() - 1);
        assertThat(failed.decoderResult().cause()).isInstanceOf(InvalidResponseException.class)
                .hasMessage("data after the response, with no request outstanding");
        body(objects);
    }

    @Test
    void emptyLinesAfterAResponseAreNoData() {
        send(HttpMethod.GET);
        List<HttpObject> objects = receive("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\r\n");

        assertThat(objects).noneMatch(o -> o.decoderResult().isFailure());
        assertThat(body(objects)).isEqualTo("ok");
    }

    @Test
    void anInterimResponseDoesNotUseUpTheHeadRequestItPrecedes() {
        send(HttpMethod.HEAD);
        List<HttpObject> objects = receive("HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n"
                + "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");

        assertThat(objects).filteredOn(o -> o instanceof HttpResponse)
                .extracting(o -> ((HttpResponse) o).status().code()).containsExactly(103, 200);
        assertThat(objects.get(objects.size() - 1)).as("the HEAD's response is complete without a body")
                .isInstanceOf(LastHttpContent.class);
        body(objects);
    }

    /**
     * Nothing decoded from a read is passed on before the whole read is decoded, so a response that fails in the read
     * of its head can be taken back whole: the proxy gets the failure alone, while it can still answer 502.
     */
    @Test
    void aResponseThatFailsInTheReadOfItsHeadIsTakenBackAndOnlyTheFailureIsPassedOn() {
        send(HttpMethod.GET);
        List<HttpObject> objects = receive("HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n"
                + "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n");

        assertThat(objects).filteredOn(o -> o instanceof HttpResponse).as("the interim response stands")
                .extracting(o -> ((HttpResponse) o).status().code()).containsExactly(103);
        HttpObject failed = objects.get(objects.size() - 1);
        assertThat(failed.decoderResult().cause()).isInstanceOf(InvalidResponseException.class)
                .hasMessage("invalid chunk size");
        assertThat(body(objects)).as("nothing of the failed response's body").isEmpty();
    }

    @Test
    void aResponseCompletedBeforeAFailureInTheSameReadIsPassedOn() {
        send(HttpMethod.GET);
        List<HttpObject> objects = receive("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok, and more");

        assertThat(objects).filteredOn(o -> o instanceof HttpResponse).hasSize(1);
        assertThat(objects.get(objects.size() - 1).decoderResult().cause())
                .hasMessage("data after the response, with no request outstanding");
        assertThat(body(objects)).isEqualTo("ok");
    }

    @Test
    void aResponseWhoseHeadWasPassedOnInAnEarlierReadIsNotTakenBack() {
        send(HttpMethod.GET);
        List<HttpObject> first = receive("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
        List<HttpObject> second = receive("zz\r\n");

        assertThat(first).hasSize(2).first().isInstanceOf(HttpResponse.class);
        assertThat(body(first)).isEqualTo("hello");
        assertThat(second).singleElement().satisfies(failed ->
                assertThat(failed.decoderResult().cause()).hasMessage("invalid chunk size"));
        body(second);
    }

    /**
     * Stricter than RFC 9112, which bounds neither (README, "Backend responses"): 15 significant hex digits are more
     * than any body, and 4 KiB for a chunk line (size, extensions, CRLF) more than any real extension. Leading zeros
     * are the RFC's and do not count.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
            15 hex digits                      | 000000000000005  | 0    |
            16 hex digits, some leading zeros  | 0000000000000005 | 0    |
            40 hex digits, all but one zeros   | 0000000000000000000000000000000000000005 | 0 |
            16 significant hex digits          | 1000000000000005 | 0    | chunk size too large
            a chunk line of 4 KiB              | 5;x=             | 4096 |
            a chunk line one byte over 4 KiB   | 5;x=             | 4097 | chunk size line too long
            """)
    void chunkSizesAndChunkLinesAreBounded(String what, String line, int lineLength, String reason) {
        send(HttpMethod.GET);
        String sizeLine = line + "a".repeat(Math.max(lineLength - line.length() - 2, 0)) + "\r\n";
        List<HttpObject> objects = receive("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + sizeLine
                + "hello\r\n0\r\n\r\n");

        HttpObject last = objects.get(objects.size() - 1);
        if (reason == null) {
            assertThat(last.decoderResult().isSuccess()).isTrue();
            assertThat(body(objects)).isEqualTo("hello");
        } else {
            assertThat(last.decoderResult().cause()).isInstanceOf(InvalidResponseException.class).hasMessage(reason);
            body(objects);
        }
    }
}
