package dev.mtlsproxy.bench;

import dev.mtlsproxy.config.HttpLimits;
import dev.mtlsproxy.core.http.BackendHttpCodec;
import dev.mtlsproxy.core.http.ForwardedHeaders;
import dev.mtlsproxy.core.http.StrictHttpServerCodec;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.DefaultFullHttpRequest;
import io.netty.handler.codec.http.HttpClientCodec;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseEncoder;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.util.ReferenceCountUtil;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * A backend's response relayed to the client, without I/O: its bytes decoded, the hop-by-hop fields removed, and
 * encoded again for the client. {@code relayed} is the proxy's path (BackendHttpCodec, whose decoder keeps the fields
 * it does not act on as bytes, and StrictHttpServerCodec's encoder); {@code decodedAndEncoded} is Netty's codecs,
 * every field decoded into objects and encoded again, as before issue #8's pass-through. The {@code ...DecodeOnly}
 * pair times the decoders alone, and {@code channelOnly} the EmbeddedChannel they all pass through, for scale.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class ResponseRelayBenchmark {

    /** What nginx answers with a small body, as the bench's backend does. */
    private static final byte[] RESPONSE = ("HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n"
            + "Date: Sat, 28 Nov 2026 11:40:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
            + "Connection: keep-alive\r\n\r\nok\n").getBytes(StandardCharsets.US_ASCII);

    private EmbeddedChannel backend;
    private EmbeddedChannel client;
    private EmbeddedChannel nettyBackend;
    private EmbeddedChannel nettyClient;
    private EmbeddedChannel empty;

    @Setup
    public void setUp() {
        backend = new EmbeddedChannel(new BackendHttpCodec());
        client = new EmbeddedChannel(new StrictHttpServerCodec(HttpLimits.DEFAULT));
        nettyBackend = new EmbeddedChannel(new HttpClientCodec());
        nettyClient = new EmbeddedChannel(new HttpResponseEncoder());
        empty = new EmbeddedChannel();
    }

    @Benchmark
    public int relayed() {
        return relay(backend, client);
    }

    @Benchmark
    public int decodedAndEncoded() {
        return relay(nettyBackend, nettyClient);
    }

    @Benchmark
    public int relayedDecodeOnly() {
        return decode(backend);
    }

    @Benchmark
    public int nettyDecodeOnly() {
        return decode(nettyBackend);
    }

    @Benchmark
    public int channelOnly() {
        return decode(empty);
    }

    /**
     * The request each response answers, through the backend codec as the proxy sends it: the decoder frames a
     * response by its request's method, and refuses bytes that answer no request. Included in every variant alike.
     */
    private static void sendRequest(EmbeddedChannel to) {
        to.writeOutbound(new DefaultFullHttpRequest(HttpVersion.HTTP_1_1, HttpMethod.GET, "/",
                Unpooled.EMPTY_BUFFER));
        for (Object out; (out = to.readOutbound()) != null; ) {
            ReferenceCountUtil.release(out);
        }
    }

    private static int decode(EmbeddedChannel from) {
        sendRequest(from);
        from.writeInbound(Unpooled.wrappedBuffer(RESPONSE));
        int n = 0;
        for (Object msg; (msg = from.readInbound()) != null; n++) {
            ReferenceCountUtil.release(msg);
        }
        return n;
    }

    private static int relay(EmbeddedChannel from, EmbeddedChannel to) {
        sendRequest(from);
        from.writeInbound(Unpooled.wrappedBuffer(RESPONSE));
        for (Object msg; (msg = from.readInbound()) != null; ) {
            if (msg instanceof HttpResponse response) {
                ForwardedHeaders.forClient(response.headers());
            }
            to.writeOutbound(msg);
        }
        int bytes = 0;
        for (Object out; (out = to.readOutbound()) != null; ) {
            bytes += ((ByteBuf) out).readableBytes();
            ReferenceCountUtil.release(out);
        }
        return bytes;
    }
}
