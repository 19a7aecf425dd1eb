package dev.mtlsproxy.core.tls;

import dev.mtlsproxy.config.AlgorithmStrength;
import dev.mtlsproxy.core.identity.PeerIdentities;
import dev.mtlsproxy.core.identity.PeerIdentity;
import dev.mtlsproxy.core.tls.AnchorRules.Usage;
import java.net.Socket;
import java.security.GeneralSecurityException;
import java.security.cert.CertPathValidatorException;
import java.security.cert.CertPathValidatorException.BasicReason;
import java.security.cert.Certificate;
import java.security.cert.CertificateException;
import java.security.cert.CertificateExpiredException;
import java.security.cert.CertificateNotYetValidException;
import java.security.cert.CertificateParsingException;
import java.security.cert.PKIXCertPathValidatorResult;
import java.security.cert.PKIXReason;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.util.Collection;
import java.util.Date;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * Verifies client certificate chains with full PKIX path validation against the listener's CA bundle: signatures,
 * validity dates at the injected clock, basic constraints, path length and name constraints (the trusted CA's own
 * included), and the clientAuth extended key usage wherever a certificate of the chain, CA included, restricts its
 * usage (the Go/ghostunnel rule, stricter than OpenSSL's default).
 *
 * <p>Every rejection is a {@link ClientCertificateRejectedException} with a {@link HandshakeFailureReason}, so the
 * handshake outcome is classified by type. Revocation (CRLs, deny-list) is the {@link RevocationChecker}'s job, asked
 * once PKIX has accepted the path.
 *
 * <p>A chain that passes is kept in {@link VerifiedChains}, with its identity, so that the same bytes presented again
 * skip PKIX and parsing; dates and revocation are judged on every handshake all the same.
 *
 * <p>Thread-safe and shared by all connections of one TLS context.
 */
final class ClientCertificateVerifier extends X509ExtendedTrustManager implements ClientChainVerifier {

    /** Leaf plus intermediates a path may hold; deeper paths are refused before any signature is checked. */
    static final int MAX_CHAIN_LENGTH = 5;
    /**
     * Certificates a client may send: room for a full path, a root and a few extraneous ones (a CA's old and new
     * intermediate during its renewal), which the path leaves out; bounds the work of building it.
     */
    static final int MAX_PRESENTED = 2 * MAX_CHAIN_LENGTH;
    /** Index into {@link X509Certificate#getKeyUsage()} (RFC 5280, 4.2.1.3). */
    private static final int DIGITAL_SIGNATURE = 0;

    private final Set<TrustAnchor> anchors;
    private final Set<X509Certificate> anchorCertificates;
    private final X509Certificate[] acceptedIssuers;
    private final Clock clock;
    private final RevocationChecker revocation;
    /** The configured trust anchor of each CA, so revocation applies that anchor's CRL settings. */
    private final Map<X509Certificate, String> anchorNames;
    private final TrustAnchors attribution;
    private final VerifiedChains verified = new VerifiedChains();

    ClientCertificateVerifier(Collection<X509Certificate> trustedCAs, Clock clock) {
        this(trustedCAs, Map.of(), RevocationChecker.NONE, clock);
    }

    ClientCertificateVerifier(Collection<X509Certificate> trustedCAs, Map<X509Certificate, String> anchorNames,
            RevocationChecker revocation, Clock clock) {
        if (trustedCAs.isEmpty()) {
            throw new IllegalArgumentException("at least one trusted CA is required");
        }
        Set<TrustAnchor> a = new HashSet<>();
        for (X509Certificate ca : trustedCAs) {
            a.add(new TrustAnchor(ca, null));
        }
        this.anchors = Set.copyOf(a);
        this.anchorCertificates = Set.copyOf(new LinkedHashSet<>(trustedCAs));
        this.acceptedIssuers = trustedCAs.toArray(new X509Certificate[0]);
        this.clock = clock;
        this.revocation = revocation;
        this.anchorNames = Map.copyOf(anchorNames);
        this.attribution = new TrustAnchors(this.anchorNames);
    }

    @Override
    public void verify(X509Certificate[] chain) throws ClientCertificateRejectedException {
        verified(chain);
    }

    @Override
    public VerifiedChain recall(Certificate[] presented) {
        return verified.get(VerifiedChains.keyOf(presented));
    }

    /** Verifies the chain and returns what was derived from it, shared with every earlier identical chain. */
    VerifiedChain verified(X509Certificate[] chain) throws ClientCertificateRejectedException {
        if (chain == null || chain.length == 0) {
            throw new ClientCertificateRejectedException(
                    HandshakeFailureReason.NO_CERTIFICATE, "client sent no certificate", null, null);
        }
        VerifiedChains.Key key = VerifiedChains.keyOf(chain);
        VerifiedChain known = verified.get(key);
        if (known != null && known.validAt(clock.millis())) {
            revocation.check(known.path(), known.anchor(), known.anchorName());
            return known;
        }
        if (chain.length > MAX_PRESENTED) {
            throw new ClientCertificateRejectedException(HandshakeFailureReason.CHAIN_TOO_LONG,
                    "client sent " + chain.length + " certificates, at most " + MAX_PRESENTED + " accepted", null,
                    chain[0]);
        }
        // Built from the certificates sent in any order, without the root a client may append: the path handed to
        // PKIX runs from the leaf to just below the trust anchor.
        List<X509Certificate> path = TrustAnchors.pathBelow(chain, anchorCertificates);
        if (path.size() > MAX_CHAIN_LENGTH) {
            throw new ClientCertificateRejectedException(HandshakeFailureReason.CHAIN_TOO_LONG,
                    "client sent " + path.size() + " certificates below the root, at most " + MAX_CHAIN_LENGTH
                            + " accepted", null, chain[0]);
        }
        Date now = Date.from(clock.instant());
        X509Certificate anchor = acceptedAnchor(path, now, chain[0]);
        // BoringSSL refuses such a leaf's CertificateVerify in the handshake; checked here too so that explain and
        // test, which verify without a handshake, judge the chain as the handshake does.
        boolean[] keyUsage = chain[0].getKeyUsage();
        if (keyUsage != null && !keyUsage[DIGITAL_SIGNATURE]) {
            throw new ClientCertificateRejectedException(HandshakeFailureReason.BAD_EKU,
                    "the key usage of the leaf lacks digitalSignature: it cannot sign the handshake", null, chain[0]);
        }
        // After PKIX, so that a chain of another CA is unknown_ca whatever it is signed with.
        for (X509Certificate c : path) {
            String weakness = AlgorithmStrength.weakness(c);
            if (weakness != null) {
                throw new ClientCertificateRejectedException(HandshakeFailureReason.WEAK_ALGORITHM, weakness + " in "
                        + c.getSubjectX500Principal().getName(), null, chain[0]);
            }
        }
        // Revocation only ever narrows what PKIX accepted; it runs on the validated path and its anchor.
        revocation.check(path, anchor, anchorNames.get(anchor));
        X509Certificate[] parsed = chain.clone();
        PeerIdentity identity = identityOf(parsed);
        VerifiedChain passed = VerifiedChain.of(parsed, path, anchor, anchorNames.get(anchor), identity);
        verified.put(key, passed);
        return passed;
    }

    /**
     * The CA the path is accepted under. PKIX returns the first anchor whose key verifies the path, blind to the
     * anchor's dates and usage; a bundle in the middle of a CA's renewal or reissue holds two certificates of one CA
     * (same name, same key), so when the anchor it picked fails our rules, the others are tried before refusing.
     */
    private X509Certificate acceptedAnchor(List<X509Certificate> path, Date now, X509Certificate leaf)
            throws ClientCertificateRejectedException {
        PKIXCertPathValidatorResult result = pkix(path, anchors, now, leaf);
        Set<TrustAnchor> untried = null;
        while (true) {
            X509Certificate anchor = result.getTrustAnchor().getTrustedCert();
            try {
                judgeAnchor(path, anchor, now, leaf);
                return anchor;
            } catch (ClientCertificateRejectedException refused) {
                if (untried == null) {
                    untried = new HashSet<>(anchors);
                }
                untried.remove(result.getTrustAnchor());
                try {
                    result = pkix(path, untried, now, leaf);
                } catch (ClientCertificateRejectedException noOther) {
                    throw refused;
                }
            }
        }
    }

    private static PKIXCertPathValidatorResult pkix(List<X509Certificate> path, Set<TrustAnchor> anchors, Date now,
            X509Certificate leaf) throws ClientCertificateRejectedException {
        try {
            return AnchorRules.validate(path, anchors, now, Usage.CLIENT_AUTH);
        } catch (CertPathValidatorException e) {
            throw new ClientCertificateRejectedException(classify(e), describe(e), e, leaf);
        } catch (GeneralSecurityException e) {
            throw new ClientCertificateRejectedException(HandshakeFailureReason.OTHER, e.getClass().getSimpleName(), e,
                    leaf);
        }
    }

    /** What PKIX does not check of the anchor it accepted the path under: see {@link AnchorRules}. */
    private void judgeAnchor(List<X509Certificate> path, X509Certificate anchor, Date now, X509Certificate leaf)
            throws ClientCertificateRejectedException {
        try {
            AnchorRules.checkAnchor(anchor, now, Usage.CLIENT_AUTH);
        } catch (CertificateExpiredException e) {
            throw new ClientCertificateRejectedException(HandshakeFailureReason.EXPIRED, "trusted CA "
                    + anchor.getSubjectX500Principal().getName() + " has expired", e, leaf);
        } catch (CertificateNotYetValidException e) {
            throw new ClientCertificateRejectedException(HandshakeFailureReason.NOT_YET_VALID, "trusted CA "
                    + anchor.getSubjectX500Principal().getName() + " is not yet valid", e, leaf);
        } catch (CertPathValidatorException e) {
            throw new ClientCertificateRejectedException(HandshakeFailureReason.BAD_EKU, e.getMessage()
                    + " in the trusted CA", e, leaf);
        }
        List<X509Certificate> through = AnchorRules.throughTrustedIssuer(path, anchor, anchorCertificates);
        if (through != null) {
            // Validated as part of the path to its own trusted issuer, the CA is held to its name constraints; that
            // issuer is then judged as any anchor is. The chain still counts as the first CA's (attribution, CRLs).
            acceptedAnchor(through, now, leaf);
            return;
        }
        try {
            AnchorRules.checkConstraints(path, anchor, now, Usage.CLIENT_AUTH);
        } catch (CertPathValidatorException e) {
            // The anchor's own limits: the message names the CA, which no chain index can.
            throw new ClientCertificateRejectedException(classify(e), e instanceof UnjudgedPathException
                    ? describe(e) : describe(e) + " (" + e.getMessage() + ")", e, leaf);
        } catch (GeneralSecurityException e) {
            throw new ClientCertificateRejectedException(HandshakeFailureReason.OTHER, e.getClass().getSimpleName(), e,
                    leaf);
        }
    }

    /**
     * Refused here rather than after the handshake when the leaf's names cannot be read or are malformed: explain and
     * test say so too, and the log says why.
     */
    private PeerIdentity identityOf(X509Certificate[] chain) throws ClientCertificateRejectedException {
        try {
            return PeerIdentities.fromCertificate(chain[0]).withTrustAnchor(attribution.anchorOf(chain));
        } catch (CertificateParsingException e) {
            throw new ClientCertificateRejectedException(HandshakeFailureReason.OTHER, "leaf: " + e.getMessage(), e,
                    chain[0]);
        }
    }

    private static HandshakeFailureReason classify(CertPathValidatorException e) {
        CertPathValidatorException.Reason reason = e.getReason();
        if (reason == BasicReason.EXPIRED) {
            return HandshakeFailureReason.EXPIRED;
        }
        if (reason == BasicReason.NOT_YET_VALID) {
            return HandshakeFailureReason.NOT_YET_VALID;
        }
        if (reason == BasicReason.REVOKED) {
            return HandshakeFailureReason.REVOKED;
        }
        // A bad signature or a leaf acting as issuer is a chain that does not lead to our CA: a forgery
        // signal that belongs with unknown_ca, not lost in "other".
        if (reason == PKIXReason.NO_TRUST_ANCHOR || reason == BasicReason.INVALID_SIGNATURE
                || reason == PKIXReason.NOT_CA_CERT) {
            return HandshakeFailureReason.UNKNOWN_CA;
        }
        if (reason == PKIXReason.PATH_TOO_LONG) {
            return HandshakeFailureReason.CHAIN_TOO_LONG;
        }
        if (reason == PKIXReason.INVALID_KEY_USAGE) {
            return HandshakeFailureReason.BAD_EKU;
        }
        // The JDK's reason for a name outside a CA's constraints, and UnjudgedPathException's for constraints that
        // permit nothing in common. A constrained CA pinned without its root is refused as unusable, not for the
        // client's names (UNRECOGNIZED_CRIT_EXT): that stays "other".
        if (reason == PKIXReason.INVALID_NAME) {
            return HandshakeFailureReason.NAME_CONSTRAINTS;
        }
        return HandshakeFailureReason.OTHER;
    }

    private static String describe(CertPathValidatorException e) {
        if (e instanceof UnjudgedPathException) {
            // No reason or index of the JDK's: it says which CAs, or that the JDK failed.
            return e.getMessage();
        }
        String at = e.getIndex() >= 0 ? " at chain index " + e.getIndex() : "";
        return e.getReason() + at;
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType) throws CertificateException {
        verify(chain);
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket)
            throws CertificateException {
        verify(chain);
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
            throws CertificateException {
        verify(chain);
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
        throw new CertificateException("this trust manager only verifies clients");
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket)
            throws CertificateException {
        throw new CertificateException("this trust manager only verifies clients");
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
            throws CertificateException {
        throw new CertificateException("this trust manager only verifies clients");
    }

    /** Sent in the CertificateRequest so clients holding several certificates pick one from a trusted CA. */
    @Override
    public X509Certificate[] getAcceptedIssuers() {
        return acceptedIssuers.clone();
    }
}
