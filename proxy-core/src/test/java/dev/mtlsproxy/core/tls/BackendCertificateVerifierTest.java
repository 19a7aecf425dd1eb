package dev.mtlsproxy.core.tls;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mtlsproxy.core.testing.TestPki;
import io.netty.pkitesting.CertificateBuilder;
import io.netty.pkitesting.X509Bundle;
import java.io.ByteArrayInputStream;
import java.math.BigInteger;
import java.security.KeyPairGenerator;
import java.security.PublicKey;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.Arrays;
import java.util.Date;
import java.util.List;
import java.util.function.UnaryOperator;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.junit.jupiter.api.Test;

/**
 * How the backend verifier finds the CA a chain ended at, so that CA's own limits can be judged (the JDK's trust
 * manager accepts a chain without saying under which CA), and that checking a chain leaves its certificates as they
 * were. The handshake-level scenarios are in BackendTlsTest; these use the trust manager without an engine, so no
 * host name is checked.
 */
class BackendCertificateVerifierTest {

    static final String AUTH_TYPE = "ECDHE_ECDSA";
    final Instant now = Instant.now();

    @Test
    void aCaRenewedWithItsOwnKeyCarriesOnWhileItsExpiredSelfIsStillInTheBundle() throws Exception {
        X509Bundle renewed = TestPki.newRoot("backend CA");
        X509Bundle expired = TestPki.reissued(renewed, now.minus(Duration.ofDays(30)), now.minus(Duration.ofDays(1)));
        X509Bundle backend = serverIssuedBy(renewed, b -> b);

        assertThatCode(() -> verifier(expired, renewed).checkServerTrusted(chain(backend), AUTH_TYPE))
                .doesNotThrowAnyException();
        assertThatThrownBy(() -> verifier(expired).checkServerTrusted(chain(backend), AUTH_TYPE))
                .isInstanceOf(BackendCertificateException.class)
                .hasMessage("backend CA expired: CN=backend CA,O=mtls-proxy tests");
    }

    @Test
    void aChainSentOutOfOrderWithADuplicateAndAStrangerPassesAsThePathItHolds() throws Exception {
        X509Bundle root = TestPki.newRoot("backend root");
        X509Bundle upper = TestPki.intermediate(root, "backend upper intermediate");
        X509Bundle issuing = TestPki.intermediate(upper, "backend issuing intermediate");
        X509Bundle backend = serverIssuedBy(issuing, b -> b);
        X509Bundle stray = TestPki.newRoot("unrelated CA");

        // OpenSSL, BoringSSL and Go build the path from what was sent, as the proxy does for clients (RFC 8446 4.4.2).
        assertThatCode(() -> verifier(root).checkServerTrusted(chain(backend, stray, upper, issuing, upper, root),
                AUTH_TYPE)).doesNotThrowAnyException();
        assertThatThrownBy(() -> verifier(root).checkServerTrusted(chain(backend, stray, upper), AUTH_TYPE))
                .as("the leaf's issuer was not sent")
                .isInstanceOf(BackendCertificateException.class)
                .hasMessage("backend certificate not trusted");
    }

    @Test
    void aChainSentOutOfOrderIsStillHeldToTheLimitsOfTheCaItEndsAt() throws Exception {
        X509Bundle expired = TestPki.newRoot("expired backend root", b -> b
                .notBefore(now.minus(Duration.ofDays(30))).notAfter(now.minus(Duration.ofDays(1))));
        X509Bundle upper = TestPki.intermediate(expired, "backend upper intermediate");
        X509Bundle issuing = TestPki.intermediate(upper, "backend issuing intermediate");
        X509Bundle backend = serverIssuedBy(issuing, b -> b);

        assertThatThrownBy(() -> verifier(expired).checkServerTrusted(chain(backend, upper, issuing), AUTH_TYPE))
                .isInstanceOf(BackendCertificateException.class)
                .hasMessage("backend CA expired: CN=expired backend root,O=mtls-proxy tests");
    }

