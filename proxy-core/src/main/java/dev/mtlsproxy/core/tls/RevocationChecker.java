package dev.mtlsproxy.core.tls;

import dev.mtlsproxy.config.CrlScope;
import dev.mtlsproxy.config.DenyListValues;
import dev.mtlsproxy.config.Crls;
import dev.mtlsproxy.config.PemException;
import dev.mtlsproxy.config.RevocationConfig;
import dev.mtlsproxy.config.StaleCrlPolicy;
import dev.mtlsproxy.config.TrustAnchorConfig;
import java.math.BigInteger;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.cert.X509CRL;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import javax.security.auth.x500.X500Principal;

/**
 * Revocation of client certificates, checked after PKIX path validation succeeded, so the chain it sees is one that
 * leads to a trusted CA. Two independent mechanisms:
 * <ul>
 *   <li>the emergency deny-list (serials, SHA-256 fingerprints, SPKI pins), matched against every certificate of
 *       the chain including the trust anchor; it needs nothing from a CA;</li>
 *   <li>CRLs, per trust anchor: for a chain that validated to an anchor with CRLs, every certificate in that
 *       anchor's scope ({@link CrlScope}) must be covered by a CRL from its issuer that counts for it (signed by
 *       that issuer's key, in scope, issued: {@link CoveringCrls}); the newest such CRL decides. No such CRL denies
 *       (fail closed: the operator asked for CRL checking); a CRL past its nextUpdate denies or is accepted with a
 *       warning, per the anchor's {@link StaleCrlPolicy}. Chains to an anchor without CRLs are not checked against
 *       CRLs.</li>
 * </ul>
 * Every refusal is {@link HandshakeFailureReason#REVOKED}. Immutable after construction and thread-safe: one instance
 * per configuration generation, shared by every listener and connection.
 */
public final class RevocationChecker {

    /** Told when a stale CRL was accepted under {@link StaleCrlPolicy#INSECURE_ALLOW}; called on event loops. */
    public interface StaleCrlListener {
        void staleCrlAccepted(X500Principal issuer, Instant nextUpdate);
    }

    public static final RevocationChecker NONE = new RevocationChecker(Map.of(), Set.of(), Set.of(), Set.of(),
            (issuer, nextUpdate) -> { }, Clock.systemUTC());

    /** A CRL, the file it came from and the trust anchor it belongs to, for logs and metrics. */
    public record SourcedCrl(String anchor, Path file, X509CRL crl) {
    }

    /** One anchor's CRLs, by issuer, and how they apply. */
    private record AnchorCrls(List<SourcedCrl> crls, Map<X500Principal, List<X509CRL>> byIssuer, CrlScope scope,
            StaleCrlPolicy stalePolicy) {
    }

    private final Map<String, AnchorCrls> anchors;
    private final Set<BigInteger> deniedSerials;
    private final Set<String> deniedFingerprints;
    private final Set<String> deniedSpkiPins;
    private final StaleCrlListener staleListener;
    private final Clock clock;
    private final CoveringCrls covering;

    private RevocationChecker(Map<String, AnchorCrls> anchors, Set<BigInteger> deniedSerials,
            Set<String> deniedFingerprints, Set<String> deniedSpkiPins, StaleCrlListener staleListener, Clock clock) {
        this.anchors = Map.copyOf(anchors);
        this.deniedSerials = Set.copyOf(deniedSerials);
        this.deniedFingerprints = Set.copyOf(deniedFingerprints);
        this.deniedSpkiPins = Set.copyOf(deniedSpkiPins);
        this.staleListener = staleListener;
        this.clock = clock;
        List<X509CRL> all = new ArrayList<>();
        this.anchors.values().forEach(a -> a.crls().forEach(c -> all.add(c.crl())));
        this.covering = new CoveringCrls(all);
    }

    /**
     * Reads every trust anchor's CRL files now (off the event loops) and parses the deny-list.
     *
     * @throws PemException when a CRL file is unreadable or invalid
     */
    public static RevocationChecker load(Map<String, TrustAnchorConfig> trustAnchors, RevocationConfig config,
            StaleCrlListener staleListener, Clock clock) throws PemException {
        Map<String, AnchorCrls> anchors = new HashMap<>();
        for (Map.Entry<String, TrustAnchorConfig> anchor : new TreeMap<>(trustAnchors).entrySet()) {
            if (anchor.getValue().crls().isEmpty()) {
                continue;
            }
            List<SourcedCrl> crls = new ArrayList<>();
            Map<X500Principal, List<X509CRL>> byIssuer = new HashMap<>();
            for (Path file : anchor.getValue().crls()) {
                for (X509CRL crl : Crls.read(file)) {
                    crls.add(new SourcedCrl(anchor.getKey(), file, crl));
                    byIssuer.computeIfAbsent(crl.getIssuerX500Principal(), k -> new ArrayList<>()).add(crl);
                }
            }
            byIssuer.replaceAll((k, v) -> List.copyOf(v));
            anchors.put(anchor.getKey(), new AnchorCrls(List.copyOf(crls), Map.copyOf(byIssuer),
                    anchor.getValue().crlScope(), anchor.getValue().staleCrl()));
        }
        Set<BigInteger> serials = new HashSet<>();
        config.denySerials().forEach(s -> serials.add(DenyListValues.serial(s)));
        Set<String> fingerprints = new HashSet<>();
        config.denyFingerprints().forEach(f -> fingerprints.add(DenyListValues.fingerprint(f)));
        Set<String> pins = new HashSet<>();
        config.denySpkiPins().forEach(p -> pins.add(DenyListValues.spkiPin(p)));
        return new RevocationChecker(anchors, serials, fingerprints, pins, staleListener, clock);
    }

