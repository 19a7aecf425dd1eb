package dev.mtlsproxy.config;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.pkitesting.X509Bundle;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Date;
import java.util.List;
import org.bouncycastle.asn1.ASN1Boolean;
import org.bouncycastle.asn1.ASN1Encodable;
import org.bouncycastle.asn1.ASN1ObjectIdentifier;
import org.bouncycastle.asn1.DERNull;
import org.bouncycastle.asn1.DERSequence;
import org.bouncycastle.asn1.DERTaggedObject;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.CRLNumber;
import org.bouncycastle.asn1.x509.DistributionPointName;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.Extensions;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.IssuingDistributionPoint;
import org.bouncycastle.asn1.x509.ReasonFlags;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** Every message of the validation pass, exactly, each from a valid config broken in one way. */
class ValidationMessagesTest {

    @TempDir
    Path dir;

    /** What a served certificate with a NUL in its dNSName is told, after its file name. */
    static final String MALFORMED_NAME = " (expected: DNS, email and URI names of printable ASCII, DNS names of letters,"
            + " digits, '-', '_', '.' and '*') - certificate 1 (CN=nul-name.local) has a malformed dNSName";

    ConfigFixture fixture;

    @BeforeEach
    void setUp() {
        fixture = new ConfigFixture(dir);
    }

    @Nested
    class Listeners {

        @Test
        void theAdminListenerNeverSharesAPublicListenersAddress() {
            String listener = ConfigFixture.VALID.substring(ConfigFixture.VALID.indexOf("address: ") + 9,
                    ConfigFixture.VALID.indexOf('\n', ConfigFixture.VALID.indexOf("address: "))).trim();

            assertThat(fixture.problems(ConfigFixture.VALID + "admin:\n  address: " + listener + "\n"))
                    .containsExactly("admin.address: \"" + listener
                            + "\" (expected: an address no listener uses) - listeners[0] is there");
        }

        /** The proxy reads its own names for XFCC's By element: run failed with an unforeseen error after validate. */
        @Test
        void aServedCertificateWithANameGoRefusesIsRefused() {
            TestPki.writeMalformedNameCertificate(dir);

            assertThat(fixture.problems(fixture.with("certs/server.pem", "certs/nul-name.pem")
                    .replace("certs/server.key", "certs/nul-name.key"))).containsExactly(
                    "listeners[0].tls.certificate: " + fixture.abs("certs/nul-name.pem") + MALFORMED_NAME);
        }

        @Test
        void aServedChainClientsWouldRefuseForAWeakKeyOrSignatureIsRefused() throws Exception {
            // OpenSSL at security level 2 (curl on Debian) fails the handshake on both; it used to load silently
            TestPki.writeWeakCertificates(dir);
            String expected = " (expected: keys of at least 2048 bits (RSA), 224 (EC), signed without SHA-1 or MD5)";

            assertThat(fixture.problems(fixture.with("certs/server.pem", "certs/rsa1024.pem")
                    .replace("certs/server.key", "certs/rsa1024.key"))).containsExactly(
                    "listeners[0].tls.certificate: " + fixture.abs("certs/rsa1024.pem") + expected
                            + " - certificate 1 (CN=rsa1024.local) has a weak RSA key of 1024 bits");
            assertThat(fixture.problems(fixture.with("certs/server.pem", "certs/sha1.pem")
                    .replace("certs/server.key", "certs/sha1.key"))).containsExactly(
                    "listeners[0].tls.certificate: " + fixture.abs("certs/sha1.pem") + expected
                            + " - certificate 1 (CN=sha1.local) has a weak signature algorithm SHA1withECDSA");
        }

        @Test
        void twoListenersNeverShareAPort() {
            // validate passed these, and run then failed to bind the second: "listeners[0].address ... in use"
            String listener = "  - name: %s\n    address: %s\n    tls: { certificate: certs/server.pem,"
                    + " privateKey: certs/server.key }\n";
            String yaml = fixture.with("identities:\n", listener.formatted("same", "127.0.0.1:8443")
                    + listener.formatted("wildcard", "0.0.0.0:8443") + listener.formatted("v6", "\"[::]:8443\"")
                    + listener.formatted("other-port", "127.0.0.1:8444")
                    + listener.formatted("any-port", "127.0.0.1:0") + listener.formatted("any-port-2", "127.0.0.1:0")
                    + "identities:\n");

            assertThat(fixture.problems(yaml)).containsExactly(
                    "listeners[1].address: \"127.0.0.1:8443\" (expected: an address no other listener uses)"
                            + " - listeners[0] is there",
                    "listeners[2].address: \"0.0.0.0:8443\" (expected: an address no other listener uses)"
                            + " - listeners[0] is there",
                    "listeners[3].address: \"[::]:8443\" (expected: an address no other listener uses)"
                            + " - listeners[0] is there");
        }

        @Test
        void atLeastOneListener() {
            String yaml = ConfigFixture.VALID.substring(ConfigFixture.VALID.indexOf("identities:"));

            assertThat(fixture.problems(yaml)).containsExactly("listeners: [] (expected: at least one listener)",
                    "trustAnchors: {} (expected: at least one trust anchor with a caBundle; client certificates are"
                            + " always required)");
        }

        @Test
        void listenerNamesAreUnique() {
            String second = ConfigFixture.VALID.substring(ConfigFixture.VALID.indexOf("  - name: main"),
                    ConfigFixture.VALID.indexOf("identities:")).replace("8443", "8444");

            assertThat(fixture.problems(fixture.with("identities:", second + "identities:"))).containsExactly(
                    "listeners[1].name: \"main\" (expected: a unique listener name) - also used by listeners[0]");
        }

        @Test
        void addressAndTlsAreRequired() {
            String yaml = fixture.with("  - name: main\n    address: 127.0.0.1:8443\n", "  - name: main\n");
            String withoutTls = yaml.substring(0, yaml.indexOf("    tls:")) + yaml.substring(yaml.indexOf("    limits:"));

            assertThat(fixture.problems(withoutTls)).containsExactly(
                    "listeners[0].address: missing (expected: host:port, e.g. 127.0.0.1:8443)",
                    "listeners[0].tls: missing (expected: a mapping with keys certificate, groups, minVersion, privateKey,"
                            + " sessionResumption, trustAnchors)");
        }

        @Test
        void certificateAndKeyAreRequired() {
            String yaml = fixture.with("      certificate: certs/server.pem\n      privateKey: certs/server.key\n", "");

            assertThat(fixture.problems(yaml)).containsExactly(
                    "listeners[0].tls.certificate: missing (expected: a PEM file with the certificate chain, leaf first)",
                    "listeners[0].tls.privateKey: missing (expected: an unencrypted PKCS#8 private key)");
        }

        @Test
        void filesMustExist() {
            String yaml = fixture.with("certs/server.pem", "certs/nope.pem").replace("certs/server.key", "certs");

            assertThat(fixture.problems(yaml)).containsExactly(
                    "listeners[0].tls.certificate: " + fixture.abs("certs/nope.pem")
                            + " (expected: a readable PEM file) - no such file",
                    "listeners[0].tls.privateKey: " + fixture.abs("certs")
                            + " (expected: a readable PEM file) - is a directory");
        }

        @Test
        void certificateFileMustHoldACertificate() {
            assertThat(fixture.problems(fixture.with("certificate: certs/server.pem", "certificate: certs/server.key")))
                    .containsExactly("listeners[0].tls.certificate: " + fixture.abs("certs/server.key")
                            + " (expected: a PEM file with the certificate chain, leaf first)"
                            + " - no CERTIFICATE block found (found: PRIVATE KEY)");
        }

        @Test
        void keyFileMustHoldAPkcs8Key() throws Exception {
            Files.writeString(dir.resolve("certs/server.key"), TestPki.pem("RSA PRIVATE KEY", new byte[] {1, 2, 3}));

            assertThat(fixture.problems(ConfigFixture.VALID)).containsExactly("listeners[0].tls.privateKey: "
                    + fixture.abs("certs/server.key") + " (expected: an unencrypted PKCS#8 private key)"
                    + " - PKCS#1/SEC1 key; convert with: openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8");
        }