    @Test
    void moreCertificatesThanAClientMaySendAreRefusedBeforeAnyPathIsBuilt() throws Exception {
        X509Bundle root = TestPki.newRoot("backend root");
        X509Bundle backend = serverIssuedBy(root, b -> b);
        X509Bundle[] sent = new X509Bundle[ClientCertificateVerifier.MAX_PRESENTED + 1];
        Arrays.fill(sent, root);
        sent[0] = backend;

        assertThatThrownBy(() -> verifier(root).checkServerTrusted(chain(sent), AUTH_TYPE))
                .isInstanceOf(BackendCertificateException.class)
                .hasMessage("backend certificate not trusted: the backend sent 11 certificates, at most 10 accepted");
    }

    @Test
    void aPinnedSelfSignedBackendCertificateIsItsOwnCaAndHeldToItsDates() throws Exception {
        X509Bundle pinned = selfSignedServer(b -> b);
        X509Bundle pinnedExpired = selfSignedServer(b -> b
                .notBefore(now.minus(Duration.ofDays(30))).notAfter(now.minus(Duration.ofDays(1))));

        assertThatCode(() -> verifier(pinned).checkServerTrusted(chain(pinned), AUTH_TYPE))
                .doesNotThrowAnyException();
        // The JDK accepts a certificate found among the anchors as it is, without looking at its dates.
        assertThatThrownBy(() -> verifier(pinnedExpired).checkServerTrusted(chain(pinnedExpired), AUTH_TYPE))
                .isInstanceOf(BackendCertificateException.class)
                .hasMessage("backend CA expired: CN=pinned backend");
    }

    @Test
    void aCaWhoseUsageExcludesServerAuthCannotVouchForABackend() throws Exception {
        X509Bundle clientsOnly = TestPki.newRoot("client-only CA", b -> b.addExtendedKeyUsageClientAuth());
        X509Bundle backend = serverIssuedBy(clientsOnly, b -> b);

        assertThatThrownBy(() -> verifier(clientsOnly).checkServerTrusted(chain(backend), AUTH_TYPE))
                .isInstanceOf(BackendCertificateException.class)
                .hasMessage("backend CA not for server authentication (extended key usage): "
                        + "CN=client-only CA,O=mtls-proxy tests");
    }

    @Test
    void checkingAChainUnderADnsConstrainedCaLeavesTheLeafWithOnlyItsOwnNames() throws Exception {
        X509Bundle root = TestPki.newRoot("backend root");
        X509Bundle delegated = TestPki.dnsConstrainedIntermediate(root, "delegated backend CA", "partner.test");
        X509Bundle backend = new CertificateBuilder()
                .subject("CN=api.partner.test")
                .addSanIpAddress("127.0.0.1")
                .addExtendedKeyUsageServerAuth()
                .notBefore(now.minus(Duration.ofHours(1)))
                .notAfter(now.plus(Duration.ofHours(12)))
                .ecp256()
                .buildIssuedBy(delegated);
        // As Netty hands a peer's certificates over: the JDK's cached instance, shared by all who decode the same bytes.
        X509Certificate leaf = cachedInstance(backend);

        verifier(root).checkServerTrusted(new X509Certificate[] {leaf, delegated.getCertificate()}, AUTH_TYPE);

        // The JDK's name-constraint check counts the CN as a DNS name; it must not have become one of the leaf's.
        assertThat(leaf.getSubjectAlternativeNames()).containsExactly(List.of(7, "127.0.0.1"));
    }

