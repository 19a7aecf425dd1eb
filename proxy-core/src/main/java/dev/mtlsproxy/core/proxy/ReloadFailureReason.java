package dev.mtlsproxy.core.proxy;

import java.util.Locale;

/** Why a reload changed nothing: the {@code reason} label of {@code config_reloads_total}. A closed set. */
public enum ReloadFailureReason {
    /** The file does not parse or validate; every problem is logged with its YAML path. */
    INVALID_CONFIG,
    /** A certificate, key, CA bundle or CRL could not be used (unreadable, truncated, key not matching). */
    TLS_MATERIAL,
    /** The change needs a restart (listeners added, removed, renamed or moved). */
    RESTART_REQUIRED,
    /** Anything else; the log has the detail. */
    OTHER;

    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }
}
