package dev.mtlsproxy.core.tls;

import static dev.mtlsproxy.core.tls.Rejections.rejection;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;

import dev.mtlsproxy.config.CrlScope;
import dev.mtlsproxy.config.DenyListValues;
import dev.mtlsproxy.config.RevocationConfig;
import dev.mtlsproxy.config.StaleCrlPolicy;
import dev.mtlsproxy.config.TrustAnchorConfig;
import dev.mtlsproxy.core.testing.TestPki;
import io.netty.pkitesting.CertificateBuilder;
import io.netty.pkitesting.X509Bundle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import javax.security.auth.x500.X500Principal;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** CRLs and the deny-list, judged through the real verifier after real PKIX validation, at a fixed instant. */
class RevocationCheckerTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";

    @TempDir
    static Path dir;
    static TestPki pki;
    static Instant now;
    static X509Bundle intermediate;
    static X509Bundle viaIntermediate;
    static X509Bundle direct;

    @BeforeAll
    static void mint() throws Exception {
        pki = TestPki.create(dir);
        now = Instant.now();
        intermediate = TestPki.intermediate(pki.root(), "test intermediate CA");
        viaIntermediate = new CertificateBuilder()
                .subject("CN=orders,O=mtls-proxy tests")
                .addSanUriName(ORDERS)
                .addExtendedKeyUsageClientAuth()
                .notBefore(now.minus(Duration.ofHours(1)))
                .notAfter(now.plus(Duration.ofHours(2)))
                .ecp256()
                .buildIssuedBy(intermediate);
        direct = pki.client(ORDERS);
    }

    private static Path file(String name, String content) throws Exception {
        return Files.writeString(Files.createTempDirectory(dir, "crl").resolve(name), content);
    }

    private static String freshCrl(X509Bundle issuer, X509Certificate... revoked) {
        return TestPki.crl(issuer, now.minus(Duration.ofMinutes(5)), now.plus(Duration.ofHours(1)), revoked);
    }

    /** A verifier trusting the test root as anchor "clients" with these CRL settings, and the deny-list. */
    private static ClientCertificateVerifier verifier(TrustAnchorConfig clients, RevocationConfig denyList,
            List<String> staleSeen) throws Exception {
        Clock clock = Clock.fixed(now, ZoneOffset.UTC);
        RevocationChecker checker = RevocationChecker.load(Map.of("clients", clients), denyList,
                (X500Principal issuer, Instant nextUpdate) -> staleSeen.add(issuer.getName()), clock);
        X509Certificate root = pki.root().getCertificate();
        return new ClientCertificateVerifier(List.of(root), Map.of(root, "clients"), checker, clock);
    }

    private static ClientCertificateVerifier verifier(TrustAnchorConfig clients, List<String> staleSeen)
            throws Exception {
        return verifier(clients, RevocationConfig.NONE, staleSeen);
    }

    private static ClientCertificateVerifier verifier(RevocationConfig denyList, List<String> staleSeen)
            throws Exception {
        return verifier(new TrustAnchorConfig(pki.caPem()), denyList, staleSeen);
    }

    private static TrustAnchorConfig crls(CrlScope scope, StaleCrlPolicy stale, Path... files) {
        return new TrustAnchorConfig(pki.caPem(), List.of(files), scope, stale);
    }

    private static X509Certificate[] chain(X509Bundle... bundles) {
        X509Certificate[] chain = new X509Certificate[bundles.length];
        for (int i = 0; i < bundles.length; i++) {
            chain[i] = bundles[i].getCertificate();
        }
        return chain;
    }

    @Test
    void aCertificateOnItsIssuersCrlIsRevoked() throws Exception {
        Path crl = file("root.crl", freshCrl(pki.root(), direct.getCertificate()));
        ClientCertificateVerifier v = verifier(crls(CrlScope.CHAIN, StaleCrlPolicy.DENY, crl), new ArrayList<>());

        assertThat(rejection(v, chain(direct))).isEqualTo(HandshakeFailureReason.REVOKED);
        assertThatCode(() -> v.verify(chain(pki.client(ORDERS)))).doesNotThrowAnyException();
    }

    @Test
    void chainScopeNeedsACrlFromEveryCaOfTheChainAndRevokesAnIntermediate() throws Exception {
        Path rootCrl = file("root.crl", freshCrl(pki.root()));
        Path intermediateCrl = file("intermediate.crl", freshCrl(intermediate));

        ClientCertificateVerifier onlyRoot = verifier(crls(CrlScope.CHAIN, StaleCrlPolicy.DENY, rootCrl),
                new ArrayList<>());
        assertThat(rejection(onlyRoot, chain(viaIntermediate, intermediate)))
                .as("no CRL from the intermediate: fail closed").isEqualTo(HandshakeFailureReason.REVOKED);

        ClientCertificateVerifier both = verifier(crls(CrlScope.CHAIN, StaleCrlPolicy.DENY, rootCrl,
                intermediateCrl), new ArrayList<>());
        assertThatCode(() -> both.verify(chain(viaIntermediate, intermediate))).doesNotThrowAnyException();

        Path revokesIntermediate = file("root-revoking.crl", freshCrl(pki.root(), intermediate.getCertificate()));
        ClientCertificateVerifier intermediateRevoked = verifier(crls(CrlScope.CHAIN, StaleCrlPolicy.DENY,
                revokesIntermediate, intermediateCrl), new ArrayList<>());
        assertThat(rejection(intermediateRevoked, chain(viaIntermediate, intermediate)))
                .isEqualTo(HandshakeFailureReason.REVOKED);
    }

    @Test
    void leafScopeChecksOnlyTheClientCertificate() throws Exception {
        Path intermediateCrl = file("intermediate.crl", freshCrl(intermediate));
        Path revokesIntermediate = file("root-revoking.crl", freshCrl(pki.root(), intermediate.getCertificate()));

        ClientCertificateVerifier leafOnly = verifier(crls(CrlScope.LEAF, StaleCrlPolicy.DENY, intermediateCrl,
                revokesIntermediate), new ArrayList<>());

        assertThatCode(() -> leafOnly.verify(chain(viaIntermediate, intermediate))).doesNotThrowAnyException();
        Path revokesLeaf = file("intermediate-revoking.crl", freshCrl(intermediate,
                viaIntermediate.getCertificate()));
        assertThat(rejection(verifier(crls(CrlScope.LEAF, StaleCrlPolicy.DENY, revokesLeaf), new ArrayList<>()),
                chain(viaIntermediate, intermediate))).isEqualTo(HandshakeFailureReason.REVOKED);
    }

    @Test
    void aCrlWithTheIssuersNameButAnotherKeyIsIgnored() throws Exception {
        // Same subject DN as the real root, different key: its CRL must not count as the root's.
        X509Bundle impostor = new CertificateBuilder()
                .subject(pki.root().getCertificate().getSubjectX500Principal().getName())
                .setIsCertificateAuthority(true)
                .ecp256()
                .buildSelfSigned();
        Path forged = file("forged.crl", freshCrl(impostor));

        ClientCertificateVerifier v = verifier(crls(CrlScope.CHAIN, StaleCrlPolicy.DENY, forged), new ArrayList<>());

        assertThat(rejection(v, chain(direct))).isEqualTo(HandshakeFailureReason.REVOKED);
    }

    @Test
    void aStaleCrlDeniesByDefaultAndIsAcceptedWithANoticeWhenInsecurelyAllowed() throws Exception {
        Path stale = file("stale.crl", TestPki.crl(pki.root(), now.minus(Duration.ofDays(2)),
                now.minus(Duration.ofSeconds(1))));
        List<String> staleSeen = new ArrayList<>();

        assertThat(rejection(verifier(crls(CrlScope.CHAIN, StaleCrlPolicy.DENY, stale), staleSeen), chain(direct)))
                .isEqualTo(HandshakeFailureReason.REVOKED);
        assertThat(staleSeen).isEmpty();

        ClientCertificateVerifier allowing = verifier(crls(CrlScope.CHAIN, StaleCrlPolicy.INSECURE_ALLOW, stale),
                staleSeen);
        assertThatCode(() -> allowing.verify(chain(direct))).doesNotThrowAnyException();
        assertThat(staleSeen).containsExactly(pki.root().getCertificate().getSubjectX500Principal().getName());
    }

    @Test
    void theNewestValidCrlOfAnIssuerWins() throws Exception {
        Path older = file("older.crl", TestPki.crl(pki.root(), now.minus(Duration.ofHours(2)),
                now.plus(Duration.ofHours(1)), direct.getCertificate()));
        Path newer = file("newer.crl", freshCrl(pki.root()));

        ClientCertificateVerifier v = verifier(crls(CrlScope.CHAIN, StaleCrlPolicy.DENY, older, newer),
                new ArrayList<>());

        assertThatCode(() -> v.verify(chain(direct))).as("unrevoked (certificateHold lifted) in the newer CRL")
                .doesNotThrowAnyException();
    }

    @Test
    void derCrlsAreReadToo() throws Exception {
        String pem = freshCrl(pki.root(), direct.getCertificate());
        byte[] der = Base64.getMimeDecoder().decode(pem.replaceAll("-----[A-Z0-9 ]+-----", ""));
        Path file = Files.write(Files.createTempDirectory(dir, "der").resolve("root.crl"), der);

        assertThat(rejection(verifier(crls(CrlScope.CHAIN, StaleCrlPolicy.DENY, file), new ArrayList<>()),
                chain(direct))).isEqualTo(HandshakeFailureReason.REVOKED);
    }

    @Test
    void theDenyListNeedsNoCaAndMatchesSerialFingerprintOrSpkiPinAnywhereInTheChain() throws Exception {
        X509Certificate leaf = viaIntermediate.getCertificate();
        String serial = leaf.getSerialNumber().toString(16).replaceAll("(..)(?!$)", "$1:");
        String fingerprint = DenyListValues.hex(MessageDigest.getInstance("SHA-256").digest(leaf.getEncoded()));
        String pin = Base64.getEncoder().encodeToString(MessageDigest.getInstance("SHA-256")
                .digest(intermediate.getCertificate().getPublicKey().getEncoded()));

        for (RevocationConfig denied : List.of(
                new RevocationConfig(List.of(serial.toUpperCase()), null, null),
                new RevocationConfig(null, List.of(fingerprint.replaceAll("(..)(?!$)", "$1:")), null),
                new RevocationConfig(null, null, List.of(pin)))) {
            ClientCertificateVerifier v = verifier(denied, new ArrayList<>());
            assertThat(rejection(v, chain(viaIntermediate, intermediate))).as(denied.toString())
                    .isEqualTo(HandshakeFailureReason.REVOKED);
            assertThatCode(() -> v.verify(chain(direct))).as(denied.toString()).doesNotThrowAnyException();
        }
    }

    @Test
    void crlsApplyPerTrustAnchorOnlyToChainsEndingThere() throws Exception {
        X509Bundle partnersRoot = TestPki.newRoot("partners root");
        X509Bundle partner = TestPki.clientOf(partnersRoot, ORDERS);
        Path clientsCrl = file("clients.crl", freshCrl(pki.root(), direct.getCertificate()));
        Clock clock = Clock.fixed(now, ZoneOffset.UTC);
        RevocationChecker checker = RevocationChecker.load(Map.of(
                "clients", new TrustAnchorConfig(pki.caPem(), List.of(clientsCrl), null, null),
                "partners", new TrustAnchorConfig(pki.caPem())), RevocationConfig.NONE, (i, n) -> { }, clock);
        X509Certificate root = pki.root().getCertificate();
        ClientCertificateVerifier v = new ClientCertificateVerifier(List.of(root, partnersRoot.getCertificate()),
                Map.of(root, "clients", partnersRoot.getCertificate(), "partners"), checker, clock);

        assertThat(rejection(v, chain(direct))).isEqualTo(HandshakeFailureReason.REVOKED);
        assertThatCode(() -> v.verify(chain(partner))).as("the partners anchor has no CRLs")
                .doesNotThrowAnyException();
    }

    @Test
    void pkixFailuresKeepTheirOwnReasonWithRevocationOn() throws Exception {
        Path crl = file("root.crl", freshCrl(pki.root()));
        ClientCertificateVerifier v = verifier(crls(CrlScope.CHAIN, StaleCrlPolicy.DENY, crl), new ArrayList<>());

        assertThat(rejection(v, chain(TestPki.clientOfAnotherRoot(ORDERS)))).isEqualTo(HandshakeFailureReason.UNKNOWN_CA);
        assertThat(rejection(v, chain(pki.expiredClient(ORDERS)))).isEqualTo(HandshakeFailureReason.EXPIRED);
    }
}
