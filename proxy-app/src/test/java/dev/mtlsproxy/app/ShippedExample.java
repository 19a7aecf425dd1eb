package dev.mtlsproxy.app;

import dev.mtlsproxy.core.testing.TestPki;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * config/example.yaml as shipped, copied into {@code dir/config/} beside the certificates it names under
 * {@code certs/}, minted by {@code pki}: the repository ships none, so as checked out it loads only as "missing files".
 */
final class ShippedExample {

    private ShippedExample() {
    }

    /** The copy of example.yaml, ready to load. */
    static Path withCertificates(Path dir, TestPki pki) throws IOException {
        Path configDir = Files.createDirectories(dir.resolve("config"));
        Path example = Files.copy(Path.of("..", "config", "example.yaml"), configDir.resolve("example.yaml"));
        Path certs = Files.createDirectories(configDir.resolve("certs"));
        Files.copy(pki.serverCertificatePem(), certs.resolve("server.pem"));
        Files.copy(pki.serverKeyPem(), certs.resolve("server.key"));
        Files.copy(pki.caPem(), certs.resolve("clients-ca.pem"));
        Files.writeString(certs.resolve("clients-ca.crl"), pki.rootCrl());
        Files.writeString(certs.resolve("billing-ca.pem"), TestPki.newRoot("billing CA").getCertificatePEM());
        TestPki.Issued proxyClient = pki.proxyClient("spiffe://example.org/mtls-proxy");
        Files.copy(proxyClient.certificate(), certs.resolve("proxy-client.pem"));
        Files.copy(proxyClient.privateKey(), certs.resolve("proxy-client.key"));
        return example;
    }
}
