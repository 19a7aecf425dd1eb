package dev.mtlsproxy.config;

/**
 * Whether a listener lets clients resume TLS sessions. A resumed handshake skips the client chain validation (the
 * certificate was validated when the session was made), so resumption is off unless asked for.
 */
public enum SessionResumption implements YamlEnum {
    /** Every connection is a full handshake with the client chain validated (the default). */
    NONE("none"),
    /**
     * Stateless session tickets (RFC 8446 PSK, RFC 5077 for TLS 1.2), valid up to 48 hours (BoringSSL's TLS 1.3
     * default), encrypted with keys that live in memory for one configuration generation: a reload makes every
     * earlier ticket useless. A resumed connection keeps the identity of the session it resumes, without
     * validating the chain again. No server-side session cache.
     */
    TICKETS("tickets");

    private final String yaml;

    SessionResumption(String yaml) {
        this.yaml = yaml;
    }

    @Override
    public String yaml() {
        return yaml;
    }
}
