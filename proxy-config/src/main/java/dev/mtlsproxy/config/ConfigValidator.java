package dev.mtlsproxy.config;

import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.regex.Pattern;

/**
 * The one validation pass over mapped records: every check runs and reports to {@link Problems}, nothing stops at the
 * first failure. Rules for listeners and routes live in their own classes.
 */
final class ConfigValidator {

    static final String SPIFFE_EXPECTED = "spiffe://trust-domain/path";
    static final String ACCESS_LOG_EXPECTED = "stdout or a file in an existing directory";

    /** SPIFFE ID syntax: lower-case trust domain, path segments of letters, digits, '.', '-', '_'. */
    private static final Pattern SPIFFE_ID = Pattern.compile("spiffe://[a-z0-9._-]+(/[A-Za-z0-9._-]+)*");

    private final Problems problems;

    /** SPIFFE ID syntax, for expected backend identities; identities: apply the same rule. */
    static boolean isSpiffeId(String id) {
        return SPIFFE_ID.matcher(id).matches() && !id.matches(".*/\\.{1,2}(/.*)?");
    }

    ConfigValidator(Problems problems) {
        this.problems = problems;
    }

    void validate(ProxyConfig config) {
        new ListenerValidator(problems).validate(config.listeners());
        config.identities().forEach(this::identity);
        new RouteValidator(problems, config.identities().keySet(), config.backends().keySet())
                .validate(config.routes());
        BackendValidator backends = new BackendValidator(problems);
        config.backends().forEach((name, backend) -> {
            name(YamlPaths.key("backends", name), name);
            backends.validate(name, backend);
        });
        accessLog(config.accessLog());
        admin(config);
    }

    /** The admin endpoints must never be reachable on a public mTLS port. */
    private void admin(ProxyConfig config) {
        HostPort admin = config.admin().address();
        for (int i = 0; i < config.listeners().size(); i++) {
            HostPort listener = config.listeners().get(i).address();
            if (listener != null && admin.port() != 0 && admin.port() == listener.port()
                    && (admin.host().equals(listener.host()) || isWildcard(admin.host())
                            || isWildcard(listener.host()))) {
                problems.add("admin.address", Values.quote(admin.toString())
                        + " (expected: an address no listener uses) - listeners[" + i + "] is there");
            }
        }
    }

    private static boolean isWildcard(String host) {
        return host.equals("0.0.0.0") || host.equals("::") || host.equals("*");
    }

    private void identity(String name, IdentityConfig identity) {
        String path = YamlPaths.key("identities", name);
        name(path, name);
        if (identity.spiffeId() == null && identity.dnsSan() == null && identity.subjectCn() == null) {
            problems.add(path, "{} (expected: at least one of spiffeId, dnsSan, subjectCn)");
        }
        String spiffeId = identity.spiffeId();
        // "." and ".." segments are syntactically paths but never valid in a SPIFFE ID
        if (spiffeId != null && (!SPIFFE_ID.matcher(spiffeId).matches() || spiffeId.matches(".*/\\.{1,2}(/.*)?"))) {
            problems.add(path + ".spiffeId", Values.quote(spiffeId) + " (expected: " + SPIFFE_EXPECTED + ")");
        }
        String dnsSan = identity.dnsSan();
        if (dnsSan != null && !RouteValidator.isHostName(dnsSan.toLowerCase(Locale.ROOT))) {
            problems.add(path + ".dnsSan", Values.quote(dnsSan) + " (expected: a DNS name like ops.example.com)");
        }
        if (identity.subjectCn() != null && identity.subjectCn().isBlank()) {
            problems.add(path + ".subjectCn", Values.quote(identity.subjectCn()) + " (expected: a non-empty name)");
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