    @Test
    void aBackendChainSignedWithSha1OrHoldingAShortRsaKeyIsRefusedAsWeak() throws Exception {
        X509Bundle root = TestPki.newRoot("backend root");
        KeyPairGenerator rsa = KeyPairGenerator.getInstance("RSA");
        rsa.initialize(1024);
        X509Certificate sha1 = signedBy(root, TestPki.newP256Key().getPublic(), "SHA1withECDSA");
        X509Certificate rsa1024 = signedBy(root, rsa.generateKeyPair().getPublic(), "SHA256withECDSA");

        // The JDK's defaults pass both; README holds backends to the clients' rule.
        assertThatThrownBy(() -> verifier(root).checkServerTrusted(new X509Certificate[] {sha1}, AUTH_TYPE))
                .isInstanceOf(BackendCertificateException.class)
                .hasMessage("backend certificate not trusted: weak algorithm, signature algorithm SHA1withECDSA in"
                        + " CN=backend");
        assertThatThrownBy(() -> verifier(root).checkServerTrusted(new X509Certificate[] {rsa1024}, "ECDHE_RSA"))
                .isInstanceOf(BackendCertificateException.class)
                .hasMessage("backend certificate not trusted: weak algorithm, RSA key of 1024 bits in CN=backend");
    }

    @Test
    void anIntermediateWhoseUsageExcludesServerAuthCannotVouchForABackend() throws Exception {
        X509Bundle root = TestPki.newRoot("backend root");
        X509Bundle clientsOnly = new CertificateBuilder()
                .subject("CN=client-only intermediate")
                .setIsCertificateAuthority(true)
                .setKeyUsage(true, CertificateBuilder.KeyUsage.keyCertSign, CertificateBuilder.KeyUsage.cRLSign)
                .addExtendedKeyUsageClientAuth()
                .notBefore(now.minus(Duration.ofHours(1)))
                .notAfter(now.plus(Duration.ofHours(12)))
                .ecp256()
                .buildIssuedBy(root);
        X509Bundle backend = serverIssuedBy(clientsOnly, b -> b);

        // The JDK's PKIX looks at the leaf's extended key usage only.
        assertThatThrownBy(() -> verifier(root).checkServerTrusted(chain(backend, clientsOnly), AUTH_TYPE))
                .isInstanceOf(BackendCertificateException.class)
                .hasMessage("backend certificate not for server authentication (extended key usage of"
                        + " CN=client-only intermediate)");
    }

    /**
     * Weakness is what is wrong with a chain that is otherwise accepted, as for clients, whose CAs' usage PKIX judges
     * first: a chain through a CA that may not vouch for servers is refused for that, whatever it is signed with.
     */
    @Test
    void aChainThroughACaNotForServersIsRefusedForThatEvenWhenItIsAlsoWeak() throws Exception {
        X509Bundle root = TestPki.newRoot("backend root");
        X509Bundle clientsOnly = new CertificateBuilder()
                .subject("CN=client-only intermediate")
                .setIsCertificateAuthority(true)
                .setKeyUsage(true, CertificateBuilder.KeyUsage.keyCertSign, CertificateBuilder.KeyUsage.cRLSign)
                .addExtendedKeyUsageClientAuth()
                .notBefore(now.minus(Duration.ofHours(1)))
                .notAfter(now.plus(Duration.ofHours(12)))
                .ecp256()
                .buildIssuedBy(root);
        X509Certificate sha1Leaf = signedBy(clientsOnly, TestPki.newP256Key().getPublic(), "SHA1withECDSA");

        assertThatThrownBy(() -> verifier(root).checkServerTrusted(
                new X509Certificate[] {sha1Leaf, clientsOnly.getCertificate()}, AUTH_TYPE))
                .isInstanceOf(BackendCertificateException.class)
                .hasMessage("backend certificate not for server authentication (extended key usage of"
                        + " CN=client-only intermediate)");
    }

