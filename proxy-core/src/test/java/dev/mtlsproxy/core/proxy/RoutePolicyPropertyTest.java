package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.config.IdentityConfig;
import dev.mtlsproxy.config.PolicyMode;
import dev.mtlsproxy.config.RouteConfig;
import dev.mtlsproxy.config.RuleConfig;
import dev.mtlsproxy.core.proxy.ReadmePolicyModel.Verdict;
import dev.mtlsproxy.core.proxy.RoutingScenarios.Call;
import dev.mtlsproxy.core.proxy.RoutingScenarios.GenRoute;
import dev.mtlsproxy.core.proxy.RoutingScenarios.GenRule;
import dev.mtlsproxy.core.proxy.RoutingScenarios.NamedIdentity;
import dev.mtlsproxy.core.proxy.RoutingScenarios.Workload;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import io.netty.pkitesting.X509Bundle;
import java.io.IOException;
import java.security.SecureRandom;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * "Only these workloads may call these routes", default deny, checked on generated policies and requests: each
 * policy has a handful of routes whose prefixes share segments ({@code /api}, {@code /apix}, {@code /api/v1}, /),
 * exact and wildcard hosts, method lists, allow and deny rules with paths and expiry, for four identities; each
 * request comes from one of six real client certificates (some a look-alike of an identity), on a connection with or
 * without a server name, and spells its path and Host the tricky ways (escapes in either case, {@code %2e%2e},
 * {@code //}, {@code /./}, {@code ;}, {@code %2F}, {@code %00}, overlong and real UTF-8, a trailing dot, a port,
 * absolute-form).
 *
 * <p>Every request is judged by {@link ReadmePolicyModel}, written from the README alone, on two counts: the status
 * the client gets (200 from the backend, or the proxy's 400/403/404/405/421), and for a forwarded request the
 * target and Host the backend actually received, which must be the normalised ones that were judged. The backend is
 * a real socket; a refused request that reached it would show up as a request of the wrong case.
 *
 * <p>One proxy serves every policy, reloaded with each. The mix comes from one seed, printed with every failure
 * together with the policy and the request; {@code -Dmtlsproxy.test.seed=N} runs that mix again and
 * {@code -Dmtlsproxy.test.seed=random} a new one.
 */
class RoutePolicyPropertyTest {

    static final long SEED = seedOf(System.getProperty("mtlsproxy.test.seed", "1"));
    static final int POLICIES = 8;
    static final int REQUESTS_PER_POLICY = 100;

    @RegisterExtension
    final ProxyFixture fixture = new ProxyFixture((pki, backend) -> {
        RunningProxy.Builder proxy = RunningProxy.builder(pki).backend("app", backend.url())
                .route("placeholder", "/", "app", "ops");
        for (NamedIdentity i : RoutingScenarios.IDENTITIES) {
            proxy.identity(i.name(), IdentityConfig.builder().trustAnchor(TestPki.ANCHOR).spiffeId(i.spiffeId())
                    .spiffeIdPrefix(i.spiffeIdPrefix()).dnsSan(i.dnsSan()).build());
        }
        return proxy;
    });

    /** Open connections by client and server name, reused while the proxy keeps them open. */
    private final Map<String, MtlsClient> connections = new HashMap<>();
    /**
     * A TLS context per client and server name: a JDK client whose context has a session cached for the address
     * sends that session's server name again, whatever the new connection asks for.
     */
    private final Map<String, SSLContext> contexts = new HashMap<>();
    private final Map<String, X509Bundle> certificates = new HashMap<>();

    static long seedOf(String property) {
        return property.equals("random") ? new SecureRandom().nextLong() : Long.parseLong(property);
    }

    @AfterEach
    void closeConnections() throws IOException {
        for (MtlsClient c : connections.values()) {
            c.close();
        }
    }

    @Test
    void generatedRequestsGetWhatTheReadmePromisesAndTheBackendGetsWhatWasJudged() throws Exception {
        for (Workload w : RoutingScenarios.WORKLOADS) {
            certificates.put(w.name(), fixture.pki().client(w.spiffeId(),
                    b -> w.dnsSan() == null ? b : b.addSanDnsName(w.dnsSan())));
        }
        Random random = new Random(SEED);
        List<String> failures = new ArrayList<>();
        Map<Integer, Integer> statuses = new TreeMap<>();
        for (int p = 0; p < POLICIES; p++) {
            List<GenRoute> routes = RoutingScenarios.routes(random);
            fixture.proxy().reload(config -> config.withRoutes(routes.stream().map(r -> routeConfig(r)).toList()));
            for (int n = 0; n < REQUESTS_PER_POLICY; n++) {
                Call call = RoutingScenarios.call(random, p + "-" + n, routes);
                Verdict expected = ReadmePolicyModel.judge(routes, RoutingScenarios.IDENTITIES, call, Instant.now());
                String problem = run(call, expected);
                statuses.merge(expected.status(), 1, Integer::sum);
                if (problem != null && failures.size() < 15) {
                    failures.add("\n== case " + call.tag() + ": " + problem
                            + "\n  client " + call.client().name() + ", server name " + call.sni()
                            + "\n  sent: " + call.requestHead().replace("\r\n", "\\r\\n")
                            + "\n  README: " + String.join("; ", ReadmePolicyModel.describe(expected))
                            + "\n  policy:\n" + RoutingScenarios.describe(routes).indent(4));
                }
            }
            assertThat(fixture.backend().pendingRequests()).as("requests the backend got that no case expected "
                    + "(seed " + SEED + ", policy " + p + ")").isZero();
        }
        assertThat(failures).as("seed " + SEED + " (-Dmtlsproxy.test.seed=" + SEED + " runs this mix again)")
                .isEmpty();
        // A generator that stopped producing any of the outcomes would prove nothing about it.
        assertThat(statuses).as("expected statuses").containsKeys(200, 400, 403, 404, 405, 421);
        assertThat(statuses.get(200)).as("forwarded requests of " + statuses)
                .isGreaterThan(POLICIES * REQUESTS_PER_POLICY / 10);
    }

    /** Sends the call and compares with the verdict; null when they agree, else what differs. */
    private String run(Call call, Verdict expected) throws Exception {
        String key = call.client().name() + " " + call.sni();
        MtlsClient client = connections.get(key);
        if (client == null) {
            SSLContext context = contexts.get(key);
            if (context == null) {
                context = MtlsClient.clientContext(fixture.pki().root(), certificates.get(call.client().name()));
                contexts.put(key, context);
            }
            client = MtlsClient.connect(fixture.proxy().address(), context, null, call.sni());
            connections.put(key, client);
        }
        MtlsClient.Response response;
        try {
            client.send(call.requestHead());
            response = call.method().equals("HEAD") ? client.readHeadResponse() : client.readResponse();
        } catch (IOException e) {
            connections.remove(key).close();
            return "no response: " + e;
        }
        if ("close".equalsIgnoreCase(response.header("connection"))) {
            connections.remove(key).close();
        }
        boolean fromBackend = response.status() == 200;
        TestBackend.Recorded received = fromBackend ? fixture.backend().nextRequest(5, TimeUnit.SECONDS) : null;
        if (response.status() != expected.status()) {
            return "got " + response.status() + ", the README says " + expected.status()
                    + (received != null ? "; the backend received " + received.uri() : "");
        }
        if (!fromBackend) {
            return null;
        }
        if (received == null || !call.tag().equals(received.headers().get("X-Case"))) {
            return "a 200 without the backend receiving this request (it received "
                    + (received == null ? "nothing" : received.headers().get("X-Case")) + ")";
        }
        if (!received.uri().equals(expected.target())) {
            return "the backend received " + received.uri() + ", the README says " + expected.target();
        }
        if (!Objects.equals(received.headers().get("Host"), expected.host())) {
            return "the backend received Host " + received.headers().get("Host") + ", the README says "
                    + expected.host();
        }
        if (!received.method().equals(call.method())) {
            return "the backend received method " + received.method();
        }
        return null;
    }

    private static RouteConfig routeConfig(GenRoute r) {
        List<String> allow = r.shorthand() ? r.rules().get(0).identities() : List.of();
        List<RuleConfig> rules = r.shorthand() ? List.of() : r.rules().stream().map(rule -> ruleConfig(rule)).toList();
        return new RouteConfig(r.name(), r.host(), r.prefix(), r.methods(), "app", allow, rules,
                r.dryRun() ? PolicyMode.DRY_RUN : PolicyMode.ENFORCE, null);
    }

    private static RuleConfig ruleConfig(GenRule rule) {
        return new RuleConfig(rule.deny() ? null : rule.identities(), rule.deny() ? rule.identities() : null,
                rule.methods(), rule.paths(), rule.expires());
    }
}