        @Test
        void keyMustBelongToTheCertificate() {
            X509Bundle other = TestPki.leaf(TestPki.ca("other"), "other.local");
            TestPki.write(dir.resolve("certs/other.key"), other.getPrivateKeyPEM());

            assertThat(fixture.problems(fixture.with("certs/server.key", "certs/other.key"))).containsExactly(
                    "listeners[0].tls.privateKey: " + fixture.abs("certs/other.key")
                            + " (expected: the private key of listeners[0].tls.certificate)"
                            + " - it belongs to another certificate");
        }

        @Test
        void theLeafComesFirstInTheCertificateFile() throws Exception {
            X509Bundle intermediate = TestPki.ca("intermediate");
            X509Bundle leaf = TestPki.leaf(intermediate, "leaf.local");
            Files.writeString(dir.resolve("certs/server.pem"), intermediate.getCertificatePEM() + leaf.getCertificatePEM());
            Files.writeString(dir.resolve("certs/server.key"), leaf.getPrivateKeyPEM());

            assertThat(fixture.problems(ConfigFixture.VALID)).containsExactly("listeners[0].tls.privateKey: "
                    + fixture.abs("certs/server.key") + " (expected: the private key of listeners[0].tls.certificate)"
                    + " - it belongs to certificate 2 in that file; the leaf must come first");
        }

        @Test
        void clientCertificatesCannotBeTurnedOff() {
            assertThat(fixture.problems(fixture.with("trustAnchors:\n  clients: { caBundle: certs/ca.pem }",
                    "trustAnchors: {}"))).containsExactly(
                    "trustAnchors: {} (expected: at least one trust anchor with a caBundle;"
                            + " client certificates are always required)");
        }

        @Test
        void leavingTrustAnchorsOutIsTheSameError() {
            assertThat(fixture.problems(fixture.with("trustAnchors:\n  clients: { caBundle: certs/ca.pem }\n", "")))
                    .containsExactly("trustAnchors: {} (expected: at least one trust anchor with a caBundle;"
                            + " client certificates are always required)");
        }

        @Test
        void caBundlesHoldOnlyCas() {
            assertThat(fixture.problems(fixture.with("clients: { caBundle: certs/ca.pem }",
                    "clients: { caBundle: certs/server.pem }"))).containsExactly(
                    "trustAnchors.clients.caBundle: " + fixture.abs("certs/server.pem")
                            + " (expected: a PEM bundle of CA certificates) - certificate 1 (CN=server.local)"
                            + " is not a CA");
        }

        @Test
        void aNameConstrainedIntermediateIsTrustedOnlyWithItsIssuerInSomeTrustAnchor() throws Exception {
            X509Bundle root = TestPki.ca("partner root");
            X509Bundle delegated = TestPki.nameConstrainedIntermediate(root, "partner CA", "partner.test");
            TestPki.write(dir.resolve("certs/partner-ca.pem"), delegated.getCertificatePEM());
            TestPki.write(dir.resolve("certs/partner-chain.pem"), delegated.getCertificatePEM()
                    + root.getCertificatePEM());
            TestPki.write(dir.resolve("certs/partner-root.pem"), root.getCertificatePEM());
            String partner = "clients: { caBundle: certs/ca.pem }\n  partner: { caBundle: certs/partner-ca.pem }";

            assertThat(fixture.problems(fixture.with("clients: { caBundle: certs/ca.pem }",
                    "clients: { caBundle: certs/partner-ca.pem }")))
                    .containsExactly("trustAnchors.clients.caBundle: " + fixture.abs("certs/partner-ca.pem")
                            + " (expected: a PEM bundle of CA certificates) - certificate 1 (CN=partner CA) has name"
                            + " constraints and is not a root; the proxy cannot apply them without its issuer"
                            + " (CN=partner root), which no trust anchor holds, so it would refuse every chain"
                            + " through it (add its issuer)");
            // A whole chain pasted into the file, or the issuer in an anchor of its own: its chains are judged up to it.
            assertThat(fixture.load(fixture.with("clients: { caBundle: certs/ca.pem }",
                    "clients: { caBundle: certs/partner-chain.pem }")).trustAnchors()).containsOnlyKeys("clients");
            // (identities must name their anchor once there are two: not this test's concern)
            assertThat(fixture.problems(fixture.with("clients: { caBundle: certs/ca.pem }",
                    partner + "\n  partner-root: { caBundle: certs/partner-root.pem }")))
                    .noneMatch(p -> p.startsWith("trustAnchors"));
        }

        @Test
        void caBundlesMustBeReadablePem() {
            assertThat(fixture.problems(fixture.with("clients: { caBundle: certs/ca.pem }",
                    "clients: { caBundle: certs/none.pem }"))).containsExactly(
                    "trustAnchors.clients.caBundle: " + fixture.abs("certs/none.pem")
                            + " (expected: a readable PEM file) - no such file");
            assertThat(fixture.problems(fixture.with("clients: { caBundle: certs/ca.pem }",
                    "clients: { caBundle: certs/server.key }"))).containsExactly(
                    "trustAnchors.clients.caBundle: " + fixture.abs("certs/server.key")
                            + " (expected: a PEM bundle of CA certificates) - no CERTIFICATE block found"
                            + " (found: PRIVATE KEY)");
        }

        @Test
        void sessionResumptionIsNoneOrTickets() {
            assertThat(fixture.problems(fixture.with("      minVersion: TLSv1.3",
                    "      minVersion: TLSv1.3\n      sessionResumption: cache"))).containsExactly(
                    "listeners[0].tls.sessionResumption: \"cache\" (expected: one of none, tickets)");
        }

        @Test
        void keyExchangeGroupsDefaultToPostQuantumFirstAndKeepTheirOrder() throws Exception {
            assertThat(fixture.load(ConfigFixture.VALID).listeners().get(0).tls().groups()).containsExactly(
                    KeyExchangeGroup.X25519_MLKEM768, KeyExchangeGroup.X25519, KeyExchangeGroup.P_256,
                    KeyExchangeGroup.P_384);
            assertThat(fixture.load(fixture.with("      minVersion: TLSv1.3",
                    "      minVersion: TLSv1.3\n      groups: [P-256, X25519]")).listeners().get(0).tls().groups())
                    .containsExactly(KeyExchangeGroup.P_256, KeyExchangeGroup.X25519);
        }

        @Test
        void keyExchangeGroupsAreKnownAndEachListedOnce() {
            assertThat(fixture.problems(fixture.with("      minVersion: TLSv1.3",
                    "      minVersion: TLSv1.3\n      groups: [X25519, secp256k1]"))).containsExactly(
                    "listeners[0].tls.groups[1]: \"secp256k1\" (expected: one of X25519MLKEM768, X25519, P-256,"
                            + " P-384, P-521)");
            assertThat(fixture.problems(fixture.with("      minVersion: TLSv1.3",
                    "      minVersion: TLSv1.3\n      groups: [X25519, P-256, X25519]"))).containsExactly(
                    "listeners[0].tls.groups[2]: \"X25519\" (expected: each group once) - also"
                            + " listeners[0].tls.groups[0]");
            assertThat(fixture.problems(fixture.with("      minVersion: TLSv1.3",
                    "      minVersion: TLSv1.3\n      groups: []"))).containsExactly(
                    "listeners[0].tls.groups: [] (expected: at least one key exchange group; leave groups out for"
                            + " the default [X25519MLKEM768, X25519, P-256, P-384])");
        }

        @Test
        void tls12ClientsNeedAGroupTls12CanUse() throws Exception {
            String postQuantumOnly = "      groups: [X25519MLKEM768]";

            assertThat(fixture.problems(fixture.with("      minVersion: TLSv1.3",
                    "      minVersion: TLSv1.2\n" + postQuantumOnly))).containsExactly(
                    "listeners[0].tls.groups: [X25519MLKEM768] (expected: also a group TLS 1.2 can use, one of"
                            + " X25519, P-256, P-384, P-521, or minVersion: TLSv1.3)");
            assertThat(fixture.load(fixture.with("      minVersion: TLSv1.3",
                    "      minVersion: TLSv1.3\n" + postQuantumOnly)).listeners().get(0).tls().groups())
                    .containsExactly(KeyExchangeGroup.X25519_MLKEM768);
        }

