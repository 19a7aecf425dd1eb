package dev.mtlsproxy.core.identity;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mtlsproxy.core.testing.TestPki;
import io.netty.pkitesting.CertificateBuilder;
import io.netty.pkitesting.X509Bundle;
import java.math.BigInteger;
import java.net.URI;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;
import javax.security.auth.x500.X500Principal;
import org.bouncycastle.asn1.x509.GeneralName;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/** What a verified client certificate says about its holder, read once into a {@link PeerIdentity}. */
class PeerIdentitiesTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";

    @TempDir
    static Path dir;
    static TestPki pki;

    @BeforeAll
    static void mint() {
        pki = TestPki.create(dir);
    }

    @Test
    void spiffeIdIsTheSingleSpiffeUriSan() throws Exception {
        PeerIdentity peer = PeerIdentities.fromCertificate(pki.client(ORDERS).getCertificate());

        assertThat(peer.spiffeId()).isEqualTo(ORDERS);
        assertThat(peer.uriSans()).containsExactly(ORDERS);
        assertThat(peer.displayName()).isEqualTo(ORDERS);
    }

    @Test
    void everySanTypeIsReadInCertificateOrder() throws Exception {
        X509Bundle cert = pki.client(ORDERS, b -> b
                .addSanDnsName("Orders.Shop.Internal")
                .addSanDnsName("orders-v2.shop.internal")
                .addSanUriName(uri("https://docs.example.test/orders"))
                .addSanRfc822Name("Orders-Team@Example.test")
                .addSanIpAddress("10.1.2.3")
                .addSanIpAddress("2001:db8::1"));

        PeerIdentity peer = PeerIdentities.fromCertificate(cert.getCertificate());

        assertThat(peer.uriSans()).containsExactly(ORDERS, "https://docs.example.test/orders");
        // DNS names compare case-insensitively, so they are stored lower-cased; nothing else is rewritten.
        assertThat(peer.dnsSans()).containsExactly("orders.shop.internal", "orders-v2.shop.internal");
        assertThat(peer.emailSans()).containsExactly("Orders-Team@Example.test");
        assertThat(peer.ipSans()).containsExactly("10.1.2.3", "2001:db8:0:0:0:0:0:1");
    }

    @Test
    void subjectAndIssuerAreReadInRfc2253Form() throws Exception {
        X509Bundle cert = pki.client(ORDERS, b -> b.subject("CN=orders,OU=shop,OU=payments,O=Example Corp"));

        PeerIdentity peer = PeerIdentities.fromCertificate(cert.getCertificate());

        assertThat(peer.subject()).isEqualTo("CN=orders,OU=shop,OU=payments,O=Example Corp");
        assertThat(peer.subjectCn()).isEqualTo("orders");
        assertThat(peer.subjectOu()).containsExactly("shop", "payments");
        assertThat(peer.subjectO()).containsExactly("Example Corp");
        assertThat(peer.issuer()).isEqualTo("CN=test root CA,O=mtls-proxy tests");
    }

    @Test
    void escapedCharactersInTheSubjectAreUnescapedInItsAttributes() throws Exception {
        X509Bundle cert = pki.client(ORDERS, b -> b.subject("CN=Smith\\, John,O=A\\+B \\\"Ltd\\\""));

        PeerIdentity peer = PeerIdentities.fromCertificate(cert.getCertificate());

        assertThat(peer.subjectCn()).isEqualTo("Smith, John");
        assertThat(peer.subjectO()).containsExactly("A+B \"Ltd\"");
        assertThat(peer.subject()).isEqualTo("CN=Smith\\, John,O=A\\+B \\\"Ltd\\\"");
    }

    @Test
    void aSubjectWithTwoCommonNamesHasNoneSinceToolsDisagreeOnWhichItIs() throws Exception {
        // OpenSSL reads the first CN of the certificate, Go the last: a subjectCn grant must not pick for them.
        for (String subject : List.of("CN=guest,CN=admin,O=Example Corp", "CN=guest+CN=admin,O=Example Corp")) {
            X509Bundle cert = pki.client(ORDERS, b -> b.subject(subject));

            PeerIdentity peer = PeerIdentities.fromCertificate(cert.getCertificate());

            assertThat(peer.subjectCn()).as(subject).isNull();
            assertThat(new X500Principal(peer.subject())).isEqualTo(new X500Principal(subject));
        }
    }

    @Test
    void aSecondCommonNameThatIsNoTextStillMakesTwo() throws Exception {
        // "#1c..." is a UniversalString "guest": the JDK prints it in hex, as it does any value whose string type it
        // does not decode, but OpenSSL decodes it and reads it as the CN (the first). Counting only the CNs the JDK
        // printed as text would make "admin" the one CN, a name OpenSSL would not give this certificate.
        for (String subject : List.of("CN=#1c140000006700000075000000650000007300000074,CN=admin,O=Example Corp",
                "CN=admin,CN=#040667756573740a,O=Example Corp")) {
            X509Bundle cert = pki.client(ORDERS, b -> b.subject(subject));

            PeerIdentity peer = PeerIdentities.fromCertificate(cert.getCertificate());

            assertThat(peer.subjectCn()).as(subject).isNull();
            assertThat(peer.subjectO()).containsExactly("Example Corp");
        }
    }

    @Test
    void everyAttributeOfAMultiValuedRdnIsRead() throws Exception {
        X509Bundle cert = pki.client(ORDERS, b -> b.subject("OU=ops+CN=admin+O=Example Corp,OU=payments"));

        PeerIdentity peer = PeerIdentities.fromCertificate(cert.getCertificate());

        assertThat(peer.subjectCn()).isEqualTo("admin");
        assertThat(peer.subjectOu()).containsExactlyInAnyOrder("ops", "payments");
        assertThat(peer.subjectO()).containsExactly("Example Corp");
    }

    @Test
    void subjectWithoutCommonNameHasNullCn() throws Exception {
        X509Bundle cert = pki.client(ORDERS, b -> b.subject("O=mtls-proxy tests"));

        PeerIdentity peer = PeerIdentities.fromCertificate(cert.getCertificate());

        assertThat(peer.subjectCn()).isNull();
        assertThat(peer.subjectOu()).isEmpty();
        assertThat(peer.subjectO()).containsExactly("mtls-proxy tests");
    }

    @Test
    void serialIsLowerCaseHex() throws Exception {
        X509Bundle cert = pki.client(ORDERS, b -> b.serial(new BigInteger("00C0FFEE1234ABCD", 16)));

        assertThat(PeerIdentities.fromCertificate(cert.getCertificate()).serialHex()).isEqualTo("c0ffee1234abcd");
    }

    @Test
    void sha256IsTheLowerCaseHexFingerprintOfTheDer() throws Exception {
        X509Certificate cert = pki.client(ORDERS).getCertificate();
        byte[] digest = MessageDigest.getInstance("SHA-256").digest(cert.getEncoded());
        // As `openssl x509 -noout -fingerprint -sha256` prints it, without colons and lower-cased.
        StringBuilder opensslStyle = new StringBuilder();
        for (byte b : digest) {
            opensslStyle.append(opensslStyle.length() == 0 ? "" : ":").append(String.format("%02X", b & 0xff));
        }
        String expected = opensslStyle.toString().replace(":", "").toLowerCase(Locale.ROOT);

        String sha256 = PeerIdentities.fromCertificate(cert).sha256();

        assertThat(sha256).isEqualTo(expected).hasSize(64).matches("[0-9a-f]{64}");
    }

    @Test
    void differentCertificatesForTheSameWorkloadHaveDifferentFingerprints() throws Exception {
        String first = PeerIdentities.fromCertificate(pki.client(ORDERS).getCertificate()).sha256();
        String second = PeerIdentities.fromCertificate(pki.client(ORDERS).getCertificate()).sha256();

        assertThat(first).isNotEqualTo(second);
    }

    @Test
    void notAfterIsTheEndOfValidity() throws Exception {
        Instant notAfter = Instant.now().plus(3, ChronoUnit.HOURS).truncatedTo(ChronoUnit.SECONDS);
        X509Bundle cert = pki.client(ORDERS, b -> b.notAfter(notAfter));

        assertThat(PeerIdentities.fromCertificate(cert.getCertificate()).notAfter()).isEqualTo(notAfter);
    }

    @Test
    void namesTheJdkCannotReadAreNoIdentityRatherThanNoNames() throws Exception {
        // java.net.URI refuses the braces (printable ASCII, so no malformed name), and the JDK then drops the whole
        // extension, ORDERS included.
        X509Certificate cert = TestPki.clientWithRawUris(pki.root(), "spiffe://prod.test/a{b}", ORDERS)
                .getCertificate();

        assertThatThrownBy(() -> PeerIdentities.fromCertificate(cert))
                .isInstanceOf(java.security.cert.CertificateParsingException.class)
                .hasMessage("the subject alternative names cannot be read");
    }

    /**
     * Names no CA should issue, which the JDK reads without complaint: a NUL would make "admin.prod.test\0.evil.test"
     * one name to a C string and another to us, a quote would end a quoted XFCC value, and Go's crypto/x509 refuses
     * any non-ASCII octet in these three IA5String names at parse.
     */
    static Stream<Arguments> malformedNames() {
        return Stream.of(
                Arguments.of("dNSName", GeneralName.dNSName, "admin.prod.test\0.evil.test"),
                Arguments.of("dNSName", GeneralName.dNSName, "admin.prod.test\".evil.test"),
                Arguments.of("dNSName", GeneralName.dNSName, "admin.prod.test,evil.test"),
                Arguments.of("dNSName", GeneralName.dNSName, "admin prod.test"),
                Arguments.of("dNSName", GeneralName.dNSName, "adm\u00e9n.prod.test"),
                Arguments.of("dNSName", GeneralName.dNSName, "admin.prod.test\n"),
                Arguments.of("rfc822Name", GeneralName.rfc822Name, "ops@prod.test\0@evil.test"),
                Arguments.of("rfc822Name", GeneralName.rfc822Name, "op\u00e9@prod.test"),
                Arguments.of("rfc822Name", GeneralName.rfc822Name, "ops@prod.test\r\nx: y"),
                Arguments.of("uniformResourceIdentifier", GeneralName.uniformResourceIdentifier,
                        "spiffe://prod.test/ns/ops\0/sa/admin"),
                Arguments.of("uniformResourceIdentifier", GeneralName.uniformResourceIdentifier,
                        "spiffe://prod.test/ns/\u00e9/sa/admin"),
                Arguments.of("uniformResourceIdentifier", GeneralName.uniformResourceIdentifier,
                        "spiffe://prod.test/ns/ops\u007f"));
    }

    @ParameterizedTest(name = "{0} {2}")
    @MethodSource("malformedNames")
    void aNameWithAControlByteOrANonAsciiOctetIsRefusedAsMalformed(String type, int tag, String name) {
        X509Certificate cert = TestPki.clientWithRawSans(pki.root(), tag, name).getCertificate();

        assertThatThrownBy(() -> PeerIdentities.fromCertificate(cert))
                .isInstanceOf(java.security.cert.CertificateParsingException.class)
                .hasMessage("the subject alternative names cannot be read: a " + type + " is malformed");
    }

    @ParameterizedTest(name = "{0} {2}")
    @MethodSource("wellFormedNames")
    void namesAsCasIssueThemAreRead(String type, int tag, String name) throws Exception {
        X509Certificate cert = TestPki.clientWithRawSans(pki.root(), tag, name).getCertificate();

        PeerIdentity peer = PeerIdentities.fromCertificate(cert);

        assertThat(List.of(peer.dnsSans(), peer.emailSans(), peer.uriSans())).anySatisfy(
                names -> assertThat(names).containsExactly(name.toLowerCase(Locale.ROOT)));
    }

    static Stream<Arguments> wellFormedNames() {
        return Stream.of(
                Arguments.of("dNSName", GeneralName.dNSName, "orders.prod.test"),
                Arguments.of("dNSName", GeneralName.dNSName, "*.prod.test"),
                Arguments.of("dNSName", GeneralName.dNSName, "_grpc.orders-1.prod.test"),
                Arguments.of("dNSName", GeneralName.dNSName, "orders.prod.test."),
                Arguments.of("rfc822Name", GeneralName.rfc822Name, "ops+oncall@prod.test"),
                Arguments.of("uniformResourceIdentifier", GeneralName.uniformResourceIdentifier,
                        "spiffe://prod.test/ns/ops/sa/admin"),
                Arguments.of("uniformResourceIdentifier", GeneralName.uniformResourceIdentifier,
                        "https://orders.prod.test/a%20b?x=1&y=2#f"));
    }

    @Test
    void twoSpiffeUrisMeanNoSpiffeId() throws Exception {
        X509Bundle cert = pki.client(ORDERS, b -> b.addSanUriName(uri("spiffe://prod.test/ns/ops/sa/admin")));

        PeerIdentity peer = PeerIdentities.fromCertificate(cert.getCertificate());

        assertThat(peer.spiffeId()).isNull();
        assertThat(peer.uriSans()).containsExactly(ORDERS, "spiffe://prod.test/ns/ops/sa/admin");
        assertThat(peer.displayName()).isEqualTo(peer.subject());
    }

    @Test
    void secondSpiffeUriInAnotherCaseStillCountsAsASecondSpiffeId() throws Exception {
        X509Bundle cert = pki.client(ORDERS, b -> b.addSanUriName(uri("SPIFFE://prod.test/ns/ops/sa/admin")));

        assertThat(PeerIdentities.fromCertificate(cert.getCertificate()).spiffeId()).isNull();
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {
        "spiffe://prod.test/ns/shop/../ops/sa/admin",
        "spiffe://prod.test/ns/shop/./sa/orders",
        "spiffe://prod.test/ns/shop/%2e%2e/ops",
        "spiffe://prod.test/ns/shop//sa/orders",
        "spiffe://prod.test/ns/shop/",
        "spiffe://prod.test/ns/shop?sa=admin",
        "spiffe://prod.test/ns/shop#admin",
        "spiffe://Prod.test/ns/shop",
        "SPIFFE://prod.test/ns/shop",
        "spiffe://prod.test:8443/ns/shop",
        "spiffe://admin@prod.test/ns/shop",
        "spiffe:///ns/shop"})
    void aSpiffeUriOutsideTheSpiffeIdSyntaxIsNoSpiffeId(String presented) throws Exception {
        X509Bundle odd = TestPki.issue(pki.root(), presented, b -> b);

        PeerIdentity peer = PeerIdentities.fromCertificate(odd.getCertificate());

        assertThat(peer.spiffeId()).isNull();
        assertThat(peer.uriSans()).as("still shown as it was presented").containsExactly(presented);
    }

    @Test
    void aCaCertificateWithASpiffeUriIsNoSpiffeIdButKeepsItsOtherNames() throws Exception {
        X509Bundle ca = pki.client(ORDERS, b -> b.setIsCertificateAuthority(true).addSanDnsName("orders.shop.test"));

        PeerIdentity peer = PeerIdentities.fromCertificate(ca.getCertificate());

        assertThat(peer.spiffeId()).isNull();
        assertThat(peer.signingCertificate()).isTrue();
        assertThat(peer.uriSans()).as("still shown as presented").containsExactly(ORDERS);
        assertThat(peer.dnsSans()).containsExactly("orders.shop.test");
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"keyCertSign", "cRLSign"})
    void aCertificateThatMaySignOthersIsNoSpiffeId(String usage) throws Exception {
        X509Bundle signer = pki.client(ORDERS, b -> b.setKeyUsage(true, CertificateBuilder.KeyUsage.digitalSignature,
                CertificateBuilder.KeyUsage.valueOf(usage)));

        PeerIdentity peer = PeerIdentities.fromCertificate(signer.getCertificate());

        assertThat(peer.spiffeId()).isNull();
        assertThat(peer.signingCertificate()).isTrue();
    }

    @Test
    void aLeafWithTheUsualKeyUsageKeepsItsSpiffeId() throws Exception {
        X509Bundle leaf = pki.client(ORDERS, b -> b.setKeyUsage(true, CertificateBuilder.KeyUsage.digitalSignature,
                CertificateBuilder.KeyUsage.keyAgreement));

        PeerIdentity peer = PeerIdentities.fromCertificate(leaf.getCertificate());

        assertThat(peer.spiffeId()).isEqualTo(ORDERS);
        assertThat(peer.signingCertificate()).isFalse();
    }

    @Test
    void aSecondUriOfAnySchemeMeansNoSpiffeIdAsAnSvidHasExactlyOneUri() throws Exception {
        X509Bundle cert = pki.client(ORDERS, b -> b.addSanUriName(uri("https://prod.test/ns/ops/sa/admin"))
                .addSanDnsName("orders.shop.test"));

        PeerIdentity peer = PeerIdentities.fromCertificate(cert.getCertificate());

        assertThat(peer.spiffeId()).isNull();
        assertThat(peer.signingCertificate()).as("a leaf, just no SVID").isFalse();
        assertThat(peer.uriSans()).as("still shown as presented")
                .containsExactly(ORDERS, "https://prod.test/ns/ops/sa/admin");
        assertThat(peer.dnsSans()).containsExactly("orders.shop.test");
        assertThat(peer.displayName()).isEqualTo(peer.subject());
    }

    @Test
    void aSecondUriBeforeTheSpiffeOneMeansNoSpiffeIdEither() throws Exception {
        X509Bundle cert = TestPki.issue(pki.root(), "https://prod.test/orders", b -> b.addSanUriName(uri(ORDERS)));

        PeerIdentity peer = PeerIdentities.fromCertificate(cert.getCertificate());

        assertThat(peer.uriSans()).containsExactly("https://prod.test/orders", ORDERS);
        assertThat(peer.spiffeId()).isNull();
    }

    @Test
    void aSingleUriOfAnotherSchemeIsNoSpiffeId() throws Exception {
        X509Bundle cert = TestPki.issue(pki.root(), "https://prod.test/orders", b -> b);

        assertThat(PeerIdentities.fromCertificate(cert.getCertificate()).spiffeId()).isNull();
    }

    @Test
    void certificateWithoutSansHasEmptyListsAndIsNamedBySubject() throws Exception {
        X509Bundle cert = new CertificateBuilder()
                .subject("CN=legacy-batch,O=mtls-proxy tests")
                .addExtendedKeyUsageClientAuth()
                .ecp256()
                .buildIssuedBy(pki.root());

        PeerIdentity peer = PeerIdentities.fromCertificate(cert.getCertificate());

        assertThat(peer.spiffeId()).isNull();
        assertThat(peer.uriSans()).isEmpty();
        assertThat(peer.dnsSans()).isEmpty();
        assertThat(peer.emailSans()).isEmpty();
        assertThat(peer.ipSans()).isEmpty();
        assertThat(peer.subjectCn()).isEqualTo("legacy-batch");
        assertThat(peer.displayName()).isEqualTo("CN=legacy-batch,O=mtls-proxy tests");
    }

    private static URI uri(String uri) {
        return URI.create(uri);
    }
}
