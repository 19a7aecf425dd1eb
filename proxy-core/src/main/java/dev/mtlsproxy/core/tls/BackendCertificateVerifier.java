package dev.mtlsproxy.core.tls;

import dev.mtlsproxy.config.AlgorithmStrength;
import dev.mtlsproxy.core.identity.PeerIdentities;
import dev.mtlsproxy.core.identity.PeerIdentity;
import dev.mtlsproxy.core.tls.AnchorRules.Usage;
import io.netty.util.NetUtil;
import java.net.Socket;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.CertPathValidatorException;
import java.security.cert.CertPathValidatorException.BasicReason;
import java.security.cert.CertificateException;
import java.security.cert.CertificateExpiredException;
import java.security.cert.CertificateNotYetValidException;
import java.security.cert.CertificateParsingException;
import java.security.cert.PKIXReason;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.util.Collection;
import java.util.Date;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * Verifies a backend's certificate: PKIX path validation against the configured CAs only (never the JDK's default
 * trust store), the serverAuth usage, the trusted CA's own dates, usage, path length and name constraints (as for
 * client CAs), the host name (DNS or IP SAN, never the subject CN, when the engine asks for endpoint
 * identification), and optionally the backend's SPIFFE ID.
 *
 * <p>Path validation and host name matching are the JDK's own PKIX trust manager, not a re-implementation; this class
 * adds what it leaves out (the {@link AnchorRules}, the length of the path, serverAuth in every CA that restricts
 * its usage, the weak algorithms of {@link AlgorithmStrength}, the refusal of its CN fall-back, the SPIFFE check) and turns
 * every refusal into a {@link BackendCertificateException} whose message says which check failed, for the log line
 * of the failed request. Thread-safe; one per backend TLS context.
 */
final class BackendCertificateVerifier extends X509ExtendedTrustManager {

    /** The SAN type of a DNS name, as {@link X509Certificate#getSubjectAlternativeNames()} lists it. */
    private static final int DNS_NAME = 2;
    /** README: at most 5 certificates below the trusted CA, as for clients (the JDK's PKIX has no limit). */
    private static final int MAX_BELOW_ANCHOR = 5;
    private static final String SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
    private static final String ANY_EXTENDED_KEY_USAGE = "2.5.29.37.0";

    private final X509ExtendedTrustManager pkix;
    private final BackendAnchors anchors;
    private final String spiffeId;

    /**
     * @param trustedCAs the only anchors a backend certificate may chain to; at least one
     * @param spiffeId   the SPIFFE ID the backend's certificate must carry, or null
     */
    BackendCertificateVerifier(Collection<X509Certificate> trustedCAs, String spiffeId)
            throws GeneralSecurityException {
        if (trustedCAs.isEmpty()) {
            throw new IllegalArgumentException("at least one trusted CA is required");
        }
        KeyStore anchors = KeyStore.getInstance(KeyStore.getDefaultType());
        try {
            anchors.load(null, null);
        } catch (java.io.IOException e) {
            throw new GeneralSecurityException("cannot create an empty key store", e);
        }
        int i = 0;
        for (X509Certificate ca : trustedCAs) {
            anchors.setCertificateEntry("ca-" + i++, ca);
        }
        TrustManagerFactory factory = TrustManagerFactory.getInstance("PKIX");
        factory.init(anchors);
        X509ExtendedTrustManager found = null;
        for (TrustManager tm : factory.getTrustManagers()) {
            if (tm instanceof X509ExtendedTrustManager x) {
                found = x;
            }
        }
        if (found == null) {
            throw new GeneralSecurityException("the PKIX trust manager factory offers no X509ExtendedTrustManager");
        }
        this.pkix = found;
        this.anchors = new BackendAnchors(trustedCAs);
        this.spiffeId = spiffeId;
    }

