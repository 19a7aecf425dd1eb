package dev.mtlsproxy.core.http;

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
        channel.writeInbound(Unpooled.copiedBuffer(bytes, US_ASCII));
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
    void fieldNamesKeepTheBackendsSpellingWhetherKnownOrNot() {
        send(HttpMethod.GET);
        List<HttpObject> objects = receive("HTTP/1.1 200 OK\r\nContent-Type: a\r\ncontent-type: b\r\n"
                + "CONTENT-TYPE: c\r\ncontent-Type: d\r\nX-Odd: e\r\nContent-Length: 2\r\n\r\nhi");

        HttpResponse response = (HttpResponse) objects.get(0);
        List<String> names = new ArrayList<>();
        for (Map.Entry<String, String> field : response.headers()) {
            names.add(field.getKey());
        }
        assertThat(names).containsExactly("Content-Type", "content-type", "CONTENT-TYPE", "content-Type", "X-Odd",
                "Content-Length");
        assertThat(response.headers().getAll("content-type")).containsExactly("a", "b", "c", "d");
        assertThat(response.status()).isSameAs(HttpResponseStatus.OK);
        assertThat(response.protocolVersion()).isSameAs(HttpVersion.HTTP_1_1);
        assertThat(body(objects)).isEqualTo("hi");
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
}