        @Test
        void aListenerNamesOnlyConfiguredAnchors() {
            assertThat(fixture.problems(fixture.with("      minVersion: TLSv1.3",
                    "      minVersion: TLSv1.3\n      trustAnchors: [clients, partners]"))).containsExactly(
                    "listeners[0].tls.trustAnchors[1]: \"partners\" (expected: a name under trustAnchors:,"
                            + " known: clients)");
        }

        @Test
        void durationsAndLimitsArePositive() {
            String yaml = fixture.with("idleTimeout: 2m", "idleTimeout: 0s")
                    .replace("handshakeTimeout: 5s", "handshakeTimeout: PT-1S")
                    .replace("maxInitialLineLength: 4KiB", "maxInitialLineLength: 0");

            assertThat(fixture.problems(yaml)).containsExactly(
                    "listeners[0].handshakeTimeout: -1s (expected: a positive duration)",
                    "listeners[0].idleTimeout: 0s (expected: a positive duration)",
                    "listeners[0].limits.maxInitialLineLength: 0B (expected: a positive size)");
        }

        @Test
        void requestHeadLimitsAreAtMostEnvoysBoundRatherThanSilentlyCapped() {
            String yaml = fixture.with("maxInitialLineLength: 4KiB, maxHeaderSize: 32KiB",
                    "maxInitialLineLength: 8MiB, maxHeaderSize: 3GiB");
            String justOver = fixture.with("maxInitialLineLength: 4KiB", "maxInitialLineLength: 8388609");

            assertThat(fixture.problems(yaml)).containsExactly(
                    "listeners[0].limits.maxHeaderSize: 3GiB (expected: at most 8MiB)");
            assertThat(fixture.problems(justOver)).containsExactly(
                    "listeners[0].limits.maxInitialLineLength: 8388609B (expected: at most 8MiB)");
        }

        @Test
        void timeoutsWaitAtMostAYear() {
            String yaml = fixture.with("idleTimeout: 2m", "idleTimeout: 1000000000000d")
                    .replace("handshakeTimeout: 5s", "handshakeTimeout: 366d\n    requestHeaderTimeout: PT8761H");

            assertThat(fixture.problems(yaml)).containsExactly(
                    "listeners[0].handshakeTimeout: 366d (expected: at most 365d)",
                    "listeners[0].idleTimeout: 1000000000000d (expected: at most 365d)",
                    "listeners[0].requestHeaderTimeout: 8761h (expected: at most 365d)");
        }

        @Test
        void theRequestHeaderTimeoutIsPositive() {
            String yaml = fixture.with("handshakeTimeout: 5s", "handshakeTimeout: 5s\n    requestHeaderTimeout: 0s");

            assertThat(fixture.problems(yaml)).containsExactly(
                    "listeners[0].requestHeaderTimeout: 0s (expected: a positive duration)");
        }

        @Test
        void aConnectionLimitIsPositive() {
            assertThat(fixture.problems(fixture.with("maxConnections: 5000", "maxConnections: 0"))).containsExactly(
                    "listeners[0].maxConnections: 0 (expected: a positive integer)");
            assertThat(fixture.problems(fixture.with("maxConnections: 5000", "maxConnections: -1"))).containsExactly(
                    "listeners[0].maxConnections: -1 (expected: a positive integer)");
        }

        @Test
        void aConfiguredConnectionLimitIsTakenAsWritten() throws Exception {
            ListenerConfig listener = fixture.load(ConfigFixture.VALID).listeners().get(0);

            assertThat(listener.maxConnections()).isEqualTo(5000);
            assertThat(listener.connectionLimit(new ProcessLimits(1_024, 1L << 20), 1))
                    .as("capped by neither descriptors nor memory").isEqualTo(5000);
        }

        @Test
        void theDefaultConnectionLimitSharesHalfTheDescriptorsLeftAfterTheReserveAmongTheListeners()
                throws Exception {
            ListenerConfig listener = fixture.load(fixture.with("    maxConnections: 5000\n", ""))
                    .listeners().get(0);
            long ampleMemory = 1L << 40;

            assertThat(listener.maxConnections()).isNull();
            assertThat(listener.connectionLimit(new ProcessLimits(1_024, ampleMemory), 1)).isEqualTo((1_024 - 256) / 2);
            assertThat(listener.connectionLimit(new ProcessLimits(1_048_576, ampleMemory), 2))
                    .isEqualTo((1_048_576 - 256) / 2 / 2);
            assertThat(listener.connectionLimit(new ProcessLimits(200, ampleMemory), 1)).as("a limit below the reserve")
                    .isEqualTo(1);
            assertThat(listener.connectionLimit(ProcessLimits.UNKNOWN, 1)).as("unknown: not a Unix")
                    .isEqualTo(ListenerConfig.FALLBACK_MAX_CONNECTIONS);
        }

        @Test
        void inAContainerWithManyDescriptorsTheDefaultConnectionLimitIsBoundedByItsMemory() throws Exception {
            ListenerConfig listener = fixture.load(fixture.with("    maxConnections: 5000\n", ""))
                    .listeners().get(0);
            long halfAGibibyte = 512L << 20;

            assertThat(listener.connectionLimit(new ProcessLimits(1_048_576, halfAGibibyte), 1))
                    .as("half the memory at 64 KiB a connection").isEqualTo(4_096);
            assertThat(listener.connectionLimit(new ProcessLimits(1_048_576, halfAGibibyte), 2)).isEqualTo(2_048);
            assertThat(listener.connectionLimit(new ProcessLimits(-1, halfAGibibyte), 1))
                    .as("descriptors unknown, memory known").isEqualTo(4_096);
            assertThat(listener.connectionLimit(new ProcessLimits(1_024, halfAGibibyte), 1))
                    .as("descriptors still bind where they are fewer").isEqualTo(384);
        }
    }

    @Nested
    class Identities {

        @Test
        void anIdentityMatchesOnSomething() {
            assertThat(fixture.problems(fixture.with("orders: { spiffeId: \"spiffe://demo.local/orders\" }",
                    "orders: {}"))).containsExactly(
                    "identities.orders: {} (expected: at least one of spiffeId, spiffeIdPrefix, trustDomain, uriSan, dnsSan,"
                            + " dnsSanSuffix, emailSan, ipSan, subjectCn, subjectO, subjectOu, issuerDn, sha256, spkiSha256,"
                            + " allOf, anyOf)");
        }

        @ParameterizedTest
        @ValueSource(strings = {"spiffe:/demo.local/orders", "https://demo.local/orders", "spiffe://",
                "spiffe:///orders", "spiffe://Demo.local/orders", "spiffe://demo.local/orders/",
                "spiffe://demo.local/../orders", "spiffe://demo.local/o?x=1", "spiffe://demo.local:8443/orders"})
        void spiffeIdsHaveTheSpiffeSyntax(String id) {
            assertThat(fixture.problems(fixture.with("spiffe://demo.local/orders", id))).containsExactly(
                    "identities.orders.spiffeId: \"" + id + "\" (expected: spiffe://trust-domain/path)");
        }

        @Test
        void aTrustDomainAloneIsASpiffeId() throws Exception {
            fixture.load(fixture.with("spiffe://demo.local/orders", "spiffe://demo.local"));
        }

        @Test
        void dnsSansAreDnsNamesAndCommonNamesAreNotBlank() {
            assertThat(fixture.problems(fixture.with("subjectCn: alice, dnsSan: ops.internal",
                    "subjectCn: ' ', dnsSan: ops_internal"))).containsExactly(
                    "identities.ops.dnsSan: \"ops_internal\" (expected: a DNS name like ops.example.com, or *.example.com for one label)",
                    "identities.ops.subjectCn: \" \" (expected: a non-empty name)");
        }
    }

    @Nested
    class Names {

        static final String EXPECTED = " (expected: a name matching [A-Za-z0-9][A-Za-z0-9_.-]*)";

        @Test
        void identityAndBackendNamesAreSafeForLogsAndMetrics() {
            String yaml = fixture.with("  orders: { spiffeId", "  orders team: { spiffeId")
                    .replace("allow: [orders, ops]", "allow: [ops]")
                    .replace("  inventory:\n    url", "  _inventory:\n    url")
                    .replace("backend: inventory", "backend: _inventory");

            assertThat(fixture.problems(yaml)).containsExactly(
                    "backends._inventory: \"_inventory\"" + EXPECTED,
                    "identities.orders team: \"orders team\"" + EXPECTED);
        }