    // The JDK's PKIX runs on copies wherever a certificate of the chain constrains names (CertificateCopies): it may
    // add the CN of a leaf without DNS SANs to the SANs of the object it checks (a DNS-constrained intermediate is
    // enough), and refuseCnFallback would then take it for a DNS SAN. The chain's own certificates are the JDK's
    // cached instances, shared with every other holder of the same certificate in the process; no PKIX of ours runs
    // on them, so their names are the certificate's.

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
            throws CertificateException {
        List<X509Certificate> path = pathOf(chain);
        X509Certificate[] checked = forPkix(path, chain);
        try {
            pkix.checkServerTrusted(checked, authType, engine);
        } catch (CertificateException e) {
            throw classify(e, checked, authType, engine);
        } catch (RuntimeException e) {
            throw unjudged(e, checked);
        }
        judgePath(judgeAnchor(path, chain[0]));
        if (engine != null) {
            refuseCnFallback(chain[0], engine.getSSLParameters(), engine.getPeerHost());
        }
        checkSpiffeId(chain[0]);
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket)
            throws CertificateException {
        List<X509Certificate> path = pathOf(chain);
        X509Certificate[] checked = forPkix(path, chain);
        try {
            pkix.checkServerTrusted(checked, authType, socket);
        } catch (CertificateException e) {
            throw new BackendCertificateException(pathProblem(e), e);
        } catch (RuntimeException e) {
            throw unjudged(e, checked);
        }
        judgePath(judgeAnchor(path, chain[0]));
        if (socket instanceof SSLSocket tls && tls.getHandshakeSession() != null) {
            refuseCnFallback(chain[0], tls.getSSLParameters(), tls.getHandshakeSession().getPeerHost());
        }
        checkSpiffeId(chain[0]);
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
        List<X509Certificate> path = pathOf(chain);
        X509Certificate[] checked = forPkix(path, chain);
        try {
            pkix.checkServerTrusted(checked, authType);
        } catch (CertificateException e) {
            throw new BackendCertificateException(pathProblem(e), e);
        } catch (RuntimeException e) {
            throw unjudged(e, checked);
        }
        judgePath(judgeAnchor(path, chain[0]));
        checkSpiffeId(chain[0]);
    }

    /**
     * The path the chain stands for, built as a client's is (README: OpenSSL, BoringSSL and Go build it from the
     * certificates sent in any order): the JDK's PKIX gets that path alone, below the CA it ends at, so that the CA
     * it validated under is the one judged next. Given the chain as sent, the JDK would stop at the first trusted
     * certificate or build its own path, and under a CA whose own dates it does not check, an expired root fails its
     * search for a path, so that "backend certificate not trusted" would hide "backend CA expired".
     */
    private List<X509Certificate> pathOf(X509Certificate[] chain) throws BackendCertificateException {
        if (chain == null || chain.length == 0) {
            throw new BackendCertificateException("backend certificate not trusted: no certificate", null);
        }
        if (chain.length > ClientCertificateVerifier.MAX_PRESENTED) {
            // As for clients: bounds the work of building the path.
            throw new BackendCertificateException("backend certificate not trusted: the backend sent " + chain.length
                    + " certificates, at most " + ClientCertificateVerifier.MAX_PRESENTED + " accepted", null);
        }
        return anchors.pathBelow(chain);
    }

    /** The path for the JDK's PKIX: the leaf alone when it is pinned. */
    private static X509Certificate[] forPkix(List<X509Certificate> path, X509Certificate[] chain)
            throws BackendCertificateException {
        return forPkix(path.isEmpty() ? new X509Certificate[] {chain[0]} : path.toArray(X509Certificate[]::new));
    }

    /** A chain the JDK cannot decode again is refused as untrusted, like one it cannot validate. */
    private static X509Certificate[] forPkix(X509Certificate... chain) throws BackendCertificateException {
        try {
            return CertificateCopies.forPkix(chain);
        } catch (CertificateException e) {
            throw new BackendCertificateException("backend certificate not trusted", e);
        }
    }

    /**
     * The {@link AnchorRules} for the CA the JDK accepted the path under. Should several trusted CAs qualify (a
     * renewed CA next to its expired self), one that passes is enough.
     *
     * @return the path below that CA, leaf first
     */
    private List<X509Certificate> judgeAnchor(List<X509Certificate> path, X509Certificate leaf)
            throws BackendCertificateException {
        // The JDK judged the rest of the path at the system clock just now; the anchor is judged at the same time.
        BackendCertificateException refused = anchorProblem(path, anchors.anchorsOf(path, leaf), new Date());
        if (refused != null) {
            throw refused;
        }
        return path;
    }

