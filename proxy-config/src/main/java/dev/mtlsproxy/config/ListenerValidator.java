package dev.mtlsproxy.config;

import java.nio.file.Path;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.util.List;
import java.util.Set;

/** Checks {@code listeners:}, including that every TLS file is readable now, not at the first handshake. */
final class ListenerValidator {

    static final String CERTIFICATE_EXPECTED = "a PEM file with the certificate chain, leaf first";
    static final String PRIVATE_KEY_EXPECTED = "an unencrypted PKCS#8 private key";
    static final String STRONG_EXPECTED = "keys of at least " + AlgorithmStrength.MIN_RSA_DSA_BITS + " bits (RSA), "
            + AlgorithmStrength.MIN_EC_BITS + " (EC), signed without SHA-1 or MD5";

    private final Problems problems;
    private final Set<String> trustAnchors;

    ListenerValidator(Problems problems, Set<String> trustAnchors) {
        this.problems = problems;
        this.trustAnchors = trustAnchors;
    }

    void validate(List<ListenerConfig> listeners) {
        if (listeners.isEmpty()) {
            problems.add("listeners", "[] (expected: at least one listener)");
            return;
        }
        List<String> paths = problems.itemPaths("listeners", listeners.size());
        UniqueNames names = new UniqueNames(problems);
        for (int i = 0; i < paths.size(); i++) {
            String path = paths.get(i);
            ListenerConfig listener = listeners.get(i);
            names.check(path, listener.name(), "a unique listener name");
            if (listener.address() == null) {
                problems.add(path + ".address", "missing (expected: " + YamlSchema.expected(HostPort.class) + ")");
            } else {
                sharedAddress(path + ".address", listener.address(), listeners.subList(0, i), paths);
            }
            tls(path + ".tls", listener.tls());
            problems.positiveWait(path + ".idleTimeout", listener.idleTimeout());
            problems.positiveWait(path + ".handshakeTimeout", listener.handshakeTimeout());
            problems.positiveWait(path + ".requestHeaderTimeout", listener.requestHeaderTimeout());
            problems.positive(path + ".limits.maxInitialLineLength", listener.limits().maxInitialLineLength(),
                    HttpLimits.MOST);
            problems.positive(path + ".limits.maxHeaderSize", listener.limits().maxHeaderSize(), HttpLimits.MOST);
            if (listener.maxConnections() != null && listener.maxConnections() < 1) {
                problems.add(path + ".maxConnections", listener.maxConnections()
                        + " (expected: a positive integer)");
            }
        }
    }

    /** Two listeners on one port passed validate, and run then failed to bind the second. */
    private void sharedAddress(String path, HostPort address, List<ListenerConfig> earlier, List<String> paths) {
        for (int j = 0; j < earlier.size(); j++) {
            if (earlier.get(j).address() != null && address.bindsOver(earlier.get(j).address())) {
                problems.add(path, Values.quote(address.toString()) + " (expected: an address no other listener"
                        + " uses) - " + paths.get(j) + " is there");
                return;
            }
        }
    }

    private void tls(String path, ServerTlsConfig tls) {
        if (tls == null) {
            problems.add(path, "missing (expected: " + YamlSchema.expected(ServerTlsConfig.class) + ")");
            return;
        }
        List<X509Certificate> chain = certificates(problems, path + ".certificate", tls.certificate(), CERTIFICATE_EXPECTED);
        if (chain != null) {
            weakCertificate(problems, path + ".certificate", tls.certificate(), chain);
            malformedNames(problems, path + ".certificate", tls.certificate(), chain.get(0));
        }
        PrivateKey key = privateKey(path + ".privateKey", tls.privateKey());
        if (chain != null && key != null && !Pem.keyMatchesCertificate(key, chain.get(0))) {
            problems.add(path + ".privateKey", tls.privateKey() + " (expected: the private key of " + path
                    + ".certificate) - " + whoseKey(key, chain));
        }
        List<String> anchors = problems.itemPaths(path + ".trustAnchors", tls.trustAnchors().size());
        for (int i = 0; i < anchors.size(); i++) {
            References.check(problems, anchors.get(i), tls.trustAnchors().get(i), "trustAnchors", trustAnchors);
        }
        KeyExchangeGroups.check(problems, path + ".groups", tls.groups(), tls.minVersion());
    }

