package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.BackendTlsConfig;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslProvider;
import io.netty.pkitesting.X509Bundle;
import java.io.IOException;
import java.math.BigInteger;
import java.net.URI;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.net.Socket;
import java.security.Principal;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.X509ExtendedKeyManager;
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
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * Backend certificate verification, end to end, on generated server chains: the twin of
 * {@link ClientCertificatePropertyTest} for what a hostile or misconfigured backend presents. Each case is a random
 * combination of {@link Features} (dates, extended and plain key usage, basic constraints and path lengths, permitted
 * and excluded name constraints, unknown critical extensions, forged and weak signatures, the chain as sent (up to
 * as many certificates as a backend may send), the leaf's names, and the backend's {@code serverCAs} (a root, an
 * intermediate, the whole chain), {@code serverName} or endpoint host, {@code verifyHostname} and {@code spiffeId}),
 * minted for the run and presented by a real TLS backend of its own, reached through one running proxy by a real
 * mTLS client. The verdict, 200 or 502 and the cause the proxy logs, is judged against {@link Model}: an oracle
 * written from RFC 5280 path validation, RFC 9525 host name matching, the SPIFFE X509-SVID rules and README's
 * backend TLS paragraph, which reads the features, never the certificates, and shares no code with the proxy.
 *
 * <p>Every case is its own backend with its own route, so its own TLS context: no session is resumed from one case to
 * the next. The mix comes from one seed, printed with every failure together with each failing case as one line;
 * {@code -Dmtlsproxy.test.seed=N} runs that mix again and {@code -Dmtlsproxy.test.seed=random} a new one.
 */
class BackendCertificatePropertyTest {

    static final long SEED = ClientCertificatePropertyTest.seedOf(System.getProperty("mtlsproxy.test.seed", "1"));
    static final int CASES = Integer.getInteger("mtlsproxy.test.backendCertCases", 160);

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final String BACKEND_ID = "spiffe://backend.test/ns/shop/sa/orders-api";
    static final String FUZZ_O = "mtls-proxy backend fuzz";
    static final ASN1ObjectIdentifier UNKNOWN_EXTENSION = new ASN1ObjectIdentifier("1.3.6.1.4.1.55555.7.2");
    /** README, Security model: what a client may send, which the backend paragraph says backends are held to. */
    static final int MAX_BELOW_ROOT = 5;
    /**
     * README, backend TLS: the certificates a backend may send in all, whatever they are. One more is not among the
     * cases: the proxy's TLS engine hands its verifier no more than 10 (Netty's verify depth), so what README says of
     * an eleventh is out of reach end to end; BackendCertificateVerifierTest holds the verifier to it.
     */
    static final int MAX_SENT = 10;

    @RegisterExtension
    static final LogCapture log = LogCapture.quietly(ForwardingHandler.class);

    @TempDir
    Path dir;
    TestPki pki;
    final List<TestBackend> backends = new ArrayList<>();
    RunningProxy proxy;
    final Map<Root, X509Bundle> roots = new EnumMap<>(Root.class);
    final Map<Root, Path> rootPems = new EnumMap<>(Root.class);
    Path strangerPem;
    /** Distinct unrelated CAs, to pad a chain with. */
    final List<X509Certificate> strangers = new ArrayList<>();
    KeyPair rsa2048;
    KeyPair rsa1024;
    final SecureRandom serials = new SecureRandom();

    // ---------------------------------------------------------------- the features a case combines

    /** The root a chain is minted under; {@link #UNTRUSTED} is in no backend's serverCAs. */
    enum Root { TEST_CA, UNTRUSTED, EXPIRED, NOT_YET_VALID, PATH_LEN_ZERO, CLIENT_AUTH_ONLY, DNS_BACKEND, DNS_PARTNER }

    /**
     * What the backend's {@code serverCAs} hold: the chain's root; an unrelated root and then the chain's root (two
     * files); the leaf's issuing intermediate alone, pinned as the trust anchor; or the whole chain above the leaf,
     * every intermediate and the root, pasted into one file.
     */
    enum Trust { ROOT, TWO_ROOTS, INTERMEDIATE, WHOLE_CHAIN }

    enum Dates { VALID, EXPIRED, NOT_YET_VALID }

    enum Eku { ABSENT, SERVER_AUTH, CLIENT_AUTH_ONLY, ANY }

    enum LeafKeyUsage { ABSENT, DIGITAL_SIGNATURE, KEY_ENCIPHERMENT_ONLY, WITH_KEY_CERT_SIGN }

    /** A CA's basicConstraints: CA:true, CA:false, none at all, or CA:true with pathLen:0. */
    enum Basics { CA, NOT_CA, ABSENT, PATH_LEN_ZERO }

    /** The subtree a CA permits, or excludes, in its name constraints (critical, as RFC 5280 requires). */
    enum Constraint {
        NONE, DNS_BACKEND, DNS_PARTNER, IP_LOOPBACK, URI_BACKEND,
        EXCLUDED_DNS_PARTNER, EXCLUDED_IP_PRIVATE, EXCLUDED_URI_PARTNER;

        /** Of the roots: the constraints their certificates carry. */
        static Constraint of(Root root) {
            return switch (root) {
                case DNS_BACKEND -> DNS_BACKEND;
                case DNS_PARTNER -> DNS_PARTNER;
                default -> NONE;
            };
        }
    }

    enum Signature { CORRECT, FORGED, SHA1 }

    enum LeafKey { EC_P256, RSA_2048, RSA_1024 }

    /**
     * The chain as the backend sends it, after the leaf: in issuing order; the intermediates reversed; the leaf's
     * issuer twice in a row; an unrelated certificate appended; the root's child left out; the root appended; in
     * order and then unrelated certificates up to {@link #MAX_SENT} in all.
     */
    enum AsSent { IN_ORDER, REVERSED, DUPLICATED_ISSUER, UNRELATED_EXTRA, MISSING_TOP, ROOT_APPENDED, PADDED_TO_LIMIT }

