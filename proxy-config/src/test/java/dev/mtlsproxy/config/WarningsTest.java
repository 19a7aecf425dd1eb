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
    void aConfigUsingEverythingHasNoWarnings() throws Exception {
        ConfigFixture fixture = new ConfigFixture(dir);

        assertThat(ConfigLoader.warnings(fixture.load(ConfigFixture.VALID), java.time.Instant.now())).isEmpty();
    }
}
