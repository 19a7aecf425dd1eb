package dev.mtlsproxy.config;

import java.nio.file.Path;
import java.util.List;

/**
 * A named set of CAs that client certificates may chain to. Identities are scoped to one anchor: a certificate only
 * matches an identity when its chain was verified up to that anchor, so a second trusted CA can never mint a name
 * that belongs to the first.
 *
 * <p>With {@code crls} empty, chains ending at this anchor are not checked against CRLs. With CRLs, every certificate
 * in scope must be covered by a fresh, correctly signed CRL from its issuer; a missing CRL denies (fail closed), a
 * stale one follows {@code staleCrl}.
 *
 * @param caBundle PEM bundle of CA certificates; a CA may belong to one anchor only
 * @param crls     X.509 CRL files (PEM or DER) of this anchor's CAs and intermediates, complete and direct
 *                 ({@link Crls}); re-read on every reload
 * @param crlScope which certificates of a client's chain must be covered: all below the anchor, or the leaf only
 * @param staleCrl what a CRL past its nextUpdate means: deny (default) or allow with a warning and a metric
 */
public record TrustAnchorConfig(Path caBundle, List<Path> crls, CrlScope crlScope, StaleCrlPolicy staleCrl) {

    public TrustAnchorConfig {
        crls = crls == null ? List.of() : List.copyOf(crls);
        crlScope = crlScope == null ? CrlScope.CHAIN : crlScope;
        staleCrl = staleCrl == null ? StaleCrlPolicy.DENY : staleCrl;
    }

    /** An anchor without CRLs. */
    public TrustAnchorConfig(Path caBundle) {
        this(caBundle, null, null, null);
    }
}
