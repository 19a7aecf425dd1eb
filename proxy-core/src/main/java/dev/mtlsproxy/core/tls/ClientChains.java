package dev.mtlsproxy.core.tls;

import dev.mtlsproxy.config.Pem;
import dev.mtlsproxy.config.PemException;
import dev.mtlsproxy.config.RevocationConfig;
import dev.mtlsproxy.config.TrustAnchorConfig;
import dev.mtlsproxy.core.identity.PeerIdentity;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * Verifies a client chain away from any handshake, exactly as a listener would (same PKIX checks, same anchor
 * attribution), for the tools that answer "what would the proxy do with this certificate": {@code explain} and
 * {@code test}.
 */
public final class ClientChains {

    private final ClientCertificateVerifier verifier;

    private ClientChains(ClientCertificateVerifier verifier) {
        this.verifier = verifier;
    }

    /** Trusts every configured anchor, with its CRLs, and the deny-list: what any listener would refuse, this does. */
    public static ClientChains of(Map<String, TrustAnchorConfig> trustAnchors, RevocationConfig revocation,
            Clock clock) throws PemException {
        Map<X509Certificate, String> anchorOf = new HashMap<>();
        for (Map.Entry<String, TrustAnchorConfig> anchor : trustAnchors.entrySet()) {
            for (X509Certificate ca : Pem.readCertificates(anchor.getValue().caBundle())) {
                anchorOf.put(ca, anchor.getKey());
            }
        }
        RevocationChecker checker = RevocationChecker.load(trustAnchors, revocation, (issuer, nextUpdate) -> { },
                clock);
        return new ClientChains(new ClientCertificateVerifier(anchorOf.keySet(), anchorOf, checker, clock));
    }

    /**
     * How many certificates of a chain this long a handshake never reads (see {@link #identify}): 0 for any chain
     * within {@link ClientChainVerifier#CERTIFICATES_READ}.
     */
    public static int unread(int presented) {
        return Math.max(0, presented - ClientChainVerifier.CERTIFICATES_READ);
    }

    /**
     * The identity a handshake with this chain would yield. Like the handshake, it reads only the first
     * {@link ClientChainVerifier#CERTIFICATES_READ} certificates: a PEM with more is judged on those, not refused as
     * {@code chain_too_long}, which the handshake would never say of it.
     *
     * @throws ClientCertificateRejectedException with the reason the handshake would fail
     */
    public PeerIdentity identify(X509Certificate[] sent) throws ClientCertificateRejectedException {
        X509Certificate[] chain = Arrays.copyOf(sent, Math.min(sent.length, ClientChainVerifier.CERTIFICATES_READ));
        // Never null: a leaf whose names cannot be read or are malformed is refused by the verifier, as in a handshake.
        return verifier.verified(chain).identity();
    }
}
