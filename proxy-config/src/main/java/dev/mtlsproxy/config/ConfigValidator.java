package dev.mtlsproxy.config;

import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.time.Duration;

/**
 * The one validation pass over mapped records: every check runs and reports to {@link Problems}, nothing stops at the
 * first failure. Rules for listeners and routes live in their own classes.
 */
final class ConfigValidator {

    static final String ACCESS_LOG_EXPECTED = "stdout or a file in an existing directory";

    private final Problems problems;

    ConfigValidator(Problems problems) {
        this.problems = problems;
    }

    void validate(ProxyConfig config) {
        new TrustAnchorValidator(problems).validate(config.trustAnchors());
        new ListenerValidator(problems, config.trustAnchors().keySet()).validate(config.listeners());
        IdentityValidator identities = new IdentityValidator(problems, config.trustAnchors().keySet());
        identities.validate(config.identities());
        new RouteValidator(problems, config.identities().keySet(), config.backends().keySet(), identities)
                .validate(config.routes());
        new PolicyTestValidator(problems, identities).validate(config.tests());
        BackendValidator backends = new BackendValidator(problems);
        config.backends().forEach((name, backend) -> {
            name(YamlPaths.key("backends", name), name);
            backends.validate(name, backend);
        });
        accessLog(config.accessLog());
        admin(config);
        new RevocationValidator(problems).validate(config.trustAnchors(), config.revocation());
        problems.nonNegativeWait("shutdown.drainDelay", config.shutdown().drainDelay());
        problems.positiveWait("shutdown.drainTimeout", config.shutdown().drainTimeout());
        problems.positiveWait("reload.debounce", config.reload().debounce());
        workers(config.workers());
    }

    private void workers(WorkersConfig workers) {
        Integer threads = workers.threads();
        if (threads != null && (threads < 1 || threads > WorkersConfig.MAX_THREADS)) {
            problems.add("workers.threads", threads + " (expected: 1 to " + WorkersConfig.MAX_THREADS
                    + ", or leave it out for one per CPU)");
        }
        Duration yieldAfter = workers.yieldAfter();
        if (yieldAfter.isNegative() || yieldAfter.compareTo(WorkersConfig.MAX_YIELD_AFTER) > 0) {
            problems.add("workers.yieldAfter", Durations.format(yieldAfter) + " (expected: 0s to "
                    + Durations.format(WorkersConfig.MAX_YIELD_AFTER) + "; 0s never yields)");
        }
    }

    /** The admin endpoints must never be reachable on a public mTLS port. */
    private void admin(ProxyConfig config) {
        HostPort admin = config.admin().address();
        for (int i = 0; i < config.listeners().size(); i++) {
            HostPort listener = config.listeners().get(i).address();
            if (listener != null && admin.bindsOver(listener)) {
                problems.add("admin.address", Values.quote(admin.toString())
                        + " (expected: an address no listener uses) - listeners[" + i + "] is there");
            }
        }
    }

    private void accessLog(AccessLogConfig log) {
        if (!log.enabled() || log.path().equals("stdout")) {
            return;
        }
        String shown = Values.quote(log.path()) + " (expected: " + ACCESS_LOG_EXPECTED + ")";
        Path file;
        try {
            file = Path.of(log.path());
        } catch (InvalidPathException e) {
            problems.add("accessLog.path", shown);
            return;
        }
        if (log.path().isBlank()) {
            problems.add("accessLog.path", shown);
        } else if (Files.isDirectory(file)) {
            problems.add("accessLog.path", shown + " - it is a directory");
        } else if (file.getParent() == null || !Files.isDirectory(file.getParent())) {
            problems.add("accessLog.path", shown);
        }
    }

    private void name(String path, String name) {
        if (!YamlSchema.NAME.matcher(name).matches()) {
            problems.add(path, Values.quote(name) + " (expected: " + YamlSchema.NAME_EXPECTED + ")");
        }
    }

    /** Rewrites a relative access log path against the config directory, like every other path in the file. */
    static ProxyConfig resolveAccessLog(ProxyConfig config, Path baseDir) {
        AccessLogConfig log = config.accessLog();
        if (log.path().equals("stdout") || log.path().isBlank()) {
            return config;
        }
        try {
            String resolved = baseDir.resolve(log.path()).normalize().toString();
            return config.withAccessLog(new AccessLogConfig(log.enabled(), resolved));
        } catch (InvalidPathException e) {
            return config; // the validator reports it
        }
    }
}
