package dev.mtlsproxy.config;

/** What a CRL past its nextUpdate means for the certificates it covers. */
public enum StaleCrlPolicy implements YamlEnum {
    /** Refuse: revocation status is unknown (the default, fail closed). */
    DENY("deny"),
    /** Accept, log a warning and count it: better than an outage when the CRL publisher is late. Warned at load. */
    INSECURE_ALLOW("insecureAllow");

    private final String yaml;

    StaleCrlPolicy(String yaml) {
        this.yaml = yaml;
    }

    @Override
    public String yaml() {
        return yaml;
    }
}
