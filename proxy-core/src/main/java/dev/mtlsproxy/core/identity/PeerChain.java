package dev.mtlsproxy.core.identity;

import io.netty.util.AttributeKey;
import java.security.cert.X509Certificate;

/**
 * The certificate chain a client presented, as verified at its handshake; kept on the channel so a reload can
 * re-verify open connections against new CAs and revocation data without asking the TLS engine again.
 */
public final class PeerChain {

    public static final AttributeKey<X509Certificate[]> KEY = AttributeKey.valueOf(PeerChain.class, "chain");

    private PeerChain() {
    }
}