        @Test
        void listenerAndRouteNamesAreSafeForLogsAndMetrics() {
            String yaml = fixture.with("- name: main", "- name: main/1")
                    .replace("- name: orders-api", "- name: orders api");

            assertThat(fixture.problems(yaml)).containsExactly(
                    "listeners[0].name: \"main/1\"" + EXPECTED,
                    "routes[0].name: \"orders api\"" + EXPECTED);
        }
    }

    @Nested
    class Routes {

        @Test
        void routeNamesAreRequiredAndUnique() {
            String yaml = fixture.with("  - name: inventory\n", "  - name: orders-api\n");
            String unnamed = fixture.with("  - name: inventory\n    pathPrefix", "  - pathPrefix");

            assertThat(fixture.problems(yaml)).containsExactly(
                    "routes[1].name: \"orders-api\" (expected: a unique route name) - also used by routes[0]");
            assertThat(fixture.problems(unnamed)).containsExactly(
                    "routes[1].name: missing (expected: a unique route name)");
        }

        @ParameterizedTest
        @ValueSource(strings = {"api.local:8443", "*.", "-api.local", "api..local", "api_local", "*.*.local",
                "http://api.local", "api.local."})
        void hostsAreHostNamesOrWildcards(String host) {
            assertThat(fixture.problems(fixture.with("host: API.local", "host: '" + host + "'"))).containsExactly(
                    "routes[0].host: \"" + host + "\" (expected: a host name like api.example.com or *.example.com,"
                            + " without port)");
        }

        @Test
        void wildcardHostsAreAccepted() throws Exception {
            assertThat(fixture.load(fixture.with("host: API.local", "host: '*.Example.com'")).routes().get(0).host())
                    .isEqualTo("*.example.com");
        }

        @Test
        void pathPrefixesStartWithASlash() {
            assertThat(fixture.problems(fixture.with("pathPrefix: /orders", "pathPrefix: orders"))).containsExactly(
                    "routes[0].pathPrefix: \"orders\" (expected: a path starting with /, of letters, digits and"
                            + " -._~!$&'()*,=:@, without . or .. segments or //)");
        }

        @ParameterizedTest
        @CsvSource(delimiter = '|', quoteCharacter = '`', textBlock = """
                /orders/../admin | ..
                /orders//x       | //
                /orders%2e       | %
                /orders?x        | ?
                /orders#x        | #
                /orders;x        | ;
                /orders\\x       | \\
                /orders/a b      | ` `
                /orders/a+b      | +
                /orders/café     | é
                /orders/{id}     | {
                /orders/a^b      | ^
                """)
        void pathPrefixesHaveNothingABackendMightReadDifferently(String prefix, String unsafe) {
            String yaml = fixture.with("pathPrefix: /orders", "pathPrefix: '" + prefix + "'");

            assertThat(fixture.problems(yaml)).containsExactly("routes[0].pathPrefix: "
                    + Values.quote(prefix) + " (expected: a path starting with /, of letters, digits and"
                    + " -._~!$&'()*,=:@, without . or .. segments or //) - contains " + Values.quote(unsafe));
        }

        /**
         * "/orders/" would leave "/orders" to a shorter route's rules, while Express serves it with the "/orders/"
         * handler; prefixes match on segment boundaries, so "/orders" says what was meant.
         */
        @Test
        void aPathPrefixHasNoTrailingSlash() throws Exception {
            String yaml = fixture.with("pathPrefix: /orders", "pathPrefix: /orders/");

            assertThat(fixture.problems(yaml)).containsExactly("routes[0].pathPrefix: \"/orders/\" (expected: a"
                    + " pathPrefix without a trailing /) - it would not cover \"/orders\"; \"/orders\" covers both");
            assertThat(fixture.load(fixture.with("pathPrefix: /orders", "pathPrefix: /")).routes().get(0).pathPrefix())
                    .as("the root itself is fine").isEqualTo("/");
        }

        /** A normalised request path has no "." segment, so a prefix with one would never match anything. */
        @ParameterizedTest
        @ValueSource(strings = {"/.", "/./orders", "/orders/./x", "/orders/."})
        void pathPrefixesHaveNoDotSegments(String prefix) {
            String yaml = fixture.with("pathPrefix: /orders", "pathPrefix: '" + prefix + "'");

            assertThat(fixture.problems(yaml)).containsExactly("routes[0].pathPrefix: "
                    + Values.quote(prefix) + " (expected: a path starting with /, of letters, digits and"
                    + " -._~!$&'()*,=:@, without . or .. segments or //) - contains a \".\" segment");
        }

        @Test
        void pathPrefixesMayUseEveryCharacterARequestPathSpellsRaw() throws Exception {
            String prefix = "/odata/$batch/a-b_c.d~e!f&g'h(i)j*k,l=m:n@o";

            assertThat(fixture.load(fixture.with("pathPrefix: /orders", "pathPrefix: \"" + prefix + "\""))
                    .routes().get(0).pathPrefix()).isEqualTo(prefix);
        }

        @Test
        void methodsAreHttpTokens() {
            assertThat(fixture.problems(fixture.with("methods: [get, POST]", "methods: [get, 'PO ST']")))
                    .containsExactly("routes[0].methods[1]: \"PO ST\" (expected: an HTTP method like GET or POST)");
        }

        @Test
        void backendsAreRequiredAndMustExist() {
            String yaml = fixture.with("    backend: orders\n", "").replace("backend: inventory", "backend: billing");

            assertThat(fixture.problems(yaml)).containsExactly(
                    "routes[0].backend: missing (expected: a name under backends:, known: inventory, orders)",
                    "routes[1].backend: \"billing\" (expected: a name under backends:, known: inventory, orders)");
        }

        @Test
        void referencesSayWhenNothingIsDefined() {
            String yaml = """
                    trustAnchors: { clients: { caBundle: certs/ca.pem } }
                    listeners:
                      - address: 127.0.0.1:0
                        tls: { certificate: certs/server.pem, privateKey: certs/server.key }
                    routes:
                      - { name: r, backend: b, allow: [i] }
                    """;

            assertThat(fixture.problems(yaml)).containsExactly(
                    "routes[0].allow[0]: \"i\" (expected: a name under identities:, known: none)",
                    "routes[0].backend: \"b\" (expected: a name under backends:, known: none)");
        }

        @Test
        void allowedIdentitiesMustExist() {
            assertThat(fixture.problems(fixture.with("allow: [ops]", "allow: [ops, billing]"))).containsExactly(
                    "routes[1].allow[1]: \"billing\" (expected: a name under identities:, known: ops, orders)");
        }

        @Test
        void twoRoutesCannotMatchTheSameRequests() {
            String yaml = fixture.with("  - name: inventory\n    pathPrefix: /inventory\n",
                    "  - name: inventory\n    host: api.LOCAL\n    pathPrefix: /orders\n    methods: [POST, GET]\n");

            assertThat(fixture.problems(yaml)).containsExactly("routes[1]: host=api.local pathPrefix=/orders"
                    + " methods=GET,POST (expected: a unique host, pathPrefix and methods) - same as routes[0]");
        }

        @Test
        void routesDifferingOnlyInMethodsAreFine() throws Exception {
            fixture.load(fixture.with("  - name: inventory\n    pathPrefix: /inventory\n",
                    "  - name: inventory\n    host: api.local\n    pathPrefix: /orders\n    methods: [DELETE]\n"));
        }
    }

    @Nested
    class Backends {

        static final String URL = " (expected: http://host:port or https://host:port)";

        /** The fixture with backend "orders" replaced by this YAML body (indented four spaces per line). */
        String orders(String body) {
            return fixture.with("""
                    url: http://127.0.0.1:9000
                    connectTimeout: 1s
                    responseTimeout: 10s
                    maxIdleConnections: 8
                    idleTimeout: 30s
                """, body.indent(4));
        }

        /** Certificates for TLS to a backend: a CA bundle, and a client certificate with its key. */
        void backendFiles() {
            X509Bundle ca = TestPki.ca("backend-ca");
            TestPki.write(dir.resolve("certs/backend-ca.pem"), ca.getCertificatePEM());
            X509Bundle client = TestPki.leaf(TestPki.ca("proxy-client-ca"), "proxy");
            TestPki.write(dir.resolve("certs/proxy.pem"), client.getCertificatePEM());
            TestPki.write(dir.resolve("certs/proxy.key"), client.getPrivateKeyPEM());
        }