    enum SanKind { DNS, IP, URI }

    /** The names a leaf may carry; {@code uriHost} is what a URI name constraint compares. */
    enum San {
        DNS_ORDERS(SanKind.DNS, "orders.backend.test"),
        DNS_ORDERS_UPPER(SanKind.DNS, "ORDERS.Backend.TEST"),
        DNS_WILDCARD(SanKind.DNS, "*.backend.test"),
        DNS_WILDCARD_TLD(SanKind.DNS, "*.test"),
        DNS_PARTIAL_WILDCARD(SanKind.DNS, "o*.backend.test"),
        DNS_INNER_WILDCARD(SanKind.DNS, "orders.*.test"),
        DNS_IDN(SanKind.DNS, "xn--rders-zua.backend.test"),
        DNS_BILLING(SanKind.DNS, "billing.backend.test"),
        DNS_APEX(SanKind.DNS, "backend.test"),
        DNS_LOCALHOST(SanKind.DNS, "localhost"),
        DNS_PARTNER(SanKind.DNS, "api.partner.test"),
        DNS_IP_TEXT(SanKind.DNS, "127.0.0.1"),
        IP_LOOPBACK(SanKind.IP, "127.0.0.1"),
        IP_OTHER(SanKind.IP, "10.9.8.7"),
        URI_BACKEND_ID(SanKind.URI, BACKEND_ID),
        URI_OTHER_ID(SanKind.URI, "spiffe://backend.test/ns/shop/sa/billing"),
        URI_HTTPS(SanKind.URI, "https://backend.test/orders-api"),
        URI_PARTNER_ID(SanKind.URI, "spiffe://partner.test/sa/agent");

        final SanKind kind;
        final String value;

        San(SanKind kind, String value) {
            this.kind = kind;
            this.value = value;
        }

        String uriHost() {
            return URI.create(value).getHost();
        }
    }

    /** The leaf's subject CN: a host name, localhost, an IP address, or no name at all. */
    enum Cn {
        HOST("orders.backend.test"), LOCALHOST("localhost"), IP("127.0.0.1"), PLAIN("fuzz backend");

        final String value;

        Cn(String value) {
            this.value = value;
        }
    }

    /**
     * What the backend's configuration asks the certificate to be for: the endpoint's IP address, a
     * {@code serverName} (as written, upper case included; a trailing dot is refused when the configuration is
     * loaded), an IP address as {@code serverName}, or the endpoint's host name.
     */
    enum Target {
        ENDPOINT_IP(null, "127.0.0.1"),
        SERVER_NAME("orders.backend.test", null),
        SERVER_NAME_UPPER("ORDERS.Backend.Test", null),
        SERVER_NAME_APEX("backend.test", null),
        SERVER_NAME_PARTNER("api.partner.test", null),
        SERVER_NAME_IP("127.0.0.1", null),
        ENDPOINT_LOCALHOST(null, "localhost"),
        ENDPOINT_LOCALHOST_UPPER(null, "LocalHost");

        final String serverName;
        final String endpointHost;

        Target(String serverName, String endpointHost) {
            this.serverName = serverName;
            this.endpointHost = endpointHost;
        }

