package dev.mtlsproxy.config;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class WarningsTest {

    @TempDir
    Path dir;

    @Test
    void aRouteThatAllowsNobodyAndAnIdentityNoRouteUsesAreWarnedAbout() throws Exception {
        ConfigFixture fixture = new ConfigFixture(dir);
        String yaml = fixture.with("    backend: inventory\n    allow: [ops]\n", "    backend: inventory\n")
                .replace("allow: [orders, ops]", "allow: [ops]")
                .replace("identities:\n", "identities:\n  idle: { subjectCn: nobody }\n");

        ProxyConfig config = fixture.load(yaml);

        assertThat(ConfigLoader.warnings(config, java.time.Instant.now())).containsExactly(
                "identities.idle: not allowed on any route",
                "identities.orders: not allowed on any route",
                "routes[1].allow: [] - route \"inventory\" denies every request");
    }

    @Test
    void aTlsBackendWhoseNameIsNotVerifiedAndNotPinnedIsWarnedAbout() throws Exception {
        ConfigFixture fixture = new ConfigFixture(dir);
        TestPki.write(dir.resolve("certs/backend-ca.pem"), TestPki.ca("backend-ca").getCertificatePEM());
        String tls = "    url: https://10.0.0.1:9443\n    tls: { serverCAs: [certs/backend-ca.pem], verifyHostname: false%s }\n";
        String yaml = fixture.with("    url: http://localhost:9001\n", tls.formatted(""));

        assertThat(ConfigLoader.warnings(fixture.load(yaml), java.time.Instant.now())).containsExactly("backends.inventory.tls.verifyHostname:"
                + " false - any certificate from serverCAs is accepted as backend \"inventory\"; set spiffeId to pin it");
        assertThat(ConfigLoader.warnings(fixture.load(fixture.with("    url: http://localhost:9001\n",
                tls.formatted(", spiffeId: \"spiffe://demo.local/inventory\""))), java.time.Instant.now())).isEmpty();
    }

    @Test
    void aConfigUsingEverythingHasNoWarnings() throws Exception {
        ConfigFixture fixture = new ConfigFixture(dir);

        assertThat(ConfigLoader.warnings(fixture.load(ConfigFixture.VALID), java.time.Instant.now())).isEmpty();
    }
}