        @ParameterizedTest
        @CsvSource(delimiter = '|', textBlock = """
                ftp://127.0.0.1:9000       | ''
                127.0.0.1:9000             | ''
                http:/orders               | ' - no host'
                http://127.0.0.1:99999     | ' - port out of range'
                http://u:p@127.0.0.1:9000  | ' - user info, query and fragment are not allowed'
                http://127.0.0.1:9000/?x=1 | ' - user info, query and fragment are not allowed'
                """)
        void urlsAreHttpOrHttps(String url, String detail) {
            assertThat(fixture.problems(fixture.with("url: http://127.0.0.1:9000", "url: '" + url + "'")))
                    .containsExactly("backends.orders.url: \"" + url + "\"" + URL + detail);
        }

        @Test
        void everyEndpointIsCheckedAndNamedByItsIndex() {
            String yaml = orders("endpoints: [http://127.0.0.1:9000, 'ftp://x:1', 'http://127.0.0.1:9000',"
                    + " https://127.0.0.1:9443]\n");

            assertThat(fixture.problems(yaml)).containsExactly(
                    "backends.orders.endpoints[1]: \"ftp://x:1\"" + URL,
                    "backends.orders.endpoints[2]: \"http://127.0.0.1:9000\" (expected: each endpoint once)"
                            + " - same as backends.orders.endpoints[0]",
                    "backends.orders.endpoints[3]: \"https://127.0.0.1:9443\" (expected: http:// like"
                            + " backends.orders.endpoints[0]) - a backend's endpoints are all https or all http");
        }

        @Test
        void anEndpointIsRequired() {
            assertThat(fixture.problems(fixture.with("    url: http://127.0.0.1:9000\n", ""))).containsExactly(
                    "backends.orders.endpoints: missing (expected: at least one http://host:port or"
                            + " https://host:port; or url: for a single one)");
            assertThat(fixture.problems(orders("endpoints: []\n"))).containsExactly(
                    "backends.orders.endpoints: [] (expected: at least one http://host:port or"
                            + " https://host:port; or url: for a single one)");
        }

        @Test
        void aUrlWithNothingAfterItIsNotALeftOutUrl() {
            // found by ConfigMutationTest: "url:" maps to null and was taken for a url that failed to map, so the
            // backend loaded with no endpoint at all
            assertThat(fixture.problems(fixture.with("url: http://127.0.0.1:9000", "url:"))).containsExactly(
                    "backends.orders.url: null (expected: http://host:port or https://host:port)");
        }

        @Test
        void urlOrEndpointsNotBoth() {
            String yaml = fixture.with("url: http://127.0.0.1:9000", "url: http://127.0.0.1:9000\n"
                    + "    endpoints: [http://127.0.0.1:9001]");

            assertThat(fixture.problems(yaml)).containsExactly(
                    "backends.orders.url: \"http://127.0.0.1:9000\" (expected: url or endpoints, not both)");
        }

        @Test
        void httpsEndpointsNeedTheCasToVerifyTheBackend() {
            assertThat(fixture.problems(orders("endpoints: [https://orders.internal:9443]\n"))).containsExactly(
                    "backends.orders.tls: missing (expected: serverCAs for the https endpoints;"
                            + " backend certificates are always verified)");
            assertThat(fixture.problems(orders("endpoints: [https://orders.internal:9443]\ntls: { serverCAs: [] }\n")))
                    .containsExactly("backends.orders.tls.serverCAs: [] (expected: at least one CA bundle;"
                            + " backend certificates are always verified)");
        }

        @Test
        void serverCaBundlesAreReadableBundlesOfCas() {
            String yaml = orders("""
                    endpoints: [https://orders.internal:9443]
                    tls: { serverCAs: [certs/none.pem, certs/server.pem] }
                    """);

            assertThat(fixture.problems(yaml)).containsExactly(
                    "backends.orders.tls.serverCAs[0]: " + fixture.abs("certs/none.pem")
                            + " (expected: a readable PEM file) - no such file",
                    "backends.orders.tls.serverCAs[1]: " + fixture.abs("certs/server.pem")
                            + " (expected: a PEM bundle of CA certificates) - certificate 1 (CN=server.local)"
                            + " is not a CA");
        }

        @Test
        void aNameConstrainedIntermediateIsTrustedOnlyWithItsIssuerInAnotherServerCaFile() throws Exception {
            X509Bundle root = TestPki.ca("backend root");
            X509Bundle delegated = TestPki.nameConstrainedIntermediate(root, "backend partner CA", "partner.test");
            TestPki.write(dir.resolve("certs/partner-ca.pem"), delegated.getCertificatePEM());
            TestPki.write(dir.resolve("certs/backend-root.pem"), root.getCertificatePEM());

            assertThat(fixture.problems(orders("""
                    endpoints: [https://orders.internal:9443]
                    tls: { serverCAs: [certs/partner-ca.pem] }
                    """))).containsExactly("backends.orders.tls.serverCAs[0]: " + fixture.abs("certs/partner-ca.pem")
                    + " (expected: a PEM bundle of CA certificates) - certificate 1 (CN=backend partner CA) has name"
                    + " constraints and is not a root; the proxy cannot apply them without its issuer"
                    + " (CN=backend root), which no file of serverCAs holds, so it would refuse every chain through it"
                    + " (add its issuer)");
            assertThat(fixture.load(orders("""
                    endpoints: [https://orders.internal:9443]
                    tls: { serverCAs: [certs/partner-ca.pem, certs/backend-root.pem] }
                    """)).backends().get("orders").tls().serverCAs()).hasSize(2);
        }

        @Test
        void tlsSettingsForPlainHttpEndpointsAreAMistake() {
            backendFiles();

            assertThat(fixture.problems(orders("url: http://127.0.0.1:9000\ntls: { serverCAs: [certs/backend-ca.pem] }\n")))
                    .containsExactly("backends.orders.tls: given for http:// endpoints"
                            + " (expected: https:// endpoints, or no tls)");
        }

        @Test
        void serverNameAndSpiffeIdAreChecked() {
            backendFiles();
            String yaml = orders("""
                    url: https://10.0.0.1:9443
                    tls:
                      serverCAs: [certs/backend-ca.pem]
                      serverName: orders_internal
                      spiffeId: spiffe://Demo/orders
                      minVersion: TLSv1.3
                    """);

            assertThat(fixture.problems(yaml)).containsExactly(
                    "backends.orders.tls.serverName: \"orders_internal\""
                            + " (expected: a DNS name like orders.internal.example.com)",
                    "backends.orders.tls.spiffeId: \"spiffe://Demo/orders\" (expected: spiffe://trust-domain/path)");
        }

        /** An https backend whose tls: has one more line, given by {@code formatted}. */
        static final String TLS_BACKEND = """
                url: https://orders.internal:9443
                tls:
                  serverCAs: [certs/backend-ca.pem]
                  %s
                """;

        @Test
        void backendKeyExchangeGroupsAreCheckedAsAListenersAre() {
            backendFiles();
            assertThat(fixture.problems(orders(TLS_BACKEND.formatted("groups: [P-384, P-384]")))).containsExactly(
                    "backends.orders.tls.groups[1]: \"P-384\" (expected: each group once) - also"
                            + " backends.orders.tls.groups[0]");
            assertThat(fixture.problems(orders(TLS_BACKEND.formatted("groups: [X25519MLKEM768]")))).containsExactly(
                    "backends.orders.tls.groups: [X25519MLKEM768] (expected: also a group TLS 1.2 can use, one of"
                            + " X25519, P-256, P-384, P-521, or minVersion: TLSv1.3)");
        }

