package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.mtlsproxy.config.CertificateRequirements;
import dev.mtlsproxy.config.IdentityConfig;
import dev.mtlsproxy.config.PolicyMode;
import dev.mtlsproxy.config.RouteConfig;
import dev.mtlsproxy.config.RuleConfig;
import dev.mtlsproxy.core.log.AccessLogEntry;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.MtlsClient.Response;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestPki;
import io.netty.pkitesting.X509Bundle;
import java.net.URI;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.slf4j.LoggerFactory;

/**
 * The policy through the running proxy: clients with real certificates try to reach what they are not granted,
 * by path tricks, look-alike names, another CA's copy of a name, or a server name for another host. Every attempt
 * must be refused and nothing of it may reach the backend; the positive controls prove the same requests pass when
 * they should.
 */
class PolicyEnforcementEndToEndTest {

    static final String ORDERS = "spiffe://prod.test/orders";
    static final String OPS = "spiffe://prod.test/ops";
    static final String DOCS = "https://prod.test/docs";

    static final X509Bundle partnersCa = TestPki.newRoot("partners root CA");
    static final ListAppender<ILoggingEvent> audit = new ListAppender<>();

    @RegisterExtension
    static final ProxyFixture fixture = new ProxyFixture((pki, backend) -> RunningProxy.builder(pki)
            .trustAnchor("partners", pki.writeCa("partners.pem", partnersCa))
            .identity("orders", scoped().spiffeId(ORDERS).build())
            .identity("ops", scoped().spiffeId(OPS).build())
            .identity("orders-uri", scoped().uriSan(ORDERS).build())
            .identity("docs-uri", scoped().uriSan(DOCS).build())
            .identity("ns-a", scoped().spiffeIdPrefix("spiffe://prod.test/ns/a").build())
            .identity("svc", scoped().dnsSan("*.svc.test").build())
            .identity("short-lived", scoped().trustDomain("short.test")
                    .require(new CertificateRequirements(true, null, Duration.ofHours(1), null)).build())
            .identity("partner", IdentityConfig.builder().trustAnchor("partners")
                    .spiffeId("spiffe://partners.test/app").build())
            .backend("shop", backend.url())
            .route("public", "/public", "shop", "orders")
            .route("admin", "/admin", "shop", "ops")
            .route("api", "/api", "shop", "orders", "ns-a", "svc", "short-lived")
            .route("partner", "/partner", "shop", "partner")
            .route("by-uri", "/by-uri", "shop", "orders-uri", "docs-uri")
            .route(new RouteConfig("dry", null, "/dry", List.of(), "shop", List.of(),
                    List.of(RuleConfig.allow("ops")), PolicyMode.DRY_RUN, null))
            .route(new RouteConfig("reports", null, "/reports", List.of(), "shop", List.of(),
                    List.of(RuleConfig.deny("orders").withMethods("GET").withPaths("/reports/salaries"),
                            RuleConfig.allow("orders"),
                            RuleConfig.allow("ops").withMethods("GET")), PolicyMode.ENFORCE, null))
            .route(new RouteConfig("catalog", null, "/catalog", List.of("GET"), "shop", List.of("orders")))
            .route(new RouteConfig("a-host", "a.test", "/", List.of(), "shop", List.of("orders")))
            .route(new RouteConfig("b-host", "b.test", "/", List.of(), "shop", List.of("orders"))));

    @BeforeAll
    static void listenToAudit() {
        audit.start();
        ((Logger) LoggerFactory.getLogger("dev.mtlsproxy.audit")).addAppender(audit);
    }

    static IdentityConfig.Builder scoped() {
        return IdentityConfig.builder().trustAnchor(TestPki.ANCHOR);
    }

    @AfterAll
    static void stopListening() {
        ((Logger) LoggerFactory.getLogger("dev.mtlsproxy.audit")).detachAppender(audit);
    }