    @Test
    void anIntermediatePinnedAsTheCaIsHeldToItsPathLengthAndFailsClosedOnItsNameConstraints() throws Exception {
        X509Bundle root = TestPki.newRoot("backend root");
        X509Bundle noFurtherCas = new CertificateBuilder()
                .subject("CN=pinned intermediate")
                .setIsCertificateAuthority(true)
                .setPathLengthConstraint(java.util.OptionalInt.of(0))
                .notBefore(now.minus(Duration.ofHours(1)))
                .notAfter(now.plus(Duration.ofHours(12)))
                .ecp256()
                .buildIssuedBy(root);
        X509Bundle below = TestPki.intermediate(noFurtherCas, "one too many");
        X509Bundle partner = TestPki.dnsConstrainedIntermediate(root, "pinned partner intermediate", "backend.test");

        assertThatCode(() -> verifier(noFurtherCas).checkServerTrusted(
                chain(serverIssuedBy(noFurtherCas, b -> b), noFurtherCas), AUTH_TYPE)).doesNotThrowAnyException();
        assertThatThrownBy(() -> verifier(noFurtherCas).checkServerTrusted(
                chain(serverIssuedBy(below, b -> b), below, noFurtherCas), AUTH_TYPE))
                .isInstanceOf(BackendCertificateException.class)
                .hasMessage("backend certificate not trusted: more intermediates than the path length of"
                        + " CN=pinned intermediate allows");
        // The JDK applies no constraints of a trust anchor, and cannot validate a path through a CA that is no root.
        assertThatThrownBy(() -> verifier(partner).checkServerTrusted(chain(serverIssuedBy(partner, b -> b)),
                AUTH_TYPE))
                .isInstanceOf(BackendCertificateException.class)
                .hasMessage("backend certificate not trusted: the name constraints of CN=pinned partner"
                        + " intermediate,O=mtls-proxy tests, which is not a root, cannot be applied (configure its root instead)");
    }

    @Test
    void aBundleHoldingANameConstrainedIntermediateAndItsRootHoldsChainsToItsConstraints() throws Exception {
        X509Bundle root = TestPki.newRoot("backend root");
        X509Bundle partner = TestPki.dnsConstrainedIntermediate(root, "partner intermediate", "backend.test");
        X509Bundle inside = serverIssuedBy(partner, b -> b);
        X509Bundle outside = serverIssuedBy(partner, b -> b.addSanDnsName("orders.elsewhere.test"));

        // The path stops at the first trusted CA, the intermediate; its root applies its constraints as OpenSSL would.
        assertThatCode(() -> verifier(partner, root).checkServerTrusted(chain(inside, partner, root), AUTH_TYPE))
                .doesNotThrowAnyException();
        assertThatCode(() -> verifier(partner, root).checkServerTrusted(chain(inside), AUTH_TYPE))
                .doesNotThrowAnyException();
        assertThatThrownBy(() -> verifier(partner, root).checkServerTrusted(chain(outside, partner), AUTH_TYPE))
                .isInstanceOf(BackendCertificateException.class)
                .hasMessage("backend certificate not trusted: a name outside the name constraints of"
                        + " CN=partner intermediate,O=mtls-proxy tests");
    }

    @Test
    void aNameConstrainedIntermediateIsJudgedUpToItsRootAndThatRootToItsOwnLimits() throws Exception {
        X509Bundle expired = TestPki.newRoot("expired backend root", b -> b
                .notBefore(now.minus(Duration.ofDays(30))).notAfter(now.minus(Duration.ofDays(1))));
        X509Bundle partner = TestPki.dnsConstrainedIntermediate(expired, "partner intermediate", "backend.test");
        X509Bundle renewed = TestPki.reissued(expired, now.minus(Duration.ofDays(1)), now.plus(Duration.ofDays(30)));
        X509Bundle backend = serverIssuedBy(partner, b -> b);

        assertThatThrownBy(() -> verifier(partner, expired).checkServerTrusted(chain(backend), AUTH_TYPE))
                .isInstanceOf(BackendCertificateException.class)
                .hasMessage("backend CA expired: CN=expired backend root,O=mtls-proxy tests");
        // The root renewed with its own key, next to its expired self: one that passes is enough.
        assertThatCode(() -> verifier(partner, expired, renewed).checkServerTrusted(chain(backend), AUTH_TYPE))
                .doesNotThrowAnyException();
    }

