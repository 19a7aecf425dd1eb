package dev.mtlsproxy.config;

/** Whether a route's decisions are applied, or only logged and counted while every request is forwarded. */
public enum PolicyMode implements YamlEnum {
    ENFORCE("enforce"),
    DRY_RUN("dry-run");

    private final String text;

    PolicyMode(String text) {
        this.text = text;
    }

    @Override
    public String yaml() {
        return text;
    }
}
