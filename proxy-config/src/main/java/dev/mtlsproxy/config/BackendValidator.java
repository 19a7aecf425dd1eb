package dev.mtlsproxy.config;

import java.net.URI;
import java.nio.file.Path;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Set;
import java.util.Locale;
import java.util.Map;

/** Checks {@code backends:}: endpoints, TLS (every file readable now), timeouts, pool and health check settings. */
final class BackendValidator {

    static final String URL_EXPECTED = "http://host:port or https://host:port";
    static final String SERVER_NAME_EXPECTED = "a DNS name like orders.internal.example.com";
    static final String HEALTH_PATH_EXPECTED = "a path starting with /, like /healthz";
    static final String THRESHOLD_EXPECTED = "1 or more consecutive checks";

    private final Problems problems;
    private final ListenerValidator files;

    BackendValidator(Problems problems) {
        this.problems = problems;
        this.files = new ListenerValidator(problems, Set.of());
    }

    void validate(String name, BackendConfig backend) {
        String path = YamlPaths.key("backends", name);
        List<URI> endpoints = endpoints(path, backend);
        tls(path, backend.tls(), endpoints);
        problems.positiveWait(path + ".connectTimeout", backend.connectTimeout());
        problems.positiveWait(path + ".responseTimeout", backend.responseTimeout());
        problems.positiveWait(path + ".bodyIdleTimeout", backend.bodyIdleTimeout());
        problems.positiveWait(path + ".idleTimeout", backend.idleTimeout());
        problems.positiveWait(path + ".coolDown", backend.coolDown());
        if (backend.maxIdleConnections() < 0) {
            problems.add(path + ".maxIdleConnections", backend.maxIdleConnections() + " (expected: zero or more)");
        }
        healthCheck(path + ".healthCheck", backend.healthCheck());
    }

    /** The endpoints whose URLs are valid, after reporting every one that is not. */
    private List<URI> endpoints(String path, BackendConfig backend) {
        if (backend.url() != null && !backend.endpoints().isEmpty()) {
            problems.add(path + ".url", Values.quote(backend.url().toString())
                    + " (expected: url or endpoints, not both)");
            return List.of();
        }
        if (backend.url() != null) {
            return url(path + ".url", backend.url()) ? List.of(backend.url()) : List.of();
        }
        String list = path + ".endpoints";
        if (backend.endpoints().isEmpty() && problems.isPresent(path + ".url")) {
            if (!problems.failed(path + ".url")) {
                // "url:" with nothing after it maps to null like a url left out, but it was not left out
                problems.add(path + ".url", "null (expected: " + URL_EXPECTED + ")");
            }
            return List.of(); // a url that could not be read is reported already
        }
        if (backend.endpoints().isEmpty()) {
            problems.add(list, (problems.isPresent(list) ? "[]" : "missing") + " (expected: at least one "
                    + URL_EXPECTED + "; or url: for a single one)");
            return List.of();
        }
        List<String> items = problems.itemPaths(list, backend.endpoints().size());
        if (items.isEmpty()) {
            return List.of();
        }
        Map<String, String> seen = new HashMap<>();
        String firstScheme = null;
        String firstPath = null;
        List<URI> valid = new ArrayList<>();
        for (int i = 0; i < backend.endpoints().size(); i++) {
            String item = items.get(i);
            URI url = backend.endpoints().get(i);
            if (!url(item, url)) {
                continue;
            }
            String scheme = url.getScheme().toLowerCase(Locale.ROOT);
            String key = scheme + "://" + url.getHost().toLowerCase(Locale.ROOT) + ":" + port(url);
            String earlier = seen.putIfAbsent(key, item);
            if (earlier != null) {
                problems.add(item, Values.quote(url.toString()) + " (expected: each endpoint once) - same as "
                        + earlier);
            } else if (firstScheme != null && !firstScheme.equals(scheme)) {
                problems.add(item, Values.quote(url.toString()) + " (expected: " + firstScheme + ":// like "
                        + firstPath + ") - a backend's endpoints are all https or all http");
            } else {
                firstScheme = firstScheme == null ? scheme : firstScheme;
                firstPath = firstPath == null ? item : firstPath;
                valid.add(url);
            }
        }
        return valid;
    }

    private static int port(URI url) {
        return url.getPort() >= 0 ? url.getPort() : "https".equalsIgnoreCase(url.getScheme()) ? 443 : 80;
    }

    private boolean url(String path, URI url) {
        String shown = Values.quote(url.toString()) + " (expected: " + URL_EXPECTED + ")";
        String scheme = url.getScheme();
        if (!"http".equalsIgnoreCase(scheme) && !"https".equalsIgnoreCase(scheme)) {
            problems.add(path, shown);
        } else if (url.getHost() == null) {
            problems.add(path, shown + " - no host");
        } else if (url.getPort() > 65535) {
            problems.add(path, shown + " - port out of range");
        } else if (url.getRawUserInfo() != null || url.getRawQuery() != null || url.getRawFragment() != null) {
            problems.add(path, shown + " - user info, query and fragment are not allowed");
        } else {
            return true;
        }
        return false;
    }

