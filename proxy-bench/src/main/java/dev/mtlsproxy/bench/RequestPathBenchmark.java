package dev.mtlsproxy.bench;

import dev.mtlsproxy.core.http.ForwardedHeaders;
import dev.mtlsproxy.core.identity.PeerIdentities;
import dev.mtlsproxy.core.identity.PeerIdentity;
import dev.mtlsproxy.core.metrics.ProxyMetrics;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.netty.handler.codec.http.DefaultHttpHeaders;
import io.netty.handler.codec.http.HttpHeaders;
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
    private ProxyMetrics metrics;

    @Setup
    public void setUp() {
        peer = PeerIdentities.described(List.of("spiffe://bench.test/ns/shop/sa/orders"),
                List.of("orders.shop.svc.bench.test"), List.of(), List.of(), "CN=orders,OU=shop,O=bench",
                "CN=bench CA", "bench");
        client = new InetSocketAddress("192.0.2.10", 40_000);
        clientIp = ForwardedHeaders.clientIp(client);
        xfcc = ForwardedHeaders.clientCertHeader(peer, BY);
        metrics = new ProxyMetrics(new PrometheusMeterRegistry(PrometheusConfig.DEFAULT));
        metrics.listenerStarted("public");
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
        metrics.requestFinished("public", "orders-api", "GET", 200, "allow", 250_000, 0, 3);
    }
}
