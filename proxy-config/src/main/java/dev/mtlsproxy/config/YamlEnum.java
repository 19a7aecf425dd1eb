package dev.mtlsproxy.config;

import com.fasterxml.jackson.annotation.JsonValue;

/**
 * An enum written in YAML as a word of its own ({@code dry-run}, {@code TLSv1.3}, {@code insecureAllow}). One
 * deserializer and one "(expected: one of ...)" phrase serve every such enum, read from {@link #yaml()}.
 */
public interface YamlEnum {

    /** How the constant is spelled in YAML. */
    @JsonValue
    String yaml();
}
