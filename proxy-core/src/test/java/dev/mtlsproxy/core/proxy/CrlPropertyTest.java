package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.config.CrlScope;
import dev.mtlsproxy.config.IdentityConfig;
import dev.mtlsproxy.config.StaleCrlPolicy;
import dev.mtlsproxy.config.TrustAnchorConfig;
import dev.mtlsproxy.core.identity.IdentityHandler;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import io.netty.pkitesting.CertificateBuilder;
import io.netty.pkitesting.X509Bundle;
import java.io.IOException;
import java.math.BigInteger;
import java.net.URI;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Date;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import javax.security.auth.x500.X500Principal;
import org.bouncycastle.asn1.ASN1ObjectIdentifier;
import org.bouncycastle.asn1.DERNull;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.CRLNumber;
import org.bouncycastle.asn1.x509.DistributionPointName;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.Extensions;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.IssuingDistributionPoint;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.asn1.x509.ReasonFlags;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * Revocation against generated CRL sets, end to end: each case is a client chain (a leaf under one of four roots,
 * directly or through an intermediate, each with or without cRLDistributionPoints and keyUsage) and, per issuer, a
 * random set of CRLs (complete or delta, issuingDistributionPoint scopes, current, stale or not yet issued, signed by
 * the right key, another key or with SHA-1, critical extensions, listing the certificate or not), under
 * {@code crlScope: chain|leaf} and {@code staleCrl: deny|insecureAllow}. The proxy reloads with the case's CRLs and a
 * real TLS client presents the chain; {@link Model} says whether the reload must fail, or else whether the request is
 * answered 200 or the handshake refused as revoked. The model is written from RFC 5280 6.3.3 and OpenSSL's reading of
 * it (x509_vfy.c) plus README's choices, reads the features, never the CRLs, and shares no code with the proxy.
 *
 * <p>The mix comes from one seed, printed with every failure together with each failing case as one line;
 * {@code -Dmtlsproxy.test.seed=N} runs that mix again and {@code -Dmtlsproxy.test.seed=random} a new one;
 * {@code -Dmtlsproxy.test.crlCases=N} sets how many cases (default: about 20 s on two cores).
 */
class CrlPropertyTest {

    static final long SEED = seedOf(System.getProperty("mtlsproxy.test.seed", "1"));
    static final int CASES = Integer.getInteger("mtlsproxy.test.crlCases", 160);

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final ASN1ObjectIdentifier UNKNOWN_EXTENSION = new ASN1ObjectIdentifier("1.3.6.1.4.1.55555.7.4");

    @RegisterExtension
    static final LogCapture quiet = LogCapture.quietly(IdentityHandler.class);

    @TempDir
    Path dir;
    TestPki pki;
    TestBackend backend;
    RunningProxy proxy;
    final Map<Root, X509Bundle> roots = new EnumMap<>(Root.class);

    // ---------------------------------------------------------------- the features a case combines

    /** The trusted CA a chain starts from; all four are in the one trust anchor's bundle. */
    enum Root { CRL_SIGN, NO_CRL_SIGN, NO_KEY_USAGE, RSA_1024 }

    /** A CA's keyUsage: keyCertSign and cRLSign, keyCertSign only, or no keyUsage extension. */
    enum Usage { CRL_SIGN, NO_CRL_SIGN, ABSENT }

    /** A certificate's cRLDistributionPoints: none, or one URI naming one of two shards. */
    enum Point { NONE, SHARD_1, SHARD_2 }

    /** What kind of CRL: complete, or one the proxy must refuse at load. */
    enum Kind { COMPLETE, DELTA, UNKNOWN_CRITICAL, INDIRECT_ENTRY, SOME_REASONS }

    /** A CRL's issuingDistributionPoint. */
    enum Scope { NONE, SHARD_1, SHARD_2, ONLY_USER, ONLY_CA, SHARD_1_ONLY_USER, ONLY_ATTRIBUTE }

    /** thisUpdate and nextUpdate: issued and fresh, issued and past nextUpdate, or issued only in the future. */
    enum Dates { CURRENT, STALE, FUTURE }

