package dev.mtlsproxy.config;

import java.nio.file.Path;

/**
 * A named set of CAs that client certificates may chain to. Identities are scoped to one anchor: a certificate only
 * matches an identity when its chain was verified up to that anchor, so a second trusted CA can never mint a name
 * that belongs to the first.
 *
 * @param caBundle PEM bundle of CA certificates; a CA may belong to one anchor only
 */
public record TrustAnchorConfig(Path caBundle) {
}