    @Test
    void twoCasWhoseNameConstraintsPermitDisjointNamesVouchForNoBackendAndTheRefusalNamesThem() throws Exception {
        // RFC 5280 6.1.4 (g): below both, no DNS name is permitted at all. JDK 17's PKIX throws a RuntimeException on
        // such a path rather than refuse it, which BoringSSL's engine would log as "General OpenSslEngine problem".
        X509Bundle root = TestPki.newRoot("backend root");
        X509Bundle partner = TestPki.dnsConstrainedIntermediate(root, "partner intermediate", "partner.test");
        X509Bundle ours = TestPki.dnsConstrainedIntermediate(partner, "backend intermediate", "backend.test");

        assertThatThrownBy(() -> verifier(root).checkServerTrusted(chain(serverIssuedBy(ours, b -> b), ours, partner),
                AUTH_TYPE))
                .isInstanceOf(BackendCertificateException.class)
                .hasMessage("backend certificate not trusted: the name constraints of CN=backend intermediate,"
                        + "O=mtls-proxy tests and CN=partner intermediate,O=mtls-proxy tests permit no name of one"
                        + " type in common");
    }

    @Test
    void disjointNameConstraintsOfTheTrustedRootAndAnIntermediateAreRefusedAsTwoIntermediatesAre() throws Exception {
        // The JDK applies no constraints of a trust anchor: the proxy validates the path again with the root on top.
        X509Bundle partnerRoot = TestPki.dnsConstrainedRoot("partner root", "partner.test");
        X509Bundle ours = TestPki.dnsConstrainedIntermediate(partnerRoot, "backend intermediate", "backend.test");

        // BouncyCastle, which minted the root, encodes its name with O first.
        assertThatThrownBy(() -> verifier(partnerRoot).checkServerTrusted(chain(serverIssuedBy(ours, b -> b), ours),
                AUTH_TYPE))
                .isInstanceOf(BackendCertificateException.class)
                .hasMessage("backend certificate not trusted: the name constraints of CN=backend intermediate,"
                        + "O=mtls-proxy tests and O=mtls-proxy tests,CN=partner root permit no name of one type in"
                        + " common");
    }

    @Test
    void disjointIpConstraintsAreRefusedEvenForALeafNamedByNoIpAddress() throws Exception {
        // Here the JDK throws a NullPointerException, whatever the leaf holds: the path is refused without being
        // judged further (OpenSSL and Go would let a leaf without IP SANs through; README says why the proxy does not).
        X509Bundle root = TestPki.newRoot("backend root");
        X509Bundle office = TestPki.ipConstrainedIntermediate(root, "office network CA", "10.0.0.0/8");
        X509Bundle loopback = TestPki.ipConstrainedIntermediate(office, "loopback CA", "127.0.0.0/8");

        assertThatThrownBy(() -> verifier(root).checkServerTrusted(
                chain(serverIssuedBy(loopback, b -> b), loopback, office), AUTH_TYPE))
                .isInstanceOf(BackendCertificateException.class)
                .hasMessage("backend certificate not trusted: the name constraints of CN=loopback CA,O=mtls-proxy tests"
                        + " and CN=office network CA,O=mtls-proxy tests permit no name of one type in common");
    }

    @Test
    void aStrayCertificateAfterTheChainDoesNotHideThatTheCaExpired() throws Exception {
        X509Bundle expired = TestPki.newRoot("expired backend root", b -> b
                .notBefore(now.minus(Duration.ofDays(30))).notAfter(now.minus(Duration.ofDays(1))));
        X509Bundle intermediate = TestPki.intermediate(expired, "backend intermediate");
        X509Bundle backend = serverIssuedBy(intermediate, b -> b);
        X509Bundle stray = TestPki.newRoot("unrelated CA");

        assertThatThrownBy(() -> verifier(expired).checkServerTrusted(chain(backend, intermediate, stray),
                AUTH_TYPE))
                .isInstanceOf(BackendCertificateException.class)
                .hasMessage("backend CA expired: CN=expired backend root,O=mtls-proxy tests");
    }