        /**
         * A backend at OpenSSL's security level 2 (nginx on Debian) or in Go refuses the proxy's certificate for both,
         * as the proxy refuses its own clients': it used to load, and every request to that backend then failed.
         */
        @Test
        void theProxysOwnCertificateToABackendIsHeldToTheRuleAListenersIs() {
            backendFiles();
            TestPki.writeWeakCertificates(dir);
            String expected = " (expected: keys of at least 2048 bits (RSA), 224 (EC), signed without SHA-1 or MD5)";

            assertThat(fixture.problems(orders(TLS_BACKEND.formatted(
                    "certificate: certs/rsa1024.pem\n  privateKey: certs/rsa1024.key")))).containsExactly(
                    "backends.orders.tls.certificate: " + fixture.abs("certs/rsa1024.pem") + expected
                            + " - certificate 1 (CN=rsa1024.local) has a weak RSA key of 1024 bits");
            assertThat(fixture.problems(orders(TLS_BACKEND.formatted(
                    "certificate: certs/sha1.pem\n  privateKey: certs/sha1.key")))).containsExactly(
                    "backends.orders.tls.certificate: " + fixture.abs("certs/sha1.pem") + expected
                            + " - certificate 1 (CN=sha1.local) has a weak signature algorithm SHA1withECDSA");
        }

        @Test
        void theProxysOwnCertificateToABackendMayNotCarryANameGoRefuses() {
            backendFiles();
            TestPki.writeMalformedNameCertificate(dir);

            assertThat(fixture.problems(orders(TLS_BACKEND.formatted(
                    "certificate: certs/nul-name.pem\n  privateKey: certs/nul-name.key")))).containsExactly(
                    "backends.orders.tls.certificate: " + fixture.abs("certs/nul-name.pem") + MALFORMED_NAME);
        }

        @Test
        void aClientCertificateComesWithItsKey() {
            backendFiles();
            assertThat(fixture.problems(orders(TLS_BACKEND.formatted("certificate: certs/proxy.pem")))).containsExactly(
                    "backends.orders.tls.privateKey: missing (expected: the private key of"
                            + " backends.orders.tls.certificate)");
            assertThat(fixture.problems(orders(TLS_BACKEND.formatted("privateKey: certs/proxy.key")))).containsExactly(
                    "backends.orders.tls.certificate: missing (expected: the certificate of"
                            + " backends.orders.tls.privateKey, for mTLS to the backend)");
            assertThat(fixture.problems(orders(TLS_BACKEND.formatted("certificate: certs/proxy.pem\n  privateKey: certs/server.key"))))
                    .containsExactly(
                    "backends.orders.tls.privateKey: " + fixture.abs("certs/server.key")
                            + " (expected: the private key of backends.orders.tls.certificate)"
                            + " - it belongs to another certificate");
        }

        @Test
        void aCompleteTlsBackendLoads() throws Exception {
            backendFiles();
            ProxyConfig config = fixture.load(orders("""
                    endpoints: [https://10.0.0.1:9443, https://10.0.0.2:9443]
                    tls:
                      serverCAs: [certs/backend-ca.pem]
                      serverName: orders.internal
                      spiffeId: spiffe://demo.local/orders-backend
                      certificate: certs/proxy.pem
                      privateKey: certs/proxy.key
                      minVersion: TLSv1.3
                    bodyIdleTimeout: 20s
                    coolDown: 3s
                    healthCheck: { path: /healthz, interval: 5s, timeout: 1s }
                    """));

            BackendConfig orders = config.backends().get("orders");
            assertThat(orders.endpointUrls()).extracting(Object::toString)
                    .containsExactly("https://10.0.0.1:9443", "https://10.0.0.2:9443");
            assertThat(orders.tls()).isEqualTo(new BackendTlsConfig(List.of(Path.of(fixture.abs("certs/backend-ca.pem"))),
                    "orders.internal", true, "spiffe://demo.local/orders-backend",
                    Path.of(fixture.abs("certs/proxy.pem")), Path.of(fixture.abs("certs/proxy.key")),
                    TlsVersion.TLS_1_3, null));
            assertThat(orders.bodyIdleTimeout()).isEqualTo(Duration.ofSeconds(20));
            assertThat(orders.coolDown()).isEqualTo(Duration.ofSeconds(3));
            assertThat(orders.healthCheck()).isEqualTo(new HealthCheckConfig("/healthz", Duration.ofSeconds(5),
                    Duration.ofSeconds(1)));
            assertThat(ConfigLoader.warnings(config, java.time.Instant.now())).isEmpty();
        }

        @Test
        void healthChecksNeedAPath() {
            assertThat(fixture.problems(orders("url: http://127.0.0.1:9000\nhealthCheck: { interval: 0s }\n")))
                    .containsExactly(
                            "backends.orders.healthCheck.interval: 0s (expected: a positive duration)",
                            "backends.orders.healthCheck.path: missing (expected: a path starting with /, like /healthz)");
            assertThat(fixture.problems(orders("url: http://127.0.0.1:9000\nhealthCheck: { path: 'health check' }\n")))
                    .containsExactly("backends.orders.healthCheck.path: \"health check\""
                            + " (expected: a path starting with /, like /healthz)");
        }

        @Test
        void healthCheckThresholdsDefaultToHaproxysRiseTwoFallThree() throws Exception {
            ProxyConfig config = fixture.load(orders("url: http://127.0.0.1:9000\nhealthCheck: { path: /healthz }\n"));

            HealthCheckConfig check = config.backends().get("orders").healthCheck();
            assertThat(check.healthyThreshold()).isEqualTo(2);
            assertThat(check.unhealthyThreshold()).isEqualTo(3);
            assertThat(check.interval()).isEqualTo(Duration.ofSeconds(10));
            assertThat(check.timeout()).isEqualTo(Duration.ofSeconds(2));
        }

        @Test
        void healthCheckThresholdsAreRead() throws Exception {
            ProxyConfig config = fixture.load(orders("""
                    url: http://127.0.0.1:9000
                    healthCheck: { path: /healthz, healthyThreshold: 1, unhealthyThreshold: 5 }
                    """));

            assertThat(config.backends().get("orders").healthCheck()).isEqualTo(
                    new HealthCheckConfig("/healthz", null, null, 1, 5));
        }

        @Test
        void healthCheckThresholdsAreOneOrMore() {
            assertThat(fixture.problems(orders("""
                    url: http://127.0.0.1:9000
                    healthCheck: { path: /healthz, healthyThreshold: 0, unhealthyThreshold: -2 }
                    """))).containsExactly(
                    "backends.orders.healthCheck.healthyThreshold: 0 (expected: 1 or more consecutive checks)",
                    "backends.orders.healthCheck.unhealthyThreshold: -2 (expected: 1 or more consecutive checks)");
        }

        @Test
        void haproxysFallIsSpelledUnhealthyThresholdAndCountsWholeChecks() {
            assertThat(fixture.problems(orders("""
                    url: http://127.0.0.1:9000
                    healthCheck: { path: /healthz, fall: 3, unhealthyThreshold: three }
                    """))).containsExactly(
                    "backends.orders.healthCheck.fall: unknown key (expected: one of healthyThreshold, interval, path,"
                            + " timeout, unhealthyThreshold)",
                    "backends.orders.healthCheck.unhealthyThreshold: \"three\" (expected: an integer)");
        }

        @Test
        void timeoutsArePositiveAndPoolsNotNegative() {
            String yaml = fixture.with("connectTimeout: 1s", "connectTimeout: 0ms")
                    .replace("responseTimeout: 10s", "responseTimeout: 0s\n    bodyIdleTimeout: 0s\n    coolDown: 0s")
                    .replace("idleTimeout: 30s", "idleTimeout: 0d")
                    .replace("maxIdleConnections: 8", "maxIdleConnections: -1");

            assertThat(fixture.problems(yaml)).containsExactly(
                    "backends.orders.bodyIdleTimeout: 0s (expected: a positive duration)",
                    "backends.orders.connectTimeout: 0s (expected: a positive duration)",
                    "backends.orders.coolDown: 0s (expected: a positive duration)",
                    "backends.orders.idleTimeout: 0s (expected: a positive duration)",
                    "backends.orders.maxIdleConnections: -1 (expected: zero or more)",
                    "backends.orders.responseTimeout: 0s (expected: a positive duration)");
        }