        /** The reference identity (RFC 9525): the serverName if set, else the endpoint's host. */
        String asked() {
            return serverName != null ? serverName : endpointHost;
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

    /** One case: everything the model reads. */
    record Features(int number, Root root, Trust trust, List<Ca> intermediates, Dates leafDates, Eku leafEku,
            LeafKeyUsage leafKeyUsage, boolean leafIsCa, boolean leafUnknownCritical, Signature leafSignature,
            LeafKey leafKey, List<San> sans, Cn cn, AsSent asSent, Target target, boolean verifyHostname,
            boolean spiffePin) {
        @Override
        public String toString() {
            return "#" + number + " root=" + root + " trust=" + trust + " intermediates=" + intermediates + " leaf("
                    + leafDates + ",eku=" + leafEku + ",ku=" + leafKeyUsage + (leafIsCa ? ",CA:true" : "")
                    + (leafUnknownCritical ? ",unknown-critical" : "") + ",sig=" + leafSignature + ",key=" + leafKey
                    + ",cn=" + cn.value + ",sans=" + sans.stream().map(s -> s.value).toList() + ") sent=" + asSent
                    + " asked=" + target + "(" + target.asked() + ")" + (verifyHostname ? "" : " verifyHostname=false")
                    + (spiffePin ? " spiffeId=" + BACKEND_ID : "");
        }
    }

    static Features generate(Random random, int number) {
        Root root = pick(random, Root.values(), 0.5, Root.TEST_CA);
        int depth = random.nextInt(12) == 0 ? 4 + random.nextInt(2) : random.nextInt(3);
        Trust trust = pick(random, Trust.values(), 0.6, Trust.ROOT);
        if ((trust == Trust.INTERMEDIATE || trust == Trust.WHOLE_CHAIN) && depth == 0) {
            trust = Trust.ROOT;
        }
        if (trust == Trust.WHOLE_CHAIN && root == Root.UNTRUSTED) {
            root = Root.TEST_CA; // the whole chain trusted holds its root: no root of it is untrusted
        }
        List<Ca> intermediates = new ArrayList<>();
        for (int i = 0; i < depth; i++) {
            Basics basics = pick(random, Basics.values(), 0.8, Basics.CA);
            boolean unknownCritical = random.nextInt(12) == 0;
            if ((i == 0 && trust == Trust.INTERMEDIATE) || trust == Trust.WHOLE_CHAIN) {
                // A pinned CA that is no CA, or carries an extension nobody knows, is a configuration no one writes;
                // RFC 5280 leaves a trust anchor's own extensions to the relying party, and OpenSSL and the JDK differ.
                // In a whole chain, any of its CAs may be the one the path ends at.
                basics = random.nextBoolean() ? Basics.CA : Basics.PATH_LEN_ZERO;
                unknownCritical = false;
            }
            Constraint constraint = pick(random, Constraint.values(), 0.75, Constraint.NONE);
            Signature signature = pick(random, Signature.values(), 0.85, Signature.CORRECT);
            if (trust == Trust.WHOLE_CHAIN && constraint != Constraint.NONE && signature == Signature.FORGED) {
                // A constrained CA trusted without an issuer that signed it is refused at load (README), and the
                // run needs its proxy started.
                signature = Signature.CORRECT;
            }
            intermediates.add(new Ca(pick(random, Dates.values(), 0.85, Dates.VALID),
                    pick(random, Eku.values(), 0.7, Eku.ABSENT), basics, constraint, unknownCritical, signature));
        }
        Target target = pick(random, Target.values(), 0.3, Target.SERVER_NAME);
        List<San> sans = new ArrayList<>();
        int count = random.nextInt(8) == 0 ? 0 : 1 + random.nextInt(3);
        for (int i = 0; i < count; i++) {
            // Mostly a name that matches what is asked, so that the other features decide often enough.
            San san = random.nextInt(3) == 0 ? usualSan(target) : San.values()[random.nextInt(San.values().length)];
            if (!sans.contains(san)) {
                sans.add(san);
            }
        }
        boolean spiffePin = random.nextInt(4) == 0;
        boolean verifyHostname = !spiffePin || random.nextBoolean();
        if (spiffePin && random.nextBoolean() && !sans.contains(San.URI_BACKEND_ID)) {
            sans.add(San.URI_BACKEND_ID);
        }
        AsSent asSent = pick(random, AsSent.values(), 0.6, AsSent.IN_ORDER);
        if ((depth < 2 && (asSent == AsSent.REVERSED)) || (depth == 0 && (asSent == AsSent.DUPLICATED_ISSUER
                || asSent == AsSent.MISSING_TOP))) {
            asSent = AsSent.IN_ORDER;
        }
        return new Features(number, root, trust, List.copyOf(intermediates),
                pick(random, Dates.values(), 0.85, Dates.VALID), pick(random, Eku.values(), 0.5, Eku.SERVER_AUTH),
                pick(random, LeafKeyUsage.values(), 0.6, LeafKeyUsage.DIGITAL_SIGNATURE), random.nextInt(15) == 0,
                random.nextInt(15) == 0, pick(random, Signature.values(), 0.85, Signature.CORRECT),
                pick(random, LeafKey.values(), 0.8, LeafKey.EC_P256), List.copyOf(sans),
                pick(random, Cn.values(), 0.5, Cn.PLAIN), asSent, target, verifyHostname, spiffePin);
    }

    private static San usualSan(Target target) {
        return switch (target) {
            case ENDPOINT_IP, SERVER_NAME_IP -> San.IP_LOOPBACK;
            case SERVER_NAME, SERVER_NAME_UPPER -> San.DNS_ORDERS;
            case SERVER_NAME_APEX -> San.DNS_APEX;
            case SERVER_NAME_PARTNER -> San.DNS_PARTNER;
            case ENDPOINT_LOCALHOST, ENDPOINT_LOCALHOST_UPPER -> San.DNS_LOCALHOST;
        };
    }

    /** {@code usual} with probability {@code p}, else any value (the usual one included). */
    static <T> T pick(Random random, T[] values, double p, T usual) {
        return random.nextDouble() < p ? usual : values[random.nextInt(values.length)];
    }

    // ---------------------------------------------------------------- the oracle

    /** Why the proxy must refuse the backend, as the cause it logs classifies (see {@link #classify}). */
    enum Refusal { NOT_TRUSTED, EXPIRED, NOT_YET_VALID, BAD_USAGE, WEAK_ALGORITHM, HOSTNAME, SPIFFE_ID }

    /**
     * The specs, applied to the features: RFC 5280 6.1 for the path below the trust anchor, with the anchor held to
     * its own dates, usage, path length and name constraints (README: as client CAs are); RFC 8446 4.4.2.2 for the
     * leaf's key usage; README's backend paragraph for the chain as sent (the path built from it in any order, what
     * it does not use ignored) and for names (RFC 9525: DNS SANs for a name, IP SANs for an address, never the CN, a
     * wildcard as the whole left-most label covering one label); X509-SVID for the SPIFFE pin.
     */
    static final class Model {

        static Set<Refusal> expect(Features f) {
            Set<Refusal> refusals = new TreeSet<>();
            // The path ends at the first trusted CA above the leaf: its issuer when that is in serverCAs.
            boolean pinned = f.trust() == Trust.INTERMEDIATE || f.trust() == Trust.WHOLE_CHAIN;
            // The intermediates of the path as sent, below the trusted CA; when the leaf's issuer is trusted, none.
            List<Ca> below = pinned ? List.of() : f.intermediates();
            // README: a trusted intermediate with name constraints is judged up to its issuer when serverCAs hold
            // that too (a whole chain in one file), as a CA of the path; the climb stops at one without any, or at
            // the root. These CAs are judged as any CA of a path, except for what only the chain as sent is held to
            // (the weak-algorithm rule and the count below the CA).
            List<Ca> lifted = new ArrayList<>();
            if (f.trust() == Trust.WHOLE_CHAIN) {
                for (Ca ca : f.intermediates()) {
                    if (ca.constraint() == Constraint.NONE) {
                        break;
                    }
                    lifted.add(ca);
                }
            }
            // The trusted CA judged as the anchor: an intermediate, or null for the root.
            Ca pinnedCa = pinned && lifted.size() < f.intermediates().size() ? f.intermediates().get(lifted.size())
                    : null;
            // Every CA between the leaf and that anchor, leaf side first.
            List<Ca> path = pinned ? lifted : below;
            int n = below.size();
            if (!pinned) {
                if (f.root() == Root.UNTRUSTED) {
                    refusals.add(Refusal.NOT_TRUSTED);
                }
                // README: the path is built from the certificates sent, in any order after the leaf, as OpenSSL,
                // BoringSSL and Go build it; duplicates, a stranger and the root are left out. Only a CA of the
                // path that was not sent breaks it.
                if (f.asSent() == AsSent.MISSING_TOP) {
                    refusals.add(Refusal.NOT_TRUSTED);
                }
                if (n + 1 > MAX_BELOW_ROOT) {
                    refusals.add(Refusal.NOT_TRUSTED);
                }
            }
            // 6.1.3 (a)(1): every signature below the anchor verifies; the anchor's own is not part of the path.
            if (f.leafSignature() == Signature.FORGED || path.stream().anyMatch(c -> c.signature() == Signature.FORGED)) {
                refusals.add(Refusal.NOT_TRUSTED);
            }
            // 6.1.3 (a)(2), and the anchor's own dates (README).
            List<Dates> dates = new ArrayList<>();
            dates.add(f.leafDates());
            path.forEach(c -> dates.add(c.dates()));
            if (pinnedCa != null) {
                dates.add(pinnedCa.dates());
            } else if (f.root() == Root.EXPIRED) {
                dates.add(Dates.EXPIRED);
            } else if (f.root() == Root.NOT_YET_VALID) {
                dates.add(Dates.NOT_YET_VALID);
            }
            if (dates.contains(Dates.EXPIRED)) {
                refusals.add(Refusal.EXPIRED);
            }
            if (dates.contains(Dates.NOT_YET_VALID)) {
                refusals.add(Refusal.NOT_YET_VALID);
            }
            // README: serverAuth wherever a certificate of the chain, the CA included, restricts its usage (as
            // clientAuth for client chains).
            boolean anchorClientOnly = pinnedCa != null ? pinnedCa.eku() == Eku.CLIENT_AUTH_ONLY
                    : f.root() == Root.CLIENT_AUTH_ONLY;
            if (f.leafEku() == Eku.CLIENT_AUTH_ONLY || anchorClientOnly
                    || path.stream().anyMatch(c -> c.eku() == Eku.CLIENT_AUTH_ONLY)) {
                refusals.add(Refusal.BAD_USAGE);
            }
            // RFC 8446 4.4.2.2: a server's key signs the handshake; a key usage without digitalSignature forbids it.
            if (f.leafKeyUsage() == LeafKeyUsage.KEY_ENCIPHERMENT_ONLY) {
                refusals.add(Refusal.BAD_USAGE);
            }
            // 6.1.4 (k): an issuer is a CA; (l)/(m): pathLenConstraint counts the CAs below it, the anchor's too.
            for (int i = 0; i < path.size(); i++) {
                Basics basics = path.get(i).basics();
                if (basics == Basics.NOT_CA || basics == Basics.ABSENT) {
                    refusals.add(Refusal.NOT_TRUSTED);
                }
                if (basics == Basics.PATH_LEN_ZERO && i > 0) {
                    refusals.add(Refusal.NOT_TRUSTED);
                }
            }
            boolean anchorPathLenZero = pinnedCa != null ? pinnedCa.basics() == Basics.PATH_LEN_ZERO
                    : f.root() == Root.PATH_LEN_ZERO;
            if (anchorPathLenZero && !path.isEmpty()) {
                refusals.add(Refusal.NOT_TRUSTED);
            }
            // 6.1.4 (o), 6.1.5 (f): an unrecognised critical extension fails the path.
            if (f.leafUnknownCritical() || path.stream().anyMatch(Ca::unknownCritical)) {
                refusals.add(Refusal.NOT_TRUSTED);
            }
            // README: an intermediate pinned as the CA has name constraints the proxy cannot apply (the JDK takes a
            // trust anchor's as given, and cannot put a CA that is not a root on top of the path), so without its
            // issuer it vouches for nothing: fail closed rather than let it speak for any name.
            if (f.trust() == Trust.INTERMEDIATE && pinnedCa.constraint() != Constraint.NONE) {
                refusals.add(Refusal.NOT_TRUSTED);
            }
            // 6.1.3 (b)/(c): the leaf's names within the subtrees of every CA above it, the anchor's included.
            List<Constraint> constraints = new ArrayList<>();
            path.forEach(c -> constraints.add(c.constraint()));
            constraints.add(pinnedCa != null ? pinnedCa.constraint() : Constraint.of(f.root()));
            if (!namesPermitted(f, constraints)) {
                refusals.add(Refusal.NOT_TRUSTED);
            }
            // 6.1.4 (g): below CAs permitting disjoint DNS subtrees, no DNS name is permitted. README: the JDK cannot
            // judge such a path, and the proxy refuses it even for a leaf without DNS names (or a DNS-like CN).
            if (constraints.contains(Constraint.DNS_BACKEND) && constraints.contains(Constraint.DNS_PARTNER)) {
                refusals.add(Refusal.NOT_TRUSTED);
            }
            // README, Security model: SHA-1 signatures and RSA keys under 2048 bits below the trusted CA, once
            // the chain is otherwise accepted; the backend paragraph holds backends as strictly as clients.
            if (refusals.isEmpty() && (f.leafSignature() == Signature.SHA1 || f.leafKey() == LeafKey.RSA_1024
                    || below.stream().anyMatch(c -> c.signature() == Signature.SHA1))) {
                refusals.add(Refusal.WEAK_ALGORITHM);
            }
            if (f.verifyHostname() && !forHost(f.sans(), f.target().asked())) {
                refusals.add(Refusal.HOSTNAME);
            }
            if (f.spiffePin() && !BACKEND_ID.equals(spiffeId(f))) {
                refusals.add(Refusal.SPIFFE_ID);
            }
            return refusals;
        }

        /**
         * RFC 9525 6.3 and README: an IP address matches an IP SAN only; a name matches a DNS SAN, compared without
         * regard to case, where a wildcard is the whole left-most label and covers exactly one label; never the CN.
         */
        static boolean forHost(List<San> sans, String asked) {
            if (asked.matches("[0-9.]+")) {
                return sans.stream().anyMatch(s -> s.kind == SanKind.IP && s.value.equals(asked));
            }
            String host = asked.toLowerCase(Locale.ROOT);
            for (San s : sans) {
                if (s.kind != SanKind.DNS) {
                    continue;
                }
                String pattern = s.value.toLowerCase(Locale.ROOT);
                if (pattern.equals(host)) {
                    return true;
                }
                int dot = host.indexOf('.');
                if (pattern.startsWith("*.") && pattern.indexOf('*', 1) < 0 && dot > 0
                        && host.substring(dot + 1).equals(pattern.substring(2))) {
                    return true;
                }
            }
            return false;
        }

        /**
         * RFC 5280 4.2.1.10: names of a constrained type must lie within a permitted subtree and outside every
         * excluded one, names of other types are free. README: a DNS constraint also binds the CN of a leaf without
         * DNS SANs, when that CN is a DNS name; a CN that is an IP address is not one (the JDK reads it as an IP
         * address instead, for a leaf without IP SANs, and every IP constraint here lets 127.0.0.1 through).
         */
        static boolean namesPermitted(Features f, List<Constraint> constraints) {
            boolean hasDns = f.sans().stream().anyMatch(s -> s.kind == SanKind.DNS);
            boolean dnsCn = f.cn() != Cn.PLAIN && f.cn() != Cn.IP;
            for (Constraint c : constraints) {
                switch (c) {
                    case DNS_BACKEND, DNS_PARTNER -> {
                        String domain = c == Constraint.DNS_BACKEND ? "backend.test" : "partner.test";
                        for (San s : f.sans()) {
                            if (s.kind == SanKind.DNS && !within(s.value, domain)) {
                                return false;
                            }
                        }
                        if (!hasDns && dnsCn && !within(f.cn().value, domain)) {
                            return false;
                        }
                    }
                    case IP_LOOPBACK -> {
                        for (San s : f.sans()) {
                            if (s.kind == SanKind.IP && !s.value.startsWith("127.")) {
                                return false;
                            }
                        }
                    }
                    case URI_BACKEND -> {
                        for (San s : f.sans()) {
                            if (s.kind == SanKind.URI && !s.uriHost().equalsIgnoreCase("backend.test")) {
                                return false;
                            }
                        }
                    }
                    case EXCLUDED_DNS_PARTNER -> {
                        for (San s : f.sans()) {
                            if (s.kind == SanKind.DNS && within(s.value, "partner.test")) {
                                return false;
                            }
                        }
                        if (!hasDns && dnsCn && within(f.cn().value, "partner.test")) {
                            return false;
                        }
                    }
                    case EXCLUDED_IP_PRIVATE -> {
                        for (San s : f.sans()) {
                            if (s.kind == SanKind.IP && s.value.startsWith("10.")) {
                                return false;
                            }
                        }
                    }
                    case EXCLUDED_URI_PARTNER -> {
                        for (San s : f.sans()) {
                            if (s.kind == SanKind.URI && s.uriHost().equalsIgnoreCase("partner.test")) {
                                return false;
                            }
                        }
                    }
                    case NONE -> { }
                }
            }
            return true;
        }

        static boolean within(String dns, String domain) {
            String d = dns.toLowerCase(Locale.ROOT);
            return d.equals(domain) || d.endsWith("." + domain);
        }

        /**
         * X509-SVID 2: exactly one URI SAN; 4.1/4.3: a CA, or a leaf with keyCertSign or cRLSign, is no SVID; the
         * URI must be a SPIFFE ID (every spiffe URI here is well formed).
         */
        static String spiffeId(Features f) {
            if (f.leafIsCa() || f.leafKeyUsage() == LeafKeyUsage.WITH_KEY_CERT_SIGN) {
                return null;
            }
            List<San> uris = f.sans().stream().filter(s -> s.kind == SanKind.URI).toList();
            return uris.size() == 1 && uris.get(0).value.startsWith("spiffe://") ? uris.get(0).value : null;
        }
    }

    /** The refusal a logged cause stands for; null for a cause the model does not know (always a disagreement). */
    static Refusal classify(String cause) {
        if (cause.startsWith("hostname mismatch")) {
            return Refusal.HOSTNAME;
        }
        if (cause.startsWith("SPIFFE ID mismatch")) {
            return Refusal.SPIFFE_ID;
        }
        if (cause.contains("weak algorithm")) {
            return Refusal.WEAK_ALGORITHM;
        }
        if (cause.equals("backend certificate expired") || cause.startsWith("backend CA expired")) {
            return Refusal.EXPIRED;
        }
        if (cause.equals("backend certificate not yet valid") || cause.startsWith("backend CA not yet valid")) {
            return Refusal.NOT_YET_VALID;
        }
        if (cause.contains("not for server authentication")) {
            return Refusal.BAD_USAGE;
        }
        if (cause.startsWith("backend certificate not trusted")) {
            return Refusal.NOT_TRUSTED;
        }
        return null;
    }

    // ---------------------------------------------------------------- the run

    @AfterEach
    void stop() {
        if (proxy != null) {
            proxy.close();
        }
        backends.forEach(TestBackend::close);
    }

    @Test
    void everyGeneratedBackendChainIsJudgedAsTheSpecsAndTheReadmeSay() throws Exception {
        pki = TestPki.create(dir);
        mintRoots();
        List<Features> cases = generateCases(new Random(SEED));
        RunningProxy.Builder builder = RunningProxy.builder(pki).identity("orders", ORDERS);
        for (Features f : cases) {
            TestBackend backend = TestBackend.start(serverContext(mint(f)));
            backends.add(backend);
            builder.backend(name(f), backendConfig(f, backend.port()))
                    .route(name(f), "/" + name(f), name(f), "orders");
        }
        proxy = builder.start();

        List<String> failures = new ArrayList<>();
        Map<String, Integer> outcomes = new TreeMap<>();
        MtlsClient client = null;
        try {
            for (Features f : cases) {
                Set<Refusal> expected = Model.expect(f);
                String problem;
                try {
                    if (client == null) {
                        client = MtlsClient.connect(proxy.address(), pki.root(), pki.client(ORDERS));
                    }
                    problem = run(client, f, expected, outcomes);
                } catch (IOException e) {
                    client = null;
                    problem = "test error: " + e;
                }
                if (problem != null) {
                    failures.add(f + "\n    model: " + (expected.isEmpty() ? "200" : "502 " + expected)
                            + "\n    proxy: " + problem);
                }
            }
        } finally {
            if (client != null) {
                client.close();
            }
        }
        // a generator that stopped producing either outcome would prove little
        assertThat(outcomes.keySet()).as("outcomes seen: " + outcomes).contains("200", "502 NOT_TRUSTED",
                "502 EXPIRED", "502 BAD_USAGE", "502 HOSTNAME", "502 SPIFFE_ID");
        assertThat(failures).as("seed " + SEED + " (-Dmtlsproxy.test.seed=" + SEED + " runs this mix again), "
                + failures.size() + " of " + CASES + " cases disagree with the model; outcomes " + outcomes)
                .isEmpty();
    }

    /**
     * Rare combinations the model has rules for, each of which the mix must hold: a seed that draws none of one gets
     * one in place of a case at the end (seed 7 drew no whole chain above a constrained CA, and failed for it).
     */
    private static final Map<String, Predicate<Features>> RARE = Map.of(
            "a whole chain trusted, judged above a constrained CA of it", f ->
                    f.trust() == Trust.WHOLE_CHAIN && f.intermediates().get(0).constraint() != Constraint.NONE,
            "an excluded subtree", f -> f.intermediates().stream()
                    .anyMatch(c -> c.constraint().name().startsWith("EXCLUDED_")),
            "as many certificates as accepted", f -> f.asSent() == AsSent.PADDED_TO_LIMIT);

    private static boolean isRare(Features f) {
        return RARE.values().stream().anyMatch(rare -> rare.test(f));
    }

    private static List<Features> generateCases(Random random) {
        List<Features> cases = new ArrayList<>();
        for (int number = 0; number < CASES; number++) {
            cases.add(generate(random, number));
        }
        for (Map.Entry<String, Predicate<Features>> rare : new TreeMap<>(RARE).entrySet()) {
            if (cases.stream().noneMatch(rare.getValue())) {
                // the last case that is none of the rare ones, so that no other one goes missing
                int slot = CASES - 1;
                while (isRare(cases.get(slot))) {
                    slot--;
                }
                Features drawn = null;
                for (int attempt = 0; attempt < 100_000 && drawn == null; attempt++) {
                    Features f = generate(random, slot);
                    drawn = rare.getValue().test(f) ? f : null;
                }
                assertThat(drawn).as("the generator never makes %s", rare.getKey()).isNotNull();
                cases.set(slot, drawn);
            }
        }
        return cases;
    }

    private static final Pattern CAUSE = Pattern.compile("cause=\"(.*)\" status=502");

    /** Runs one case; null when the proxy did what the model expects, else what it did. */
    private String run(MtlsClient client, Features f, Set<Refusal> expected, Map<String, Integer> outcomes)
            throws Exception {
        int status = client.get("/" + name(f)).status();
        if (status == 200) {
            outcomes.merge("200", 1, Integer::sum);
            return expected.isEmpty() ? null : "200";
        }
        if (status != 502) {
            return "status " + status;
        }
        String line = log.await("backend=" + name(f) + " ", "status=502");
        Matcher m = CAUSE.matcher(line);
        String cause = m.find() ? m.group(1) : line;
        Refusal refusal = classify(cause);
        outcomes.merge("502 " + (refusal == null ? "(unclassified)" : refusal), 1, Integer::sum);
        if (expected.isEmpty()) {
            return "502 (" + cause + ")";
        }
        return refusal != null && expected.contains(refusal) ? null : "502 with another cause (" + cause + ")";
    }

    private static String name(Features f) {
        return String.format(Locale.ROOT, "case-%03d", f.number());
    }

    private BackendConfig backendConfig(Features f, int port) {
        List<Path> serverCAs = switch (f.trust()) {
            case ROOT -> List.of(rootPems.get(f.root() == Root.UNTRUSTED ? Root.TEST_CA : f.root()));
            case TWO_ROOTS -> List.of(strangerPem, rootPems.get(f.root() == Root.UNTRUSTED ? Root.TEST_CA : f.root()));
            case INTERMEDIATE, WHOLE_CHAIN -> List.of(dir.resolve(name(f) + "-ca.pem"));
        };
        String host = f.target().endpointHost != null ? f.target().endpointHost : "127.0.0.1";
        BackendTlsConfig tls = new BackendTlsConfig(serverCAs, f.target().serverName, f.verifyHostname(),
                f.spiffePin() ? BACKEND_ID : null, null, null, null, null);
        return BackendConfig.of(List.of(URI.create("https://" + host + ":" + port)), tls);
    }

    /**
     * BoringSSL sends the chain exactly as the key manager hands it over; a key store would refuse to hold one that is
     * out of order.
     */
    private static io.netty.handler.ssl.SslContext serverContext(Minted minted) throws Exception {
        return SslContextBuilder.forServer(new FixedKeyManager(minted)).sslProvider(SslProvider.JDK).build();
    }

    private static final class FixedKeyManager extends X509ExtendedKeyManager {
        private static final String ALIAS = "backend";
        private final Minted minted;

        FixedKeyManager(Minted minted) {
            this.minted = minted;
        }

        @Override
        public String chooseEngineServerAlias(String keyType, Principal[] issuers, SSLEngine engine) {
            return ALIAS;
        }

        @Override
        public String chooseServerAlias(String keyType, Principal[] issuers, Socket socket) {
            return ALIAS;
        }

        @Override
        public String[] getServerAliases(String keyType, Principal[] issuers) {
            return new String[] {ALIAS};
        }

        @Override
        public X509Certificate[] getCertificateChain(String alias) {
            return minted.sent().clone();
        }

        @Override
        public PrivateKey getPrivateKey(String alias) {
            return minted.key();
        }

        @Override
        public String[] getClientAliases(String keyType, Principal[] issuers) {
            return null;
        }

        @Override
        public String chooseClientAlias(String[] keyType, Principal[] issuers, Socket socket) {
            return null;
        }
    }

    // ---------------------------------------------------------------- minting

    private void mintRoots() throws Exception {
        Instant now = Instant.now();
        roots.put(Root.TEST_CA, pki.root());
        roots.put(Root.UNTRUSTED, TestPki.newRoot("backend fuzz untrusted root"));
        roots.put(Root.EXPIRED, TestPki.newRoot("backend fuzz expired root", b -> b
                .notBefore(now.minus(Duration.ofDays(30))).notAfter(now.minus(Duration.ofDays(1)))));
        roots.put(Root.NOT_YET_VALID, TestPki.newRoot("backend fuzz future root", b -> b
                .notBefore(now.plus(Duration.ofDays(1))).notAfter(now.plus(Duration.ofDays(30)))));
        roots.put(Root.PATH_LEN_ZERO, TestPki.newRoot("backend fuzz pathlen0 root", b -> b
                .setPathLengthConstraint(OptionalInt.of(0))));
        roots.put(Root.CLIENT_AUTH_ONLY, TestPki.newRoot("backend fuzz clientauth root", b -> b
                .addExtendedKeyUsageClientAuth()));
        roots.put(Root.DNS_BACKEND, TestPki.dnsConstrainedRoot("backend fuzz backend.test root", "backend.test"));
        roots.put(Root.DNS_PARTNER, TestPki.dnsConstrainedRoot("backend fuzz partner.test root", "partner.test"));
        for (Map.Entry<Root, X509Bundle> root : roots.entrySet()) {
            rootPems.put(root.getKey(), pki.writeCa("root-" + root.getKey().name().toLowerCase(Locale.ROOT) + ".pem",
                    root.getValue()));
        }
        strangerPem = pki.writeCa("stranger.pem", TestPki.newRoot("backend fuzz stranger root"));
        for (int i = 0; i < MAX_SENT; i++) {
            strangers.add(TestPki.newRoot("backend fuzz padding " + i).getCertificate());
        }
        rsa2048 = rsa(2048);
        rsa1024 = rsa(1024);
    }

    /** What the backend sends, in order, and its key. */
    record Minted(X509Certificate[] sent, PrivateKey key) {
    }

    private Minted mint(Features f) throws Exception {
        Instant now = Instant.now();
        X509Bundle root = roots.get(f.root());
        X500Name issuerName = X500Name.getInstance(root.getCertificate().getSubjectX500Principal().getEncoded());
        PrivateKey issuerKey = root.getKeyPair().getPrivate();
        List<X509Certificate> cas = new ArrayList<>();
        for (int i = f.intermediates().size() - 1; i >= 0; i--) {
            Ca ca = f.intermediates().get(i);
            X500Name name = x500("CN=backend fuzz intermediate " + (i + 1) + " of case " + f.number() + ",O=" + FUZZ_O);
            KeyPair keys = TestPki.newP256Key();
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
            GeneralName subtree = switch (ca.constraint()) {
                case DNS_BACKEND -> new GeneralName(GeneralName.dNSName, "backend.test");
                case DNS_PARTNER, EXCLUDED_DNS_PARTNER -> new GeneralName(GeneralName.dNSName, "partner.test");
                case IP_LOOPBACK -> new GeneralName(GeneralName.iPAddress, "127.0.0.0/8");
                case EXCLUDED_IP_PRIVATE -> new GeneralName(GeneralName.iPAddress, "10.0.0.0/8");
                case URI_BACKEND -> new GeneralName(GeneralName.uniformResourceIdentifier, "backend.test");
                case EXCLUDED_URI_PARTNER -> new GeneralName(GeneralName.uniformResourceIdentifier, "partner.test");
                case NONE -> null;
            };
            if (subtree != null) {
                GeneralSubtree[] one = {new GeneralSubtree(subtree)};
                boolean excluded = ca.constraint().name().startsWith("EXCLUDED_");
                extensions.add(new Ext(Extension.nameConstraints, true, excluded ? new NameConstraints(null, one)
                        : new NameConstraints(one, null)));
            }
            if (ca.unknownCritical()) {
                extensions.add(new Ext(UNKNOWN_EXTENSION, true, DERNull.INSTANCE));
            }
            X509Certificate certificate = certificate(name, issuerName, keys.getPublic(),
                    signer(ca.signature(), issuerKey), dates(ca.dates(), now), extensions);
            cas.add(0, certificate);
            issuerName = name;
            issuerKey = keys.getPrivate();
        }
        if (f.trust() == Trust.INTERMEDIATE) {
            pki.write(name(f) + "-ca.pem", pem(cas.get(0)));
        } else if (f.trust() == Trust.WHOLE_CHAIN) {
            StringBuilder chain = new StringBuilder();
            for (X509Certificate ca : cas) {
                chain.append(pem(ca));
            }
            pki.write(name(f) + "-ca.pem", chain.append(pem(root.getCertificate())).toString());
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
            case KEY_ENCIPHERMENT_ONLY -> extensions.add(new Ext(Extension.keyUsage, true,
                    new KeyUsage(KeyUsage.keyEncipherment)));
            case WITH_KEY_CERT_SIGN -> extensions.add(new Ext(Extension.keyUsage, true,
                    new KeyUsage(KeyUsage.digitalSignature | KeyUsage.keyCertSign)));
            case ABSENT -> { }
        }
        eku(f.leafEku(), extensions);
        if (!f.sans().isEmpty()) {
            List<GeneralName> names = new ArrayList<>();
            for (San s : f.sans()) {
                names.add(switch (s.kind) {
                    case DNS -> new GeneralName(GeneralName.dNSName, s.value);
                    case IP -> new GeneralName(GeneralName.iPAddress, s.value);
                    case URI -> new GeneralName(GeneralName.uniformResourceIdentifier, s.value);
                });
            }
            extensions.add(new Ext(Extension.subjectAlternativeName, false,
                    new GeneralNames(names.toArray(new GeneralName[0]))));
        }
        if (f.leafUnknownCritical()) {
            extensions.add(new Ext(UNKNOWN_EXTENSION, true, DERNull.INSTANCE));
        }
        X509Certificate leaf = certificate(x500("CN=" + f.cn().value + ",O=" + FUZZ_O), issuerName,
                leafKeys.getPublic(), signer(f.leafSignature(), issuerKey), dates(f.leafDates(), now), extensions);

        List<X509Certificate> sent = new ArrayList<>();
        sent.add(leaf);
        List<X509Certificate> above = new ArrayList<>(cas);
        switch (f.asSent()) {
            case REVERSED -> Collections.reverse(above);
            case DUPLICATED_ISSUER -> above.add(1, above.get(0));
            case UNRELATED_EXTRA -> above.add(TestPki.newRoot("backend fuzz stranger").getCertificate());
            case MISSING_TOP -> above.remove(above.size() - 1);
            case ROOT_APPENDED -> above.add(root.getCertificate());
            case IN_ORDER, PADDED_TO_LIMIT -> { }
        }
        sent.addAll(above);
        for (int i = 0; f.asSent() == AsSent.PADDED_TO_LIMIT && sent.size() < MAX_SENT; i++) {
            sent.add(strangers.get(i));
        }
        return new Minted(sent.toArray(new X509Certificate[0]), leafKeys.getPrivate());
    }

    private record Ext(ASN1ObjectIdentifier oid, boolean critical, ASN1Encodable value) {
    }

    private static void eku(Eku eku, List<Ext> extensions) {
        switch (eku) {
            case SERVER_AUTH -> extensions.add(new Ext(Extension.extendedKeyUsage, false,
                    new ExtendedKeyUsage(KeyPurposeId.id_kp_serverAuth)));
            case CLIENT_AUTH_ONLY -> extensions.add(new Ext(Extension.extendedKeyUsage, false,
                    new ExtendedKeyUsage(KeyPurposeId.id_kp_clientAuth)));
            case ANY -> extensions.add(new Ext(Extension.extendedKeyUsage, false,
                    new ExtendedKeyUsage(KeyPurposeId.anyExtendedKeyUsage)));
            case ABSENT -> { }
        }
    }

    /** The key and algorithm a certificate is signed with. */
    private record Signer(PrivateKey key, String algorithm) {
    }

    private static Signer signer(Signature signature, PrivateKey issuerKey) throws Exception {
        String hash = signature == Signature.SHA1 ? "SHA1" : "SHA256";
        PrivateKey key = signature == Signature.FORGED ? TestPki.newP256Key().getPrivate() : issuerKey;
        return new Signer(key, hash + "with" + (key.getAlgorithm().equals("RSA") ? "RSA" : "ECDSA"));
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

    private X509Certificate certificate(X500Name subject, X500Name issuer, PublicKey key, Signer signer,
            Validity validity, List<Ext> extensions) throws Exception {
        X509v3CertificateBuilder builder = new JcaX509v3CertificateBuilder(issuer,
                new BigInteger(64, serials).setBit(63), java.util.Date.from(validity.notBefore()),
                java.util.Date.from(validity.notAfter()), subject, key);
        for (Ext e : extensions) {
            builder.addExtension(e.oid(), e.critical(), e.value());
        }
        return new JcaX509CertificateConverter().getCertificate(builder.build(
                new JcaContentSignerBuilder(signer.algorithm()).build(signer.key())));
    }

    /** A name in the order RFC 2253 writes it (Bouncy Castle's own parser keeps the written order in the DER). */
    private static X500Name x500(String rfc2253) {
        return X500Name.getInstance(new javax.security.auth.x500.X500Principal(rfc2253).getEncoded());
    }

    private static String pem(X509Certificate certificate) throws Exception {
        return "-----BEGIN CERTIFICATE-----\n"
                + Base64.getMimeEncoder(64, new byte[] {'\n'}).encodeToString(certificate.getEncoded())
                + "\n-----END CERTIFICATE-----\n";
    }

    private static KeyPair rsa(int bits) throws Exception {
        KeyPairGenerator generator = KeyPairGenerator.getInstance("RSA");
        generator.initialize(bits);
        return generator.generateKeyPair();
    }
}