    /**
     * Whether a CRL counts, as the handshake judges it: {@code counts} false with {@code why} when it counts for no
     * certificate (or, for a thisUpdate in the future, none yet); null when that is not known here.
     */
    public record CrlStanding(Boolean counts, String why) {
    }

    /**
     * Whether {@code crl} counts for any certificate as of {@code now}, by the rules the handshake applies
     * ({@link CoveringCrls}) that do not depend on the certificate: judged against each of {@code anchorCAs} with
     * its issuer's name, it counts when it does for one of them. A CRL whose issuer is none of them is an
     * intermediate CA's, judged against the certificate of that name a client sends.
     *
     * @param anchorCAs the CA certificates of the CRL's trust anchor, as the listeners trusting it loaded them
     */
    public CrlStanding standing(X509CRL crl, Collection<X509Certificate> anchorCAs, Instant now) {
        if (anchorCAs.isEmpty()) {
            return new CrlStanding(false, "no listener trusts its anchor");
        }
        Set<String> whys = new LinkedHashSet<>();
        for (X509Certificate ca : anchorCAs) {
            if (ca.getSubjectX500Principal().equals(crl.getIssuerX500Principal())) {
                String why = covering.whyNeverCounts(crl, ca, now);
                if (why == null) {
                    return new CrlStanding(true, null);
                }
                whys.add(why);
            }
        }
        if (whys.isEmpty()) {
            String notYet = CoveringCrls.notYetCounting(crl, now);
            return notYet != null ? new CrlStanding(false, notYet) : new CrlStanding(null, "its issuer is not a CA"
                    + " of the anchor: an intermediate CA's CRL is judged against the certificate a client sends");
        }
        return new CrlStanding(false, String.join("; ", whys));
    }

    /** The CRLs in use, by anchor name then file order, for metrics (nextUpdate) and the admin inventory. */
    public List<SourcedCrl> crls() {
        List<SourcedCrl> all = new ArrayList<>();
        new TreeMap<>(anchors).values().forEach(a -> all.addAll(a.crls()));
        return all;
    }

    /**
     * Checks a chain that PKIX has validated.
     *
     * @param path       leaf first, every certificate below the trust anchor
     * @param anchor     the trust anchor's certificate the path validated against
     * @param anchorName the configured trust anchor that certificate belongs to
     */
    void check(List<X509Certificate> path, X509Certificate anchor, String anchorName)
            throws ClientCertificateRejectedException {
        X509Certificate leaf = path.get(0);
        if (!deniedSerials.isEmpty() || !deniedFingerprints.isEmpty() || !deniedSpkiPins.isEmpty()) {
            for (int i = 0; i <= path.size(); i++) {
                X509Certificate c = i < path.size() ? path.get(i) : anchor;
                String denied = denied(c);
                if (denied != null) {
                    throw revoked("chain index " + i + " is on the deny-list (" + denied + ")", leaf);
                }
            }
        }
        AnchorCrls crls = anchorName == null ? null : anchors.get(anchorName);
        if (crls == null) {
            return;
        }
        int checked = crls.scope() == CrlScope.LEAF ? 1 : path.size();
        Instant now = clock.instant();
        for (int i = 0; i < checked; i++) {
            X509Certificate c = path.get(i);
            X509Certificate issuer = i + 1 < path.size() ? path.get(i + 1) : anchor;
            CoveringCrls.Choice choice = covering.choose(c, issuer,
                    crls.byIssuer().get(issuer.getSubjectX500Principal()), now);
            X509CRL crl = choice.crl();
            if (crl == null) {
                throw revoked("no valid CRL from " + issuer.getSubjectX500Principal().getName() + " for chain index "
                        + i + (choice.whyNone() == null ? "" : " (" + choice.whyNone() + ")"), leaf);
            }
            if (crl.isRevoked(c)) {
                throw revoked("chain index " + i + " (serial " + c.getSerialNumber().toString(16)
                        + ") is revoked by the CRL of " + issuer.getSubjectX500Principal().getName(), leaf);
            }
            Instant nextUpdate = crl.getNextUpdate() == null ? null : crl.getNextUpdate().toInstant();
            if (nextUpdate != null && now.isAfter(nextUpdate)) {
                if (crls.stalePolicy() == StaleCrlPolicy.DENY) {
                    throw revoked("the CRL of " + issuer.getSubjectX500Principal().getName() + " is stale (nextUpdate "
                            + nextUpdate + ")", leaf);
                }
                staleListener.staleCrlAccepted(issuer.getSubjectX500Principal(), nextUpdate);
            }
        }
    }

    private String denied(X509Certificate c) {
        if (deniedSerials.contains(c.getSerialNumber())) {
            return "serial";
        }
        try {
            if (!deniedFingerprints.isEmpty()
                    && deniedFingerprints.contains(DenyListValues.hex(sha256(c.getEncoded())))) {
                return "fingerprint";
            }
        } catch (java.security.cert.CertificateEncodingException e) {
            return "unencodable certificate";
        }
        if (!deniedSpkiPins.isEmpty()
                && deniedSpkiPins.contains(Base64.getEncoder().encodeToString(sha256(c.getPublicKey().getEncoded())))) {
            return "SPKI pin";
        }
        return null;
    }

    private static byte[] sha256(byte[] data) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(data);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JDK always has SHA-256", e);
        }
    }

    private static ClientCertificateRejectedException revoked(String detail, X509Certificate leaf) {
        return new ClientCertificateRejectedException(HandshakeFailureReason.REVOKED, detail, null, leaf);
    }
}
