package dev.mtlsproxy.app.demo;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.DecoderResult;
import io.netty.handler.codec.http.DefaultFullHttpRequest;
import io.netty.handler.codec.http.DefaultHttpContent;
import io.netty.handler.codec.http.DefaultHttpRequest;
import io.netty.handler.codec.http.DefaultLastHttpContent;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpVersion;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/** The handler alone: every inbound buffer must be released, whatever path it takes. */
class EchoHandlerTest {

    private static final ObjectMapper MAPPER = new ObjectMapper();

    @Test
    void releasesEveryBodyChunkAndAnswersAtTheLast() throws Exception {
        EmbeddedChannel channel = new EmbeddedChannel(new EchoBackend.EchoHandler());
        HttpRequest head = new DefaultHttpRequest(HttpVersion.HTTP_1_1, HttpMethod.POST, "/upload");
        head.headers().set("X-Forwarded-Client-Cert", "URI=spiffe://demo.local/orders");
        ByteBuf first = Unpooled.copiedBuffer("hello ", StandardCharsets.US_ASCII);
        ByteBuf last = Unpooled.copiedBuffer("world", StandardCharsets.US_ASCII);

        channel.writeInbound(head);
        channel.writeInbound(new DefaultHttpContent(first));
        assertThat(channel.<Object>readOutbound()).as("no answer before the last chunk").isNull();
        channel.writeInbound(new DefaultLastHttpContent(last));

        assertThat(first.refCnt()).isZero();
        assertThat(last.refCnt()).isZero();
        assertThat(channel.<Object>readInbound()).as("nothing passed on").isNull();
        FullHttpResponse response = channel.readOutbound();
        try {
            assertThat(response.status().code()).isEqualTo(200);
            assertThat(response.headers().get("Content-Type")).isEqualTo("application/json");
            assertThat(response.headers().getInt("Content-Length")).isEqualTo(response.content().readableBytes());
            JsonNode json = MAPPER.readTree(response.content().toString(StandardCharsets.UTF_8));
            assertThat(json.get("path").asText()).isEqualTo("/upload");
            assertThat(json.get("identity").asText()).isEqualTo("URI=spiffe://demo.local/orders");
            assertThat(json.get("bodyBytes").asLong()).isEqualTo(11);
        } finally {
            response.release();
        }
        assertThat(channel.isOpen()).as("keep-alive").isTrue();
        assertThat(channel.finishAndReleaseAll()).isFalse();
    }

    @Test
    void releasesAMalformedRequestAndCloses() {
        EmbeddedChannel channel = new EmbeddedChannel(new EchoBackend.EchoHandler());
        ByteBuf content = Unpooled.copiedBuffer("junk", StandardCharsets.US_ASCII);
        DefaultFullHttpRequest invalid =
                new DefaultFullHttpRequest(HttpVersion.HTTP_1_1, HttpMethod.GET, "/bad", content);
        invalid.setDecoderResult(DecoderResult.failure(new IllegalArgumentException("malformed")));

        channel.writeInbound(invalid);

        assertThat(content.refCnt()).isZero();
        FullHttpResponse response = channel.readOutbound();
        assertThat(response.status().code()).isEqualTo(400);
        response.release();
        assertThat(channel.isOpen()).isFalse();
        channel.finishAndReleaseAll();
    }

    @Test
    void releasesContentThatArrivesWithoutARequest() {
        EmbeddedChannel channel = new EmbeddedChannel(new EchoBackend.EchoHandler());
        ByteBuf stray = Unpooled.copiedBuffer("stray", StandardCharsets.US_ASCII);

        channel.writeInbound(new DefaultLastHttpContent(stray));

        assertThat(stray.refCnt()).isZero();
        assertThat(channel.<Object>readOutbound()).isNull();
        assertThat(channel.finishAndReleaseAll()).isFalse();
    }
}
