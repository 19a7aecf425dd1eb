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
    void aMovedListenerAndAnAddedOneAreEachReportedAtTheirPathAndLineInTheNewFile() throws Exception {
        ProxyConfig running = fixture.load(ConfigFixture.VALID);
        LoadedConfig next = fixture.loadFile(withListeners("  - name: main\n    address: 0.0.0.0:9443\n",
                "  - name: extra\n    address: 127.0.0.1:8444\n"));

        assertThat(listenerChanges(running, next)).containsExactly(
                "listeners[0].address: 0.0.0.0:9443 needs a restart to change (running: 127.0.0.1:8443)"
                        + " at line 5, column 14",
                "listeners[1]: new listener \"extra\" needs a restart at line 9, column 5");
    }

    @Test
    void aRenamedListenerIsOneChangeOfItsName() throws Exception {
        ProxyConfig running = fixture.load(ConfigFixture.VALID);
        LoadedConfig next = fixture.loadFile(withListeners("  - name: public\n    address: 127.0.0.1:8443\n"));

        assertThat(listenerChanges(running, next)).containsExactly(
                "listeners[0].name: \"public\" needs a restart to change (running: \"main\")"
                        + " at line 4, column 11");
    }

    /** The new file has no line for what it left out: the problem is at the list the listener was removed from. */
    @Test
    void aRemovedListenerIsReportedWithTheAddressItRunsOnAtTheListenersOfTheNewFile() throws Exception {
        ProxyConfig running = fixture.load(withListeners(MAIN, "  - name: extra\n    address: 127.0.0.1:8444\n"));
        LoadedConfig next = fixture.loadFile(ConfigFixture.VALID);

        assertThat(listenerChanges(running, next)).containsExactly(
                "listeners: removing listener \"extra\" (running: 127.0.0.1:8444) needs a restart"
                        + " at line 4, column 3");
    }

    @Test
    void listenersInAnotherOrderWithOtherSettingsNeedNoRestart() throws Exception {
        ProxyConfig running = fixture.load(withListeners(MAIN, "  - name: extra\n    address: 127.0.0.1:8444\n"));
        LoadedConfig next = fixture.loadFile(withListeners("  - name: extra\n    address: 127.0.0.1:8444\n"
                + "    idleTimeout: 5m\n", MAIN));

        assertThat(listenerChanges(running, next)).isEmpty();
    }

    @Test
    void everyChangedStartOnlySettingIsReportedNotTheFirst() throws Exception {
        ProxyConfig started = fixture.load(ConfigFixture.VALID + "workers: { threads: 2 }\n");
        LoadedConfig next = fixture.loadFile(ConfigFixture.VALID.replace("path: stdout", "path: access.log") + """
                admin: { address: 0.0.0.0:9902 }
                reload: { watch: false, debounce: 2s }
                workers: { cpuAffinity: auto, yieldAfter: 0s, transport: nio }
                """);

        assertThat(startOnlyChanges(started, next)).containsExactly(
                "accessLog.path: \"" + fixture.abs("access.log") + "\" needs a restart to change (running: \"stdout\")"
                        + " at line 37, column 35",
                "admin.address: 0.0.0.0:9902 needs a restart to change (running: 127.0.0.1:9901) at line 38, column 19",
                "reload.debounce: 2s needs a restart to change (running: 500ms) at line 39, column 35",
                "reload.watch: false needs a restart to change (running: true) at line 39, column 18",
                "workers.cpuAffinity: auto needs a restart to change (running: none) at line 40, column 25",
                "workers.threads: default needs a restart to change (running: 2) at line 40, column 10",
                "workers.transport: nio needs a restart to change (running: auto) at line 40, column 58",
                "workers.yieldAfter: 0s needs a restart to change (running: 500us) at line 40, column 43");
        assertThat(startOnlyChanges(next.config(), next)).isEmpty();
    }

    /** A setting back to its default has no line of its own: it is placed at its section, or nowhere without one. */
    @Test
    void aStartOnlySettingLeftOutIsPlacedAtTheSectionAroundItWhenTheFileHasOne() throws Exception {
        ProxyConfig started = fixture.load(ConfigFixture.VALID + "workers: { threads: 2 }\nreload: { watch: false }\n");
        LoadedConfig next = fixture.loadFile(ConfigFixture.VALID + "workers: { transport: auto }\n");

        assertThat(startOnlyChanges(started, next)).containsExactly(
                "reload.watch: true needs a restart to change (running: false)",
                "workers.threads: default needs a restart to change (running: 2) at line 38, column 10");
    }

    @Test
    void aConfigurationNotReadFromAFileHasNoLines() throws Exception {
        ProxyConfig running = fixture.load(ConfigFixture.VALID);
        ProxyConfig next = fixture.load(withListeners("  - name: main\n    address: 0.0.0.0:9443\n"));

        assertThat(shown(RestartOnlySettings.listenerChanges(running, next, ConfigPositions.NONE))).containsExactly(
                "listeners[0].address: 0.0.0.0:9443 needs a restart to change (running: 127.0.0.1:8443)");
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

    /** Changes from {@code running} to the file loaded as {@code next}, as a reload shows them. */
    private static List<String> listenerChanges(ProxyConfig running, LoadedConfig next) {
        return shown(RestartOnlySettings.listenerChanges(running, next.config(), next.positions()));
    }

    private static List<String> startOnlyChanges(ProxyConfig started, LoadedConfig next) {
        return shown(RestartOnlySettings.startOnlyChanges(started, next.config(), next.positions()));
    }

    /** As the reload answer and log show them, with the line and column. */
    private static List<String> shown(List<ConfigProblem> problems) {
        return problems.stream().map(ConfigProblem::toString).toList();
    }
}
