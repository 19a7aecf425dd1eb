package dev.mtlsproxy.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** A valid configuration with real files, and helpers to break it one way at a time. */
final class ConfigFixture {

    static final String VALID = """
            trustAnchors:
              clients: { caBundle: certs/ca.pem }
            listeners:
              - name: main
                address: 127.0.0.1:8443
                tls:
                  certificate: certs/server.pem
                  privateKey: certs/server.key
                  minVersion: TLSv1.3
                limits: { maxInitialLineLength: 4KiB, maxHeaderSize: 32KiB }
                idleTimeout: 2m
                handshakeTimeout: 5s
                maxConnections: 5000
            identities:
              orders: { spiffeId: "spiffe://demo.local/orders" }
              ops: { subjectCn: alice, dnsSan: ops.internal }
            routes:
              - name: orders-api
                host: API.local
                pathPrefix: /orders
                methods: [get, POST]
                backend: orders
                allow: [orders, ops]
              - name: inventory
                pathPrefix: /inventory
                backend: inventory
                allow: [ops]
            backends:
              orders:
                url: http://127.0.0.1:9000
                connectTimeout: 1s
                responseTimeout: 10s
                maxIdleConnections: 8
                idleTimeout: 30s
              inventory:
                url: http://localhost:9001
            accessLog: { enabled: true, path: stdout }
            """;

    final Path dir;

    ConfigFixture(Path dir) {
        this.dir = dir;
        TestPki.writeServerFiles(dir);
    }

    /** The valid config with one piece of text replaced; fails the test if the text is not there. */
    String with(String target, String replacement) {
        assertThat(VALID).contains(target);
        return VALID.replace(target, replacement);
    }

    ProxyConfig load(String yaml) throws ConfigException {
        return ConfigLoader.parse(yaml, dir);
    }

    /** The config written to {@code proxy.yaml} here and loaded from that file, with where its values are. */
    LoadedConfig loadFile(String yaml) throws ConfigException {
        try {
            return ConfigLoader.loadWithPositions(Files.writeString(dir.resolve("proxy.yaml"), yaml));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Every problem as {@code path: message}, without the location. */
    List<String> problems(String yaml) {
        ConfigException e = catchThrowableOfType(ConfigException.class, () -> ConfigLoader.parse(yaml, dir));
        assertThat(e).as("expected the config to be rejected").isNotNull();
        return e.problems().stream().map(ConfigFixture::brief).toList();
    }

    static String brief(ConfigProblem p) {
        return p.path().isEmpty() ? p.message() : p.path() + ": " + p.message();
    }

    String abs(String relative) {
        return dir.resolve(relative).toAbsolutePath().normalize().toString();
    }
}