        @Test
        void timeoutsWaitAtMostAYear() throws Exception {
            // 1000000000000d passed validate, and then run refused to start with "long overflow"
            String yaml = fixture.with("connectTimeout: 1s", "connectTimeout: 1000000000000d")
                    .replace("responseTimeout: 10s", "responseTimeout: 366d\n    bodyIdleTimeout: 9999999d\n"
                            + "    coolDown: 1000000000000d\n"
                            + "    healthCheck: { path: /healthz, interval: 400d, timeout: 365d1s }")
                    .replace("idleTimeout: 30s", "idleTimeout: 365d");

            assertThat(fixture.problems(yaml)).containsExactly(
                    "backends.orders.bodyIdleTimeout: 9999999d (expected: at most 365d)",
                    "backends.orders.connectTimeout: 1000000000000d (expected: at most 365d)",
                    "backends.orders.coolDown: 1000000000000d (expected: at most 365d)",
                    "backends.orders.healthCheck.interval: 400d (expected: at most 365d)",
                    "backends.orders.healthCheck.timeout: 31536001s (expected: at most 365d)",
                    "backends.orders.responseTimeout: 366d (expected: at most 365d)");
            assertThat(fixture.load(fixture.with("connectTimeout: 1s", "connectTimeout: 365d")).backends()
                    .get("orders").connectTimeout()).hasDays(365);
        }

        @Test
        void zeroIdleConnectionsTurnsPoolingOff() throws Exception {
            fixture.load(fixture.with("maxIdleConnections: 8", "maxIdleConnections: 0"));
        }
    }

    @Nested
    class AccessLog {

        @Test
        void theDirectoryMustExist() {
            assertThat(fixture.problems(fixture.with("path: stdout", "path: logs/access.log"))).containsExactly(
                    "accessLog.path: \"" + fixture.abs("logs/access.log")
                            + "\" (expected: stdout or a file in an existing directory)");
        }

        @Test
        void thePathIsNotBlank() {
            assertThat(fixture.problems(fixture.with("path: stdout", "path: ''"))).containsExactly(
                    "accessLog.path: \"\" (expected: stdout or a file in an existing directory)");
        }

        @Test
        void thePathIsAFile() {
            assertThat(fixture.problems(fixture.with("path: stdout", "path: certs"))).containsExactly(
                    "accessLog.path: \"" + fixture.abs("certs")
                            + "\" (expected: stdout or a file in an existing directory) - it is a directory");
        }

        @Test
        void aDisabledLogIsNotChecked() throws Exception {
            fixture.load(fixture.with("{ enabled: true, path: stdout }", "{ enabled: false, path: nope/x.log }"));
        }
    }

    @Nested
    class RevocationShutdownReload {

        @Test
        void everyCrlOfATrustAnchorIsReadableAndACrl() {
            TestPki.write(dir.resolve("certs/ca.crl"), TestPki.crl(TestPki.ca("crl-ca")));
            String yaml = fixture.with("clients: { caBundle: certs/ca.pem }",
                    "clients: { caBundle: certs/ca.pem, crls: [certs/ca.crl, certs/missing.crl, certs/ca.pem] }");

            assertThat(fixture.problems(yaml)).containsExactly(
                    "trustAnchors.clients.crls[1]: " + fixture.abs("certs/missing.crl")
                            + " (expected: its issuer's complete X.509 CRL, PEM or DER) - no such file",
                    "trustAnchors.clients.crls[2]: " + fixture.abs("certs/ca.pem")
                            + " (expected: its issuer's complete X.509 CRL, PEM or DER) - no X509 CRL block found"
                            + " (found: CERTIFICATE)");
        }

        @Test
        void aCrlThatIsNotItsIssuersCompleteDirectListIsAProblemNamingWhy() throws Exception {
            X509Bundle ca = TestPki.ca("crl-ca");
            var idp = Extension.issuingDistributionPoint;
            var uri = new DistributionPointName(new GeneralNames(
                    new GeneralName(6, "http://crl.test/shard1.crl")));
            var unknown = new ASN1ObjectIdentifier("1.3.6.1.4.1.55555.7.2");
            Date now = new Date();
            List<TestPki.CrlContent> kinds = List.of(
                    b -> b.addExtension(Extension.deltaCRLIndicator, true,
                            new CRLNumber(BigInteger.ONE)),
                    b -> b.addExtension(idp, true, new IssuingDistributionPoint(
                            uri, false, false, null, true, false)),
                    b -> b.addExtension(idp, true, new IssuingDistributionPoint(
                            uri, false, false, new ReasonFlags(
                                    ReasonFlags.keyCompromise), false, false)),
                    // Bouncy Castle refuses to build this contradiction; some CA might not
                    b -> b.addExtension(idp, true, new DERSequence(new ASN1Encodable[] {
                            new DERTaggedObject(false, 1, ASN1Boolean.TRUE),
                            new DERTaggedObject(false, 2, ASN1Boolean.TRUE)})),
                    b -> b.addExtension(idp, true, new IssuingDistributionPoint(new DistributionPointName(
                            DistributionPointName.NAME_RELATIVE_TO_CRL_ISSUER,
                            new X500Name("CN=shard1").getRDNs()[0]), false, false, null, false, false)),
                    b -> b.addExtension(unknown, true, DERNull.INSTANCE),
                    b -> b.addCRLEntry(BigInteger.valueOf(0xabc), now,
                            new Extensions(new Extension(
                                    Extension.certificateIssuer, true,
                                    new GeneralNames(new GeneralName(new X500Name("CN=other")))
                                            .getEncoded()))),
                    b -> b.addCRLEntry(BigInteger.valueOf(0xdef), now,
                            new Extensions(new Extension(
                                    unknown, true, DERNull.INSTANCE.getEncoded()))),
                    // Accepted: a shard's CRL, scoped to one distribution point and to end-entity certificates
                    b -> b.addExtension(idp, true, new IssuingDistributionPoint(
                            uri, true, false, null, false, false)));
            StringBuilder files = new StringBuilder();
            for (int i = 0; i < kinds.size(); i++) {
                TestPki.write(dir.resolve("certs/" + i + ".crl"), TestPki.crl(ca, kinds.get(i)));
                files.append(i == 0 ? "" : ", ").append("certs/").append(i).append(".crl");
            }
            // Two CRLs in one file: the problem says which block
            TestPki.write(dir.resolve("certs/both.crl"), TestPki.crl(ca) + TestPki.crl(ca, kinds.get(0)));
            String yaml = fixture.with("clients: { caBundle: certs/ca.pem }",
                    "clients: { caBundle: certs/ca.pem, crls: [" + files + ", certs/both.crl] }");

            String expected = " (expected: its issuer's complete X.509 CRL, PEM or DER) - ";
            assertThat(fixture.problems(yaml)).containsExactly(
                    "trustAnchors.clients.crls[0]: " + fixture.abs("certs/0.crl") + expected
                            + "a delta CRL (deltaCRLIndicator): not supported, give the complete CRL",
                    "trustAnchors.clients.crls[1]: " + fixture.abs("certs/1.crl") + expected
                            + "an indirect CRL (issuingDistributionPoint indirectCRL): not supported",
                    "trustAnchors.clients.crls[2]: " + fixture.abs("certs/2.crl") + expected
                            + "a CRL for some revocation reasons only (issuingDistributionPoint onlySomeReasons):"
                            + " not supported, give the complete CRL",
                    "trustAnchors.clients.crls[3]: " + fixture.abs("certs/3.crl") + expected
                            + "issuingDistributionPoint sets more than one of onlyContainsUserCerts,"
                            + " onlyContainsCACerts and onlyContainsAttributeCerts",
                    "trustAnchors.clients.crls[4]: " + fixture.abs("certs/4.crl") + expected
                            + "issuingDistributionPoint nameRelativeToCRLIssuer: not supported, name it in full",
                    "trustAnchors.clients.crls[5]: " + fixture.abs("certs/5.crl") + expected
                            + "unhandled critical extension 1.3.6.1.4.1.55555.7.2",
                    "trustAnchors.clients.crls[6]: " + fixture.abs("certs/6.crl") + expected
                            + "an indirect CRL (certificateIssuer on the entry for serial abc): not supported",
                    "trustAnchors.clients.crls[7]: " + fixture.abs("certs/7.crl") + expected
                            + "unhandled critical extension 1.3.6.1.4.1.55555.7.2 on the entry for serial def",
                    "trustAnchors.clients.crls[9]: " + fixture.abs("certs/both.crl") + expected
                            + "X509 CRL block 2: a delta CRL (deltaCRLIndicator): not supported, give the complete"
                            + " CRL");
        }