    /**
     * Clients hold the chain a listener serves to the rule the proxy holds theirs to ({@link AlgorithmStrength}):
     * OpenSSL at security level 2 (curl and nginx on Debian) refuses an RSA key under 2048 bits or a SHA-1 signature
     * in it, Go refuses SHA-1. It loaded, and every such client then failed its handshake; nginx on Debian refuses to
     * start with it ("ee key too small"). A root appended to the chain is not judged: clients use their own copy.
     * Backends that verify the proxy's own client certificate hold it to the same rule, as the proxy holds its clients.
     */
    static void weakCertificate(Problems problems, String path, Path file, List<X509Certificate> chain) {
        for (int i = 0; i < chain.size(); i++) {
            X509Certificate certificate = chain.get(i);
            if (i > 0 && certificate.getSubjectX500Principal().equals(certificate.getIssuerX500Principal())) {
                continue;
            }
            String weakness = AlgorithmStrength.weakness(certificate);
            if (weakness != null) {
                problems.add(path, file + " (expected: " + STRONG_EXPECTED + ") - certificate " + (i + 1) + " ("
                        + certificate.getSubjectX500Principal().getName() + ") has a weak " + weakness);
                return; // only the first offender is named
            }
        }
    }

    /**
     * A name the proxy refuses in a client's certificate ({@link SubjectAltNames#malformedName}) in the certificate it
     * serves: Go refuses it at parse, and the proxy, which reads its own names for XFCC's {@code By} element, failed
     * to start with an unforeseen error after {@code validate} had passed.
     */
    static void malformedNames(Problems problems, String path, Path file, X509Certificate leaf) {
        String malformed;
        try {
            malformed = SubjectAltNames.malformedName(leaf);
        } catch (IllegalArgumentException e) {
            malformed = "subject alternative name extension";
        }
        if (malformed != null) {
            problems.add(path, file + " (expected: " + NAMES_EXPECTED + ") - certificate 1 ("
                    + leaf.getSubjectX500Principal().getName() + ") has a malformed " + malformed);
        }
    }

    static final String NAMES_EXPECTED = "DNS, email and URI names of printable ASCII, DNS names of letters, digits,"
            + " '-', '_', '.' and '*'";

    /** TLS presents the first certificate of the file, so a key for a later one means the order is wrong. */
    static String whoseKey(PrivateKey key, List<X509Certificate> chain) {
        for (int i = 1; i < chain.size(); i++) {
            if (Pem.keyMatchesCertificate(key, chain.get(i))) {
                return "it belongs to certificate " + (i + 1) + " in that file; the leaf must come first";
            }
        }
        return "it belongs to another certificate";
    }

    /**
     * One CA bundle: readable PEM, every certificate in it a CA. Used for backends' {@code serverCAs}.
     *
     * @return its certificates, or null when it cannot be read
     */
    List<X509Certificate> caBundle(String item, Path bundle) {
        List<X509Certificate> cas = certificates(problems, item, bundle, TrustAnchorValidator.CA_BUNDLE_EXPECTED);
        for (int n = 0; cas != null && n < cas.size(); n++) {
            X509Certificate ca = cas.get(n);
            // getBasicConstraints() is -1 unless the certificate says CA:true; only the first offender is named
            if (ca.getBasicConstraints() < 0) {
                problems.add(item, bundle + " (expected: " + TrustAnchorValidator.CA_BUNDLE_EXPECTED
                        + ") - certificate " + (n + 1) + " (" + ca.getSubjectX500Principal().getName()
                        + ") is not a CA");
                break;
            }
        }
        return cas;
    }

    /** The certificates of a PEM file, or null after reporting why there are none. */
    static List<X509Certificate> certificates(Problems problems, String path, Path file, String expected) {
        if (file == null) {
            problems.add(path, "missing (expected: " + expected + ")");
            return null;
        }
        if (readable(problems, path, file)) {
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
        if (readable(problems, path, file)) {
            try {
                return Pem.readPrivateKey(file);
            } catch (PemException e) {
                problems.add(path, file + " (expected: " + PRIVATE_KEY_EXPECTED + ") - " + e.reason());
            }
        }
        return null;
    }

    private static boolean readable(Problems problems, String path, Path file) {
        String reason = FileChecks.unreadable(file);
        if (reason != null) {
            problems.add(path, file + " (expected: a readable PEM file) - " + reason);
        }
        return reason == null;
    }
}
