package dev.mtlsproxy.config;

import java.util.List;

/**
 * A TLS key exchange group, spelled in YAML as BoringSSL names it. A handshake settles on the first group of the
 * proxy's list that the peer supports too, so the order is a preference.
 */
public enum KeyExchangeGroup implements YamlEnum {
    /**
     * Hybrid post-quantum: X25519 and ML-KEM-768 together (draft-ietf-tls-ecdhe-mlkem), as Chrome, Firefox, Go 1.24+
     * and OpenSSL 3.5+ offer by default. Recorded traffic stays secret even against a future quantum computer,
     * for about a fifth more CPU per full handshake on the proxy (docs/BENCHMARKS.md). TLS 1.3 only.
     */
    X25519_MLKEM768("X25519MLKEM768", true),
    X25519("X25519", false),
    P_256("P-256", false),
    P_384("P-384", false),
    /** Only when listed: no mainstream client needs it (Envoy leaves it out too); Netty's own default had it. */
    P_521("P-521", false);

    /** Post-quantum first; the classical groups after it serve every client that lacks it, without a retry. */
    public static final List<KeyExchangeGroup> DEFAULTS = List.of(X25519_MLKEM768, X25519, P_256, P_384);

    private final String yaml;
    private final boolean tls13Only;

    KeyExchangeGroup(String yaml, boolean tls13Only) {
        this.yaml = yaml;
        this.tls13Only = tls13Only;
    }

    /** Whether TLS 1.2 cannot use this group (its ECDHE takes elliptic curves only). */
    public boolean tls13Only() {
        return tls13Only;
    }

    /** BoringSSL takes the YAML spelling as is. */
    public String boringSslName() {
        return yaml;
    }

    @Override
    public String yaml() {
        return yaml;
    }
}
