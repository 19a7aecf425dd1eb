package dev.mtlsproxy.config;

import com.fasterxml.jackson.annotation.JsonValue;

/** Which certificates of a client's chain are checked against CRLs. */
public enum CrlScope {
    /** The client certificate and every intermediate CA below the trust anchor. */
    CHAIN("chain"),
    /** The client certificate only; intermediates are trusted as long as they chain. */
    LEAF("leaf");

    private final String yaml;

    CrlScope(String yaml) {
        this.yaml = yaml;
    }

    /** How it is spelled in YAML. */
    @JsonValue
    public String yaml() {
        return yaml;
    }
}