    private void tls(String backendPath, BackendTlsConfig tls, List<URI> endpoints) {
        String path = backendPath + ".tls";
        boolean https = endpoints.stream().anyMatch(u -> "https".equalsIgnoreCase(u.getScheme()));
        boolean http = endpoints.stream().anyMatch(u -> "http".equalsIgnoreCase(u.getScheme()));
        if (tls == null) {
            if (https) {
                problems.add(path, "missing (expected: serverCAs for the https endpoints;"
                        + " backend certificates are always verified)");
            }
            return;
        }
        if (http && !https) {
            problems.add(path, "given for http:// endpoints (expected: https:// endpoints, or no tls)");
            return;
        }
        String cas = path + ".serverCAs";
        if (tls.serverCAs().isEmpty()) {
            problems.add(cas, "[] (expected: at least one CA bundle; backend certificates are always verified)");
        } else {
            List<String> items = problems.itemPaths(cas, tls.serverCAs().size());
            List<List<X509Certificate>> bundles = new ArrayList<>();
            for (int i = 0; i < items.size(); i++) {
                List<X509Certificate> bundle = files.caBundle(items.get(i), tls.serverCAs().get(i));
                bundles.add(bundle == null ? List.of() : bundle);
            }
            List<X509Certificate> all = bundles.stream().flatMap(List::stream).toList();
            for (int i = 0; i < bundles.size(); i++) {
                for (int n = 0; n < bundles.get(i).size(); n++) {
                    X509Certificate ca = bundles.get(i).get(n);
                    String unusable = ConstrainedIntermediates.withoutIssuer(ca, all, "no file of serverCAs");
                    if (unusable != null) {
                        problems.add(items.get(i), tls.serverCAs().get(i) + " (expected: "
                                + TrustAnchorValidator.CA_BUNDLE_EXPECTED + ") - certificate " + (n + 1) + " ("
                                + ca.getSubjectX500Principal().getName() + ") " + unusable);
                        break; // only the first offender of a file is named
                    }
                }
            }
        }
        String serverName = tls.serverName();
        if (serverName != null && !RouteValidator.isHostName(serverName.toLowerCase(Locale.ROOT))) {
            problems.add(path + ".serverName", Values.quote(serverName) + " (expected: " + SERVER_NAME_EXPECTED
                    + ")");
        }
        if (tls.spiffeId() != null && !IdentityValidator.isSpiffeId(tls.spiffeId())) {
            problems.add(path + ".spiffeId", Values.quote(tls.spiffeId()) + " (expected: "
                    + IdentityValidator.SPIFFE_EXPECTED + ")");
        }
        clientCertificate(path, tls.certificate(), tls.privateKey());
        KeyExchangeGroups.check(problems, path + ".groups", tls.groups(), tls.minVersion());
    }

    /** The proxy's own certificate for mTLS to the backend: both files or neither, and the key must fit. */
    private void clientCertificate(String path, Path certificateFile, Path keyFile) {
        if (certificateFile == null && keyFile == null) {
            return;
        }
        if (certificateFile == null) {
            problems.add(path + ".certificate", "missing (expected: the certificate of " + path
                    + ".privateKey, for mTLS to the backend)");
            return;
        }
        if (keyFile == null) {
            problems.add(path + ".privateKey", "missing (expected: the private key of " + path
                    + ".certificate)");
            return;
        }
        List<X509Certificate> chain = ListenerValidator.certificates(problems, path + ".certificate", certificateFile,
                ListenerValidator.CERTIFICATE_EXPECTED);
        if (chain != null) {
            // A backend at OpenSSL's security level 2 (nginx on Debian) or in Go refuses it at every handshake.
            ListenerValidator.weakCertificate(problems, path + ".certificate", certificateFile, chain);
            ListenerValidator.malformedNames(problems, path + ".certificate", certificateFile, chain.get(0));
        }
        PrivateKey key = files.privateKey(path + ".privateKey", keyFile);
        if (chain != null && key != null && !Pem.keyMatchesCertificate(key, chain.get(0))) {
            problems.add(path + ".privateKey", keyFile + " (expected: the private key of " + path
                    + ".certificate) - " + ListenerValidator.whoseKey(key, chain));
        }
    }

    private void healthCheck(String path, HealthCheckConfig check) {
        if (check == null) {
            return;
        }
        String checkPath = check.path();
        if (checkPath == null) {
            problems.add(path + ".path", "missing (expected: " + HEALTH_PATH_EXPECTED + ")");
        } else if (!checkPath.startsWith("/") || !checkPath.chars().allMatch(c -> c > 0x20 && c < 0x7f)
                || checkPath.contains("#")) {
            problems.add(path + ".path", Values.quote(checkPath) + " (expected: " + HEALTH_PATH_EXPECTED + ")");
        }
        problems.positiveWait(path + ".interval", check.interval());
        problems.positiveWait(path + ".timeout", check.timeout());
        threshold(path + ".healthyThreshold", check.healthyThreshold());
        threshold(path + ".unhealthyThreshold", check.unhealthyThreshold());
    }

    private void threshold(String path, int checks) {
        // 0 would mean a state change without any check: an endpoint that could never stay in (or out of) rotation.
        if (checks < 1) {
            problems.add(path, checks + " (expected: " + THRESHOLD_EXPECTED + ")");
        }
    }
}
