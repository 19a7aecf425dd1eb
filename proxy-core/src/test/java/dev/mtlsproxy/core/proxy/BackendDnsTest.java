package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.BackendTlsConfig;
import dev.mtlsproxy.core.backend.Backends;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Backend names are resolved when a configuration is loaded, and a reload loads it again: a backend that moved to
 * another address is found by the next reload, even when its configuration did not change. Runs, by its tag, in the
 * surefire execution {@code dns}, whose JVM resolves names from its own hosts file ({@code jdk.net.hosts.file})
 * without a cache, so the test can move a name.
 */
@Tag("dns")
class BackendDnsTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final String NAME = "shop.backend.test";

    @RegisterExtension
    final ProxyFixture fixture = ProxyFixture.proxyStartedByTheTest();
    Path hosts;

    @BeforeEach
    void hostsFile() {
        String file = System.getProperty("jdk.net.hosts.file");
        Assumptions.assumeTrue(file != null, "runs in the dns execution, with a hosts file of its own");
        hosts = Path.of(file);
    }

    private void resolve(String name, String address) throws IOException {
        Files.writeString(hosts, "127.0.0.1 localhost\n" + address + " " + name + "\n");
    }

    @Test
    void aReloadResolvesBackendNamesAgainAndKeepsThePoolWhenTheAddressIsTheSame() throws Exception {
        resolve(NAME, "127.0.0.2"); // loopback too, but nothing listens there: connection refused
        RunningProxy proxy = fixture.start(RunningProxy.builder(fixture.pki())
                .identity("orders", ORDERS)
                .backend("shop", BackendConfig.of(
                        List.of(URI.create("http://" + NAME + ":" + fixture.backend().port())), null))
                .route("all", "/", "shop", "orders"));
        try (MtlsClient client = fixture.connect(ORDERS)) {
            assertThat(client.get("/before").status()).isEqualTo(502);

            resolve(NAME, "127.0.0.1");
            assertThat(client.get("/moved").status()).as("resolved at load only: not yet").isEqualTo(502);
            proxy.reload(c -> c);
            assertThat(client.get("/after-reload").status()).as("the reload resolved the name again")
                    .isEqualTo(200);

            proxy.reload(c -> c);
            assertThat(client.get("/again").status()).isEqualTo(200);
        }
        assertThat(fixture.backend().connectionsAccepted()).as("same address: the backend and its pool carried over")
                .isEqualTo(1);
    }

    /**
     * A name that does not resolve is tried again by every reload, which builds its backend anew; that was logged
     * as {@code event=backend_tls_reloaded reason=files_changed} at every reload, of a plain http backend too, though
     * no file had changed, and an https one was given a new TLS context. {@code backend_unresolved} is the line that tells. (A name of its own: the JVM remembers
     * a failed lookup for ten seconds, {@code networkaddress.cache.negative.ttl}, whatever the hosts file says.)
     */
    @Test
    void aNameStillUnresolvedAtAReloadIsNotReportedAsChangedFiles() throws Exception {
        resolve("elsewhere.test", "127.0.0.2");
        RunningProxy proxy = fixture.start(RunningProxy.builder(fixture.pki())
                .identity("orders", ORDERS)
                .backend("shop", BackendConfig.of(List.of(URI.create("http://nowhere.backend.test:8080")), null))
                .backend("billing", BackendConfig.of(List.of(URI.create("https://nowhere-tls.backend.test:8443")),
                        BackendTlsConfig.trusting(fixture.pki().caPem())))
                .route("all", "/", "shop", "orders")
                .route("billing", "/billing", "billing", "orders"));

        try (LogCapture log = LogCapture.of(Backends.class)) {
            proxy.reload(c -> c);

            assertThat(log.lines()).as("nothing changed: the name still resolves nowhere").isEmpty();
        }
    }
}
