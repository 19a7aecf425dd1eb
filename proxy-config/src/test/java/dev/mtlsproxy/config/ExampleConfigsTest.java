package dev.mtlsproxy.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import io.netty.pkitesting.X509Bundle;
import java.io.IOException;
import java.nio.file.Files;
import java.lang.reflect.Type;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every shipped example under the repository's {@code config/} must load and validate fully. No certificates are
 * checked in, so the folder is copied and certificates are minted at whatever relative paths each example names.
 */
class ExampleConfigsTest {

    /** Maven runs tests in the module directory. */
    private static final Path CONFIG_DIR = Path.of("..", "config");

    @TempDir
    Path tmp;

    static Stream<Path> examples() throws IOException {
        try (Stream<Path> files = Files.list(CONFIG_DIR)) {
            List<Path> yaml = files.filter(f -> f.getFileName().toString().endsWith(".yaml")).sorted().toList();
            assertThat(yaml).as("examples in " + CONFIG_DIR.toAbsolutePath()).isNotEmpty();
            return yaml.stream().map(Path::getFileName);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("examples")
    void loadsAndValidates(Path example) throws Exception {
        Path copy = copyWithCertificates(tmp, example);

        ProxyConfig config = ConfigLoader.load(copy);

        assertThat(config.listeners()).isNotEmpty();
    }

    @Test
    void theAnnotatedExampleUsesEverythingItDefines() throws Exception {
        ProxyConfig config = ConfigLoader.load(copyWithCertificates(tmp, Path.of("example.yaml")));

        // before the example's time-boxed grant lapses, or the warning about it would be right
        assertThat(ConfigLoader.warnings(config, java.time.Instant.parse("2026-11-27T00:00:00Z"))).isEmpty();
        assertThat(config.identities()).hasSize(5);
        assertThat(config.routes()).hasSize(4);
        assertThat(config.tests()).hasSizeGreaterThanOrEqualTo(10);
        assertThat(config.backends()).hasSize(2);
    }

    /** The problem the example's header shows as an example is the one its own file gives, line and column too. */
    @Test
    void theProblemTheExampleShowsIsWhatValidateSaysOfIt() throws Exception {
        Path copy = copyWithCertificates(tmp, Path.of("example.yaml"));
        String text = Files.readString(copy);
        String shown = text.lines().filter(l -> l.startsWith("#   listeners[0].tls.minVersion: "))
                .map(l -> l.substring("#   ".length())).findFirst().orElseThrow();
        Files.writeString(copy, text.replaceFirst("minVersion: TLSv1\\.2", "minVersion: TLSv1.1"));

        ConfigException refused = catchThrowableOfType(ConfigException.class, () -> ConfigLoader.load(copy));

        assertThat(refused.problems()).extracting(ConfigProblem::toString).containsExactly(shown);
    }

    /**
     * The README sends readers to config/example.yaml for "every key": each key the configuration accepts (read from
     * the records, as the loader reads them) is either set in the example or named in one of its comments as
     * {@code key:}. A new option without a line there fails here.
     */
    @Test
    void theAnnotatedExampleNamesEveryKeyTheConfigurationAccepts() throws Exception {
        String text = Files.readString(CONFIG_DIR.resolve("example.yaml"));
        JsonNode root = new YAMLMapper().readTree(text);
        String comments = text.lines().filter(line -> line.contains("#"))
                .map(line -> line.substring(line.indexOf('#'))).collect(Collectors.joining("\n"));

        Set<String> unnamed = new TreeSet<>();
        unnamedKeys(ProxyConfig.class, "", List.of(root), comments, new HashSet<>(), unnamed);

        assertThat(unnamed).as("keys neither set nor explained in config/example.yaml").isEmpty();
    }

    private static void unnamedKeys(Class<?> record, String path, List<JsonNode> nodes, String comments,
            Set<Class<?>> seen, Set<String> unnamed) {
        if (!seen.add(record)) {
            return; // allOf/anyOf nest identities: their keys were checked once
        }
        for (String key : YamlSchema.keys(record)) {
            String keyPath = path.isEmpty() ? key : path + "." + key;
            List<JsonNode> values = nodes.stream().filter(n -> n.has(key)).map(n -> n.get(key)).toList();
            if (values.isEmpty() && !Pattern.compile("\\b" + key + ":").matcher(comments).find()) {
                unnamed.add(keyPath);
            }
            Type type = YamlSchema.keyType(record, key).orElseThrow();
            Class<?> raw = YamlSchema.raw(type);
            if (YamlSchema.isMapping(raw)) {
                unnamedKeys(raw, keyPath, values, comments, seen, unnamed);
            } else if (Collection.class.isAssignableFrom(raw) || Map.class.isAssignableFrom(raw)) {
                Class<?> content = YamlSchema.raw(YamlSchema.contentType(type));
                if (YamlSchema.isMapping(content)) {
                    List<JsonNode> elements = new ArrayList<>();
                    values.forEach(v -> v.forEach(elements::add));
                    unnamedKeys(content, keyPath + (Map.class.isAssignableFrom(raw) ? ".*" : "[]"), elements,
                            comments, seen, unnamed);
                }
            }
        }
    }

    /**
     * Copies config/ to tmp/config/ (so "../x" stays inside tmp) and mints the files the example names: listener
     * certificates and client CAs, backend CAs and the proxy's client certificate for backends. Also the starting point
     * of {@link ConfigMutationTest}.
     */
    static Path copyWithCertificates(Path tmp, Path example) throws IOException {
        Path configDir = tmp.resolve("config");
        Files.createDirectories(configDir);
        Path copy = Files.copy(CONFIG_DIR.resolve(example), configDir.resolve(example.getFileName()));
        JsonNode root = new YAMLMapper().readTree(copy.toFile());

        X509Bundle ca = TestPki.ca("example-client-ca");
        Map<Path, X509Bundle> servers = new HashMap<>();
        for (JsonNode listener : root.path("listeners")) {
            JsonNode tls = listener.path("tls");
            Path certificate = inCopy(configDir, tls.path("certificate").asText());
            X509Bundle server = servers.computeIfAbsent(certificate, c -> TestPki.leaf(ca, "example.local"));
            TestPki.write(certificate, server.getCertificatePathPEM());
            TestPki.write(inCopy(configDir, tls.path("privateKey").asText()), server.getPrivateKeyPEM());
        }
        // one CA per anchor: anchors may not share CAs or CA names
        int n = 0;
        for (JsonNode anchor : root.path("trustAnchors")) {
            X509Bundle anchorCa = n++ == 0 ? ca : TestPki.ca("example-anchor-" + n);
            TestPki.write(inCopy(configDir, anchor.path("caBundle").asText()), anchorCa.getCertificatePEM());
            for (JsonNode crl : anchor.path("crls")) {
                TestPki.write(inCopy(configDir, crl.asText()), TestPki.crl(anchorCa));
            }
        }
        X509Bundle backendCa = TestPki.ca("example-backend-ca");
        X509Bundle proxyClient = TestPki.leaf(backendCa, "example-proxy-client");
        for (JsonNode backend : root.path("backends")) {
            JsonNode tls = backend.path("tls");
            for (JsonNode bundle : tls.path("serverCAs")) {
                TestPki.write(inCopy(configDir, bundle.asText()), backendCa.getCertificatePEM());
            }
            if (tls.has("certificate")) {
                TestPki.write(inCopy(configDir, tls.path("certificate").asText()), proxyClient.getCertificatePEM());
                TestPki.write(inCopy(configDir, tls.path("privateKey").asText()), proxyClient.getPrivateKeyPEM());
            }
        }
        String accessLog = root.path("accessLog").path("path").asText("stdout");
        if (!accessLog.equals("stdout")) {
            Files.createDirectories(inCopy(configDir, accessLog).getParent());
        }
        return copy;
    }

    private static Path inCopy(Path configDir, String relative) {
        assertThat(Path.of(relative)).as("example configs use paths relative to their file").isRelative();
        Path resolved = configDir.resolve(relative).normalize();
        assertThat(resolved).as("%s stays inside the copied tree", relative).startsWithRaw(configDir.getParent());
        return resolved;
    }
}
