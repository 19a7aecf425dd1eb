package dev.mtlsproxy.core.proxy;

import java.util.Locale;

/** Why a reload changed nothing: the {@code reason} label of {@code config_reloads_total}. A closed set. */
public enum ReloadFailureReason {
    /** The file does not parse or validate; every problem is logged with its YAML path. */
    INVALID_CONFIG,
    /** A certificate, key, CA bundle or CRL could not be used (unreadable, truncated, key not matching). */
    TLS_MATERIAL,
    /** The change needs a restart (listeners added, removed, renamed or moved), each change at its YAML path. */
    RESTART_REQUIRED,
    /**
     * An {@link Error} thrown while reloading: a stack overflow, a class that failed to load or initialise (a jar
     * replaced under the running process), a failed assertion. A bug or a broken installation rather than a bad
     * file; the log has the stack trace. Running out of memory and the JVM's own failures are not caught
     * here: they are left to the JVM (README, "Reload and shutdown").
     */
    INTERNAL_ERROR,
    /** Anything else; the log has the detail. */
    OTHER;

    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }
}