    enum Signer { ISSUER, ANOTHER_KEY, SHA1 }

    /**
     * One CRL of an issuer. {@code minutes} orders an issuer's CRLs (each distinct): thisUpdate is that many minutes
     * ago, or ahead for {@link Dates#FUTURE}. {@code lists}: it lists the certificate its issuer issued in the chain.
     */
    record Crl(Kind kind, Scope scope, Dates dates, Signer signer, int minutes, boolean lists) {
        @Override
        public String toString() {
            List<String> parts = new ArrayList<>();
            if (kind != Kind.COMPLETE) parts.add(kind.name());
            if (scope != Scope.NONE) parts.add("idp=" + scope);
            parts.add(dates + (dates == Dates.FUTURE ? "+" : "-") + minutes + "m");
            if (signer != Signer.ISSUER) parts.add(signer.name());
            if (lists) parts.add("LISTS");
            return "crl(" + String.join(",", parts) + ")";
        }
    }

    /** One case; {@code intermediate} is null for a leaf issued by the root itself. */
    record Features(int number, Root root, Intermediate intermediate, Point leafPoint, List<Crl> rootCrls,
            List<Crl> intermediateCrls, CrlScope crlScope, StaleCrlPolicy stale) {
        @Override
        public String toString() {
            return "#" + number + " root=" + root + " rootCrls=" + rootCrls
                    + (intermediate == null ? "" : " " + intermediate + " intermediateCrls=" + intermediateCrls)
                    + " leaf(cdp=" + leafPoint + ") crlScope=" + crlScope + " staleCrl=" + stale;
        }
    }

    record Intermediate(Usage usage, Point point) {
        @Override
        public String toString() {
            return "intermediate(ku=" + usage + ",cdp=" + point + ")";
        }
    }

    static Features generate(Random random, int number) {
        Root root = pick(random, Root.values(), 0.6, Root.CRL_SIGN);
        Intermediate intermediate = random.nextBoolean() ? null : new Intermediate(
                pick(random, Usage.values(), 0.6, Usage.CRL_SIGN), pick(random, Point.values(), 0.6, Point.NONE));
        List<Crl> rootCrls = crls(random);
        List<Crl> intermediateCrls = intermediate == null ? List.of() : crls(random);
        return new Features(number, root, intermediate, pick(random, Point.values(), 0.4, Point.NONE), rootCrls,
                intermediateCrls, random.nextInt(4) == 0 ? CrlScope.LEAF : CrlScope.CHAIN,
                random.nextInt(4) == 0 ? StaleCrlPolicy.INSECURE_ALLOW : StaleCrlPolicy.DENY);
    }

