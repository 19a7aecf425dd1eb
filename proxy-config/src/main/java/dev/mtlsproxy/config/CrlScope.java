package dev.mtlsproxy.config;

/** Which certificates of a client's chain are checked against CRLs. */
public enum CrlScope implements YamlEnum {
    /** The client certificate and every intermediate CA below the trust anchor. */
    CHAIN("chain"),
    /** The client certificate only; intermediates are trusted as long as they chain. */
    LEAF("leaf");

    private final String yaml;

    CrlScope(String yaml) {
        this.yaml = yaml;
    }

    @Override
    public String yaml() {
        return yaml;
    }
}