        @Test
        void denyListEntriesHaveTheirForm() {
            String yaml = ConfigFixture.VALID + """
                    revocation:
                      denySerials: ["4f:1a:09", "xyz", "-4F:1A:09", "-", "--4f"]
                      denyFingerprints: ["ab:cd"]
                      denySpkiPins: ["not base64!"]
                    """;
            String serial = "(expected: a certificate serial number in hex, e.g. 4f:1a:09 or 4F1A09, -4f:1a:09 for a"
                    + " negative one)";

            assertThat(fixture.problems(yaml)).containsExactly(
                    "revocation.denyFingerprints[0]: \"ab:cd\" (expected: a SHA-256 fingerprint, 64 hex digits,"
                            + " colons allowed)",
                    "revocation.denySerials[1]: \"xyz\" " + serial,
                    "revocation.denySerials[3]: \"-\" " + serial,
                    "revocation.denySerials[4]: \"--4f\" " + serial,
                    "revocation.denySpkiPins[0]: \"not base64!\" (expected: a base64 SHA-256 of the"
                            + " SubjectPublicKeyInfo, 44 characters)");
        }

        @Test
        void scopeAndStalePolicyAreOneOfTheirWords() {
            String yaml = fixture.with("clients: { caBundle: certs/ca.pem }",
                    "clients: { caBundle: certs/ca.pem, crlScope: all, staleCrl: allow }");

            assertThat(fixture.problems(yaml)).containsExactly(
                    "trustAnchors.clients.crlScope: \"all\" (expected: one of chain, leaf)",
                    "trustAnchors.clients.staleCrl: \"allow\" (expected: one of deny, insecureAllow)");
        }

        @Test
        void insecurelyAllowingStaleCrlsIsWarnedAtEveryLoad() throws Exception {
            ProxyConfig config = fixture.load(fixture.with("clients: { caBundle: certs/ca.pem }",
                    "clients: { caBundle: certs/ca.pem, staleCrl: insecureAllow }"));

            assertThat(ConfigLoader.warnings(config, java.time.Instant.now())).contains("trustAnchors.clients.staleCrl:"
                    + " insecureAllow - a client certificate covered only by an expired CRL is accepted; a revocation"
                    + " published late is missed");
        }

        @Test
        void drainAndDebounceDurations() {
            String yaml = ConfigFixture.VALID + """
                    shutdown: { drainDelay: -PT1S, drainTimeout: 0s }
                    reload: { debounce: 0s }
                    """;

            assertThat(fixture.problems(yaml)).containsExactly(
                    "reload.debounce: 0s (expected: a positive duration)",
                    "shutdown.drainDelay: -1s (expected: zero or a positive duration)",
                    "shutdown.drainTimeout: 0s (expected: a positive duration)");
        }

        @Test
        void drainAndDebounceWaitAtMostAYear() {
            String yaml = ConfigFixture.VALID + """
                    shutdown: { drainDelay: 366d, drainTimeout: 1000000000000d }
                    reload: { debounce: 8761h }
                    """;

            assertThat(fixture.problems(yaml)).containsExactly(
                    "reload.debounce: 8761h (expected: at most 365d)",
                    "shutdown.drainDelay: 366d (expected: at most 365d)",
                    "shutdown.drainTimeout: 1000000000000d (expected: at most 365d)");
        }

        @Test
        void defaultsWhenOmitted() throws Exception {
            ProxyConfig config = fixture.load(ConfigFixture.VALID);

            assertThat(config.trustAnchors().get("clients").crls()).isEmpty();
            assertThat(config.trustAnchors().get("clients").crlScope()).isEqualTo(CrlScope.CHAIN);
            assertThat(config.trustAnchors().get("clients").staleCrl()).isEqualTo(StaleCrlPolicy.DENY);
            assertThat(config.revocation().denySerials()).isEmpty();
            assertThat(config.shutdown().drainDelay()).hasSeconds(5);
            assertThat(config.shutdown().drainTimeout()).hasSeconds(20);
            assertThat(config.reload().watch()).isTrue();
            assertThat(config.reload().debounce()).hasMillis(500);
        }
    }

    @Nested
    class Workers {

        @Test
        void threadsAndAPinnedCpuListAreRead() throws Exception {
            ProxyConfig config = fixture.load(ConfigFixture.VALID + "workers: { threads: 3, cpuAffinity: \"2-3,6\" }\n");

            assertThat(config.workers().threads()).isEqualTo(3);
            assertThat(config.workers().cpuAffinity().mode()).isEqualTo(CpuAffinity.Mode.LIST);
            assertThat(config.workers().cpuAffinity().cpus()).containsExactly(2, 3, 6);
        }

        @Test
        void aSingleCpuMayBeWrittenAsAPlainNumber() throws Exception {
            ProxyConfig config = fixture.load(ConfigFixture.VALID + "workers: { cpuAffinity: 1 }\n");

            assertThat(config.workers().cpuAffinity().cpus()).containsExactly(1);
            assertThat(config.workers().threadCount(8)).as("one loop per listed CPU").isEqualTo(1);
        }

        @Test
        void byDefaultOneUnpinnedLoopPerProcessorThatYieldsAfter500us() throws Exception {
            ProxyConfig config = fixture.load(ConfigFixture.VALID);

            assertThat(config.workers().cpuAffinity()).isEqualTo(CpuAffinity.NONE);
            assertThat(config.workers().threadCount(6)).isEqualTo(6);
            assertThat(config.workers().yieldAfter()).isEqualTo(Duration.ofNanos(500_000));
        }

        @Test
        void yieldAfterIsADurationAndZeroTurnsItOff() throws Exception {
            assertThat(fixture.load(ConfigFixture.VALID + "workers: { yieldAfter: 200us }\n").workers().yieldAfter())
                    .isEqualTo(Duration.ofNanos(200_000));
            assertThat(fixture.load(ConfigFixture.VALID + "workers: { yieldAfter: 0s }\n").workers().yieldAfter())
                    .isZero();
        }

        @Test
        void theTransportIsAutoUnlessOneIsNamed() throws Exception {
            assertThat(fixture.load(ConfigFixture.VALID).workers().transport()).isEqualTo(IoTransport.AUTO);
            assertThat(fixture.load(ConfigFixture.VALID + "workers: { transport: io_uring }\n").workers().transport())
                    .isEqualTo(IoTransport.IO_URING);
            assertThat(fixture.problems(ConfigFixture.VALID + "workers: { transport: uring }\n")).containsExactly(
                    "workers.transport: \"uring\" (expected: one of auto, epoll, io_uring, nio)");
        }

        @Test
        void autoPinsOneLoopPerProcessorUnlessThreadsSaysOtherwise() throws Exception {
            assertThat(fixture.load(ConfigFixture.VALID + "workers: { cpuAffinity: auto }\n").workers()
                    .threadCount(4)).isEqualTo(4);
            assertThat(fixture.load(ConfigFixture.VALID + "workers: { threads: 2, cpuAffinity: auto }\n").workers()
                    .threadCount(4)).isEqualTo(2);
        }

        @Test
        void everyBadValueIsReportedWithItsPath() {
            assertThat(fixture.problems(ConfigFixture.VALID + "workers: { threads: 0, cpuAffinity: 3-1 }\n"))
                    .containsExactly(
                            "workers.cpuAffinity: \"3-1\" (expected: none, auto, or a CPU list like \"0-3,6\""
                                    + " - a range runs from the lower CPU to the higher)",
                            "workers.threads: 0 (expected: 1 to 1024, or leave it out for one per CPU)");
            assertThat(fixture.problems(ConfigFixture.VALID + "workers: { threads: 5000, cpuAffinity: [0, 1] }\n"))
                    .containsExactly(
                            "workers.cpuAffinity: a list (expected: none, auto, or a CPU list like \"0-3,6\")",
                            "workers.threads: 5000 (expected: 1 to 1024, or leave it out for one per CPU)");
            assertThat(fixture.problems(ConfigFixture.VALID + "workers: { yieldAfter: 2s }\n"))
                    .containsExactly("workers.yieldAfter: 2s (expected: 0s to 1s; 0s never yields)");
            assertThat(fixture.problems(ConfigFixture.VALID + "workers: { yieldAfter: 500 }\n")).singleElement()
                    .asString().startsWith("workers.yieldAfter: 500 (expected: a duration like 500ms");
        }
    }
}
