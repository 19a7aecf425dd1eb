package dev.mtlsproxy.config;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * What the runtime may take for granted in a loaded configuration, checked on the records alone: the README's
 * promises (required values present, durations positive, names known, files there), without going through the
 * validator that should have enforced them. Used by {@link ConfigMutationTest} on every mutation that loaded.
 */
final class Invariants {

    private final List<String> broken = new ArrayList<>();

    private Invariants() {
    }

    /** Every invariant the configuration breaks, as {@code path: what}; empty when none. */
    static List<String> of(ProxyConfig config) {
        Invariants check = new Invariants();
        check.config(config);
        return check.broken;
    }

    private void config(ProxyConfig c) {
        require(!c.trustAnchors().isEmpty(), "trustAnchors", "at least one");
        c.trustAnchors().forEach((name, a) -> {
            String path = "trustAnchors." + name;
            name(path, name);
            file(path + ".caBundle", a.caBundle());
            a.crls().forEach(crl -> file(path + ".crls", crl));
            require(a.crlScope() != null && a.staleCrl() != null, path, "crlScope and staleCrl set");
        });
        require(!c.listeners().isEmpty(), "listeners", "at least one");
        Set<String> listenerNames = new HashSet<>();
        for (int i = 0; i < c.listeners().size(); i++) {
            ListenerConfig l = c.listeners().get(i);
            String path = "listeners[" + i + "]";
            name(path + ".name", l.name());
            require(listenerNames.add(l.name()), path + ".name", "unique");
            address(path + ".address", l.address());
            require(l.tls() != null, path + ".tls", "present");
            if (l.tls() != null) {
                file(path + ".tls.certificate", l.tls().certificate());
                file(path + ".tls.privateKey", l.tls().privateKey());
                require(l.tls().minVersion() != null && l.tls().sessionResumption() != null
                        && !l.tls().groups().isEmpty(), path + ".tls", "minVersion, sessionResumption, groups");
                require(c.trustAnchors().keySet().containsAll(l.tls().trustAnchors()), path + ".tls.trustAnchors",
                        "names of trust anchors");
            }
            positive(path + ".idleTimeout", l.idleTimeout());
            positive(path + ".handshakeTimeout", l.handshakeTimeout());
            positive(path + ".requestHeaderTimeout", l.requestHeaderTimeout());
            require(l.maxConnections() == null || l.maxConnections() > 0, path + ".maxConnections", "positive");
            require(l.limits().maxInitialLineLength().bytes() > 0 && l.limits().maxHeaderSize().bytes() > 0,
                    path + ".limits", "positive");
        }
        c.identities().forEach((name, identity) -> {
            String path = "identities." + name;
            name(path, name);
            require(!name.equals(RuleConfig.ANYONE), path, "not *");
            require(identity.hasMatcher(), path, "a matcher");
            require(identity.trustAnchor() == null ? c.trustAnchors().size() == 1
                    : c.trustAnchors().containsKey(identity.trustAnchor()), path + ".trustAnchor", "a known anchor");
        });
        Set<String> routeNames = new HashSet<>();
        for (int i = 0; i < c.routes().size(); i++) {
            RouteConfig r = c.routes().get(i);
            String path = "routes[" + i + "]";
            require(r.name() != null && routeNames.add(r.name()), path + ".name", "present and unique");
            require(r.backend() != null && c.backends().containsKey(r.backend()), path + ".backend", "a backend");
            require(r.pathPrefix().startsWith("/"), path + ".pathPrefix", "absolute");
            require(r.mode() != null, path + ".mode", "set");
            require(r.allow().isEmpty() || r.rules().isEmpty(), path, "allow or rules");
            for (RuleConfig rule : r.effectiveRules()) {
                require(rule.allow().isEmpty() != rule.deny().isEmpty(), path + ".rules", "allow or deny");
                for (String who : rule.identities()) {
                    require(c.identities().containsKey(who) || rule.isDeny() && who.equals(RuleConfig.ANYONE),
                            path + ".rules", "known identities, not " + who);
                }
                rule.paths().forEach(p -> require(p.startsWith("/"), path + ".rules", "absolute paths"));
            }
        }
        c.backends().forEach((name, b) -> {
            String path = "backends." + name;
            name(path, name);
            require(!b.endpointUrls().isEmpty(), path, "an endpoint");
            for (var url : b.endpointUrls()) {
                require(url.getHost() != null && url.getPort() <= 65535
                        && ("http".equalsIgnoreCase(url.getScheme()) || "https".equalsIgnoreCase(url.getScheme())),
                        path + ".endpoints", "http(s)://host:port, not " + url);
                if ("https".equalsIgnoreCase(url.getScheme())) {
                    require(b.tls() != null && !b.tls().serverCAs().isEmpty(), path + ".tls", "serverCAs");
                }
            }
            positive(path + ".connectTimeout", b.connectTimeout());
            positive(path + ".responseTimeout", b.responseTimeout());
            positive(path + ".bodyIdleTimeout", b.bodyIdleTimeout());
            positive(path + ".idleTimeout", b.idleTimeout());
            positive(path + ".coolDown", b.coolDown());
            require(b.maxIdleConnections() != null && b.maxIdleConnections() >= 0, path + ".maxIdleConnections",
                    "zero or more");
            if (b.tls() != null) {
                b.tls().serverCAs().forEach(ca -> file(path + ".tls.serverCAs", ca));
                require((b.tls().certificate() == null) == (b.tls().privateKey() == null), path + ".tls",
                        "certificate and key together");
                require(b.tls().minVersion() != null && !b.tls().groups().isEmpty(), path + ".tls", "set");
            }
            HealthCheckConfig h = b.healthCheck();
            if (h != null) {
                require(h.path() != null && h.path().startsWith("/"), path + ".healthCheck.path", "a path");
                positive(path + ".healthCheck.interval", h.interval());
                positive(path + ".healthCheck.timeout", h.timeout());
                require(h.healthyThreshold() >= 1 && h.unhealthyThreshold() >= 1, path + ".healthCheck",
                        "thresholds of 1 or more");
            }
        });
        for (int i = 0; i < c.tests().size(); i++) {
            PolicyTestConfig t = c.tests().get(i);
            require(t.request() != null && t.expect() != null
                    && PolicyTestConfig.EXPECTATIONS.contains(t.expect().toLowerCase(java.util.Locale.ROOT))
                    && (t.certificate() == null) != (t.peer() == null), "tests[" + i + "]", "complete");
        }
        require(c.accessLog().enabled() != null && c.accessLog().path() != null, "accessLog", "set");
        address("admin.address", c.admin().address());
        require(!c.shutdown().drainDelay().isNegative(), "shutdown.drainDelay", "zero or more");
        positive("shutdown.drainTimeout", c.shutdown().drainTimeout());
        positive("reload.debounce", c.reload().debounce());
        require(c.reload().watch() != null, "reload.watch", "set");
        WorkersConfig w = c.workers();
        require(w.threads() == null || w.threads() >= 1 && w.threads() <= WorkersConfig.MAX_THREADS,
                "workers.threads", "1 to " + WorkersConfig.MAX_THREADS);
        require(!w.yieldAfter().isNegative() && w.yieldAfter().compareTo(WorkersConfig.MAX_YIELD_AFTER) <= 0,
                "workers.yieldAfter", "0s to 1s");
        require(w.cpuAffinity() != null && w.transport() != null, "workers", "set");
        for (Map.Entry<String, List<String>> deny : Map.of(
                "revocation.denySerials", c.revocation().denySerials(),
                "revocation.denyFingerprints", c.revocation().denyFingerprints(),
                "revocation.denySpkiPins", c.revocation().denySpkiPins()).entrySet()) {
            require(deny.getValue().stream().allMatch(v -> v != null && !v.isBlank()), deny.getKey(), "values");
        }
    }

    private void require(boolean holds, String path, String what) {
        if (!holds) {
            broken.add(path + ": " + what);
        }
    }

    private void name(String path, String name) {
        require(name != null && YamlSchema.NAME.matcher(name).matches(), path, "a name, not " + name);
    }

    private void positive(String path, Duration d) {
        require(d != null && !d.isNegative() && !d.isZero(), path, "positive, not " + d);
    }

    private void address(String path, HostPort address) {
        require(address != null && !address.host().isEmpty() && address.port() >= 0 && address.port() <= 65535,
                path, "host:port, not " + address);
    }

    private void file(String path, Path file) {
        require(file != null && file.isAbsolute() && Files.isRegularFile(file), path, "a file, not " + file);
    }
}