    @Test
    void aBackendChainWithMoreThanFiveCertificatesBelowTheCaIsRefusedAsAClientChainIs() throws Exception {
        X509Bundle root = TestPki.newRoot("backend root");
        List<X509Bundle> issuers = new java.util.ArrayList<>();
        X509Bundle issuer = root;
        for (int i = 1; i <= 5; i++) {
            issuer = TestPki.intermediate(issuer, "intermediate " + i);
            issuers.add(0, issuer);
        }
        List<X509Bundle> fourBelow = issuers.subList(1, 5);
        java.util.ArrayList<X509Bundle> five = new java.util.ArrayList<>(fourBelow);
        five.add(0, serverIssuedBy(issuers.get(1), b -> b));
        java.util.ArrayList<X509Bundle> six = new java.util.ArrayList<>(issuers);
        six.add(0, serverIssuedBy(issuers.get(0), b -> b));

        assertThatCode(() -> verifier(root).checkServerTrusted(chain(five.toArray(X509Bundle[]::new)), AUTH_TYPE))
                .doesNotThrowAnyException();
        // The JDK's PKIX validates a chain in issuing order of any length.
        assertThatThrownBy(() -> verifier(root).checkServerTrusted(chain(six.toArray(X509Bundle[]::new)), AUTH_TYPE))
                .isInstanceOf(BackendCertificateException.class)
                .hasMessage("backend certificate not trusted: 6 certificates below the CA, at most 5 accepted");
    }

    private X509Certificate signedBy(X509Bundle issuer, PublicKey key, String algorithm) throws Exception {
        X509v3CertificateBuilder builder = new JcaX509v3CertificateBuilder(
                X500Name.getInstance(issuer.getCertificate().getSubjectX500Principal().getEncoded()),
                BigInteger.valueOf(now.toEpochMilli()), Date.from(now.minus(Duration.ofHours(1))),
                Date.from(now.plus(Duration.ofHours(12))), new X500Name("CN=backend"), key)
                .addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(KeyPurposeId.id_kp_serverAuth));
        return new JcaX509CertificateConverter().getCertificate(builder.build(
                new JcaContentSignerBuilder(algorithm).build(issuer.getKeyPair().getPrivate())));
    }

    private static X509Certificate cachedInstance(X509Bundle bundle) throws Exception {
        return (X509Certificate) CertificateFactory.getInstance("X.509")
                .generateCertificate(new ByteArrayInputStream(bundle.getCertificate().getEncoded()));
    }

    private X509Bundle serverIssuedBy(X509Bundle issuer, UnaryOperator<CertificateBuilder> customise)
            throws Exception {
        return customise.apply(server("CN=backend")).buildIssuedBy(issuer);
    }

    /** A CA as well, as {@code openssl req -x509} makes one by default (and the Netty builder requires). */
    private X509Bundle selfSignedServer(UnaryOperator<CertificateBuilder> customise) throws Exception {
        return customise.apply(server("CN=pinned backend").setIsCertificateAuthority(true)).buildSelfSigned();
    }

    private CertificateBuilder server(String subject) {
        return new CertificateBuilder()
                .subject(subject)
                .addSanDnsName("backend.test")
                .addExtendedKeyUsageServerAuth()
                .notBefore(now.minus(Duration.ofHours(1)))
                .notAfter(now.plus(Duration.ofHours(12)))
                .ecp256();
    }

    private static BackendCertificateVerifier verifier(X509Bundle... cas) throws Exception {
        return new BackendCertificateVerifier(Arrays.stream(cas).map(X509Bundle::getCertificate).toList(), null);
    }

    private static X509Certificate[] chain(X509Bundle... certificates) {
        return Arrays.stream(certificates).map(X509Bundle::getCertificate).toArray(X509Certificate[]::new);
    }
}
