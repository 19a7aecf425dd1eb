package dev.mtlsproxy.config;

import com.fasterxml.jackson.annotation.JsonValue;

/** Whether a route's decisions are applied, or only logged and counted while every request is forwarded. */
public enum PolicyMode {
    ENFORCE("enforce"),
    DRY_RUN("dry-run");

    private final String text;

    PolicyMode(String text) {
        this.text = text;
    }

    @JsonValue
    public String text() {
        return text;
    }
}