    /** The first CA's problem when none of {@code cas} passes; null when one does. */
    private BackendCertificateException anchorProblem(List<X509Certificate> path, List<X509Certificate> cas,
            Date now) {
        BackendCertificateException first = null;
        for (X509Certificate anchor : cas) {
            BackendCertificateException refused = anchorProblem(path, anchor, now);
            if (refused == null) {
                return null;
            }
            first = first == null ? refused : first;
        }
        // No CA at all: the JDK accepted the path under a CA whose signature this class does not see verify.
        return first != null ? first : new BackendCertificateException("backend certificate not trusted", null);
    }

    /**
     * What the JDK's PKIX lets pass below the anchor and README's Security model refuses, for backends as for clients:
     * a CA whose extended key usage excludes serverAuth (the JDK looks at the leaf's alone), and SHA-1 signatures or
     * short keys (the JDK's defaults pass both; OpenSSL at security level 2 and Go do not). After PKIX and the anchor,
     * so that a chain of another CA is untrusted whatever it is signed with.
     *
     * @param path leaf first, without the anchor
     */
    private static void judgePath(List<X509Certificate> path) throws BackendCertificateException {
        if (path.size() > MAX_BELOW_ANCHOR) {
            throw new BackendCertificateException("backend certificate not trusted: " + path.size()
                    + " certificates below the CA, at most " + MAX_BELOW_ANCHOR + " accepted", null);
        }
        for (X509Certificate ca : path.subList(Math.min(1, path.size()), path.size())) {
            if (!allowsServerAuth(ca)) {
                throw new BackendCertificateException("backend certificate not for server authentication (extended"
                        + " key usage of " + ca.getSubjectX500Principal().getName() + ")", null);
            }
        }
        // Last, as for clients (where PKIX judges the CAs' usage first): a weak algorithm is what is wrong with a
        // chain that is otherwise accepted.
        for (X509Certificate c : path) {
            String weakness = AlgorithmStrength.weakness(c);
            if (weakness != null) {
                throw new BackendCertificateException("backend certificate not trusted: weak algorithm, " + weakness
                        + " in " + c.getSubjectX500Principal().getName(), null);
            }
        }
    }

    /** True without an EKU extension; false too when it cannot be read. */
    private static boolean allowsServerAuth(X509Certificate ca) {
        try {
            List<String> usages = ca.getExtendedKeyUsage();
            return usages == null || usages.contains(SERVER_AUTH) || usages.contains(ANY_EXTENDED_KEY_USAGE);
        } catch (CertificateParsingException e) {
            return false;
        }
    }

    private BackendCertificateException anchorProblem(List<X509Certificate> path, X509Certificate anchor, Date now) {
        String ca = anchor.getSubjectX500Principal().getName();
        try {
            AnchorRules.checkAnchor(anchor, now, Usage.SERVER_AUTH);
        } catch (CertificateExpiredException e) {
            return new BackendCertificateException("backend CA expired: " + ca, e);
        } catch (CertificateNotYetValidException e) {
            return new BackendCertificateException("backend CA not yet valid: " + ca, e);
        } catch (CertPathValidatorException e) {
            return new BackendCertificateException("backend CA not for server authentication (extended key usage): "
                    + ca, e);
        }
        List<X509Certificate> through = AnchorRules.throughTrustedIssuer(path, anchor, anchors.trusted());
        if (through != null) {
            // Validated as part of the path to its own trusted issuer, the CA is held to its name constraints; that
            // issuer is then judged as any anchor is.
            return problemAbove(through, now);
        }
        try {
            AnchorRules.checkConstraints(path, anchor, now, Usage.SERVER_AUTH);
            return null;
        } catch (CertPathValidatorException e) {
            return constraintProblem(e, ca);
        } catch (GeneralSecurityException e) {
            return new BackendCertificateException("backend certificate not trusted", e);
        }
    }

