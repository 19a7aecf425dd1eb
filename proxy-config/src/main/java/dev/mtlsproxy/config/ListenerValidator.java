package dev.mtlsproxy.config;

import java.nio.file.Path;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.util.List;

/** Checks {@code listeners:}, including that every TLS file is readable now, not at the first handshake. */
final class ListenerValidator {

    static final String CERTIFICATE_EXPECTED = "a PEM file with the certificate chain, leaf first";
    static final String PRIVATE_KEY_EXPECTED = "an unencrypted PKCS#8 private key";
    static final String CA_BUNDLE_EXPECTED = "a PEM bundle of CA certificates";

    private final Problems problems;

    ListenerValidator(Problems problems) {
        this.problems = problems;
    }

    void validate(List<ListenerConfig> listeners) {
        if (listeners.isEmpty()) {
            problems.add("listeners", "[] (expected: at least one listener)");
            return;
        }
        if (!problems.itemsIntact("listeners")) {
            return;
        }
        UniqueNames names = new UniqueNames(problems);
        for (int i = 0; i < listeners.size(); i++) {
            String path = YamlPaths.item("listeners", i);
            ListenerConfig listener = listeners.get(i);
            names.check(path, listener.name(), "a unique listener name");
            if (listener.address() == null) {
                problems.add(path + ".address", "missing (expected: " + YamlSchema.expected(HostPort.class) + ")");
            }
            tls(path + ".tls", listener.tls());
            problems.positive(path + ".idleTimeout", listener.idleTimeout());
            problems.positive(path + ".handshakeTimeout", listener.handshakeTimeout());
            problems.positive(path + ".limits.maxInitialLineLength", listener.limits().maxInitialLineLength());
            problems.positive(path + ".limits.maxHeaderSize", listener.limits().maxHeaderSize());
        }
    }

    private void tls(String path, ServerTlsConfig tls) {
        if (tls == null) {
            problems.add(path, "missing (expected: " + YamlSchema.expected(ServerTlsConfig.class) + ")");
            return;
        }
        List<X509Certificate> chain = certificates(path + ".certificate", tls.certificate(), CERTIFICATE_EXPECTED);
        PrivateKey key = privateKey(path + ".privateKey", tls.privateKey());
        if (chain != null && key != null && !Pem.keyMatchesCertificate(key, chain.get(0))) {
            problems.add(path + ".privateKey", tls.privateKey() + " (expected: the private key of " + path
                    + ".certificate) - " + whoseKey(key, chain));
        }
        clientCAs(path + ".clientCAs", tls.clientCAs());
    }

    /** TLS presents the first certificate of the file, so a key for a later one means the order is wrong. */
    static String whoseKey(PrivateKey key, List<X509Certificate> chain) {
        for (int i = 1; i < chain.size(); i++) {
            if (Pem.keyMatchesCertificate(key, chain.get(i))) {
                return "it belongs to certificate " + (i + 1) + " in that file; the leaf must come first";
            }
        }
        return "it belongs to another certificate";
    }

    private void clientCAs(String path, List<Path> bundles) {
        if (bundles.isEmpty()) {
            problems.add(path, "[] (expected: at least one CA bundle; client certificates are always required)");
            return;
        }
        if (!problems.itemsIntact(path)) {
            return;
        }
        for (int i = 0; i < bundles.size(); i++) {
            caBundle(YamlPaths.item(path, i), bundles.get(i));
        }
    }

    /** One CA bundle: readable PEM, every certificate in it a CA. Also used for backends' {@code serverCAs}. */
    void caBundle(String item, Path bundle) {
        List<X509Certificate> cas = certificates(item, bundle, CA_BUNDLE_EXPECTED);
        for (int n = 0; cas != null && n < cas.size(); n++) {
            X509Certificate ca = cas.get(n);
            // getBasicConstraints() is -1 unless the certificate says CA:true; only the first offender is named
            if (ca.getBasicConstraints() < 0) {
                problems.add(item, bundle + " (expected: " + CA_BUNDLE_EXPECTED + ") - certificate "
                        + (n + 1) + " (" + ca.getSubjectX500Principal().getName() + ") is not a CA");
                break;
            }
        }
    }

    /** The certificates of a PEM file, or null after reporting why there are none. */
    List<X509Certificate> certificates(String path, Path file, String expected) {
        if (file == null) {
            problems.add(path, "missing (expected: " + expected + ")");
            return null;
        }
        if (readable(path, file)) {
            try {
                return Pem.readCertificates(file);
            } catch (PemException e) {
                problems.add(path, file + " (expected: " + expected + ") - " + e.reason());
            }
        }
        return null;
    }

    PrivateKey privateKey(String path, Path file) {
        if (file == null) {
            problems.add(path, "missing (expected: " + PRIVATE_KEY_EXPECTED + ")");
            return null;
        }
        if (readable(path, file)) {
            try {
                return Pem.readPrivateKey(file);
            } catch (PemException e) {
                problems.add(path, file + " (expected: " + PRIVATE_KEY_EXPECTED + ") - " + e.reason());
            }
        }
        return null;
    }

    private boolean readable(String path, Path file) {
        String reason = FileChecks.unreadable(file);
        if (reason != null) {
            problems.add(path, file + " (expected: a readable PEM file) - " + reason);
        }
        return reason == null;
    }
}
