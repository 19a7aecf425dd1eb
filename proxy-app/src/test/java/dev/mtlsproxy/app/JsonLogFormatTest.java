package dev.mtlsproxy.app;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.util.concurrent.TimeUnit;
import dev.mtlsproxy.app.demo.DemoPki;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** MTLS_PROXY_LOG_FORMAT=json turns the application log into one JSON object per line, in a real process. */
class JsonLogFormatTest {

    @TempDir
    Path workspace;

    @Test
    void theApplicationLogIsJsonWhenAsked() throws Exception {
        Path configDir = Files.createDirectories(workspace.resolve("config"));
        DemoPki.ensure(workspace.resolve("demo"), Clock.systemUTC());
        Path config = Files.writeString(configDir.resolve("demo.yaml"),
                Files.readString(Path.of("..", "config", "demo.yaml"))
                        .replace("127.0.0.1:8443", "127.0.0.1:0")
                        .replace("127.0.0.1:9901", "127.0.0.1:0"));
        ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"), Main.class.getName(), "run", "--config",
                config.toString());
        pb.environment().put("MTLS_PROXY_LOG_FORMAT", "json");
        pb.redirectOutput(ProcessBuilder.Redirect.DISCARD);
        Process process = pb.start();
        try (BufferedReader stderr = new BufferedReader(
                new InputStreamReader(process.getErrorStream(), StandardCharsets.UTF_8))) {
            JsonNode starting = new ObjectMapper().readTree(stderr.readLine());
            JsonNode loops = new ObjectMapper().readTree(stderr.readLine());
            JsonNode listening = new ObjectMapper().readTree(stderr.readLine());
            // The first line names the build, so a log pasted into a bug report says which one it was.
            BuildInfo build = BuildInfo.current();
            assertThat(starting.get("formattedMessage").asText()).isEqualTo("event=starting version="
                    + build.version() + " revision=" + build.revision() + " java=" + Runtime.version() + " config="
                    + config);
            assertThat(build.version()).isEqualTo(System.getProperty("mtlsproxy.test.version"));
            assertThat(loops.get("level").asText()).isEqualTo("INFO");
            assertThat(loops.get("formattedMessage").asText()).startsWith("event=event_loops threads=");
            assertThat(listening.get("formattedMessage").asText()).startsWith("event=listening listener=demo");
        } finally {
            process.destroy();
            assertThat(process.waitFor(10, TimeUnit.SECONDS)).isTrue();
        }
    }
}
