package dev.mtlsproxy.config;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/** Legal but probably unintended: worth saying at every load, never worth refusing to start. */
final class ConfigWarnings {

    private ConfigWarnings() {
    }

    static List<String> of(ProxyConfig config) {
        List<String> warnings = new ArrayList<>();
        Set<String> used = new HashSet<>();
        for (int i = 0; i < config.routes().size(); i++) {
            RouteConfig route = config.routes().get(i);
            used.addAll(route.allow());
            if (route.allow().isEmpty()) {
                warnings.add(YamlPaths.item("routes", i) + ".allow: [] - route "
                        + Values.quote(String.valueOf(route.name())) + " denies every request");
            }
        }
        config.identities().keySet().stream()
                .filter(name -> !used.contains(name))
                .sorted()
                .forEach(name -> warnings.add(YamlPaths.key("identities", name) + ": not allowed on any route"));
        config.backends().forEach((name, backend) -> {
            BackendTlsConfig tls = backend.tls();
            if (tls != null && !tls.verifyHostname() && tls.spiffeId() == null) {
                warnings.add(YamlPaths.key("backends", name) + ".tls.verifyHostname: false - any certificate from"
                        + " serverCAs is accepted as backend " + Values.quote(name) + "; set spiffeId to pin it");
            }
        });
        warnings.sort(ConfigProblem::comparePaths);
        return List.copyOf(warnings);
    }
}