    private static List<Crl> crls(Random random) {
        int count = new int[] {0, 1, 1, 1, 2, 2, 2, 3, 3, 4}[random.nextInt(10)];
        List<Integer> minutes = new ArrayList<>();
        for (int m = 5; m <= 120; m += 5) {
            minutes.add(m);
        }
        Collections.shuffle(minutes, random);
        List<Crl> crls = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            crls.add(new Crl(random.nextInt(25) == 0 ? Kind.values()[1 + random.nextInt(4)] : Kind.COMPLETE,
                    pick(random, Scope.values(), 0.45, Scope.NONE), pick(random, Dates.values(), 0.65, Dates.CURRENT),
                    pick(random, Signer.values(), 0.75, Signer.ISSUER), minutes.get(i), random.nextInt(3) == 0));
        }
        return List.copyOf(crls);
    }

    /** {@code usual} with probability {@code p}, else any value (the usual one included). */
    static <T> T pick(Random random, T[] values, double p, T usual) {
        return random.nextDouble() < p ? usual : values[random.nextInt(values.length)];
    }

    // ---------------------------------------------------------------- the oracle

    enum Outcome { RELOAD_REFUSED, ACCEPTED, REVOKED }

    /**
     * RFC 5280 6.3.3 as OpenSSL applies it (X509_V_FLAG_CRL_CHECK_ALL, no delta support), with README's choices: the
     * CRLs the proxy cannot read as complete are refused at load; of the CRLs that count for a certificate the newest
     * decides; a stale one denies unless {@code insecureAllow}.
     */
    static final class Model {

        static Outcome expect(Features f) {
            List<Crl> all = new ArrayList<>(f.rootCrls());
            all.addAll(f.intermediateCrls());
            // 5.2.4, 5.2.5, 5.3: a delta, an indirect or reason-partitioned CRL, or one with an unhandled critical
            // extension is not a complete list of its issuer's revocations: refused when loaded.
            if (all.stream().anyMatch(c -> c.kind() != Kind.COMPLETE)) {
                return Outcome.RELOAD_REFUSED;
            }
            // README: chains to an anchor without crls are not checked against CRLs.
            if (all.isEmpty()) {
                return Outcome.ACCEPTED;
            }
            Usage rootUsage = switch (f.root()) {
                case CRL_SIGN, RSA_1024 -> Usage.CRL_SIGN;
                case NO_CRL_SIGN -> Usage.NO_CRL_SIGN;
                case NO_KEY_USAGE -> Usage.ABSENT;
            };
            boolean weakRoot = f.root() == Root.RSA_1024;
            if (f.intermediate() == null) {
                return judge(f, f.rootCrls(), rootUsage, weakRoot, false, f.leafPoint());
            }
            Outcome leaf = judge(f, f.intermediateCrls(), f.intermediate().usage(), false, false, f.leafPoint());
            if (leaf != Outcome.ACCEPTED || f.crlScope() == CrlScope.LEAF) {
                return leaf;
            }
            return judge(f, f.rootCrls(), rootUsage, weakRoot, true, f.intermediate().point());
        }

        /** One certificate, judged by its issuer's CRLs. */
        private static Outcome judge(Features f, List<Crl> issuerCrls, Usage issuerUsage, boolean weakIssuerKey,
                boolean certificateIsCa, Point point) {
            // 6.3.3 (f): the CRL issuer's key must be allowed to sign CRLs.
            if (issuerUsage == Usage.NO_CRL_SIGN) {
                return Outcome.REVOKED;
            }
            Crl newest = null;
            for (Crl crl : issuerCrls) {
                boolean counts = crl.signer() == Signer.ISSUER // (g), and no SHA-1 (README, weak algorithms)
                        && !weakIssuerKey // an RSA key under 2048 bits signs nothing we trust
                        && covers(crl.scope(), certificateIsCa, point) // (b)(2)
                        && crl.dates() != Dates.FUTURE; // OpenSSL: X509_V_ERR_CRL_NOT_YET_VALID
                if (counts && (newest == null || newerThan(crl, newest))) {
                    newest = crl;
                }
            }
            if (newest == null || newest.lists()) {
                return Outcome.REVOKED;
            }
            if (newest.dates() == Dates.STALE && f.stale() == StaleCrlPolicy.DENY) {
                return Outcome.REVOKED;
            }
            return Outcome.ACCEPTED;
        }

        /** Past CRLs only: the fewer minutes ago, the newer. */
        private static boolean newerThan(Crl a, Crl b) {
            return a.minutes() < b.minutes();
        }

        /** OpenSSL's crl_crldp_check for a direct CRL and a certificate with at most one distribution point. */
        static boolean covers(Scope scope, boolean certificateIsCa, Point point) {
            return switch (scope) {
                case NONE -> true;
                case ONLY_USER -> !certificateIsCa;
                case ONLY_CA -> certificateIsCa;
                case ONLY_ATTRIBUTE -> false;
                case SHARD_1 -> point == Point.SHARD_1;
                case SHARD_2 -> point == Point.SHARD_2;
                case SHARD_1_ONLY_USER -> !certificateIsCa && point == Point.SHARD_1;
            };
        }
    }

    // ---------------------------------------------------------------- the run

    static long seedOf(String property) {
        return property.equals("random") ? new SecureRandom().nextLong() : Long.parseLong(property);
    }

    @BeforeEach
    void start() throws Exception {
        pki = TestPki.create(dir);
        roots.put(Root.CRL_SIGN, root("crl fuzz root", ecKeys(), KeyUsage.keyCertSign | KeyUsage.cRLSign));
        roots.put(Root.NO_CRL_SIGN, root("crl fuzz root without cRLSign", ecKeys(), KeyUsage.keyCertSign));
        roots.put(Root.NO_KEY_USAGE, root("crl fuzz root without keyUsage", ecKeys(), -1));
        KeyPairGenerator rsa = KeyPairGenerator.getInstance("RSA");
        rsa.initialize(1024);
        roots.put(Root.RSA_1024, root("crl fuzz root RSA-1024", rsa.generateKeyPair(),
                KeyUsage.keyCertSign | KeyUsage.cRLSign));
        StringBuilder bundle = new StringBuilder();
        roots.values().forEach(r -> bundle.append(r.getCertificatePEM()));
        Path caBundle = pki.write("crl-fuzz-roots.pem", bundle.toString());
        backend = TestBackend.start();
        proxy = RunningProxy.builder(pki)
                .trustAnchor(TestPki.ANCHOR, new TrustAnchorConfig(caBundle))
                .identity("orders", IdentityConfig.spiffe(ORDERS).withTrustAnchor(TestPki.ANCHOR))
                .backend("shop", backend.url())
                .route("orders-api", "/orders", "shop", "orders")
                .start();
    }

    @AfterEach
    void stop() {
        if (proxy != null) {
            proxy.close();
        }
        if (backend != null) {
            backend.close();
        }
    }

    @Test
    void everyGeneratedCrlSetIsAppliedAsRfc5280AndOpenSslRead() throws Exception {
        Random random = new Random(SEED);
        List<String> failures = new ArrayList<>();
        Map<String, Integer> outcomes = new TreeMap<>();
        long started = System.nanoTime();
        for (int number = 0; number < CASES; number++) {
            Features f = generate(random, number);
            Outcome expected = Model.expect(f);
            String problem;
            try {
                problem = run(f, expected, outcomes);
            } catch (Exception e) {
                problem = "test error: " + e;
            }
            if (problem != null) {
                failures.add(f + "\n    model: " + expected + "\n    proxy: " + problem);
            }
        }
        System.out.printf("CrlPropertyTest: seed %d, %d cases in %d ms: %s%n", SEED, CASES,
                (System.nanoTime() - started) / 1_000_000, outcomes);
        assertThat(failures).as("seed " + SEED + " (-Dmtlsproxy.test.seed=" + SEED + " runs this mix again), "
                + failures.size() + " of " + CASES + " cases disagree with the model:\n"
                + String.join("\n", failures)).isEmpty();
        // a generator that stopped producing any outcome would prove little
        assertThat(outcomes.keySet()).as("outcomes seen: " + outcomes).contains("ACCEPTED", "REVOKED",
                "RELOAD_REFUSED");
    }

    /** Runs one case; null when the proxy did what the model expects, else what it did. */
    private String run(Features f, Outcome expected, Map<String, Integer> outcomes) throws Exception {
        Minted minted = mint(f);
        List<Path> files = new ArrayList<>();
        for (int i = 0; i < minted.crls().size(); i++) {
            files.add(pki.write("case-" + i + ".crl", minted.crls().get(i)));
        }
        try {
            proxy.reload(c -> c.withTrustAnchors(Map.of(TestPki.ANCHOR, new TrustAnchorConfig(
                    c.trustAnchors().get(TestPki.ANCHOR).caBundle(), files, f.crlScope(), f.stale()))));
        } catch (ReloadException e) {
            outcomes.merge(Outcome.RELOAD_REFUSED.name(), 1, Integer::sum);
            return expected == Outcome.RELOAD_REFUSED ? null : "reload refused: " + e.getMessage();
        }
        if (expected == Outcome.RELOAD_REFUSED) {
            return "reload accepted";
        }
        Map<String, Double> before = proxy.handshakeFailures();
        SSLContext context = MtlsClient.clientContext(pki.root(), minted.key(), minted.chain());
        int status;
        try (MtlsClient client = MtlsClient.connect(proxy.address(), context, null, null)) {
            status = client.get("/orders").status();
        } catch (IOException refused) {
            String reason = proxy.awaitNewHandshakeFailure(before);
            outcomes.merge(Outcome.REVOKED.name(), 1, Integer::sum);
            if (expected != Outcome.REVOKED) {
                return "refused (" + reason + ")";
            }
            return reason.equals("revoked") ? null : "refused with reason " + reason;
        }
        outcomes.merge(Outcome.ACCEPTED.name(), 1, Integer::sum);
        if (status != 200) {
            return "GET /orders " + status + ", expected 200 or a refused handshake";
        }
        TestBackend.Recorded forwarded = backend.nextRequest(5, TimeUnit.SECONDS);
        if (forwarded == null) {
            return "answered 200 but nothing reached the backend";
        }
        return expected == Outcome.ACCEPTED ? null : "accepted";
    }


    // ---------------------------------------------------------------- minting

    /** What the client sends, its key, and the case's CRLs as PEM. */
    record Minted(X509Certificate[] chain, PrivateKey key, List<String> crls) {
    }

    private Minted mint(Features f) throws Exception {
        Instant now = Instant.now();
        X509Bundle root = roots.get(f.root());
        X509Bundle issuer = root;
        X509Bundle intermediate = null;
        if (f.intermediate() != null) {
            Intermediate spec = f.intermediate();
            intermediate = TestPki.intermediate(root, "crl fuzz intermediate " + f.number(), b -> {
                switch (spec.usage()) {
                    case CRL_SIGN -> b.setKeyUsage(true, CertificateBuilder.KeyUsage.keyCertSign,
                            CertificateBuilder.KeyUsage.cRLSign);
                    case NO_CRL_SIGN -> b.setKeyUsage(true, CertificateBuilder.KeyUsage.keyCertSign);
                    case ABSENT -> { }
                }
                return withPoint(b, spec.point());
            });
            if (spec.usage() == Usage.ABSENT && intermediate.getCertificate().getKeyUsage() != null) {
                throw new IllegalStateException("the builder added a keyUsage the case does not have");
            }
            issuer = intermediate;
        }
        X509Bundle leaf = TestPki.issue(issuer, ORDERS, b -> withPoint(b, f.leafPoint()));
        List<String> crls = new ArrayList<>();
        X509Certificate belowRoot = intermediate != null ? intermediate.getCertificate() : leaf.getCertificate();
        for (Crl crl : f.rootCrls()) {
            crls.add(crl(root, crl, belowRoot, now));
        }
        for (Crl crl : f.intermediateCrls()) {
            crls.add(crl(intermediate, crl, leaf.getCertificate(), now));
        }
        X509Certificate[] chain = intermediate == null ? new X509Certificate[] {leaf.getCertificate()}
                : new X509Certificate[] {leaf.getCertificate(), intermediate.getCertificate()};
        return new Minted(chain, leaf.getKeyPair().getPrivate(), crls);
    }

    private static CertificateBuilder withPoint(CertificateBuilder b, Point point) {
        return switch (point) {
            case NONE -> b;
            case SHARD_1 -> b.addCrlDistributionPoint(URI.create(shard(1)));
            case SHARD_2 -> b.addCrlDistributionPoint(URI.create(shard(2)));
        };
    }

    private static String shard(int n) {
        return "http://crl.fuzz.test/shard-" + n + ".crl";
    }

    private static String crl(X509Bundle issuer, Crl crl, X509Certificate issued, Instant now) throws Exception {
        Instant thisUpdate = crl.dates() == Dates.FUTURE ? now.plus(Duration.ofMinutes(crl.minutes()))
                : now.minus(Duration.ofMinutes(crl.minutes()));
        Instant nextUpdate = switch (crl.dates()) {
            case CURRENT -> now.plus(Duration.ofHours(1));
            case STALE -> now.minus(Duration.ofMinutes(1));
            case FUTURE -> thisUpdate.plus(Duration.ofHours(1));
        };
        PrivateKey key = crl.signer() == Signer.ANOTHER_KEY ? anotherKey(issuer) : issuer.getKeyPair().getPrivate();
        boolean rsa = key.getAlgorithm().equals("RSA");
        String algorithm = crl.signer() == Signer.SHA1 ? (rsa ? "SHA1withRSA" : "SHA1withECDSA")
                : (rsa ? "SHA256withRSA" : "SHA256withECDSA");
        TestPki.CrlContent content = b -> {
            idp(crl.scope(), crl.kind() == Kind.SOME_REASONS).addTo(b);
            switch (crl.kind()) {
                case DELTA -> b.addExtension(Extension.deltaCRLIndicator, true, new CRLNumber(BigInteger.ONE));
                case UNKNOWN_CRITICAL -> b.addExtension(UNKNOWN_EXTENSION, true, DERNull.INSTANCE);
                case INDIRECT_ENTRY -> b.addCRLEntry(BigInteger.valueOf(77), Date.from(thisUpdate), new Extensions(
                        new Extension(Extension.certificateIssuer, true, new GeneralNames(new GeneralName(
                                new X500Name("CN=another CA"))).getEncoded())));
                case COMPLETE, SOME_REASONS -> { }
            }
        };
        X500Principal name = issuer.getCertificate().getSubjectX500Principal();
        return crl.lists()
                ? TestPki.crl(name, key, algorithm, thisUpdate, nextUpdate, content, issued)
                : TestPki.crl(name, key, algorithm, thisUpdate, nextUpdate, content);
    }

    private static TestPki.CrlContent idp(Scope scope, boolean someReasons) {
        ReasonFlags reasons = someReasons ? new ReasonFlags(ReasonFlags.keyCompromise) : null;
        if (scope == Scope.NONE && !someReasons) {
            return b -> { };
        }
        DistributionPointName point = switch (scope) {
            case SHARD_1, SHARD_1_ONLY_USER -> pointName(shard(1));
            case SHARD_2 -> pointName(shard(2));
            default -> null;
        };
        IssuingDistributionPoint idp = new IssuingDistributionPoint(point,
                scope == Scope.ONLY_USER || scope == Scope.SHARD_1_ONLY_USER, scope == Scope.ONLY_CA, reasons, false,
                scope == Scope.ONLY_ATTRIBUTE);
        return b -> b.addExtension(Extension.issuingDistributionPoint, true, idp);
    }

    private static DistributionPointName pointName(String uri) {
        return new DistributionPointName(new GeneralNames(new GeneralName(GeneralName.uniformResourceIdentifier,
                uri)));
    }

    private static PrivateKey anotherKey(X509Bundle issuer) throws Exception {
        if (issuer.getKeyPair().getPrivate().getAlgorithm().equals("RSA")) {
            KeyPairGenerator rsa = KeyPairGenerator.getInstance("RSA");
            rsa.initialize(1024);
            return rsa.generateKeyPair().getPrivate();
        }
        return ecKeys().getPrivate();
    }

    private static KeyPair ecKeys() throws Exception {
        return TestPki.newP256Key();
    }

    /** A self-signed CA with this key and keyUsage bits (-1: no keyUsage extension). */
    private static X509Bundle root(String commonName, KeyPair keys, int keyUsage) throws Exception {
        Instant now = Instant.now();
        X500Name name = X500Name.getInstance(new X500Principal("CN=" + commonName + ",O=mtls-proxy tests")
                .getEncoded());
        JcaX509v3CertificateBuilder builder = new JcaX509v3CertificateBuilder(name,
                BigInteger.valueOf(System.nanoTime()), Date.from(now.minus(Duration.ofDays(1))),
                Date.from(now.plus(Duration.ofDays(2))), name, keys.getPublic());
        builder.addExtension(Extension.basicConstraints, true, new BasicConstraints(true));
        if (keyUsage >= 0) {
            builder.addExtension(Extension.keyUsage, true, new KeyUsage(keyUsage));
        }
        String algorithm = keys.getPrivate().getAlgorithm().equals("RSA") ? "SHA256withRSA" : "SHA256withECDSA";
        X509Certificate certificate = new JcaX509CertificateConverter().getCertificate(
                builder.build(new JcaContentSignerBuilder(algorithm).build(keys.getPrivate())));
        return X509Bundle.fromRootCertificateAuthority(certificate, keys);
    }
}
