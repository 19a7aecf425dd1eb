package dev.mtlsproxy.bench;

import dev.mtlsproxy.core.http.ForwardedHeaders;
import dev.mtlsproxy.core.identity.PeerIdentities;
import dev.mtlsproxy.core.identity.PeerIdentity;
import dev.mtlsproxy.core.metrics.ProxyMetrics;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.DefaultFullHttpRequest;
import io.netty.handler.codec.http.DefaultHttpHeaders;
import io.netty.handler.codec.http.EmptyHttpHeaders;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpRequestEncoder;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.util.AsciiString;
import java.net.InetSocketAddress;
import java.util.List;
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
 * The per-request work around forwarding that is not I/O: rewriting a typical request's headers for the backend,
 * and recording the request's metrics. Each pair compares the way it is done per request now (per-connection parts
 * computed once, meters found by name) with rebuilding everything per request, as before issue #8.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class RequestPathBenchmark {

    private static final String BY = "spiffe://bench.test/proxy";

    private PeerIdentity peer;
    private InetSocketAddress client;
    private String clientIp;
    private String xfcc;
    private AsciiString clientIpAscii;
    private AsciiString xfccAscii;
    private EmbeddedChannel encoder;
    private ProxyMetrics metrics;

    @Setup
    public void setUp() {
        peer = PeerIdentities.described(List.of("spiffe://bench.test/ns/shop/sa/orders"),
                List.of("orders.shop.svc.bench.test"), List.of(), List.of(), "CN=orders,OU=shop,O=bench",
                "CN=bench CA", "bench");
        client = new InetSocketAddress("192.0.2.10", 40_000);
        clientIp = ForwardedHeaders.clientIp(client);
        xfcc = ForwardedHeaders.clientCertHeader(peer, BY);
        clientIpAscii = new AsciiString(clientIp);
        xfccAscii = new AsciiString(xfcc);
        encoder = new EmbeddedChannel(new HttpRequestEncoder());
        metrics = new ProxyMetrics(new PrometheusMeterRegistry(PrometheusConfig.DEFAULT));
        metrics.listenerStarted("public", () -> 1000, () -> 0);
    }

    /** What a curl-like client sends. */
    private static HttpHeaders typicalRequest() {
        HttpHeaders headers = new DefaultHttpHeaders();
        headers.add("host", "api.bench.test");
        headers.add("user-agent", "curl/8.5.0");
        headers.add("accept", "*/*");
        return headers;
    }

    @Benchmark
    public HttpHeaders forwardedHeadersPerConnectionParts() {
        HttpHeaders headers = typicalRequest();
        ForwardedHeaders.forBackend(headers, clientIp, xfcc);
        return headers;
    }

    /**
     * A typical bodiless request rewritten for the backend and encoded as the backend connection sends it, with the
     * per-connection parts as Strings (before) and as AsciiStrings (now): the encoder copies the latter as bytes.
     */
    @Benchmark
    public int forwardedRequestEncodedWithStrings() {
        return rewriteAndEncode(clientIp, xfcc);
    }

    @Benchmark
    public int forwardedRequestEncodedWithAsciiStrings() {
        return rewriteAndEncode(clientIpAscii, xfccAscii);
    }

    private int rewriteAndEncode(CharSequence ip, CharSequence clientCert) {
        FullHttpRequest request = new DefaultFullHttpRequest(HttpVersion.HTTP_1_1, HttpMethod.GET, "/orders/7",
                Unpooled.EMPTY_BUFFER, typicalRequest(), EmptyHttpHeaders.INSTANCE);
        ForwardedHeaders.forBackend(request.headers(), ip, clientCert);
        encoder.writeOutbound(request);
        ByteBuf encoded = encoder.readOutbound();
        int bytes = encoded.readableBytes();
        encoded.release();
        return bytes;
    }

    @Benchmark
    public HttpHeaders forwardedHeadersAllPerRequest() {
        HttpHeaders headers = typicalRequest();
        ForwardedHeaders.forBackend(headers, client, peer, BY);
        return headers;
    }

    @Benchmark
    public void metricsPerRequest() {
        metrics.requestStarted("public");
        metrics.decision("orders-api", "rule-1", "allow");
        metrics.backendResponse("orders", 150_000);
        metrics.backendSucceeded("orders");
        metrics.requestFinished("public", "orders-api", "GET", 200, "allow", 250_000, 0, 3);
    }
}