    /**
     * The path through a CA up to the trusted CAs that issued it: PKIX validates it under each (a renewed issuer
     * next to its expired self), and the first that passes and passes its own rules is enough.
     */
    private BackendCertificateException problemAbove(List<X509Certificate> through, Date now) {
        X509Certificate top = through.get(through.size() - 1);
        BackendCertificateException first = null;
        for (X509Certificate issuer : anchors.anchorsOf(through, top)) {
            BackendCertificateException refused;
            try {
                AnchorRules.validate(through, Set.of(new TrustAnchor(issuer, null)), now, Usage.SERVER_AUTH);
                refused = anchorProblem(through, issuer, now);
            } catch (CertPathValidatorException e) {
                refused = constraintProblem(e, top.getSubjectX500Principal().getName());
            } catch (GeneralSecurityException e) {
                refused = new BackendCertificateException("backend certificate not trusted", e);
            }
            if (refused == null) {
                return null;
            }
            first = first == null ? refused : first;
        }
        return first != null ? first : new BackendCertificateException("backend certificate not trusted", null);
    }

    /** A path the JDK threw on rather than judge it: see {@link UnjudgedPathException}. */
    private static BackendCertificateException unjudged(RuntimeException e, X509Certificate[] checked) {
        return unjudged(UnjudgedPathException.of(e, checked));
    }

    /** It names the CAs itself: the one judged is not necessarily one of them. */
    private static BackendCertificateException unjudged(UnjudgedPathException e) {
        return new BackendCertificateException("backend certificate not trusted: " + e.getMessage(), e);
    }

    /** A path PKIX refused under the limits of {@code ca}, the CA it judged. */
    private static BackendCertificateException constraintProblem(CertPathValidatorException e, String ca) {
        if (e instanceof UnjudgedPathException unjudged) {
            return unjudged(unjudged);
        }
        if (e.getReason() == PKIXReason.PATH_TOO_LONG) {
                return new BackendCertificateException("backend certificate not trusted: more intermediates than the"
                        + " path length of " + ca + " allows", e);
            }
            if (e.getReason() == PKIXReason.INVALID_NAME) {
                return new BackendCertificateException("backend certificate not trusted: a name outside the name"
                        + " constraints of " + ca, e);
            }
            if (e.getReason() == PKIXReason.INVALID_KEY_USAGE) {
                return new BackendCertificateException(
                        "backend certificate not for server authentication (extended key usage)", e);
            }
            if (e.getReason() == PKIXReason.UNRECOGNIZED_CRIT_EXT) {
                return new BackendCertificateException("backend certificate not trusted: the name constraints of " + ca
                        + ", which is not a root, cannot be applied (configure its root instead)", e);
            }
            return new BackendCertificateException("backend certificate not trusted: " + e.getReason() + " under "
                    + ca, e);
    }

    /**
     * What the JDK's host name check lets through and RFC 9525 does not. It falls back to the subject CN when a
     * certificate has no DNS SAN; RFC 6125 and the CA/Browser Forum retired that, and Go (so ghostunnel) and browsers
     * refuse it. And for HTTPS it takes a wildcard in any label and within one ({@code orders.*.example},
     * {@code o*.example.com}); RFC 9525 (6.3) allows only a whole left-most label, as Go, browsers and Envoy do, and
     * OpenSSL never matches one past the left-most label. So once the JDK has accepted a host that is not an IP
     * address, a DNS SAN must match it by those rules: the name itself, without regard to case, or {@code *.} and
     * the host without its first label. An IP address the JDK matches against the IP SANs only.
     */
    private static void refuseCnFallback(X509Certificate leaf, SSLParameters parameters, String host)
            throws BackendCertificateException {
        String identification = parameters.getEndpointIdentificationAlgorithm();
        if (identification == null || identification.isEmpty() || host == null
                || NetUtil.isValidIpV4Address(host) || NetUtil.isValidIpV6Address(host)) {
            return;
        }
        if (!hasDnsSanFor(leaf, host)) {
            throw new BackendCertificateException("hostname mismatch: the certificate is not for " + host, null);
        }
    }

