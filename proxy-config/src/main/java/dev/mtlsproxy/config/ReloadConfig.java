package dev.mtlsproxy.config;

import java.time.Duration;

/**
 * Automatic reload when the config file or any file it references changes (certificates, keys, CA bundles, CRLs),
 * including Kubernetes' {@code ..data} symlink swaps. SIGHUP and {@code POST /admin/reload} work either way.
 *
 * @param watch    whether to watch the files; default true
 * @param debounce quiet time after the last change before reloading, so a burst of writes is one reload
 */
public record ReloadConfig(Boolean watch, Duration debounce) {

    public static final Duration DEFAULT_DEBOUNCE = Duration.ofMillis(500);
    public static final ReloadConfig DEFAULT = new ReloadConfig(null, null);

    public ReloadConfig {
        watch = watch == null ? Boolean.TRUE : watch;
        debounce = debounce == null ? DEFAULT_DEBOUNCE : debounce;
    }
}
