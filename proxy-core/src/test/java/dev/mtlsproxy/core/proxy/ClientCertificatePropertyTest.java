package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.config.IdentityConfig;
import dev.mtlsproxy.config.RouteConfig;
import dev.mtlsproxy.config.TrustAnchorConfig;
import dev.mtlsproxy.core.log.AccessLogEntry;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import io.netty.pkitesting.X509Bundle;
import java.io.IOException;
import java.math.BigInteger;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.MessageDigest;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import org.bouncycastle.asn1.ASN1Encodable;
import org.bouncycastle.asn1.ASN1ObjectIdentifier;
import org.bouncycastle.asn1.DERNull;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.GeneralSubtree;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.asn1.x509.NameConstraints;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Client-certificate verification and identity, end to end, on generated client chains: each case is a random
 * combination of {@link Features} (dates, extended and plain key usage, basic constraints and path lengths, name
 * constraints, unknown critical extensions, forged and weak signatures, the chain as sent, SANs, revocation), minted
 * for the run, presented by a real TLS client to one running proxy, and judged against {@link Model}: an oracle
 * written from RFC 5280 path validation, the SPIFFE X509-SVID rules and README's documented choices, which reads the
 * features, never the certificates, and shares no code with the proxy. It says whether the handshake is refused (and
 * with which reasons the refusal may be counted), or else the SPIFFE ID the proxy must see (the access log's peer),
 * what the backend receives in {@code X-Forwarded-Client-Cert}, and 200 or 403 on a route that allows one SPIFFE ID
 * of one trust anchor and on one that allows the same URI by {@code uriSan}.
 *
 * <p>One proxy serves every case: seven trust anchors (the test CA with CRLs from it and every intermediate it may
 * have, name-constrained, expired, not yet valid, {@code pathLen:0} and serverAuth-only roots), and a route that
 * grants any certificate of any anchor, so the backend shows what the proxy forwards for every accepted case. Each case
 * is a new connection from a new client context, and the listener resumes no sessions.
 *
 * <p>The mix comes from one seed, printed with every failure together with each failing case as one line;
 * {@code -Dmtlsproxy.test.seed=N} runs that mix again and {@code -Dmtlsproxy.test.seed=random} a new one.
 */
class ClientCertificatePropertyTest {

    static final long SEED = seedOf(System.getProperty("mtlsproxy.test.seed", "1"));
    static final int CASES = Integer.getInteger("mtlsproxy.test.certCases", 240);

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final String FUZZ_O = "mtls-proxy fuzz";
    static final BigInteger REVOKED_LEAF = BigInteger.valueOf(0x7e70_0001L);
    static final BigInteger REVOKED_INTERMEDIATE = BigInteger.valueOf(0x7e70_0002L);
    /** The listener's limit on certificates below the root (README, Security model). */
    static final int MAX_BELOW_ROOT = 5;
    static final ASN1ObjectIdentifier UNKNOWN_EXTENSION = new ASN1ObjectIdentifier("1.3.6.1.4.1.55555.7.1");

    @TempDir
    Path dir;
    TestPki pki;
    TestBackend backend;
    RunningProxy proxy;
    /** Each root's certificate and key, minted once per run; {@link Root#UNTRUSTED} is in no anchor. */
    final Map<Root, X509Bundle> roots = new EnumMap<>(Root.class);
    /** Intermediates at each level share a name and key, whatever else a case changes, so one CRL covers them. */
    final List<KeyPair> intermediateKeys = new ArrayList<>();
    KeyPair rsa2048;
    KeyPair rsa1024;
    final SecureRandom serials = new SecureRandom();

    // ---------------------------------------------------------------- the features a case combines

    /** The root a chain is minted under, and the trust anchor it is configured as (null: trusted by none). */
    enum Root {
        TEST_CA(TestPki.ANCHOR), URI_CONSTRAINED("uri-partner"), DNS_CONSTRAINED("dns-partner"),
        EXPIRED("expired-root"), NOT_YET_VALID("future-root"), PATH_LEN_ZERO("pathlen0-root"),
        SERVER_AUTH_ONLY("serverauth-root"), UNTRUSTED(null);

        final String anchor;

        Root(String anchor) {
            this.anchor = anchor;
        }
    }

    enum Dates { VALID, EXPIRED, NOT_YET_VALID }

    enum Eku { ABSENT, CLIENT_AUTH, SERVER_AUTH_ONLY, ANY, CLIENT_AUTH_CRITICAL }

    enum LeafKeyUsage { ABSENT, DIGITAL_SIGNATURE, WITH_KEY_CERT_SIGN, WITH_CRL_SIGN, KEY_ENCIPHERMENT_ONLY }

    /** A CA's basicConstraints: CA:true, CA:false, none at all, or CA:true with pathLen:0. */
    enum Basics { CA, NOT_CA, ABSENT, PATH_LEN_ZERO }

    /**
     * Permitted subtrees a CA adds (critical, as RFC 5280 requires): DNS names or URI hosts of partner.test, or of
     * other.test, which no partner.test name is in: a CA of one below a CA of the other permits no name of the type.
     */
    enum Constraint { NONE, DNS_PARTNER, URI_PARTNER, DNS_OTHER, URI_OTHER }

    /** How a certificate is signed: by its issuer's key with SHA-256, by another key (forged), or with SHA-1. */
    enum Signature { CORRECT, FORGED, SHA1 }

    enum LeafKey { EC_P256, RSA_2048, RSA_1024 }

    enum AsSent { IN_ORDER, SHUFFLED, DUPLICATED_INTERMEDIATE, UNRELATED_EXTRA, MISSING_INTERMEDIATE, ROOT_APPENDED }

    enum Revoked { NONE, LEAF, INTERMEDIATE }

    enum SanKind { URI, DNS, EMAIL, IP }

    /**
     * The names a leaf may carry, with what the specs say of each: whether its scheme is spiffe (RFC 3986: in any
     * case), whether it is a well-formed SPIFFE ID (SPIFFE-ID 2), and the host a URI name constraint compares.
     */
    enum San {
        SPIFFE_ORDERS(SanKind.URI, ORDERS, true, true, "prod.test"),
        SPIFFE_CART(SanKind.URI, "spiffe://prod.test/ns/shop/sa/cart", true, true, "prod.test"),
        SPIFFE_PARTNER(SanKind.URI, "spiffe://partner.test/sa/agent", true, true, "partner.test"),
        SPIFFE_DOT_DOT(SanKind.URI, "spiffe://prod.test/ns/shop/../orders", true, false, "prod.test"),
        SPIFFE_UPPER_DOMAIN(SanKind.URI, "spiffe://PROD.test/ns/shop/sa/orders", true, false, "prod.test"),
        SPIFFE_UPPER_SCHEME(SanKind.URI, "SPIFFE://prod.test/ns/shop/sa/orders", true, false, "prod.test"),
        SPIFFE_PORT(SanKind.URI, "spiffe://prod.test:8443/ns/shop/sa/orders", true, false, "prod.test"),
        SPIFFE_TRAILING_SLASH(SanKind.URI, ORDERS + "/", true, false, "prod.test"),
        SPIFFE_PERCENT(SanKind.URI, "spiffe://prod.test/ns/shop/sa/%6Frders", true, false, "prod.test"),
        SPIFFE_QUERY(SanKind.URI, ORDERS + "?x=1", true, false, "prod.test"),
        SPIFFE_EMPTY_SEGMENT(SanKind.URI, "spiffe://prod.test/ns//sa/orders", true, false, "prod.test"),
        HTTPS_URI(SanKind.URI, "https://prod.test/orders", false, false, "prod.test"),
        DNS_PROD(SanKind.DNS, "orders.prod.test", false, false, null),
        DNS_PARTNER(SanKind.DNS, "agent.partner.test", false, false, null),
        DNS_MIXED_CASE(SanKind.DNS, "Orders.PROD.test", false, false, null),
        EMAIL(SanKind.EMAIL, "orders@prod.test", false, false, null),
        IP(SanKind.IP, "10.1.2.3", false, false, null);

        final SanKind kind;
        final String value;
        final boolean spiffeScheme;
        final boolean validSpiffeId;
        final String uriHost;

        San(SanKind kind, String value, boolean spiffeScheme, boolean validSpiffeId, String uriHost) {
            this.kind = kind;
            this.value = value;
            this.spiffeScheme = spiffeScheme;
            this.validSpiffeId = validSpiffeId;
            this.uriHost = uriHost;
        }
    }

    /** An intermediate CA; the list in {@link Features} runs from the leaf's issuer up to the root's child. */
    record Ca(Dates dates, Eku eku, Basics basics, Constraint constraint, boolean unknownCritical,
            Signature signature) {
        @Override
        public String toString() {
            List<String> parts = new ArrayList<>();
            if (dates != Dates.VALID) parts.add(dates.name());
            if (eku != Eku.ABSENT) parts.add("eku=" + eku);
            if (basics != Basics.CA) parts.add("bc=" + basics);
            if (constraint != Constraint.NONE) parts.add("nc=" + constraint);
            if (unknownCritical) parts.add("unknown-critical");
            if (signature != Signature.CORRECT) parts.add(signature.name());
            return "ca(" + String.join(",", parts) + ")";
        }
    }

    /** One case: everything the model reads. {@code cn} is the leaf's subject CN. */
    record Features(int number, Root root, List<Ca> intermediates, Dates leafDates, Eku leafEku,
            LeafKeyUsage leafKeyUsage, boolean leafIsCa, boolean leafUnknownCritical, Signature leafSignature,
            LeafKey leafKey, List<San> sans, String cn, AsSent asSent, Revoked revoked) {
        @Override
        public String toString() {
            return "#" + number + " root=" + root + " intermediates=" + intermediates + " leaf(" + leafDates
                    + ",eku=" + leafEku + ",ku=" + leafKeyUsage + (leafIsCa ? ",CA:true" : "")
                    + (leafUnknownCritical ? ",unknown-critical" : "") + ",sig=" + leafSignature + ",key=" + leafKey
                    + ",cn=" + cn + ",sans=" + sans + ") sent=" + asSent + " revoked=" + revoked;
        }
    }

    static Features generate(Random random, int number) {
        Root root = pick(random, Root.values(), 0.45, Root.TEST_CA);
        int depth = random.nextInt(10) == 0 ? 4 + random.nextInt(2) : random.nextInt(3);
        List<Ca> intermediates = new ArrayList<>();
        for (int i = 0; i < depth; i++) {
            intermediates.add(new Ca(pick(random, Dates.values(), 0.85, Dates.VALID),
                    pick(random, Eku.values(), 0.7, Eku.ABSENT), pick(random, Basics.values(), 0.8, Basics.CA),
                    pick(random, Constraint.values(), 0.8, Constraint.NONE), random.nextInt(12) == 0,
                    pick(random, Signature.values(), 0.85, Signature.CORRECT)));
        }
        List<San> sans = new ArrayList<>();
        int count = random.nextInt(8) == 0 ? 0 : 1 + random.nextInt(3);
        for (int i = 0; i < count; i++) {
            San san = random.nextBoolean() ? San.SPIFFE_ORDERS : San.values()[random.nextInt(San.values().length)];
            if (!sans.contains(san)) {
                sans.add(san);
            }
        }
        String[] cns = {"orders", "orders.prod.test", "agent.partner.test"};
        AsSent asSent = pick(random, AsSent.values(), 0.5, AsSent.IN_ORDER);
        if (depth == 0 && asSent == AsSent.MISSING_INTERMEDIATE) {
            asSent = AsSent.IN_ORDER;
        }
        Revoked revoked = pick(random, Revoked.values(), 0.8, Revoked.NONE);
        if (depth == 0 && revoked == Revoked.INTERMEDIATE) {
            revoked = Revoked.LEAF;
        }
        return new Features(number, root, List.copyOf(intermediates), pick(random, Dates.values(), 0.85, Dates.VALID),
                pick(random, Eku.values(), 0.5, Eku.CLIENT_AUTH),
                pick(random, LeafKeyUsage.values(), 0.5, LeafKeyUsage.DIGITAL_SIGNATURE), random.nextInt(12) == 0,
                random.nextInt(12) == 0, pick(random, Signature.values(), 0.85, Signature.CORRECT),
                pick(random, LeafKey.values(), 0.8, LeafKey.EC_P256), List.copyOf(sans), cns[random.nextInt(3)],
                asSent, revoked);
    }

    /** {@code usual} with probability {@code p}, else any value (the usual one included). */
    static <T> T pick(Random random, T[] values, double p, T usual) {
        return random.nextDouble() < p ? usual : values[random.nextInt(values.length)];
    }

    // ---------------------------------------------------------------- the oracle

    /** What must happen: refused with one of {@code reasons}, or accepted with this SPIFFE ID (null: none). */
    record Expected(Set<String> reasons, String spiffeId, String anchor) {
        boolean refused() {
            return !reasons.isEmpty();
        }
    }

    /**
     * The specs, applied to the features. RFC 5280 6.1 for the path (the trust anchor held to the same rules, as
     * README promises), RFC 8446 4.4.2.2 and RFC 5280 4.2.1.3 for the leaf's key usage (it signs the handshake),
     * SPIFFE X509-SVID 4 for what makes an identity, README "Security model" for the reasons and the choices the specs
     * leave open.
     */
    static final class Model {

        static Expected expect(Features f) {
            Set<String> reasons = new java.util.TreeSet<>();
            int n = f.intermediates().size();
            if (f.root() == Root.UNTRUSTED) {
                reasons.add("unknown_ca");
            }
            if (f.asSent() == AsSent.MISSING_INTERMEDIATE) {
                reasons.add("unknown_ca");
            }
            // RFC 5280 6.1.3 (a)(1): every signature verifies with the working public key; a forgery leads nowhere.
            if (f.leafSignature() == Signature.FORGED
                    || f.intermediates().stream().anyMatch(c -> c.signature() == Signature.FORGED)) {
                reasons.add("unknown_ca");
            }
            // The path is built from what was sent; a root that is not trusted is part of it, not above it.
            int pathLength = n + 1 + (f.root() == Root.UNTRUSTED && f.asSent() == AsSent.ROOT_APPENDED ? 1 : 0);
            if (pathLength > MAX_BELOW_ROOT) {
                reasons.add("chain_too_long");
            }
            // 6.1.3 (a)(2): validity, for the anchor too.
            List<Dates> dates = new ArrayList<>();
            dates.add(f.leafDates());
            f.intermediates().forEach(c -> dates.add(c.dates()));
            if (f.root() == Root.EXPIRED) {
                dates.add(Dates.EXPIRED);
            }
            if (f.root() == Root.NOT_YET_VALID) {
                dates.add(Dates.NOT_YET_VALID);
            }
            if (dates.contains(Dates.EXPIRED)) {
                reasons.add("expired");
            }
            if (dates.contains(Dates.NOT_YET_VALID)) {
                reasons.add("not_yet_valid");
            }
            // README: clientAuth wherever a certificate of the chain, the CA included, restricts its usage.
            if (f.leafEku() == Eku.SERVER_AUTH_ONLY || f.root() == Root.SERVER_AUTH_ONLY
                    || f.intermediates().stream().anyMatch(c -> c.eku() == Eku.SERVER_AUTH_ONLY)) {
                reasons.add("bad_eku");
            }
            // 6.1.4 (k): an issuer must be a CA; (l)/(m): pathLenConstraint counts the CAs below.
            for (int i = 0; i < n; i++) {
                Basics basics = f.intermediates().get(i).basics();
                if (basics == Basics.NOT_CA || basics == Basics.ABSENT) {
                    reasons.add("unknown_ca");
                }
                if (basics == Basics.PATH_LEN_ZERO && i > 0) {
                    reasons.add("chain_too_long");
                }
            }
            if (f.root() == Root.PATH_LEN_ZERO && n > 0) {
                reasons.add("chain_too_long");
            }
            // 6.1.4 (o), 6.1.5 (f): an unrecognised critical extension fails the path.
            if (f.leafUnknownCritical() || f.intermediates().stream().anyMatch(Ca::unknownCritical)) {
                reasons.add("other");
            }
            // 6.1.3 (b)/(c): the leaf's names within every subtree above it; README: with no DNS SAN, a DNS
            // constraint binds the subject CN.
            List<Constraint> constraints = new ArrayList<>();
            if (f.root() == Root.DNS_CONSTRAINED) {
                constraints.add(Constraint.DNS_PARTNER);
            }
            if (f.root() == Root.URI_CONSTRAINED) {
                constraints.add(Constraint.URI_PARTNER);
            }
            f.intermediates().forEach(c -> constraints.add(c.constraint()));
            if (!namesPermitted(f, constraints)) {
                reasons.add("name_constraints");
            }
            // 6.1.4 (g): below CAs permitting disjoint subtrees of a type, no name of that type is permitted.
            // README: the JDK cannot judge such a path, and the proxy refuses it whatever names the leaf holds.
            if (constraints.contains(Constraint.DNS_PARTNER) && constraints.contains(Constraint.DNS_OTHER)
                    || constraints.contains(Constraint.URI_PARTNER) && constraints.contains(Constraint.URI_OTHER)) {
                reasons.add("name_constraints");
            }
            // RFC 8446 4.4.2.2 (applied to clients by 4.4.2.3) and OpenSSL's SSL client purpose: a key whose
            // usage is restricted must allow signatures, or it may not sign the handshake.
            if (f.leafKeyUsage() == LeafKeyUsage.KEY_ENCIPHERMENT_ONLY) {
                reasons.add("bad_eku");
            }
            if (weak(f)) {
                reasons.add("weak_algorithm");
            }
            // Revocation narrows what passed: only the test CA's anchor has CRLs.
            if (reasons.isEmpty() && f.root() == Root.TEST_CA && f.revoked() != Revoked.NONE) {
                reasons.add("revoked");
            }
            if (!reasons.isEmpty()) {
                return new Expected(reasons, null, null);
            }
            return new Expected(Set.of(), spiffeId(f), f.root().anchor);
        }

        /** Weak algorithms (see README): SHA-1 signatures and RSA keys under 2048 bits. */
        static boolean weak(Features f) {
            return WEAK_REFUSED && (f.leafSignature() == Signature.SHA1 || f.leafKey() == LeafKey.RSA_1024
                    || f.intermediates().stream().anyMatch(c -> c.signature() == Signature.SHA1));
        }

        static boolean namesPermitted(Features f, List<Constraint> constraints) {
            boolean hasDns = f.sans().stream().anyMatch(s -> s.kind == SanKind.DNS);
            for (Constraint c : constraints) {
                String domain = c == Constraint.DNS_OTHER || c == Constraint.URI_OTHER ? "other.test" : "partner.test";
                if (c == Constraint.DNS_PARTNER || c == Constraint.DNS_OTHER) {
                    for (San s : f.sans()) {
                        if (s.kind == SanKind.DNS && !within(s.value, domain)) {
                            return false;
                        }
                    }
                    if (!hasDns && !within(f.cn(), domain)) {
                        return false;
                    }
                }
                if (c == Constraint.URI_PARTNER || c == Constraint.URI_OTHER) {
                    for (San s : f.sans()) {
                        if (s.kind == SanKind.URI && !s.uriHost.equalsIgnoreCase(domain)) {
                            return false;
                        }
                    }
                }
            }
            return true;
        }

        static boolean within(String dns, String domain) {
            String d = dns.toLowerCase(Locale.ROOT);
            return d.equals(domain) || d.endsWith("." + domain);
        }

        /**
         * X509-SVID 2: an SVID has exactly one URI SAN, of any scheme; 4.1/4.3: a CA, or a leaf with keyCertSign or
         * cRLSign, is no SVID. README: the identity is that single URI when it is a well-formed SPIFFE ID.
         */
        static String spiffeId(Features f) {
            if (signingCertificate(f)) {
                return null;
            }
            List<San> uris = f.sans().stream().filter(s -> s.kind == SanKind.URI).toList();
            return uris.size() == 1 && uris.get(0).validSpiffeId ? uris.get(0).value : null;
        }

        /**
         * README, Identity: {@code uriSan} compares every URI as presented, however many there are, except that a
         * signing certificate's spiffe URIs match none.
         */
        static boolean uriSanMatchesOrders(Features f) {
            return f.sans().contains(San.SPIFFE_ORDERS) && !signingCertificate(f);
        }

        static boolean signingCertificate(Features f) {
            return f.leafIsCa() || f.leafKeyUsage() == LeafKeyUsage.WITH_KEY_CERT_SIGN
                    || f.leafKeyUsage() == LeafKeyUsage.WITH_CRL_SIGN;
        }
    }

    /**
     * README, Security model: SHA-1 signatures and RSA keys under 2048 bits in the path are refused as
     * weak_algorithm, once the chain is otherwise accepted (OpenSSL's security level 2, Go).
     */
    static final boolean WEAK_REFUSED = true;

    // ---------------------------------------------------------------- the run

    static long seedOf(String property) {
        return property.equals("random") ? new SecureRandom().nextLong() : Long.parseLong(property);
    }

    @BeforeEach
    void start() throws Exception {
        pki = TestPki.create(dir);
        Instant now = Instant.now();
        roots.put(Root.TEST_CA, pki.root());
        roots.put(Root.URI_CONSTRAINED, TestPki.nameConstrainedRoot("fuzz uri-constrained root", "partner.test"));
        roots.put(Root.DNS_CONSTRAINED, TestPki.dnsConstrainedRoot("fuzz dns-constrained root", "partner.test"));
        roots.put(Root.EXPIRED, TestPki.newRoot("fuzz expired root", b -> b
                .notBefore(now.minus(Duration.ofDays(30))).notAfter(now.minus(Duration.ofDays(1)))));
        roots.put(Root.NOT_YET_VALID, TestPki.newRoot("fuzz future root", b -> b
                .notBefore(now.plus(Duration.ofDays(1))).notAfter(now.plus(Duration.ofDays(30)))));
        roots.put(Root.PATH_LEN_ZERO, TestPki.newRoot("fuzz pathlen0 root", b -> b
                .setPathLengthConstraint(java.util.OptionalInt.of(0))));
        roots.put(Root.SERVER_AUTH_ONLY, TestPki.newRoot("fuzz serverauth root", b -> b
                .addExtendedKeyUsageServerAuth()));
        roots.put(Root.UNTRUSTED, TestPki.newRoot("fuzz untrusted root"));
        for (int level = 1; level <= 5; level++) {
            intermediateKeys.add(TestPki.newP256Key());
        }
        rsa2048 = rsa(2048);
        rsa1024 = rsa(1024);

        // The test CA's anchor checks the whole chain against CRLs: the root's and one of every intermediate level,
        // each listing the two serials a case may revoke.
        List<Path> crls = new ArrayList<>();
        Instant thisUpdate = now.minus(Duration.ofMinutes(5));
        Instant nextUpdate = now.plus(Duration.ofDays(1));
        crls.add(pki.write("root.crl", crl(intermediateName(0, Root.TEST_CA), pki.root().getKeyPair().getPrivate(),
                thisUpdate, nextUpdate)));
        for (int level = 1; level <= 5; level++) {
            crls.add(pki.write("intermediate-" + level + ".crl", crl(intermediateName(level, Root.TEST_CA),
                    intermediateKeys.get(level - 1).getPrivate(), thisUpdate, nextUpdate)));
        }
        backend = TestBackend.start();
        RunningProxy.Builder builder = RunningProxy.builder(pki)
                .trustAnchor(TestPki.ANCHOR, new TrustAnchorConfig(pki.caPem(), crls, null, null))
                .identity("orders", IdentityConfig.spiffe(ORDERS).withTrustAnchor(TestPki.ANCHOR))
                .identity("orders-uri", IdentityConfig.builder().uriSan(ORDERS).trustAnchor(TestPki.ANCHOR).build())
                .backend("shop", backend.url())
                .route("orders-api", "/orders", "shop", "orders")
                .route("orders-by-uri", "/by-uri", "shop", "orders-uri");
        List<String> anyone = new ArrayList<>();
        for (Root root : Root.values()) {
            if (root.anchor == null) {
                continue;
            }
            if (root != Root.TEST_CA) {
                builder.trustAnchor(root.anchor, new TrustAnchorConfig(pki.writeCa(root.anchor + ".pem",
                        roots.get(root))));
            }
            builder.identity("any-" + root.anchor, IdentityConfig.builder().subjectO(FUZZ_O)
                    .trustAnchor(root.anchor).build());
            anyone.add("any-" + root.anchor);
        }
        builder.route(new RouteConfig("who", null, "/who", List.of(), "shop", anyone));
        proxy = builder.start();
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
    void everyGeneratedClientChainIsJudgedAsTheSpecsAndTheReadmeSay() throws Exception {
        Random random = new Random(SEED);
        List<String> failures = new ArrayList<>();
        Map<String, Integer> outcomes = new TreeMap<>();
        for (int number = 0; number < CASES; number++) {
            Features f = generate(random, number);
            Expected expected = Model.expect(f);
            String problem;
            try {
                problem = run(f, expected, outcomes);
            } catch (Exception e) {
                problem = "test error: " + e;
            }
            if (problem != null) {
                failures.add(f + "\n    model: " + (expected.refused() ? "refused " + expected.reasons()
                        : "accepted, SPIFFE ID " + expected.spiffeId() + ", anchor " + expected.anchor())
                        + "\n    proxy: " + problem);
            }
        }
        // a generator that stopped producing either outcome would prove little
        assertThat(outcomes.keySet()).as("outcomes seen: " + outcomes).contains("accepted", "refused:unknown_ca",
                "refused:expired", "refused:bad_eku", "refused:revoked");
        assertThat(failures).as("seed " + SEED + " (-Dmtlsproxy.test.seed=" + SEED + " runs this mix again), "
                + failures.size() + " of " + CASES + " cases disagree with the model").isEmpty();
    }

    /** Runs one case; null when the proxy did what the model expects, else what it did. */
    private String run(Features f, Expected expected, Map<String, Integer> outcomes) throws Exception {
        Minted minted = mint(f);
        Map<String, Double> failuresBefore = proxy.handshakeFailures();
        SSLContext context = MtlsClient.clientContext(pki.root(), minted.key(), minted.sent());
        int ordersStatus;
        int whoStatus;
        int byUriStatus;
        try (MtlsClient client = MtlsClient.connect(proxy.address(), context, null, null)) {
            ordersStatus = client.get("/orders").status();
            whoStatus = client.get("/who").status();
            byUriStatus = client.get("/by-uri").status();
        } catch (IOException refusedByTheProxy) {
            String reason = proxy.awaitNewHandshakeFailure(failuresBefore);
            outcomes.merge("refused:" + reason, 1, Integer::sum);
            if (!expected.refused()) {
                return "refused (" + reason + ")";
            }
            return expected.reasons().contains(reason) ? null : "refused with reason " + reason;
        }
        outcomes.merge("accepted", 1, Integer::sum);
        List<AccessLogEntry> entries = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            AccessLogEntry entry = proxy.accessLog().poll(5, TimeUnit.SECONDS);
            entries.add(entry);
        }
        // What was answered 200 was forwarded; the 403s were not.
        long passed = List.of(ordersStatus, whoStatus, byUriStatus).stream().filter(status -> status == 200).count();
        List<TestBackend.Recorded> forwarded = new ArrayList<>();
        TestBackend.Recorded r;
        while (forwarded.size() < passed && (r = backend.nextRequest(5, TimeUnit.SECONDS)) != null) {
            forwarded.add(r);
        }
        if (expected.refused()) {
            return "accepted (GET /orders " + ordersStatus + ", GET /who " + whoStatus + ", GET /by-uri "
                    + byUriStatus + ", peer " + (entries.get(0) == null ? "?" : entries.get(0).peer()) + ")";
        }
        List<String> problems = new ArrayList<>();
        int ordersExpected = ORDERS.equals(expected.spiffeId()) && Root.TEST_CA.anchor.equals(expected.anchor())
                ? 200 : 403;
        if (ordersStatus != ordersExpected) {
            problems.add("GET /orders " + ordersStatus + ", expected " + ordersExpected);
        }
        if (whoStatus != 200) {
            problems.add("GET /who " + whoStatus + ", expected 200");
        }
        int byUriExpected = Model.uriSanMatchesOrders(f) && Root.TEST_CA.anchor.equals(expected.anchor()) ? 200 : 403;
        if (byUriStatus != byUriExpected) {
            problems.add("GET /by-uri " + byUriStatus + ", expected " + byUriExpected);
        }
        String subject = "CN=" + f.cn() + ",O=" + FUZZ_O;
        String peer = expected.spiffeId() != null ? expected.spiffeId() : subject;
        for (AccessLogEntry entry : entries) {
            if (entry == null || !peer.equals(entry.peer())) {
                problems.add("access log peer " + (entry == null ? "(no entry)" : entry.peer()) + ", expected "
                        + peer);
                break;
            }
        }
        String xfcc = expectedXfcc(f, minted.leaf());
        if (forwarded.isEmpty()) {
            problems.add("nothing forwarded");
        }
        for (TestBackend.Recorded seen : forwarded) {
            List<String> values = seen.headers().getAll("x-forwarded-client-cert");
            if (!values.equals(List.of(xfcc))) {
                problems.add("backend saw XFCC " + values + ", expected [" + xfcc + "]");
            }
        }
        return problems.isEmpty() ? null : String.join("; ", problems);
    }

    /** Envoy's XFCC as README describes it, built from the features: quoted when , ; = or " appear. */
    static String expectedXfcc(Features f, X509Certificate leaf) throws Exception {
        StringBuilder b = new StringBuilder("By=" + TestPki.SERVER_SPIFFE_ID);
        b.append(";Hash=").append(HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
                .digest(leaf.getEncoded())));
        b.append(";Subject=\"CN=").append(f.cn()).append(",O=").append(FUZZ_O).append('"');
        for (San s : f.sans()) {
            if (s.kind == SanKind.URI) {
                b.append(";URI=").append(quotedIfNeeded(s.value));
            }
        }
        for (San s : f.sans()) {
            if (s.kind == SanKind.DNS) {
                b.append(";DNS=").append(s.value.toLowerCase(Locale.ROOT));
            }
        }
        return b.toString();
    }

    static String quotedIfNeeded(String value) {
        return value.matches(".*[,;=\"].*") ? "\"" + value + "\"" : value;
    }


    // ---------------------------------------------------------------- minting

    /** The certificates of a case: what the client sends, in order, its key, and the leaf. */
    record Minted(X509Certificate[] sent, PrivateKey key, X509Certificate leaf) {
    }

    private Minted mint(Features f) throws Exception {
        Instant now = Instant.now();
        X509Bundle root = roots.get(f.root());
        // Issuers from the root down: the root's child is the last intermediate of the list.
        X500Name issuerName = X500Name.getInstance(root.getCertificate().getSubjectX500Principal().getEncoded());
        PrivateKey issuerKey = root.getKeyPair().getPrivate();
        List<X509Certificate> cas = new ArrayList<>();
        for (int i = f.intermediates().size() - 1; i >= 0; i--) {
            Ca ca = f.intermediates().get(i);
            int level = i + 1;
            X500Name name = intermediateName(level, f.root());
            KeyPair keys = intermediateKeys.get(i);
            List<Ext> extensions = new ArrayList<>();
            switch (ca.basics()) {
                case CA -> extensions.add(new Ext(Extension.basicConstraints, true, new BasicConstraints(true)));
                case NOT_CA -> extensions.add(new Ext(Extension.basicConstraints, true, new BasicConstraints(false)));
                case PATH_LEN_ZERO -> extensions.add(new Ext(Extension.basicConstraints, true,
                        new BasicConstraints(0)));
                case ABSENT -> { }
            }
            extensions.add(new Ext(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign)));
            eku(ca.eku(), extensions);
            switch (ca.constraint()) {
                case DNS_PARTNER -> extensions.add(new Ext(Extension.nameConstraints, true, new NameConstraints(
                        new GeneralSubtree[] {new GeneralSubtree(new GeneralName(GeneralName.dNSName,
                                "partner.test"))}, null)));
                case URI_PARTNER -> extensions.add(new Ext(Extension.nameConstraints, true, new NameConstraints(
                        new GeneralSubtree[] {new GeneralSubtree(new GeneralName(
                                GeneralName.uniformResourceIdentifier, "partner.test"))}, null)));
                case DNS_OTHER -> extensions.add(new Ext(Extension.nameConstraints, true, new NameConstraints(
                        new GeneralSubtree[] {new GeneralSubtree(new GeneralName(GeneralName.dNSName,
                                "other.test"))}, null)));
                case URI_OTHER -> extensions.add(new Ext(Extension.nameConstraints, true, new NameConstraints(
                        new GeneralSubtree[] {new GeneralSubtree(new GeneralName(
                                GeneralName.uniformResourceIdentifier, "other.test"))}, null)));
                case NONE -> { }
            }
            if (ca.unknownCritical()) {
                extensions.add(new Ext(Extension.create(UNKNOWN_EXTENSION, true, DERNull.INSTANCE)));
            }
            BigInteger serial = i == 0 && f.revoked() == Revoked.INTERMEDIATE ? REVOKED_INTERMEDIATE : serial();
            cas.add(0, certificate(name, issuerName, keys.getPublic(), signer(ca.signature(), issuerKey), serial,
                    dates(ca.dates(), now), extensions));
            issuerName = name;
            issuerKey = keys.getPrivate();
        }
        KeyPair leafKeys = switch (f.leafKey()) {
            case EC_P256 -> TestPki.newP256Key();
            case RSA_2048 -> rsa2048;
            case RSA_1024 -> rsa1024;
        };
        List<Ext> extensions = new ArrayList<>();
        if (f.leafIsCa()) {
            extensions.add(new Ext(Extension.basicConstraints, true, new BasicConstraints(true)));
        }
        switch (f.leafKeyUsage()) {
            case DIGITAL_SIGNATURE -> extensions.add(new Ext(Extension.keyUsage, true,
                    new KeyUsage(KeyUsage.digitalSignature)));
            case WITH_KEY_CERT_SIGN -> extensions.add(new Ext(Extension.keyUsage, true,
                    new KeyUsage(KeyUsage.digitalSignature | KeyUsage.keyCertSign)));
            case WITH_CRL_SIGN -> extensions.add(new Ext(Extension.keyUsage, true,
                    new KeyUsage(KeyUsage.digitalSignature | KeyUsage.cRLSign)));
            case KEY_ENCIPHERMENT_ONLY -> extensions.add(new Ext(Extension.keyUsage, true,
                    new KeyUsage(KeyUsage.keyEncipherment)));
            case ABSENT -> { }
        }
        eku(f.leafEku(), extensions);
        if (!f.sans().isEmpty()) {
            List<GeneralName> names = new ArrayList<>();
            for (San s : f.sans()) {
                names.add(switch (s.kind) {
                    case URI -> new GeneralName(GeneralName.uniformResourceIdentifier, s.value);
                    case DNS -> new GeneralName(GeneralName.dNSName, s.value);
                    case EMAIL -> new GeneralName(GeneralName.rfc822Name, s.value);
                    case IP -> new GeneralName(GeneralName.iPAddress, s.value);
                });
            }
            extensions.add(new Ext(Extension.subjectAlternativeName, false,
                    new GeneralNames(names.toArray(new GeneralName[0]))));
        }
        if (f.leafUnknownCritical()) {
            extensions.add(new Ext(Extension.create(UNKNOWN_EXTENSION, true, DERNull.INSTANCE)));
        }
        BigInteger serial = f.revoked() == Revoked.LEAF ? REVOKED_LEAF : serial();
        X509Certificate leaf = certificate(x500("CN=" + f.cn() + ",O=" + FUZZ_O), issuerName,
                leafKeys.getPublic(), signer(f.leafSignature(), issuerKey), serial, dates(f.leafDates(), now),
                extensions);

        List<X509Certificate> sent = new ArrayList<>();
        sent.add(leaf);
        List<X509Certificate> above = new ArrayList<>(cas);
        Random order = new Random(f.number());
        switch (f.asSent()) {
            case SHUFFLED -> Collections.shuffle(above, order);
            case DUPLICATED_INTERMEDIATE -> {
                if (!above.isEmpty()) {
                    above.add(order.nextInt(above.size() + 1), above.get(order.nextInt(above.size())));
                }
            }
            case UNRELATED_EXTRA -> above.add(order.nextInt(above.size() + 1),
                    TestPki.clientOf(TestPki.newRoot("fuzz stranger"), "spiffe://else.test/x").getCertificate());
            case MISSING_INTERMEDIATE -> above.remove(order.nextInt(above.size()));
            case ROOT_APPENDED -> above.add(root.getCertificate());
            case IN_ORDER -> { }
        }
        sent.addAll(above);
        return new Minted(sent.toArray(new X509Certificate[0]), leafKeys.getPrivate(), leaf);
    }

    private record Ext(ASN1ObjectIdentifier oid, boolean critical, ASN1Encodable value, Extension raw) {
        Ext(ASN1ObjectIdentifier oid, boolean critical, ASN1Encodable value) {
            this(oid, critical, value, null);
        }

        Ext(Extension raw) {
            this(null, false, null, raw);
        }
    }

    private static void eku(Eku eku, List<Ext> extensions) {
        switch (eku) {
            case CLIENT_AUTH -> extensions.add(new Ext(Extension.extendedKeyUsage, false,
                    new ExtendedKeyUsage(KeyPurposeId.id_kp_clientAuth)));
            case CLIENT_AUTH_CRITICAL -> extensions.add(new Ext(Extension.extendedKeyUsage, true,
                    new ExtendedKeyUsage(KeyPurposeId.id_kp_clientAuth)));
            case SERVER_AUTH_ONLY -> extensions.add(new Ext(Extension.extendedKeyUsage, false,
                    new ExtendedKeyUsage(KeyPurposeId.id_kp_serverAuth)));
            case ANY -> extensions.add(new Ext(Extension.extendedKeyUsage, false,
                    new ExtendedKeyUsage(KeyPurposeId.anyExtendedKeyUsage)));
            case ABSENT -> { }
        }
    }

    /** The key and algorithm a certificate is signed with. */
    private record Signer(PrivateKey key, String algorithm) {
    }

    private static Signer signer(Signature signature, PrivateKey issuerKey) throws Exception {
        return switch (signature) {
            case CORRECT -> new Signer(issuerKey, "SHA256withECDSA");
            case FORGED -> new Signer(TestPki.newP256Key().getPrivate(), "SHA256withECDSA");
            case SHA1 -> new Signer(issuerKey, "SHA1withECDSA");
        };
    }

    private record Validity(Instant notBefore, Instant notAfter) {
    }

    private static Validity dates(Dates dates, Instant now) {
        return switch (dates) {
            case VALID -> new Validity(now.minus(Duration.ofHours(1)), now.plus(Duration.ofHours(12)));
            case EXPIRED -> new Validity(now.minus(Duration.ofDays(2)), now.minus(Duration.ofDays(1)));
            case NOT_YET_VALID -> new Validity(now.plus(Duration.ofDays(1)), now.plus(Duration.ofDays(2)));
        };
    }

    private static X509Certificate certificate(X500Name subject, X500Name issuer, PublicKey key, Signer signer,
            BigInteger serial, Validity validity, List<Ext> extensions) throws Exception {
        X509v3CertificateBuilder builder = new JcaX509v3CertificateBuilder(issuer, serial,
                java.util.Date.from(validity.notBefore()), java.util.Date.from(validity.notAfter()), subject, key);
        for (Ext e : extensions) {
            if (e.raw() != null) {
                builder.addExtension(e.raw());
            } else {
                builder.addExtension(e.oid(), e.critical(), e.value());
            }
        }
        return new JcaX509CertificateConverter().getCertificate(builder.build(
                new JcaContentSignerBuilder(signer.algorithm()).build(signer.key())));
    }

    /** Intermediates are named by level and root; level 0 is the root itself. */
    private X500Name intermediateName(int level, Root root) {
        if (level == 0) {
            return X500Name.getInstance(roots.get(root).getCertificate().getSubjectX500Principal().getEncoded());
        }
        return x500("CN=fuzz intermediate " + level + " of " + root.name().toLowerCase(Locale.ROOT)
                .replace('_', ' ') + ",O=" + FUZZ_O);
    }

    /** A name in the order RFC 2253 writes it (Bouncy Castle's own parser keeps the written order in the DER). */
    private static X500Name x500(String rfc2253) {
        return X500Name.getInstance(new javax.security.auth.x500.X500Principal(rfc2253).getEncoded());
    }

    private BigInteger serial() {
        return new BigInteger(64, serials).setBit(63);
    }

    private static KeyPair rsa(int bits) throws Exception {
        KeyPairGenerator generator = KeyPairGenerator.getInstance("RSA");
        generator.initialize(bits);
        return generator.generateKeyPair();
    }

    private static String crl(X500Name issuer, PrivateKey key, Instant thisUpdate, Instant nextUpdate) {
        try {
            org.bouncycastle.cert.X509v2CRLBuilder builder = new org.bouncycastle.cert.X509v2CRLBuilder(issuer,
                    java.util.Date.from(thisUpdate));
            builder.setNextUpdate(java.util.Date.from(nextUpdate));
            for (BigInteger serial : List.of(REVOKED_LEAF, REVOKED_INTERMEDIATE)) {
                builder.addCRLEntry(serial, java.util.Date.from(thisUpdate),
                        org.bouncycastle.asn1.x509.CRLReason.keyCompromise);
            }
            byte[] der = builder.build(new JcaContentSignerBuilder("SHA256withECDSA").build(key)).getEncoded();
            return "-----BEGIN X509 CRL-----\n"
                    + java.util.Base64.getMimeEncoder(64, new byte[] {'\n'}).encodeToString(der)
                    + "\n-----END X509 CRL-----\n";
        } catch (Exception e) {
            throw new IllegalStateException("cannot mint CRL", e);
        }
    }
}