    /** False too when the SANs cannot be read: then no name of the certificate is known to be for any host. */
    private static boolean hasDnsSanFor(X509Certificate leaf, String host) {
        Collection<List<?>> names;
        try {
            names = leaf.getSubjectAlternativeNames();
        } catch (CertificateParsingException e) {
            return false;
        }
        if (names == null) {
            return false;
        }
        String name = host.toLowerCase(Locale.ROOT);
        int firstDot = name.indexOf('.');
        String parent = firstDot > 0 ? name.substring(firstDot + 1) : null;
        for (List<?> n : names) {
            if (!Integer.valueOf(DNS_NAME).equals(n.get(0)) || !(n.get(1) instanceof String san)) {
                continue;
            }
            String pattern = san.toLowerCase(Locale.ROOT);
            if (pattern.equals(name)) {
                return true;
            }
            // One wildcard, as the whole left-most label, for exactly one label of the host.
            if (parent != null && pattern.startsWith("*.") && pattern.indexOf('*', 1) < 0
                    && pattern.substring(2).equals(parent)) {
                return true;
            }
        }
        return false;
    }

    /**
     * The JDK reports a failed path and a failed name alike; validating the path alone tells them apart. Done only
     * on failure, so a good handshake validates once.
     */
    private BackendCertificateException classify(CertificateException e, X509Certificate[] chain, String authType,
            SSLEngine engine) {
        if (e instanceof BackendCertificateException b) {
            return b;
        }
        String identification = engine == null ? null : engine.getSSLParameters().getEndpointIdentificationAlgorithm();
        if (identification == null || identification.isEmpty()) {
            return new BackendCertificateException(pathProblem(e), e);
        }
        try {
            pkix.checkServerTrusted(chain, authType);
        } catch (CertificateException pathFailure) {
            return new BackendCertificateException(pathProblem(pathFailure), e);
        } catch (RuntimeException pathFailure) {
            return unjudged(pathFailure, chain);
        }
        return new BackendCertificateException("hostname mismatch: the certificate is not for "
                + engine.getPeerHost(), e);
    }

    private static String pathProblem(CertificateException e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof CertificateExpiredException) {
                return "backend certificate expired";
            }
            if (t instanceof CertificateNotYetValidException) {
                return "backend certificate not yet valid";
            }
            if (t instanceof CertPathValidatorException v) {
                if (v.getReason() == BasicReason.EXPIRED) {
                    return "backend certificate expired";
                }
                if (v.getReason() == BasicReason.NOT_YET_VALID) {
                    return "backend certificate not yet valid";
                }
            }
            String message = t.getMessage();
            if (message != null && message.contains("Extended key usage")) {
                return "backend certificate not for server authentication (extended key usage)";
            }
        }
        return "backend certificate not trusted";
    }

    private void checkSpiffeId(X509Certificate leaf) throws CertificateException {
        if (spiffeId == null) {
            return;
        }
        PeerIdentity presented = PeerIdentities.fromCertificate(leaf);
        if (!spiffeId.equals(presented.spiffeId())) {
            throw new BackendCertificateException("SPIFFE ID mismatch: expected " + spiffeId + ", the certificate has "
                    + (presented.spiffeId() != null ? presented.spiffeId() : "none" + whyNoSvid(presented)), null);
        }
    }

    /** Why a certificate whose URI looks right still has no SPIFFE ID, or nothing when there is no such URI. */
    private static String whyNoSvid(PeerIdentity presented) {
        if (presented.uriSans().isEmpty()) {
            return "";
        }
        if (presented.signingCertificate()) {
            return " (it is a CA, or has keyCertSign or cRLSign, so it is no X509-SVID)";
        }
        if (presented.uriSans().size() > 1) {
            return " (it has " + presented.uriSans().size() + " URI SANs, an X509-SVID has exactly one)";
        }
        return "";
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType) throws CertificateException {
        throw new CertificateException("this trust manager only verifies backends");
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket)
            throws CertificateException {
        throw new CertificateException("this trust manager only verifies backends");
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
            throws CertificateException {
        throw new CertificateException("this trust manager only verifies backends");
    }

    @Override
    public X509Certificate[] getAcceptedIssuers() {
        return pkix.getAcceptedIssuers();
    }
}
