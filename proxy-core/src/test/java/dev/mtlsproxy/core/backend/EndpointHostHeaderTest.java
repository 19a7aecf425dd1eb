package dev.mtlsproxy.core.backend;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.BackendTlsConfig;
import dev.mtlsproxy.core.testing.TestPki;
import java.net.URI;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Host a backend gets for a request whose HTTP/1.0 client sent none: the endpoint's own name, as nginx sends
 * {@code $proxy_host}. Addresses here are literals or localhost, so building resolves nothing over the network.
 */
class EndpointHostHeaderTest {

    @TempDir
    Path dir;

    @Test
    void anHttpEndpointGivesItsHostInLowerCaseAndItsPortUnlessItIsTheDefault() throws Exception {
        Backend backend = Backend.build("shop", BackendConfig.of(List.of(URI.create("http://LocalHost:8080"),
                URI.create("http://127.0.0.1"), URI.create("http://127.0.0.1:80"), URI.create("http://[::1]:8080")),
                null));

        assertThat(backend.endpoints()).extracting(Endpoint::hostHeader)
                .containsExactly("localhost:8080", "127.0.0.1", "127.0.0.1", "[::1]:8080");
    }

    @Test
    void anHttpsEndpointGivesTheServerNameItsCertificateIsVerifiedFor() throws Exception {
        TestPki pki = TestPki.create(dir);
        BackendTlsConfig tls = BackendTlsConfig.trusting(pki.caPem()).withServerName("inventory.internal");

        Backend backend = Backend.build("inventory", BackendConfig.of(List.of(URI.create("https://127.0.0.1:8443"),
                URI.create("https://127.0.0.1:443")), tls));

        assertThat(backend.endpoints()).extracting(Endpoint::hostHeader)
                .containsExactly("inventory.internal:8443", "inventory.internal");
    }

    @Test
    void anHttpsEndpointWithoutServerNameGivesItsOwnHost() throws Exception {
        TestPki pki = TestPki.create(dir);

        Backend backend = Backend.build("inventory", BackendConfig.of(List.of(URI.create("https://localhost")),
                BackendTlsConfig.trusting(pki.caPem())));

        assertThat(backend.endpoints()).extracting(Endpoint::hostHeader).containsExactly("localhost");
    }
}
