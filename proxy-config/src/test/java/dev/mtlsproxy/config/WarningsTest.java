package dev.mtlsproxy.config;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.pkitesting.X509Bundle;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class WarningsTest {

    @TempDir
    Path dir;

    @Test
    void aRouteThatAllowsNobodyAndAnIdentityNoRouteUsesAreWarnedAbout() throws Exception {
        ConfigFixture fixture = new ConfigFixture(dir);
        String yaml = fixture.with("    backend: inventory\n    allow: [ops]\n", "    backend: inventory\n")
                .replace("allow: [orders, ops]", "allow: [ops]")
                .replace("identities:\n", "identities:\n  idle: { subjectCn: nobody }\n");

        ProxyConfig config = fixture.load(yaml);

        assertThat(ConfigLoader.warnings(config, java.time.Instant.now())).containsExactly(
                "identities.idle: not allowed on any route",
                "identities.orders: not allowed on any route",
                "routes[1].allow: [] - route \"inventory\" denies every request");
    }

    /** [orders, orders] is often [orders, ops] mistyped: ops then goes unallowed without a word. */
    @Test
    void anIdentityNamedTwiceInOneListIsWarnedAbout() throws Exception {
        ConfigFixture fixture = new ConfigFixture(dir);
        String yaml = fixture.with("allow: [orders, ops]", "allow: [orders, ops, orders, orders]")
                .replace("    allow: [ops]\n", """
                    rules:
                      - { deny: [orders, orders], paths: [/inventory/admin] }
                      - { allow: [ops, ops] }
                """);

        assertThat(ConfigLoader.warnings(fixture.load(yaml), java.time.Instant.now())).containsExactly(
                "routes[0].allow[2]: \"orders\" - also routes[0].allow[0], so this one changes nothing"
                        + " (was another identity meant?)",
                "routes[0].allow[3]: \"orders\" - also routes[0].allow[0], so this one changes nothing"
                        + " (was another identity meant?)",
                "routes[1].rules[0].deny[1]: \"orders\" - also routes[1].rules[0].deny[0], so this one changes"
                        + " nothing (was another identity meant?)",
                "routes[1].rules[1].allow[1]: \"ops\" - also routes[1].rules[1].allow[0], so this one changes"
                        + " nothing (was another identity meant?)");
    }

    @Test
    void aTlsBackendWhoseNameIsNotVerifiedAndNotPinnedIsWarnedAbout() throws Exception {
        ConfigFixture fixture = new ConfigFixture(dir);
        TestPki.write(dir.resolve("certs/backend-ca.pem"), TestPki.ca("backend-ca").getCertificatePEM());
        String tls = "    url: https://10.0.0.1:9443\n    tls: { serverCAs: [certs/backend-ca.pem], verifyHostname: false%s }\n";
        String yaml = fixture.with("    url: http://localhost:9001\n", tls.formatted(""));

        assertThat(ConfigLoader.warnings(fixture.load(yaml), java.time.Instant.now())).containsExactly("backends.inventory.tls.verifyHostname:"
                + " false - any certificate from serverCAs is accepted as backend \"inventory\"; set spiffeId to pin it");
        assertThat(ConfigLoader.warnings(fixture.load(fixture.with("    url: http://localhost:9001\n",
                tls.formatted(", spiffeId: \"spiffe://demo.local/inventory\""))), java.time.Instant.now())).isEmpty();
    }

    @Test
    void aCrlFileOfAnotherCaLeavesTheAnchorsCaWithoutOneAndEveryChainThroughItRefused() throws Exception {
        ConfigFixture fixture = new ConfigFixture(dir);
        X509Bundle clientsCa = TestPki.ca("clients-ca");
        TestPki.write(dir.resolve("certs/clients-ca.pem"), clientsCa.getCertificatePEM());
        TestPki.write(dir.resolve("certs/clients.crl"), TestPki.crl(clientsCa));
        TestPki.write(dir.resolve("certs/other.crl"), TestPki.crl(TestPki.ca("other-ca")));
        // the name of the anchor's CA, another key: a CA re-keyed, or one of the same name elsewhere
        TestPki.write(dir.resolve("certs/rekeyed.crl"), TestPki.crl(TestPki.ca("clients-ca")));
        String anchor = "clients: { caBundle: certs/clients-ca.pem, crls: [%s]%s }";

        assertThat(warnings(fixture, anchor.formatted("certs/other.crl, certs/rekeyed.crl", ""))).containsExactly(
                "trustAnchors.clients.crls: none from CN=clients-ca (caBundle certificate 1), so every chain through"
                        + " it is refused (revocation fails closed); the CRLs are from CN=other-ca, CN=clients-ca"
                        + " with another key");
        assertThat(warnings(fixture, anchor.formatted("certs/other.crl", ", crlScope: leaf"))).containsExactly(
                "trustAnchors.clients.crls: none from CN=clients-ca (caBundle certificate 1), so a client"
                        + " certificate it issued is refused (revocation fails closed); the CRLs are from CN=other-ca");
        assertThat(warnings(fixture, anchor.formatted("certs/other.crl, certs/clients.crl", ""))).isEmpty();
        // a whole chain pasted: clients' chains end at the intermediate, whose CRL is all revocation reads
        X509Bundle intermediate = TestPki.nameConstrainedIntermediate(clientsCa, "issuing-ca", "example.org");
        TestPki.write(dir.resolve("certs/chain.pem"), intermediate.getCertificatePEM() + clientsCa.getCertificatePEM());
        TestPki.write(dir.resolve("certs/issuing.crl"), TestPki.crl(intermediate));
        assertThat(warnings(fixture, "clients: { caBundle: certs/chain.pem, crls: [certs/issuing.crl] }")).isEmpty();
    }

    @Test
    void anExpiredServedCertificateIsWarnedAboutAsEveryClientRefusesIt() throws Exception {
        ConfigFixture fixture = new ConfigFixture(dir);
        java.security.cert.X509Certificate served = Pem.readCertificates(dir.resolve("certs/server.pem")).get(0);
        ProxyConfig config = fixture.load(ConfigFixture.VALID);
        java.time.Instant notAfter = served.getNotAfter().toInstant();

        assertThat(ConfigLoader.warnings(config, notAfter.plusSeconds(1))).containsExactly(
                "listeners[0].tls.certificate: " + fixture.abs("certs/server.pem") + " - expired at " + notAfter
                        + ", so every client refuses the handshake");
        assertThat(ConfigLoader.warnings(config, notAfter)).isEmpty();
    }

    @Test
    void aServedCertificateNotValidYetIsWarnedAboutAsEveryClientRefusesIt() throws Exception {
        ConfigFixture fixture = new ConfigFixture(dir);
        java.time.Instant notBefore = java.time.Instant.now().plus(java.time.Duration.ofDays(1))
                .truncatedTo(java.time.temporal.ChronoUnit.SECONDS);
        X509Bundle early = new io.netty.pkitesting.CertificateBuilder().subject("CN=localhost")
                .addSanDnsName("localhost").notBefore(notBefore).notAfter(notBefore.plus(java.time.Duration.ofDays(30)))
                .ecp256().buildIssuedBy(TestPki.ca("server-ca"));
        TestPki.write(dir.resolve("certs/server.pem"), early.getCertificatePEM());
        TestPki.write(dir.resolve("certs/server.key"), early.getPrivateKeyPEM());
        ProxyConfig config = fixture.load(ConfigFixture.VALID);

        assertThat(ConfigLoader.warnings(config, java.time.Instant.now())).containsExactly(
                "listeners[0].tls.certificate: " + fixture.abs("certs/server.pem") + " - not valid until " + notBefore
                        + ", so every client refuses the handshake");
        assertThat(ConfigLoader.warnings(config, notBefore)).isEmpty();
    }

    /** A backend that asks for the proxy's certificate refuses an expired one; it loads, as a listener's does. */
    @Test
    void anExpiredCertificateOfTheProxyToABackendIsWarnedAbout() throws Exception {
        ConfigFixture fixture = new ConfigFixture(dir);
        X509Bundle backendCa = TestPki.ca("backend-ca");
        java.time.Instant notAfter = java.time.Instant.now().minus(java.time.Duration.ofDays(1))
                .truncatedTo(java.time.temporal.ChronoUnit.SECONDS);
        X509Bundle expired = new io.netty.pkitesting.CertificateBuilder().subject("CN=proxy")
                .notBefore(notAfter.minus(java.time.Duration.ofDays(30))).notAfter(notAfter).ecp256()
                .buildIssuedBy(TestPki.ca("proxy-client-ca"));
        TestPki.write(dir.resolve("certs/backend-ca.pem"), backendCa.getCertificatePEM());
        TestPki.write(dir.resolve("certs/proxy.pem"), expired.getCertificatePEM());
        TestPki.write(dir.resolve("certs/proxy.key"), expired.getPrivateKeyPEM());
        ProxyConfig config = fixture.load(fixture.with("url: http://127.0.0.1:9000", """
                url: https://orders.internal:9443
                    tls: { serverCAs: [certs/backend-ca.pem], certificate: certs/proxy.pem, privateKey: certs/proxy.key }\
                """));

        assertThat(ConfigLoader.warnings(config, java.time.Instant.now())).containsExactly(
                "backends.orders.tls.certificate: " + fixture.abs("certs/proxy.pem") + " - expired at " + notAfter
                        + ", so a backend that asks for it refuses the handshake");
        assertThat(ConfigLoader.warnings(config, notAfter)).isEmpty();
        java.time.Instant notBefore = expired.getCertificate().getNotBefore().toInstant();
        // The listener's certificate, minted today, is not valid a month ago either: only the backend's is looked at.
        assertThat(ConfigLoader.warnings(config, notBefore.minusSeconds(1))).contains(
                "backends.orders.tls.certificate: " + fixture.abs("certs/proxy.pem") + " - not valid until "
                        + notBefore + ", so a backend that asks for it refuses the handshake");
    }

    private static List<String> warnings(ConfigFixture fixture, String anchor) throws ConfigException {
        return ConfigLoader.warnings(fixture.load(fixture.with("clients: { caBundle: certs/ca.pem }", anchor)),
                java.time.Instant.now());
    }

    @Test
    void aConfigUsingEverythingHasNoWarnings() throws Exception {
        ConfigFixture fixture = new ConfigFixture(dir);

        assertThat(ConfigLoader.warnings(fixture.load(ConfigFixture.VALID), java.time.Instant.now())).isEmpty();
    }
}
