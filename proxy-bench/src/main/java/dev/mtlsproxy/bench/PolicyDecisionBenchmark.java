package dev.mtlsproxy.bench;

import dev.mtlsproxy.config.IdentityConfig;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.config.RouteConfig;
import dev.mtlsproxy.config.RuleConfig;
import dev.mtlsproxy.config.TrustAnchorConfig;
import dev.mtlsproxy.core.identity.PeerIdentities;
import dev.mtlsproxy.core.identity.PeerIdentity;
import dev.mtlsproxy.core.policy.Policy;
import dev.mtlsproxy.core.policy.PolicyDecision;
import dev.mtlsproxy.core.policy.PolicyRequest;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
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
 * One policy decision with a large policy: 1,000 routes over 50 hosts (20 path prefixes each), 200 identities of
 * mixed matcher kinds, each route with a deny rule, a method-scoped allow, a path-scoped allow and a plain allow.
 * Requests cycle through a fixed random mix of clients and targets (allowed, denied, no route), so the branch
 * predictor cannot learn one path.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class PolicyDecisionBenchmark {

    static final int HOSTS = 50;
    static final int PREFIXES = 20;
    static final int IDENTITIES = 200;
    static final int MIX = 4096;

    private Policy policy;
    private PeerIdentity[] peers;
    private PolicyRequest[] requests;
    private Instant now;
    private int next;

    @Setup
    public void compile() {
        Map<String, IdentityConfig> identities = new LinkedHashMap<>();
        for (int i = 0; i < IDENTITIES; i++) {
            IdentityConfig.Builder b = IdentityConfig.builder();
            switch (i % 4) {
                case 0 -> b.spiffeId("spiffe://bench.test/ns/n" + (i % 10) + "/sa/s" + i);
                case 1 -> b.spiffeIdPrefix("spiffe://bench.test/ns/n" + (i % 10) + "/sa/s" + i);
                case 2 -> b.dnsSan("*.s" + i + ".svc.bench.test");
                default -> b.allOf(IdentityConfig.builder().trustDomain("bench.test").build(),
                        IdentityConfig.builder().subjectOu("team" + i).build());
            }
            identities.put("id" + i, b.build());
        }
        List<RouteConfig> routes = new ArrayList<>();
        Random random = new Random(42);
        for (int h = 0; h < HOSTS; h++) {
            for (int p = 0; p < PREFIXES; p++) {
                String prefix = "/svc" + p + "/v1";
                List<RuleConfig> rules = List.of(
                        RuleConfig.deny(id(random)).withMethods("DELETE"),
                        RuleConfig.allow(id(random), id(random)).withMethods("POST", "PUT"),
                        RuleConfig.allow(id(random)).withPaths(prefix + "/*/items"),
                        RuleConfig.allow(id(random), id(random), id(random)));
                routes.add(new RouteConfig("r" + h + "-" + p, "h" + h + ".bench.test", prefix, List.of(), "b",
                        List.of(), rules, null, null));
            }
        }
        policy = Policy.compile(new ProxyConfig(Map.of("bench", new TrustAnchorConfig(Path.of("ca.pem"))),
                List.of(), identities, routes, Map.of(), null, null, null));

        peers = new PeerIdentity[MIX];
        requests = new PolicyRequest[MIX];
        String[] methods = {"GET", "GET", "GET", "POST", "DELETE"};
        for (int i = 0; i < MIX; i++) {
            int who = random.nextInt(IDENTITIES);
            peers[i] = PeerIdentities.described(
                    List.of("spiffe://bench.test/ns/n" + (who % 10) + "/sa/s" + who),
                    List.of("a.s" + who + ".svc.bench.test"), List.of(), List.of(),
                    "CN=w" + who + ",OU=team" + who + ",O=bench", "CN=bench CA", "bench");
            String host = "h" + random.nextInt(HOSTS + 5) + ".bench.test"; // some hosts have no routes
            String path = "/svc" + random.nextInt(PREFIXES) + "/v1/" + random.nextInt(100) + "/items";
            requests[i] = new PolicyRequest(methods[random.nextInt(methods.length)], host, path, host);
        }
        now = Instant.parse("2026-11-27T12:00:00Z");
    }

    private static String id(Random random) {
        return "id" + random.nextInt(IDENTITIES);
    }

    @Benchmark
    public PolicyDecision decide() {
        int i = next++ & (MIX - 1);
        return policy.decide(peers[i], requests[i], now);
    }
}
