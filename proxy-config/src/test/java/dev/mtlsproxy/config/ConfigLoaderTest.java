package dev.mtlsproxy.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import com.fasterxml.jackson.databind.JsonMappingException;
import io.netty.pkitesting.X509Bundle;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ConfigLoaderTest {

    @TempDir
    Path dir;

    ConfigFixture fixture;

    @BeforeEach
    void setUp() {
        fixture = new ConfigFixture(dir);
    }

    @Test
    void loadsAFullConfigWithPathsResolvedAgainstTheFileAndNamesNormalised() throws Exception {
        Path file = TestPki.write(dir.resolve("proxy.yaml"), ConfigFixture.VALID);

        ProxyConfig config = ConfigLoader.load(file);

        ListenerConfig listener = config.listeners().get(0);
        assertThat(listener.name()).isEqualTo("main");
        assertThat(listener.address()).isEqualTo(new HostPort("127.0.0.1", 8443));
        assertThat(listener.tls().certificate()).isEqualTo(Path.of(fixture.abs("certs/server.pem")));
        assertThat(listener.tls().privateKey()).isEqualTo(Path.of(fixture.abs("certs/server.key")));
        assertThat(listener.tls().trustAnchors()).isEmpty();
        assertThat(config.trustAnchors()).isEqualTo(Map.of("clients",
                new TrustAnchorConfig(Path.of(fixture.abs("certs/ca.pem")))));
        assertThat(listener.tls().certificate()).isAbsolute();
        assertThat(listener.tls().minVersion()).isEqualTo(TlsVersion.TLS_1_3);
        assertThat(listener.limits()).isEqualTo(new HttpLimits(DataSize.ofKibibytes(4), DataSize.ofKibibytes(32)));
        assertThat(listener.idleTimeout()).isEqualTo(Duration.ofMinutes(2));
        assertThat(listener.handshakeTimeout()).isEqualTo(Duration.ofSeconds(5));

        assertThat(config.identities()).isEqualTo(Map.of(
                "orders", IdentityConfig.spiffe("spiffe://demo.local/orders"),
                "ops", IdentityConfig.builder().dnsSan("ops.internal").subjectCn("alice").build()));

        RouteConfig orders = config.routes().get(0);
        assertThat(orders).isEqualTo(new RouteConfig(
                "orders-api", "api.local", "/orders", List.of("GET", "POST"), "orders", List.of("orders", "ops")));
        assertThat(config.routes().get(1).host()).isNull();
        assertThat(config.routes().get(1).methods()).isEmpty();

        assertThat(config.backends().get("orders")).isEqualTo(new BackendConfig(
                URI.create("http://127.0.0.1:9000"), Duration.ofSeconds(1), Duration.ofSeconds(10), 8,
                Duration.ofSeconds(30)));
        assertThat(config.accessLog()).isEqualTo(new AccessLogConfig(true, "stdout"));
        assertThat(ConfigLoader.warnings(config, Instant.now())).isEmpty();
    }

    @Test
    void appliesSecureDefaultsToEverythingLeftOut() throws Exception {
        ProxyConfig config = fixture.load("""
                trustAnchors: { clients: { caBundle: certs/ca.pem } }
                listeners:
                  - address: "[::1]:0"
                    tls:
                      certificate: certs/server.pem
                      privateKey: certs/server.key
                backends:
                  b: { url: "http://backend:8080" }
                """);

        ListenerConfig listener = config.listeners().get(0);
        assertThat(listener.name()).isEqualTo("main");
        assertThat(listener.address()).isEqualTo(new HostPort("::1", 0));
        assertThat(listener.tls().minVersion()).isEqualTo(TlsVersion.TLS_1_2);
        assertThat(listener.limits()).isEqualTo(HttpLimits.DEFAULT);
        assertThat(listener.idleTimeout()).isEqualTo(ListenerConfig.DEFAULT_IDLE_TIMEOUT);
        assertThat(listener.handshakeTimeout()).isEqualTo(ListenerConfig.DEFAULT_HANDSHAKE_TIMEOUT);
        assertThat(listener.requestHeaderTimeout()).isEqualTo(Duration.ofSeconds(10));
        assertThat(config.identities()).isEmpty();
        assertThat(config.routes()).isEmpty();
        assertThat(config.backends().get("b")).isEqualTo(new BackendConfig(URI.create("http://backend:8080"),
                BackendConfig.DEFAULT_CONNECT_TIMEOUT, BackendConfig.DEFAULT_RESPONSE_TIMEOUT,
                BackendConfig.DEFAULT_MAX_IDLE_CONNECTIONS, BackendConfig.DEFAULT_IDLE_TIMEOUT));
        assertThat(config.accessLog()).isEqualTo(AccessLogConfig.DEFAULT);
    }

    @Test
    void resolvesARelativeAccessLogPathAgainstTheConfigDirectory() throws Exception {
        Files.createDirectories(dir.resolve("logs"));

        ProxyConfig config = fixture.load(fixture.with("path: stdout", "path: logs/access.log"));

        assertThat(config.accessLog().path()).isEqualTo(fixture.abs("logs/access.log"));
    }

    @Test
    void reportsEveryProblemOfABrokenConfigAtOnceWithPathsAndLines() {
        X509Bundle other = TestPki.leaf(TestPki.ca("other-ca"), "other.local");
        TestPki.write(dir.resolve("certs/other.key"), other.getPrivateKeyPEM());
        String broken = """
                listeners:
                  - address: localhost
                    tls:
                      certificate: certs/server.pem
                      privateKey: certs/other.key
                      trustAnchors: [partners]
                    idleTimeout: 60
                    idleTimout: 60s
                identities:
                  orders: { spiffeId: "spiffe://demo.local/orders" }
                routes:
                  - name: billing
                    pathPrefix: /billing
                    backend: billing
                    allow: [billing]
                backends:
                  orders:
                    url: http://127.0.0.1:9000
                    connectTimeout: 5 seconds
                    maxIdleConnections: lots
                """;

        ConfigException e = catchThrowableOfType(ConfigException.class, () -> fixture.load(broken));

        assertThat(e.problems()).extracting(ConfigProblem::toString).containsExactly(
                "backends.orders.connectTimeout: \"5 seconds\" (expected: a duration like 500ms, 10s, 5m, 1h)"
                        + " at line 19, column 21",
                "backends.orders.maxIdleConnections: \"lots\" (expected: an integer) at line 20, column 25",
                "listeners[0].address: \"localhost\" (expected: host:port, with IPv6 as [::1]:8443) at line 2, column 14",
                "listeners[0].idleTimeout: 60 (expected: a duration like 500ms, 10s, 5m, 1h) at line 7, column 18",
                "listeners[0].idleTimout: unknown key (expected: one of address, handshakeTimeout, idleTimeout,"
                        + " limits, maxConnections, name, requestHeaderTimeout, tls) at line 8, column 5",
                "listeners[0].tls.privateKey: " + fixture.abs("certs/other.key")
                        + " (expected: the private key of listeners[0].tls.certificate) - it belongs to another"
                        + " certificate at line 5, column 19",
                "listeners[0].tls.trustAnchors[0]: \"partners\" (expected: a name under trustAnchors:, known: none)"
                        + " at line 6, column 22",
                "routes[0].allow[0]: \"billing\" (expected: a name under identities:, known: orders)"
                        + " at line 15, column 13",
                "routes[0].backend: \"billing\" (expected: a name under backends:, known: orders)"
                        + " at line 14, column 14",
                "trustAnchors: {} (expected: at least one trust anchor with a caBundle; client certificates are"
                        + " always required)");
        assertThat(e.getMessage()).isEqualTo(String.join("\n",
                e.problems().stream().map(ConfigProblem::toString).toList()));
    }

    @Test
    void aMissingFileIsOneProblem() {
        Path file = dir.resolve("nope.yaml");

        ConfigException e = catchThrowableOfType(ConfigException.class, () -> ConfigLoader.load(file));

        assertThat(e.problems()).extracting(ConfigProblem::toString)
                .containsExactly(file + " (expected: a readable YAML file) - no such file");
    }

    @Test
    void aDirectoryIsNotAConfigFile() {
        ConfigException e = catchThrowableOfType(ConfigException.class, () -> ConfigLoader.load(dir));

        assertThat(e.getMessage()).isEqualTo(dir + " (expected: a readable YAML file) - is a directory");
    }

    @Test
    void aFileThatIsNotUtf8IsOneProblem() throws Exception {
        Path file = Files.write(dir.resolve("latin1.yaml"),
                "a: b\nname: caf\u00e9\n".getBytes(StandardCharsets.ISO_8859_1));

        ConfigException e = catchThrowableOfType(ConfigException.class, () -> ConfigLoader.load(file));

        // where the first accented letter is, as an editor shows it
        assertThat(e.getMessage()).isEqualTo(file + " (expected: a readable YAML file) - not UTF-8 text (byte 0xE9;"
                + " save the file as UTF-8) at line 2, column 10");
    }

    @Test
    void anEmptyFileIsOneProblem() {
        for (String empty : List.of("", "# nothing yet\n", "---\n", "~\n")) {
            assertThat(fixture.problems(empty)).as(empty).containsExactly(
                    "empty configuration (expected: a mapping with keys accessLog, admin, backends, identities, listeners,"
                            + " reload, revocation, routes, shutdown, tests, trustAnchors, workers)");
        }
    }

    @Test
    void aYamlSyntaxErrorIsOneProblemWithItsLocation() {
        ConfigException e = catchThrowableOfType(ConfigException.class,
                () -> fixture.load("accessLog:\n  enabled: true\n  path: logs: x\n"));

        assertThat(e.problems()).extracting(ConfigProblem::toString)
                .containsExactly("not valid YAML - mapping values are not allowed here at line 3, column 13");
    }

    @Test
    void tabIndentationIsASyntaxErrorThatSaysSo() {
        ConfigException e = catchThrowableOfType(ConfigException.class,
                () -> fixture.load("routes:\n\t- name: a\n"));

        assertThat(e.problems()).extracting(ConfigProblem::toString).containsExactly(
                "not valid YAML - while scanning for the next token: found character '\\t(TAB)' that cannot start"
                        + " any token. (Do not use \\t(TAB) for indentation) at line 2, column 1");
    }

    @Test
    void anUnquotedIpv6AddressIsASyntaxErrorThatSaysToQuoteIt() {
        ConfigException e = catchThrowableOfType(ConfigException.class,
                () -> fixture.load("admin:\n  address: [::1]:9901\n"));

        assertThat(e.problems()).extracting(ConfigProblem::toString).containsExactly(
                "not valid YAML - while parsing a flow node: expected the node content, but found ':' - an IPv6"
                        + " address in brackets starts a YAML list (expected: the address quoted, as in address:"
                        + " \"[::1]:8443\") at line 2, column 13");
    }

    @Test
    void aFileOverTheReadersSizeLimitSaysSo() {
        // it was "a list or mapping used as a key" at whatever line the limit fell on
        StringBuilder yaml = new StringBuilder("identities:\n");
        for (int i = 0; yaml.length() <= ConfigYamlFactory.MAX_CODE_POINTS; i++) {
            yaml.append("  id").append(i).append(": { spiffeId: \"spiffe://demo.local/id").append(i).append("\" }\n");
        }
        ConfigException e = catchThrowableOfType(ConfigException.class, () -> fixture.load(yaml.toString()));

        assertThat(e.problems()).extracting(ConfigFixture::brief).containsExactly(
                "not valid YAML - beyond the reader's limits (expected: a file of at most 3145728 characters)");
    }

    @Test
    void aYamlSyntaxErrorNamesWhatWasBeingParsed() {
        ConfigException e = catchThrowableOfType(ConfigException.class,
                () -> fixture.load("routes: [a, b\n"));

        assertThat(e.problems()).extracting(ConfigProblem::toString).containsExactly(
                "not valid YAML - while parsing a flow sequence: expected ',' or ']', but got <stream end>"
                        + " at line 2, column 1");
    }

    @Test
    void aKeyThatIsAListOrMappingIsASyntaxErrorInWords() {
        // found by ConfigMutationTest: the message was SnakeYAML's, with the toString() of its event classes
        assertThat(fixture.problems(fixture.with("identities:\n", "identities:\n  ? [a, b]\n  : x\n")))
                .containsExactly("not valid YAML - a list or mapping used as a key (expected: a key that is a plain"
                        + " name, like name: value)");
    }

    @Test
    void nestingBeyondTheLimitIsOneProblemInWords() {
        String deep = "{allOf: [".repeat(40) + "{subjectCn: x}" + "]}".repeat(40);

        assertThat(fixture.problems(fixture.with("identities:\n", "identities:\n  deep: " + deep + "\n")))
                .containsExactly("not valid YAML - beyond the reader's limits (expected: at most 64 levels of nesting,"
                        + " keys of at most 50000 characters, numbers of at most 1000 digits)");
    }

    @Test
    void aDeeplyNestedIdentityIsAProblemEvenOnASmallStack() throws Exception {
        // found by ConfigMutationTest: 490 levels of allOf were within Jackson's nesting limit, and scanning, mapping
        // and validating them overflowed the stack of a thread like the one reloads run on
        String deep = "{allOf: [".repeat(490) + "{subjectCn: x}" + "]}".repeat(490);
        String yaml = fixture.with("identities:\n", "identities:\n  deep: " + deep + "\n");
        java.util.concurrent.CompletableFuture<Throwable> thrown = new java.util.concurrent.CompletableFuture<>();
        Thread loader = new Thread(null, () -> {
            try {
                fixture.load(yaml);
                thrown.complete(null);
            } catch (Throwable t) {
                thrown.complete(t);
            }
        }, "small-stack-load", 256 * 1024);
        loader.start();

        assertThat(thrown.get(30, java.util.concurrent.TimeUnit.SECONDS)).isInstanceOf(ConfigException.class)
                .hasMessageStartingWith("not valid YAML - beyond the reader's limits");
    }

    @Test
    void aSecondDocumentIsRejected() {
        assertThat(fixture.problems(ConfigFixture.VALID + "---\nlisteners: []\n"))
                .containsExactly("a second YAML document (expected: one document per file)");
    }

    @Test
    void anErrorJacksonThrowsBecomesAProblemWithPathAndPosition() {
        JsonMappingException e = new JsonMappingException(null, "Cannot construct instance\n at [Source: ...]");
        e.prependPath(new JsonMappingException.Reference(null, "tls"));
        e.prependPath(new JsonMappingException.Reference(null, 0));
        e.prependPath(new JsonMappingException.Reference(null, "listeners"));

        ConfigProblem problem = ConfigLoader.translate(e, Map.of("listeners[0].tls", new YamlScan.Position(4, 5)));

        assertThat(problem).hasToString("listeners[0].tls: cannot be read - Cannot construct instance at line 4, column 5");
    }

    @Test
    void aValueJacksonCannotHandleIsStillReportedAsAProblem() {
        // This was Jackson's "cannot be read - Cannot deserialize value of type `...ServerTlsConfig`", and mapping
        // stopped there: the rest of the file went unchecked. Now it is a value of the wrong shape like any other.
        assertThat(fixture.problems("listeners:\n  - tls: !!binary AAAA\n")).containsExactly(
                "listeners[0].address: missing (expected: host:port, e.g. 127.0.0.1:8443)",
                "listeners[0].tls: a !!binary value (expected: a mapping with keys certificate, groups, minVersion,"
                        + " privateKey, sessionResumption, trustAnchors)",
                "trustAnchors: {} (expected: at least one trust anchor with a caBundle; client certificates are"
                        + " always required)");
    }

    @Test
    void problemsAreSortedByPathWithNumericIndexes() {
        StringBuilder routes = new StringBuilder("routes:\n");
        for (int i = 0; i < 12; i++) {
            routes.append("  - { name: r").append(i).append(", backend: nope, allow: [ops], pathPrefix: /p")
                    .append(i).append(" }\n");
        }
        String valid = ConfigFixture.VALID;
        String config = valid.substring(0, valid.indexOf("routes:")) + routes + valid.substring(valid.indexOf("backends:"));

        List<String> problems = fixture.problems(config);

        assertThat(problems).extracting(p -> p.substring(0, p.indexOf(':')))
                .containsExactly("routes[0].backend", "routes[1].backend", "routes[2].backend", "routes[3].backend",
                        "routes[4].backend", "routes[5].backend", "routes[6].backend", "routes[7].backend",
                        "routes[8].backend", "routes[9].backend", "routes[10].backend", "routes[11].backend");
    }
}
