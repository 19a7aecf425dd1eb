package dev.mtlsproxy.config;

import java.util.Objects;

/**
 * A configuration as loaded from its file, with where its values were written.
 *
 * @param config    the validated configuration
 * @param positions the line and column of each value in the file it was loaded from
 */
public record LoadedConfig(ProxyConfig config, ConfigPositions positions) {

    public LoadedConfig {
        Objects.requireNonNull(config, "config");
        Objects.requireNonNull(positions, "positions");
    }
}
