package dev.mtlsproxy.config;

/**
 * What the process may hold, read once at start: the bounds the default connection limits derive from (see
 * {@link ListenerConfig#connectionLimit}).
 *
 * @param openFiles   the open-file limit (RLIMIT_NOFILE), or 0 or less when the platform does not say
 * @param memoryBytes the memory the process may use: the container's limit where there is one, else the machine's;
 *                    0 or less when unknown
 */
public record ProcessLimits(long openFiles, long memoryBytes) {

    /** Neither bound known: the defaults fall back to {@link ListenerConfig#FALLBACK_MAX_CONNECTIONS}. */
    public static final ProcessLimits UNKNOWN = new ProcessLimits(-1, -1);
}
