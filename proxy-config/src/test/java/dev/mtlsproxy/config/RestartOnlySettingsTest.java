package dev.mtlsproxy.config;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RestartOnlySettingsTest {

    private static final String MAIN = "  - name: main\n    address: 127.0.0.1:8443\n";
    private static final String TLS = """
                tls:
                  certificate: certs/server.pem
                  privateKey: certs/server.key
            """;

    @TempDir
    Path dir;

    private ConfigFixture fixture;

    @BeforeEach
    void files() {
        fixture = new ConfigFixture(dir);
    }

    @Test
    void aMovedListenerAndAnAddedOneAreEachReportedAtTheirPath() throws Exception {
        ProxyConfig running = fixture.load(ConfigFixture.VALID);
        ProxyConfig next = fixture.load(withListeners("  - name: main\n    address: 0.0.0.0:9443\n",
                "  - name: extra\n    address: 127.0.0.1:8444\n"));

        assertThat(brief(RestartOnlySettings.listenerChanges(running, next))).containsExactly(
                "listeners[0].address: 0.0.0.0:9443 needs a restart to change (running: 127.0.0.1:8443)",
                "listeners[1]: new listener \"extra\" needs a restart");
    }

    @Test
    void aRenamedListenerIsOneChangeOfItsName() throws Exception {
        ProxyConfig running = fixture.load(ConfigFixture.VALID);
        ProxyConfig next = fixture.load(withListeners("  - name: public\n    address: 127.0.0.1:8443\n"));

        assertThat(brief(RestartOnlySettings.listenerChanges(running, next))).containsExactly(
                "listeners[0].name: \"public\" needs a restart to change (running: \"main\")");
    }

    @Test
    void aRemovedListenerIsReportedWithTheAddressItRunsOn() throws Exception {
        ProxyConfig running = fixture.load(withListeners(MAIN, "  - name: extra\n    address: 127.0.0.1:8444\n"));
        ProxyConfig next = fixture.load(ConfigFixture.VALID);

        assertThat(brief(RestartOnlySettings.listenerChanges(running, next))).containsExactly(
                "listeners: removing listener \"extra\" (running: 127.0.0.1:8444) needs a restart");
    }

    @Test
    void listenersInAnotherOrderWithOtherSettingsNeedNoRestart() throws Exception {
        ProxyConfig running = fixture.load(withListeners(MAIN, "  - name: extra\n    address: 127.0.0.1:8444\n"));
        ProxyConfig next = fixture.load(withListeners("  - name: extra\n    address: 127.0.0.1:8444\n"
                + "    idleTimeout: 5m\n", MAIN));

        assertThat(RestartOnlySettings.listenerChanges(running, next)).isEmpty();
    }

    @Test
    void everyChangedStartOnlySettingIsReportedNotTheFirst() throws Exception {
        ProxyConfig started = fixture.load(ConfigFixture.VALID + "workers: { threads: 2 }\n");
        ProxyConfig next = fixture.load(ConfigFixture.VALID.replace("path: stdout", "path: access.log") + """
                admin: { address: 0.0.0.0:9902 }
                reload: { watch: false, debounce: 2s }
                workers: { cpuAffinity: auto, yieldAfter: 0s, transport: nio }
                """);

        assertThat(brief(RestartOnlySettings.startOnlyChanges(started, next))).containsExactly(
                "accessLog.path: \"" + fixture.abs("access.log") + "\" needs a restart to change (running: \"stdout\")",
                "admin.address: 0.0.0.0:9902 needs a restart to change (running: 127.0.0.1:9901)",
                "reload.debounce: 2s needs a restart to change (running: 500ms)",
                "reload.watch: false needs a restart to change (running: true)",
                "workers.cpuAffinity: auto needs a restart to change (running: none)",
                "workers.threads: default needs a restart to change (running: 2)",
                "workers.transport: nio needs a restart to change (running: auto)",
                "workers.yieldAfter: 0s needs a restart to change (running: 500us)");
        assertThat(RestartOnlySettings.startOnlyChanges(next, next)).isEmpty();
    }

    /** The valid configuration with these listeners, each with the fixture's certificate. */
    private static String withListeners(String... listeners) {
        StringBuilder yaml = new StringBuilder();
        for (String listener : listeners) {
            yaml.append(listener).append(TLS);
        }
        String valid = ConfigFixture.VALID;
        int start = valid.indexOf("  - name: main");
        int end = valid.indexOf("identities:");
        return valid.substring(0, start) + yaml + valid.substring(end);
    }

    private static List<String> brief(List<ConfigProblem> problems) {
        return problems.stream().map(ConfigFixture::brief).toList();
    }
}
