package dev.mtlsproxy.core.policy;

import dev.mtlsproxy.config.IdentityConfig;
import dev.mtlsproxy.core.identity.PeerIdentity;
import java.util.Locale;

/** One named identity, compiled. Every configured field must match; validation guarantees at least one is set. */
record IdentityMatcher(String name, String spiffeId, String dnsSan, String subjectCn) {

    static IdentityMatcher compile(String name, IdentityConfig config) {
        if (config.spiffeId() == null && config.dnsSan() == null && config.subjectCn() == null) {
            // Fail closed even if validation were bypassed: an empty matcher must never mean "anyone".
            throw new IllegalArgumentException("identity " + name + " has no matcher");
        }
        return new IdentityMatcher(name, config.spiffeId(),
                config.dnsSan() == null ? null : config.dnsSan().toLowerCase(Locale.ROOT), config.subjectCn());
    }

    boolean matches(PeerIdentity peer) {
        if (spiffeId != null && !spiffeId.equals(peer.spiffeId())) {
            return false;
        }
        if (dnsSan != null && !peer.dnsSans().contains(dnsSan)) {
            return false;
        }
        return subjectCn == null || subjectCn.equals(peer.subjectCn());
    }
}
