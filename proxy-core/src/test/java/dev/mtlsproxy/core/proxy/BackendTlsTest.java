package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.BackendTlsConfig;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import io.netty.pkitesting.X509Bundle;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import java.util.concurrent.TimeUnit;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The proxy as a TLS client of its backends, against real TLS backends on loopback: it verifies them as strictly as
 * it verifies its own clients, says why when it refuses one, and authenticates itself when a backend asks.
 */
class BackendTlsTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final String PROXY_ID = "spiffe://prod.test/mtls-proxy";
    static final String BACKEND_ID = "spiffe://backend.test/ns/shop/sa/orders-api";

    @TempDir
    static Path dir;
    static TestPki pki;
    static final List<AutoCloseable> started = new ArrayList<>();
    static TestBackend good;
    static TestBackend mtls;
    static TestBackend hangsUpOnce;
    static TestBackend hangsUpAlways;
    static RunningProxy proxy;

    @RegisterExtension
    static final LogCapture log = LogCapture.of(ForwardingHandler.class);

    @BeforeAll
    static void start() throws Exception {
        pki = TestPki.create(dir);
        good = backend(TestBackend.tlsContext(pki.backendServer("good", b -> b
                .addSanDnsName("localhost").addSanIpAddress("127.0.0.1")), null));
        TestBackend wrongCa = backend(TestBackend.tlsContext(pki.backendServerOfAnotherRoot("rogue"), null));
        TestPki.Issued elsewhere = pki.backendServer("elsewhere", b -> b.addSanDnsName("orders.backend.test"));
        TestBackend mismatch = backend(TestBackend.tlsContext(elsewhere, null));
        TestBackend spiffe = backend(TestBackend.tlsContext(pki.backendServer("svid", b -> b
                .addSanUriName(BACKEND_ID)), null));
        TestBackend spiffeAndHttpsUri = backend(TestBackend.tlsContext(pki.backendServer("svid-two-uris", b -> b
                .addSanUriName(BACKEND_ID).addSanUriName("https://backend.test/orders-api")), null));
        TestBackend spiffeCa = backend(TestBackend.tlsContext(pki.backendServer("svid-ca", b -> b
                .addSanUriName(BACKEND_ID).setIsCertificateAuthority(true)), null));
        mtls = backend(TestBackend.tlsContext(pki.backendServer("mtls", b -> b.addSanIpAddress("127.0.0.1")),
                pki.root()));
        Instant now = Instant.now();
        X509Bundle expiredCa = TestPki.newRoot("expired backend CA", b -> b
                .notBefore(now.minus(Duration.ofDays(30))).notAfter(now.minus(Duration.ofDays(1))));
        X509Bundle noIntermediatesCa = TestPki.newRoot("backend CA allowing no intermediates", b -> b
                .setPathLengthConstraint(OptionalInt.of(0)));
        X509Bundle partnerCa = TestPki.dnsConstrainedRoot("partner backend CA", "partner.test");
        TestBackend expired = backend(TestBackend.tlsContext(pki.backendServer("expired", b -> b
                .addSanIpAddress("127.0.0.1")
                .notBefore(now.minus(Duration.ofDays(2))).notAfter(now.minus(Duration.ofDays(1)))), null));
        TestBackend plain = backend(null);
        // Named only in its subject CN, as certificates were before SANs: reachable by its IP SAN, not by the CN.
        TestBackend cnOnly = backend(TestBackend.tlsContext(pki.backendServer("cn-only", b -> b
                .subject("CN=localhost,O=mtls-proxy test backends").addSanIpAddress("127.0.0.1")), null));
        // The builder's addSanDnsName refuses a wildcard; the SAN extension is written as is.
        TestBackend wildcard = backend(TestBackend.tlsContext(pki.backendServer("wildcard", b -> b
                .addExtensionOctetString(Extension.subjectAlternativeName.getId(), false,
                        new GeneralNames(new GeneralName(GeneralName.dNSName, "*.backend.test")).getEncoded())),
                null));
        // Wildcards the JDK's HTTPS rules match and RFC 9525 does not: within a label, and past the left-most one.
        TestBackend oddWildcards = backend(TestBackend.tlsContext(pki.backendServer("odd-wildcards", b -> b
                .addExtensionOctetString(Extension.subjectAlternativeName.getId(), false,
                        new GeneralNames(new GeneralName[] {new GeneralName(GeneralName.dNSName, "o*.backend.test"),
                            new GeneralName(GeneralName.dNSName, "orders.*.test")}).getEncoded())),
                null));
        BackendTlsConfig trustExpiredCa = BackendTlsConfig.trusting(pki.writeCa("expired-ca.pem", expiredCa));
        TestBackend underExpiredCa = backend(TestBackend.tlsContext(pki.backendServerIssuedBy(expiredCa,
                "under-expired-ca", b -> b.addSanIpAddress("127.0.0.1")), null));
        BackendTlsConfig trustNoIntermediatesCa = BackendTlsConfig.trusting(
                pki.writeCa("no-intermediates-ca.pem", noIntermediatesCa));
        TestBackend directlyUnderNoIntermediatesCa = backend(TestBackend.tlsContext(pki.backendServerIssuedBy(
                noIntermediatesCa, "direct", b -> b.addSanIpAddress("127.0.0.1")), null));
        TestBackend viaIntermediate = backend(TestBackend.tlsContext(pki.backendServerIssuedBy(
                TestPki.intermediate(noIntermediatesCa, "intermediate below a pathLen 0 CA"), "via-intermediate",
                b -> b.addSanIpAddress("127.0.0.1")), null));
        BackendTlsConfig trustPartnerCa = BackendTlsConfig.trusting(pki.writeCa("partner-ca.pem", partnerCa));
        TestBackend partnerHost = backend(TestBackend.tlsContext(pki.backendServerIssuedBy(partnerCa,
                "partner-host", b -> b.addSanDnsName("api.partner.test")), null));
        TestBackend partnerForOurHost = backend(TestBackend.tlsContext(pki.backendServerIssuedBy(partnerCa,
                "partner-for-our-host", b -> b.addSanDnsName("orders.backend.test")), null));
        // Named for the partner's host only in the CN, with an IP or URI SAN but no DNS SAN, under a DNS-constrained
        // CA: the JDK's name-constraint check counts such a CN as a DNS name, and must not make it one.
        TestBackend partnerCnOnly = backend(TestBackend.tlsContext(pki.backendServerIssuedBy(partnerCa,
                "partner-cn-only", b -> b.subject("CN=api.partner.test,O=partner").addSanIpAddress("127.0.0.1")),
                null));
        X509Bundle delegatedCa = TestPki.dnsConstrainedIntermediate(pki.root(), "delegated backend CA",
                "partner.test");
        TestBackend delegatedHost = backend(TestBackend.tlsContext(pki.backendServerIssuedBy(delegatedCa,
                "delegated-host", b -> b.addSanDnsName("api.partner.test")), null));
        TestBackend delegatedCnOnly = backend(TestBackend.tlsContext(pki.backendServerIssuedBy(delegatedCa,
                "delegated-cn-only", b -> b.subject("CN=api.partner.test,O=partner").addSanUriName(BACKEND_ID)),
                null));
        // Close a connection as soon as its TLS handshake is done: the first one only, or every one.
        hangsUpOnce = backend(TestBackend.tlsContext(pki.backendServer("hangs-up-once", b -> b
                .addSanIpAddress("127.0.0.1")), null));
        hangsUpOnce.closeNewConnections(1);
        hangsUpAlways = backend(TestBackend.tlsContext(pki.backendServer("hangs-up-always", b -> b
                .addSanIpAddress("127.0.0.1")), null));
        hangsUpAlways.closeNewConnections(Integer.MAX_VALUE);
        ServerSocket silent = new ServerSocket(0, 50, java.net.InetAddress.getLoopbackAddress());
        started.add(silent);

        BackendTlsConfig trustRoot = BackendTlsConfig.trusting(pki.caPem());
        TestPki.Issued proxyCertificate = pki.proxyClient(PROXY_ID);
        proxy = RunningProxy.builder(pki)
                .identity("orders", ORDERS)
                .backend("good", tls(good.url(), trustRoot))
                .backend("wrong-ca", tls(wrongCa.url(), trustRoot))
                .backend("mismatch", tls(mismatch.url(), trustRoot))
                .backend("sni", tls(mismatch.url(), trustRoot.withServerName("orders.backend.test")))
                .backend("spiffe-ok", tls(spiffe.url(), trustRoot.withSpiffeId(BACKEND_ID, false)))
                .backend("spiffe-bad", tls(spiffe.url(), trustRoot.withSpiffeId(
                        "spiffe://backend.test/ns/shop/sa/billing", false)))
                .backend("spiffe-two-uris", tls(spiffeAndHttpsUri.url(), trustRoot.withSpiffeId(BACKEND_ID, false)))
                .backend("spiffe-ca", tls(spiffeCa.url(), trustRoot.withSpiffeId(BACKEND_ID, false)))
                .backend("mtls", tls(mtls.url(), trustRoot.withClientCertificate(proxyCertificate.certificate(),
                        proxyCertificate.privateKey())))
                .backend("mtls-no-cert", tls(mtls.url(), trustRoot))
                .backend("expired", tls(expired.url(), trustRoot))
                .backend("plain", tls(plain.url().replace("http:", "https:"), trustRoot))
                .backend("silent", tls("https://127.0.0.1:" + silent.getLocalPort(), trustRoot)
                        .withTimeouts(Duration.ofMillis(300), null, null))
                .backend("silent-sub-ms", tls("https://127.0.0.1:" + silent.getLocalPort(), trustRoot)
                        .withTimeouts(Duration.ofNanos(500_000), null, null))
                .backend("cn-only", tls(cnOnly.url(), trustRoot.withServerName("localhost")))
                .backend("ip-san", tls(cnOnly.url(), trustRoot))
                .backend("wildcard", tls(wildcard.url(), trustRoot.withServerName("orders.backend.test")))
                .backend("wildcard-two-labels", tls(wildcard.url(),
                        trustRoot.withServerName("eu.orders.backend.test")))
                .backend("odd-wildcards", tls(oddWildcards.url(), trustRoot.withServerName("orders.backend.test")))
                .backend("lapsed-ca", tls(underExpiredCa.url(), trustExpiredCa))
                .backend("pathlen-direct", tls(directlyUnderNoIntermediatesCa.url(), trustNoIntermediatesCa))
                .backend("pathlen-intermediate", tls(viaIntermediate.url(), trustNoIntermediatesCa))
                .backend("partner-own-host", tls(partnerHost.url(), trustPartnerCa.withServerName("api.partner.test")))
                .backend("partner-our-host", tls(partnerForOurHost.url(),
                        trustPartnerCa.withServerName("orders.backend.test")))
                .backend("partner-cn-only", tls(partnerCnOnly.url(), trustPartnerCa.withServerName("api.partner.test")))
                .backend("delegated-host", tls(delegatedHost.url(), trustRoot.withServerName("api.partner.test")))
                .backend("delegated-cn-only", tls(delegatedCnOnly.url(), trustRoot.withServerName("api.partner.test")))
                .backend("hangs-up-once", tls(hangsUpOnce.url(), trustRoot))
                .backend("hangs-up-always", tls(hangsUpAlways.url(), trustRoot))
                .route("good", "/good", "good", "orders")
                .route("hangs-up-once", "/hangs-up-once", "hangs-up-once", "orders")
                .route("hangs-up-always", "/hangs-up-always", "hangs-up-always", "orders")
                .route("wrong-ca", "/wrong-ca", "wrong-ca", "orders")
                .route("mismatch", "/mismatch", "mismatch", "orders")
                .route("sni", "/sni", "sni", "orders")
                .route("spiffe-ok", "/spiffe-ok", "spiffe-ok", "orders")
                .route("spiffe-bad", "/spiffe-bad", "spiffe-bad", "orders")
                .route("spiffe-two-uris", "/spiffe-two-uris", "spiffe-two-uris", "orders")
                .route("spiffe-ca", "/spiffe-ca", "spiffe-ca", "orders")
                .route("mtls", "/mtls", "mtls", "orders")
                .route("mtls-no-cert", "/mtls-no-cert", "mtls-no-cert", "orders")
                .route("expired", "/expired", "expired", "orders")
                .route("plain", "/plain", "plain", "orders")
                .route("silent", "/silent", "silent", "orders")
                .route("silent-sub-ms", "/sub-ms", "silent-sub-ms", "orders")
                .route("cn-only", "/cn-only", "cn-only", "orders")
                .route("ip-san", "/ip-san", "ip-san", "orders")
                .route("wildcard", "/wildcard", "wildcard", "orders")
                .route("wildcard-two-labels", "/wildcard-two-labels", "wildcard-two-labels", "orders")
                .route("odd-wildcards", "/odd-wildcards", "odd-wildcards", "orders")
                .route("lapsed-ca", "/lapsed-ca", "lapsed-ca", "orders")
                .route("pathlen-direct", "/pathlen-direct", "pathlen-direct", "orders")
                .route("pathlen-intermediate", "/pathlen-intermediate", "pathlen-intermediate", "orders")
                .route("partner-own-host", "/partner-own-host", "partner-own-host", "orders")
                .route("partner-our-host", "/partner-our-host", "partner-our-host", "orders")
                .route("partner-cn-only", "/partner-cn-only", "partner-cn-only", "orders")
                .route("delegated-host", "/delegated-host", "delegated-host", "orders")
                .route("delegated-cn-only", "/delegated-cn-only", "delegated-cn-only", "orders")
                .start();
    }

    private static TestBackend backend(io.netty.handler.ssl.SslContext tls) throws InterruptedException {
        TestBackend backend = TestBackend.start(tls);
        started.add(backend);
        return backend;
    }

    private static BackendConfig tls(String url, BackendTlsConfig tls) {
        return BackendConfig.of(List.of(URI.create(url)), tls);
    }

    @AfterAll
    static void stop() throws Exception {
        proxy.close();
        for (AutoCloseable c : started) {
            c.close();
        }
    }

    private static MtlsClient.Response get(String path) throws Exception {
        try (MtlsClient client = MtlsClient.connect(proxy.address(), pki.root(), pki.client(ORDERS))) {
            return client.get(path);
        }
    }

    @Test
    void aBackendWithACertificateFromTheConfiguredCaIsReachedOverTls() throws Exception {
        try (MtlsClient client = MtlsClient.connect(proxy.address(), pki.root(), pki.client(ORDERS))) {
            assertThat(client.get("/good/1").bodyText()).isEqualTo("hello from backend\n");
            int connections = good.connectionsAccepted();
            for (int i = 0; i < 5; i++) {
                assertThat(client.get("/good/" + i).status()).isEqualTo(200);
            }
            assertThat(good.connectionsAccepted()).as("keep-alive TLS connections are pooled and reused")
                    .isEqualTo(connections);
        }
        TestBackend.Recorded seen = good.nextRequest(5, TimeUnit.SECONDS);
        assertThat(seen.uri()).isEqualTo("/good/1");
        assertThat(seen.headers().get("x-forwarded-client-cert")).endsWith(";URI=" + ORDERS);
        assertThat(seen.clientCertificate()).as("no client certificate is configured for this backend").isNull();
    }

    @Test
    void aGetOnANewConnectionTheBackendClosedRightAfterTheHandshakeIsSentOnceMoreOnAnother() throws Exception {
        assertThat(get("/hangs-up-once/1").bodyText()).isEqualTo("hello from backend\n");

        assertThat(hangsUpOnce.nextRequest(5, TimeUnit.SECONDS).uri()).isEqualTo("/hangs-up-once/1");
        assertThat(hangsUpOnce.connectionsAccepted()).isEqualTo(2);
        assertThat(proxy.count("mtls.proxy.backend.retries", "backend", "hangs-up-once")).isEqualTo(1);
        assertThat(proxy.count("mtls.proxy.backend.requests", "backend", "hangs-up-once", "result", "ok"))
                .isEqualTo(1);
        assertThat(proxy.count("mtls.proxy.backend.connect.errors", "backend", "hangs-up-once", "reason", "tls"))
                .as("the handshake succeeded").isZero();
    }

    @Test
    void aTlsBackendThatClosesEveryNewConnectionCostsOneMoreConnectionThenA502() throws Exception {
        assertThat(get("/hangs-up-always/1").status()).isEqualTo(502);

        assertThat(log.await("backend=hangs-up-always", "status=502"))
                .contains("cause=\"backend closed the connection\"");
        await().during(Duration.ofMillis(300)).atMost(Duration.ofSeconds(2))
                .until(() -> hangsUpAlways.connectionsAccepted() == 2);
        assertThat(proxy.count("mtls.proxy.backend.retries", "backend", "hangs-up-always")).isEqualTo(1);
        assertThat(proxy.count("mtls.proxy.backend.requests", "backend", "hangs-up-always", "result", "failed"))
                .isEqualTo(1);
    }

    @Test
    void aBackendCertificateFromAnotherCaIsRefusedWith502AndTheReasonLogged() throws Exception {
        assertThat(get("/wrong-ca").status()).isEqualTo(502);

        assertThat(log.await("backend=wrong-ca", "status=502"))
                .contains("cause=\"backend certificate not trusted\"");
        assertThat(proxy.count("mtls.proxy.backend.connect.errors", "backend", "wrong-ca", "reason", "tls"))
                .isEqualTo(1);
    }

    @Test
    void aCertificateForAnotherHostIsRefused() throws Exception {
        assertThat(get("/mismatch").status()).isEqualTo(502);

        assertThat(log.await("backend=mismatch", "status=502"))
                .contains("cause=\"hostname mismatch: the certificate is not for 127.0.0.1\"");
    }

    @Test
    void serverNameSetsSniAndTheNameVerified() throws Exception {
        assertThat(get("/sni").status()).isEqualTo(200);
    }

    @Test
    void aHostNameOnlyInTheSubjectCnIsNotAMatch() throws Exception {
        // The JDK's checker falls back to the CN when a certificate has no DNS SAN; Go and browsers do not.
        assertThat(get("/cn-only").status()).isEqualTo(502);

        assertThat(log.await("backend=cn-only", "status=502"))
                .contains("cause=\"hostname mismatch: the certificate is not for localhost\"");
    }

    @Test
    void anIpAddressIsStillMatchedAgainstTheIpSans() throws Exception {
        assertThat(get("/ip-san").status()).isEqualTo(200);
    }

    @Test
    void aWildcardSanCoversExactlyOneLabel() throws Exception {
        assertThat(get("/wildcard").status()).isEqualTo(200);
        assertThat(get("/wildcard-two-labels").status()).isEqualTo(502);

        assertThat(log.await("backend=wildcard-two-labels", "status=502"))
                .contains("cause=\"hostname mismatch: the certificate is not for eu.orders.backend.test\"");
    }

    /**
     * RFC 9525 6.3, as Go, browsers and Envoy match: a wildcard is the whole left-most label. The JDK's HTTPS rules
     * also take {@code o*.backend.test} and {@code orders.*.test} for {@code orders.backend.test}.
     */
    @Test
    void aWildcardWithinALabelOrPastTheLeftMostOneCoversNothing() throws Exception {
        assertThat(get("/odd-wildcards").status()).isEqualTo(502);

        assertThat(log.await("backend=odd-wildcards", "status=502"))
                .contains("cause=\"hostname mismatch: the certificate is not for orders.backend.test\"");
    }

    // ---- the trusted CA's own limits, as for client CAs ---------------------------------------------------------

    @Test
    void anExpiredServerCaIsRefusedEvenForACurrentCertificate() throws Exception {
        assertThat(get("/lapsed-ca").status()).isEqualTo(502);

        assertThat(log.await("backend=lapsed-ca", "status=502"))
                .contains("cause=\"backend CA expired: CN=expired backend CA,O=mtls-proxy tests\"");
    }

    @Test
    void aServerCaAllowingNoIntermediatesRefusesAChainThroughOne() throws Exception {
        assertThat(get("/pathlen-direct").status()).isEqualTo(200);
        assertThat(get("/pathlen-intermediate").status()).isEqualTo(502);

        assertThat(log.await("backend=pathlen-intermediate", "status=502"))
                .contains("cause=\"backend certificate not trusted: more intermediates than the path length of"
                        + " CN=backend CA allowing no intermediates,O=mtls-proxy tests allows\"");
    }

    @Test
    void aPartnerCaConstrainedToItsDomainCannotVouchForOurHosts() throws Exception {
        assertThat(get("/partner-own-host").status()).isEqualTo(200);
        assertThat(get("/partner-our-host").status()).isEqualTo(502);

        // BouncyCastle, which minted this CA, encodes its name with O first.
        assertThat(log.await("backend=partner-our-host", "status=502"))
                .contains("cause=\"backend certificate not trusted: a name outside the name constraints of"
                        + " O=mtls-proxy tests,CN=partner backend CA\"");
    }

    @Test
    void underADnsConstrainedServerCaAHostNameOnlyInTheCnIsStillNotAMatch() throws Exception {
        // The JDK checks the CN of a certificate without DNS SANs against DNS constraints as if it were one; passing
        // that check does not make it a name the certificate is for.
        assertThat(get("/partner-cn-only").status()).isEqualTo(502);

        assertThat(log.await("backend=partner-cn-only", "status=502"))
                .contains("cause=\"hostname mismatch: the certificate is not for api.partner.test\"");
    }

    @Test
    void underADnsConstrainedIntermediateAHostNameOnlyInTheCnIsStillNotAMatch() throws Exception {
        assertThat(get("/delegated-host").status()).isEqualTo(200);
        assertThat(get("/delegated-cn-only").status()).isEqualTo(502);

        assertThat(log.await("backend=delegated-cn-only", "status=502"))
                .contains("cause=\"hostname mismatch: the certificate is not for api.partner.test\"");
    }

    @Test
    void aSpiffeBackendIsPinnedByItsId() throws Exception {
        assertThat(get("/spiffe-ok").status()).isEqualTo(200);
        assertThat(get("/spiffe-bad").status()).isEqualTo(502);

        assertThat(log.await("backend=spiffe-bad", "status=502")).contains("cause=\"SPIFFE ID mismatch: expected"
                + " spiffe://backend.test/ns/shop/sa/billing, the certificate has " + BACKEND_ID + "\"");
    }

    @Test
    void aBackendWhoseCertificateHasASecondUriIsNoSvidAndFailsItsSpiffePin() throws Exception {
        // X509-SVID 2: exactly one URI SAN, of any scheme; go-spiffe would refuse this backend too.
        assertThat(get("/spiffe-two-uris").status()).isEqualTo(502);

        assertThat(log.await("backend=spiffe-two-uris", "status=502")).contains("cause=\"SPIFFE ID mismatch: expected "
                + BACKEND_ID + ", the certificate has none (it has 2 URI SANs, an X509-SVID has exactly one)\"");
    }

    @Test
    void aBackendPresentingACaCertificateIsNoSvidAndFailsItsSpiffePin() throws Exception {
        assertThat(get("/spiffe-ca").status()).isEqualTo(502);

        assertThat(log.await("backend=spiffe-ca", "status=502")).contains("cause=\"SPIFFE ID mismatch: expected "
                + BACKEND_ID + ", the certificate has none (it is a CA, or has keyCertSign or cRLSign, so it is no"
                + " X509-SVID)\"");
    }

    @Test
    void aBackendRequiringAClientCertificateGetsTheProxysOne() throws Exception {
        assertThat(get("/mtls").status()).isEqualTo(200);

        assertThat(mtls.nextRequest(5, TimeUnit.SECONDS).clientCertificate())
                .isEqualTo("CN=mtls-proxy,O=mtls-proxy tests");
    }

    @Test
    void withoutAClientCertificateSuchABackendIsA502() throws Exception {
        assertThat(get("/mtls-no-cert").status()).isEqualTo(502);

        assertThat(log.await("backend=mtls-no-cert", "status=502")).contains("client certificate");
    }

    @Test
    void anExpiredBackendCertificateIsRefused() throws Exception {
        assertThat(get("/expired").status()).isEqualTo(502);

        assertThat(log.await("backend=expired", "status=502")).contains("cause=\"backend certificate expired\"");
    }

    @Test
    void aPlainHttpServerBehindAnHttpsEndpointIsRecognised() throws Exception {
        assertThat(get("/plain").status()).isEqualTo(502);

        assertThat(log.await("backend=plain", "status=502")).contains("cause=\"backend does not speak TLS\"");
    }

    @Test
    void aConnectTimeoutBelowAMillisecondIsStillATimeout() throws Exception {
        // 500us in whole milliseconds is 0, which Netty takes for no timeout at all: the request would hang.
        assertThat(get("/sub-ms").status()).isEqualTo(502);

        assertThat(proxy.count("mtls.proxy.backend.connect.errors", "backend", "silent-sub-ms", "reason", "timeout"))
                .isEqualTo(1);
    }

    @Test
    void aHandshakeThatNeverCompletesTimesOut() throws Exception {
        assertThat(get("/silent").status()).isEqualTo(502);

        assertThat(log.await("backend=silent", "status=502")).contains("cause=\"TLS handshake timeout\"");
        assertThat(proxy.count("mtls.proxy.backend.connect.errors", "backend", "silent", "reason", "timeout"))
                .isEqualTo(1);
    }
}