    @BeforeEach
    void drain() throws InterruptedException {
        while (fixture.backend().nextRequest(0, TimeUnit.MILLISECONDS) != null) {
            // requests of earlier tests
        }
        fixture.proxy().accessLog().clear();
        audit.list.clear();
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"/admin/../admin", "/%2e%2e/admin", "//admin", "/ADMIN", "/admin%2f", "/admin%2F",
            "/admin;x", "/public/..%2fadmin", "/public/%2e%2e/admin", "/public/..%5cadmin", "/admin%00", "/admin%0A",
            "/./admin", "/public/../admin", "/api/../admin", "http://localhost/admin", "*", "/apiary"})
    void pathTricksNeverReachAnotherRoute(String target) throws Exception {
        try (MtlsClient orders = fixture.connect(ORDERS)) {
            Response response = orders.send("GET " + target + " HTTP/1.1\r\nHost: localhost\r\n\r\n").readResponse();

            assertThat(response.status()).isIn(400, 403, 404);
        }
        assertThat(fixture.backend().nextRequest(200, TimeUnit.MILLISECONDS)).as("forwarded to the backend").isNull();
    }

    @Test
    void theBackendReceivesExactlyThePathThatWasChecked() throws Exception {
        try (MtlsClient ops = fixture.connect(OPS)) {
            assertThat(ops.get("/admin/./x/../users//7?q=1").status()).isEqualTo(200);
        }

        assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS).uri()).isEqualTo("/admin/users/7?q=1");
    }

    @Test
    void spiffePrefixGrantsItsSubtreeButNotASiblingThatSharesItsLetters() throws Exception {
        assertThat(status(fixture.pki().client("spiffe://prod.test/ns/a/sa/x"), "/api/1")).isEqualTo(200);
        assertThat(status(fixture.pki().client("spiffe://prod.test/ns/ab"), "/api/1")).isEqualTo(403);
        assertThat(status(fixture.pki().client("spiffe://prod.test/ns/a/../../ops/sa/admin"), "/api/1"))
                .as("dot segments are outside the SPIFFE ID syntax: no identity at all").isEqualTo(403);
    }

    @Test
    void dnsWildcardCoversOneLabelOnly() throws Exception {
        X509Bundle oneLabel = fixture.pki().client("spiffe://prod.test/dns-one",
                b -> b.addSanDnsName("orders.svc.test"));
        X509Bundle twoLabels = fixture.pki().client("spiffe://prod.test/dns-two",
                b -> b.addSanDnsName("a.orders.svc.test"));

        assertThat(status(oneLabel, "/api/1")).isEqualTo(200);
        assertThat(status(twoLabels, "/api/1")).isEqualTo(403);
    }

    @Test
    void aSecondTrustedCaCannotMintANameThatBelongsToTheFirst() throws Exception {
        X509Bundle forgedOrders = TestPki.issue(partnersCa, ORDERS, b -> b);
        X509Bundle realPartner = TestPki.issue(partnersCa, "spiffe://partners.test/app", b -> b);

        assertThat(status(forgedOrders, "/public/x")).isEqualTo(403);
        assertThat(status(realPartner, "/partner/x")).isEqualTo(200);
        assertThat(status(fixture.pki().client(ORDERS), "/public/x")).isEqualTo(200);
    }

    @Test
    void aCaCertificateCarryingAGrantedSpiffeIdIsNotThatWorkload() throws Exception {
        // Trusted, and presented with its key, but a CA: the SPIFFE spec (and go-spiffe) makes it no SVID, so it
        // gets none of the grants of the workload its URI names.
        X509Bundle caWithOrdersUri = fixture.pki().client(ORDERS, b -> b.setIsCertificateAuthority(true));

        assertThat(status(caWithOrdersUri, "/public/x")).isEqualTo(403);
        assertThat(status(fixture.pki().client(ORDERS), "/public/x")).isEqualTo(200);
    }

    @Test
    void aCaCertificatesSpiffeUriMatchesNoUriSanEitherWhileItsOtherUrisStillDo() throws Exception {
        // README: a signing certificate's spiffe URI is no identity, by whichever matcher it is named.
        X509Bundle caWithOrdersUri = fixture.pki().client(ORDERS, b -> b.setIsCertificateAuthority(true));
        X509Bundle caWithDocsUri = TestPki.issue(fixture.pki().root(), DOCS, b -> b.setIsCertificateAuthority(true));

        assertThat(status(caWithOrdersUri, "/by-uri/x")).isEqualTo(403);
        assertThat(status(caWithDocsUri, "/by-uri/x")).isEqualTo(200);
        assertThat(status(fixture.pki().client(ORDERS), "/by-uri/x")).isEqualTo(200);
    }

    @Test
    void aSecondUriOfAnySchemeMakesTheCertificateNoSvidButItsUrisStillMatchAndAreForwarded() throws Exception {
        // X509-SVID 2: an SVID has exactly one URI SAN; go-spiffe refuses this one, and so does spiffeId: here.
        X509Bundle ordersAndDocs = fixture.pki().client(ORDERS, b -> b.addSanUriName(URI.create(DOCS)));

        assertThat(status(ordersAndDocs, "/public/x")).isEqualTo(403);
        assertThat(status(ordersAndDocs, "/by-uri/x")).isEqualTo(200);

        assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS).headers().get("x-forwarded-client-cert"))
                .as("every URI as presented").endsWith(";URI=" + ORDERS + ";URI=" + DOCS);
        AccessLogEntry denied = fixture.proxy().accessLog().poll(5, TimeUnit.SECONDS);
        assertThat(denied.peer()).as("no SPIFFE ID, so named by its subject").isEqualTo("CN=orders,O=mtls-proxy tests");
    }

    @Test
    void certificateRequirementsRefuseALongLivedCertificate() throws Exception {
        X509Bundle twelveHours = fixture.pki().client("spiffe://short.test/job");
        X509Bundle thirtyMinutes = fixture.pki().client("spiffe://short.test/job",
                b -> b.notBefore(Instant.now().minus(Duration.ofMinutes(5)))
                        .notAfter(Instant.now().plus(Duration.ofMinutes(30))));

        assertThat(status(thirtyMinutes, "/api/1")).isEqualTo(200);
        assertThat(status(twelveHours, "/api/1")).isEqualTo(403);
        assertThat(auditLines()).anySatisfy(line -> {
            assertThat(line.get("reason").asText()).isEqualTo("certificate lifetime too long");
            assertThat(line.get("route").asText()).isEqualTo("api");
        });
    }

    @Test
    void aDenyIsAnAuditLineWithIdentityFingerprintRuleAndReason() throws Exception {
        X509Bundle opsCert = fixture.pki().client(OPS);

        assertThat(status(opsCert, "/public/x")).isEqualTo(403);

        JsonNode line = auditLines().get(0);
        assertThat(line.get("event").asText()).isEqualTo("denied");
        assertThat(line.get("identity").asText()).isEqualTo("ops");
        assertThat(line.get("fingerprint").asText()).hasSize(64);
        assertThat(line.get("trustAnchor").asText()).isEqualTo(TestPki.ANCHOR);
        assertThat(line.get("route").asText()).isEqualTo("public");
        assertThat(line.get("rule").asText()).isEqualTo("default-deny");
        assertThat(line.get("reason").asText()).isEqualTo("no rule matched");
        assertThat(line.get("path").asText()).isEqualTo("/public/x");
        assertThat(fixture.proxy().accessLog().poll(5, TimeUnit.SECONDS).identity())
                .as("the access log names whom it refused, as the audit line does").isEqualTo("ops");
    }

    @Test
    void aClientThatIsNoneOfTheIdentitiesIsAuditedWithANullIdentityAsInTheAccessLog() throws Exception {
        // "unknown" is the metrics label for such a client; in a log line it could be taken for an identity's name.
        assertThat(status(fixture.pki().client("spiffe://prod.test/stranger"), "/public/x")).isEqualTo(403);

        JsonNode line = auditLines().get(0);
        assertThat(line.get("peer").asText()).isEqualTo("spiffe://prod.test/stranger");
        assertThat(line.get("identity").isNull()).as("identity in %s", line).isTrue();
        assertThat(fixture.proxy().accessLog().poll(5, TimeUnit.SECONDS).identity()).isNull();
    }

    @Test
    void aDryRunRouteForwardsButLogsAndCountsTheDenyItWouldHaveMade() throws Exception {
        assertThat(status(fixture.pki().client(ORDERS), "/dry/x")).isEqualTo(200);

        assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS).uri()).isEqualTo("/dry/x");
        assertThat(fixture.proxy().count("mtls.proxy.authz.decisions", "route", "dry", "decision", "dry_run_deny"))
                .isEqualTo(1);
        AccessLogEntry entry = fixture.proxy().accessLog().poll(5, TimeUnit.SECONDS);
        assertThat(entry.decision()).isEqualTo("dry_run_deny");
        assertThat(auditLines()).singleElement()
                .satisfies(line -> assertThat(line.get("event").asText()).isEqualTo("dry_run_denied"));
    }

    @Test
    void headIsJudgedAsTheGetItIsSoADenyOnGetCannotBeWalkedPastWithHead() throws Exception {
        // Express, Spring, Go's ServeMux, Flask and Rails serve HEAD with the GET handler: it runs, and its status
        // and headers (a length, a file name, an ETag) reach the client. A deny on GET must cover it.
        try (MtlsClient orders = fixture.connect(ORDERS)) {
            assertThat(head(orders, "/reports/salaries").status()).isEqualTo(403);
            assertThat(fixture.backend().nextRequest(200, TimeUnit.MILLISECONDS)).as("forwarded").isNull();
            assertThat(audit.list).singleElement().satisfies(line -> assertThat(line.getFormattedMessage())
                    .contains("\"method\":\"HEAD\"", "\"reason\":\"denied by rule 1\""));

            assertThat(head(orders, "/reports/q3").status()).as("outside the deny").isEqualTo(200);
        }
        assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS).uri()).isEqualTo("/reports/q3");
    }

    @Test
    void aGrantOrARouteForGetServesHeadAsNginxsLimitExceptDoes() throws Exception {
        try (MtlsClient ops = fixture.connect(OPS)) {
            assertThat(head(ops, "/reports/q3").status()).as("allow with methods [GET]").isEqualTo(200);
            assertThat(ops.send("DELETE /reports/q3 HTTP/1.1\r\nHost: localhost\r\n\r\n").readResponse().status())
                    .isEqualTo(403);
        }
        try (MtlsClient orders = fixture.connect(ORDERS)) {
            assertThat(head(orders, "/catalog/7").status()).as("route with methods [GET]").isEqualTo(200);
            Response delete = orders.send("DELETE /catalog/7 HTTP/1.1\r\nHost: localhost\r\n\r\n").readResponse();
            assertThat(delete.status()).isEqualTo(405);
            assertThat(delete.header("allow")).isEqualTo("GET, HEAD");
        }
        assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS).method()).isEqualTo("HEAD");
        assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS).uri()).isEqualTo("/catalog/7");
        assertThat(fixture.backend().nextRequest(200, TimeUnit.MILLISECONDS)).isNull();
    }

    private static Response head(MtlsClient client, String path) throws Exception {
        return client.send("HEAD " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n").readHeadResponse();
    }

    @Test
    void aServerNameForOneHostAndAHostHeaderForAnotherIs421() throws Exception {
        try (MtlsClient client = MtlsClient.connect(fixture.proxy().address(), fixture.pki().root(),
                fixture.pki().client(ORDERS), null, "a.test")) {
            assertThat(client.send("GET / HTTP/1.1\r\nHost: b.test\r\n\r\n").readResponse().status())
                    .isEqualTo(421);
            assertThat(client.send("GET / HTTP/1.1\r\nHost: A.TEST.:8443\r\n\r\n").readResponse().status())
                    .isEqualTo(200);
        }
        // The host the policy judged, with the port as sent.
        assertThat(fixture.backend().nextRequest(5, TimeUnit.SECONDS).headers().get("host")).isEqualTo("a.test:8443");
        assertThat(fixture.backend().nextRequest(200, TimeUnit.MILLISECONDS)).isNull();
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"a.test..", "A.TEST..:8443", ".a.test", "a..test"})
    void aHostWithAnEmptyLabelIs400RatherThanJudgedByTheRoutesForAnyHost(String host) throws Exception {
        // No configured host is "a.test.", so the routes for any host would judge it (ops may GET /admin there),
        // while a backend that strips trailing dots serves it as a.test, whose route grants only orders.
        try (MtlsClient ops = fixture.connect(OPS)) {
            assertThat(ops.send("GET /admin HTTP/1.1\r\nHost: " + host + "\r\n\r\n").readResponse().status())
                    .isEqualTo(400);
        }
        try (MtlsClient ops = fixture.connect(OPS)) {
            assertThat(ops.send("GET /admin HTTP/1.1\r\nHost: a.test.\r\n\r\n").readResponse().status())
                    .as("a.test with its one trailing dot is a.test").isEqualTo(403);
        }
        assertThat(fixture.backend().nextRequest(200, TimeUnit.MILLISECONDS)).isNull();
    }

    private static int status(X509Bundle certificate, String path) throws Exception {
        try (MtlsClient client = fixture.connect(certificate)) {
            return client.get(path).status();
        }
    }

    private static List<JsonNode> auditLines() {
        ObjectMapper json = new ObjectMapper();
        return audit.list.stream().map(e -> {
            try {
                return json.readTree(e.getFormattedMessage());
            } catch (Exception ex) {
                throw new AssertionError("audit line is not JSON: " + e.getFormattedMessage(), ex);
            }
        }).toList();
    }
}
