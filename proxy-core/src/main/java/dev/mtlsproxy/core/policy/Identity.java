package dev.mtlsproxy.core.policy;

import dev.mtlsproxy.config.IdentityConfig;
import dev.mtlsproxy.core.identity.PeerIdentity;

/**
 * One named identity, compiled: the trust anchor it is scoped to, its name matchers, and its certificate checks.
 *
 * @param name    from the config
 * @param anchor  the trust anchor the client's chain must have verified to
 * @param names   the name matchers
 * @param check   requirements on the certificate itself
 */
record Identity(String name, String anchor, PeerMatcher names, CertificateCheck check) {

    static Identity compile(String name, IdentityConfig config, String onlyAnchor) {
        String anchor = config.trustAnchor() != null ? config.trustAnchor() : onlyAnchor;
        if (anchor == null) {
            // Fail closed even if validation were bypassed: an unscoped identity must never match any CA's names.
            throw new IllegalArgumentException("identity " + name + " is not scoped to a trust anchor");
        }
        if (!config.hasMatcher()) {
            // Fail closed even if validation were bypassed: an empty matcher must never mean "anyone".
            throw new IllegalArgumentException("identity " + name + " has no matcher");
        }
        return new Identity(name, anchor, PeerMatcher.compile(config), CertificateCheck.of(config.require()));
    }

    /**
     * Whether the client is this identity by name: scoped to the anchor first, so a certificate from another trusted
     * CA that copies the names never matches.
     */
    boolean is(PeerIdentity peer) {
        return anchor.equals(peer.trustAnchor()) && names.matches(peer);
    }
}
