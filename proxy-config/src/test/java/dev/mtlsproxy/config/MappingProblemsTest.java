package dev.mtlsproxy.config;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Values that cannot be mapped onto the records: each message, exactly, and that nothing else is reported. */
class MappingProblemsTest {

    @TempDir
    Path dir;

    ConfigFixture fixture;

    @BeforeEach
    void setUp() {
        fixture = new ConfigFixture(dir);
    }

    @Test
    void tls11IsNotAVersionTheProxySpeaks() {
        assertThat(fixture.problems(fixture.with("minVersion: TLSv1.3", "minVersion: TLSv1.1")))
                .containsExactly("listeners[0].tls.minVersion: \"TLSv1.1\" (expected: one of TLSv1.2, TLSv1.3)");
    }

    @Test
    void unknownKeysListTheKnownOnes() {
        assertThat(fixture.problems(fixture.with("      minVersion:", "      ciphers: [x]\n      minVersion:")))
                .containsExactly("listeners[0].tls.ciphers: unknown key"
                        + " (expected: one of certificate, groups, minVersion, privateKey, sessionResumption, trustAnchors)");
    }

    @Test
    void unknownKeysAreFoundAtEveryLevel() {
        String yaml = fixture.with("accessLog:", "metrics: on\naccessLog:")
                .replace("    url: http://localhost:9001", "    url: http://localhost:9001\n    retries: 2")
                .replace("ops: { subjectCn: alice,", "ops: { subjectCN: alice,");

        assertThat(fixture.problems(yaml)).containsExactly(
                "backends.inventory.retries: unknown key (expected: one of bodyIdleTimeout, connectTimeout,"
                        + " coolDown, endpoints, healthCheck, idleTimeout, maxIdleConnections, responseTimeout, tls,"
                        + " url)",
                "identities.ops.subjectCN: unknown key (expected: one of "
                        + "allOf, anyOf, dnsSan, dnsSanSuffix, emailSan, ipSan, issuerDn, require, sha256, spiffeId, spiffeIdPrefix, spkiSha256, subjectCn, subjectO, subjectOu, trustAnchor, trustDomain, uriSan)",
                "metrics: unknown key (expected: one of accessLog, admin, backends, identities, listeners, reload,"
                        + " revocation, routes, shutdown, tests, trustAnchors, workers)");
    }

    @Test
    void aRepeatedNameIsReportedAndTheRestStillValidated() {
        String yaml = fixture.with("  inventory:\n    url:", "  orders:\n    url: http://x:1\n  inventory:\n    url:")
                .replace("backend: inventory", "backend: nope");

        assertThat(fixture.problems(yaml)).containsExactly(
                "backends.orders: duplicate key (expected: each key at most once)",
                "routes[1].backend: \"nope\" (expected: a name under backends:, known: inventory, orders)");
    }

    @Test
    void duplicateKeysAreReportedWhereverTheyAre() {
        // a repeated record key stops Jackson, so only what the scan finds is reported
        String yaml = fixture.with("    idleTimeout: 30s\n", "    idleTimeout: 30s\n    idleTimeout: 31s\n")
                .replace("  inventory:\n    url:", "  orders:\n    url: http://x:1\n  inventory:\n    url:");

        assertThat(fixture.problems(yaml)).containsExactly(
                "backends.orders: duplicate key (expected: each key at most once)",
                "backends.orders.idleTimeout: duplicate key (expected: each key at most once)");
    }

    @Test
    void nullListItemsAndEntriesAreReported() {
        String yaml = fixture.with("methods: [get, POST]", "methods: [get, ~]")
                .replace("  ops: { subjectCn: alice, dnsSan: ops.internal }", "  ops:");

        // routes may still name "ops": it is defined, only badly
        assertThat(fixture.problems(yaml)).containsExactly(
                "identities.ops: null (expected: a mapping with keys "
                        + "allOf, anyOf, dnsSan, dnsSanSuffix, emailSan, ipSan, issuerDn, require, sha256, spiffeId, spiffeIdPrefix, spkiSha256, subjectCn, subjectO, subjectOu, trustAnchor, trustDomain, uriSan)",
                "routes[0].methods[1]: null (expected: a string)");
    }

    @Test
    void anEmptyListItemIsReportedAndTheOtherItemsAreNotMisnumbered() {
        String yaml = fixture.with("routes:\n", "routes:\n  -\n").replace("backend: inventory", "backend: nope");

        // the route after the empty item is routes[2] in the file, though routes[1] in the records
        assertThat(fixture.problems(yaml)).containsExactly(
                "routes[0]: null (expected: a mapping with keys allow, backend, host, methods, mode, name, pathPrefix,"
                        + " require, rules)",
                "routes[2].backend: \"nope\" (expected: a name under backends:, known: inventory, orders)");
    }

    /** A null item used to hide every other problem of its list until it was fixed and the file loaded again. */
    @Test
    void aNullItemHidesNoOtherProblemOfItsList() {
        String yaml = fixture.with("allow: [orders, ops]", "allow: [orders, ~, \"\", billing, [x], ops, ~, nobody]");

        assertThat(fixture.problems(yaml)).containsExactly(
                "routes[0].allow[1]: null (expected: a string)",
                "routes[0].allow[2]: \"\" (expected: a name under identities:, known: ops, orders)",
                "routes[0].allow[3]: \"billing\" (expected: a name under identities:, known: ops, orders)",
                "routes[0].allow[4]: a list (expected: a string)",
                "routes[0].allow[6]: null (expected: a string)",
                "routes[0].allow[7]: \"nobody\" (expected: a name under identities:, known: ops, orders)");
    }

    /**
     * A tagged item is reported, yet Jackson keeps its text in the list: the records then cannot be matched to the
     * file's items, and the rest of the list goes unchecked rather than reported at wrong paths.
     */
    @Test
    void aFailedItemTheRecordsKeepLeavesItsListUncheckedNotMisnumbered() {
        String yaml = fixture.with("allow: [orders, ops]", "allow: [~, !!binary b3Bz, billing]");

        assertThat(fixture.problems(yaml)).containsExactly(
                "routes[0].allow[0]: null (expected: a string)",
                "routes[0].allow[1]: a !!binary value (expected: a string, untagged or tagged !!str, !!int, !!bool"
                        + " or !!float)");
    }

    /** What an item's problem says of its siblings names them by their paths in the file too. */
    @Test
    void aProblemNamingAnotherItemNamesItWhereTheFileHasIt() {
        String yaml = fixture.with("listeners:\n", """
                listeners:
                  - ~
                  - name: main
                    address: 127.0.0.1:8443
                    tls: { certificate: certs/server.pem, privateKey: certs/server.key }
                """);

        assertThat(fixture.problems(yaml)).containsExactly(
                "listeners[0]: null (expected: a mapping with keys address, handshakeTimeout, idleTimeout, limits,"
                        + " maxConnections, name, requestHeaderTimeout, tls)",
                "listeners[2].address: \"127.0.0.1:8443\" (expected: an address no other listener uses) -"
                        + " listeners[1] is there",
                "listeners[2].name: \"main\" (expected: a unique listener name) - also used by listeners[1]");
    }

    @Test
    void itemsAfterANullOneAreCheckedAtTheirOwnPathsInEveryKindOfList() {
        String yaml = fixture.with("methods: [get, POST]", "methods: [~, get, \"GE T\"]")
                .replace("  - name: inventory\n", "  - ~\n  - name: inventory\n")
                .replace("backend: inventory", "backend: nope");

        assertThat(fixture.problems(yaml)).containsExactly(
                "routes[0].methods[0]: null (expected: a string)",
                "routes[0].methods[2]: \"GE T\" (expected: an HTTP method like GET or POST)",
                "routes[1]: null (expected: a mapping with keys allow, backend, host, methods, mode, name, pathPrefix,"
                        + " require, rules)",
                "routes[2].backend: \"nope\" (expected: a name under backends:, known: inventory, orders)");
    }

    @Test
    void yamlAliasesAreNotExpandedSoTheySaySo() {
        String yaml = fixture.with("  ops: { subjectCn: alice, dnsSan: ops.internal }", "  ops: *ord")
                .replace("orders: { spiffeId", "orders: &ord { spiffeId");

        // routes still allow "ops": it is defined, only not usably
        assertThat(fixture.problems(yaml)).containsExactly(
                "identities.ops: *ord (expected: the value written out; YAML aliases are not supported)");
    }

    @Test
    void yamlTagsOtherThanThePlainTypesAreRefusedWhereverTheyAre() {
        // Jackson read "!!binary L2FkbWlu" into a string setting as the text "L2FkbWlu", and dropped the other tags;
        // a tag naming a Java class is not echoed
        String yaml = fixture.with("path: stdout", "path: !!binary L2FkbWlu")
                .replace("url: http://localhost:9001", "url: !!java.net.URL http://localhost:9001")
                .replace("ops: { subjectCn: alice,", "ops: !person { subjectCn: alice,")
                .replace("allow: [ops]", "allow: !!set [ops]")
                .replace("backend: inventory", "backend: nope");

        assertThat(fixture.problems(yaml)).containsExactly(
                "accessLog.path: a !!binary value (expected: a string, untagged or tagged !!str, !!int, !!bool"
                        + " or !!float)",
                "backends.inventory.url: a tagged value (expected: http://host:port or https://host:port,"
                        + " untagged or tagged !!str, !!int, !!bool or !!float)",
                "identities.ops: a !person mapping (expected: the mapping untagged, or tagged !!map)",
                "routes[1].allow: a !!set list (expected: the list untagged, or tagged !!seq)",
                "routes[1].backend: \"nope\" (expected: a name under backends:, known: inventory, orders)");
    }

    @Test
    void aBinaryValueThatIsNotBase64IsNamedForWhatItIsNotTakenForAComplexKey() {
        String yaml = fixture.with("path: stdout", "path: !!binary \"127.0.0.1:9901\"");

        assertThat(fixture.problems(yaml)).singleElement().asString()
                .startsWith("not valid YAML - a !!binary value that is not base64 (expected: the value untagged, or"
                        + " tagged !!str)");
    }

    @Test
    void tagsThatNameThePlainTypeOfTheirValueChangeNothing() throws ConfigException {
        String yaml = "--- !!map\n" + fixture.with("path: stdout", "path: !!str stdout")
                .replace("maxConnections: 5000", "maxConnections: !!int \"5000\"")
                .replace("methods: [get, POST]", "methods: !!seq [get, POST]")
                .replace("accessLog: { enabled: true,", "accessLog: { enabled: !!bool true,");

        assertThat(fixture.load(yaml)).isEqualTo(fixture.load(ConfigFixture.VALID));
    }

    @Test
    void aValueOfTheWrongShapeSaysWhichShapeWasExpected() {
        String yaml = fixture.with("limits: { maxInitialLineLength: 4KiB, maxHeaderSize: 32KiB }", "limits: 16KiB")
                .replace("methods: [get, POST]", "methods: GET")
                .replace("- name: inventory", "- name: [inventory]")
                .replace("identities:\n", "identities:\n  wrong: [a]\n")
                .replace("accessLog: { enabled: true, path: stdout }", "accessLog: []");

        assertThat(fixture.problems(yaml)).containsExactly(
                "accessLog: a list (expected: a mapping with keys enabled, path)",
                "identities.wrong: a list (expected: a mapping with keys "
                        + "allOf, anyOf, dnsSan, dnsSanSuffix, emailSan, ipSan, issuerDn, require, sha256, spiffeId, spiffeIdPrefix, spkiSha256, subjectCn, subjectO, subjectOu, trustAnchor, trustDomain, uriSan)",
                "listeners[0].limits: \"16KiB\" (expected: a mapping with keys maxHeaderSize, maxInitialLineLength)",
                "routes[0].methods: \"GET\" (expected: a list)",
                "routes[1].name: a list (expected: a string)");
    }

    @Test
    void topLevelSectionsOfTheWrongShape() {
        assertThat(fixture.problems("trustAnchors: []\nlisteners: {}\nidentities: []\nroutes: x\n")).containsExactly(
                "identities: a list (expected: a mapping of names)",
                "listeners: a mapping (expected: a list)",
                "routes: \"x\" (expected: a list)",
                "trustAnchors: a list (expected: a mapping of names)");
    }

    @Test
    void anEmptyStringWhereAListOrMappingBelongsIsReportedAndMappingGoesOn() {
        // found by ConfigMutationTest: Jackson threw past the collector here, with a message naming Java types, and
        // mapping ended, so the bad threads value after it was never reported
        String yaml = fixture.with("methods: [get, POST]", "methods: ''")
                .replace("clients: { caBundle: certs/ca.pem }", "clients: ' '")
                .replace("accessLog: { enabled: true, path: stdout }", "accessLog: ''\nworkers: { threads: many }");

        assertThat(fixture.problems(yaml)).containsExactly(
                "accessLog: \"\" (expected: a mapping with keys enabled, path)",
                "routes[0].methods: \"\" (expected: a list)",
                "trustAnchors.clients: \" \" (expected: a mapping with keys caBundle, crlScope, crls, staleCrl)",
                "workers.threads: \"many\" (expected: an integer)");
    }

    @Test
    void binaryDataWhereAMappingBelongsIsReportedAndMappingGoesOn() {
        // found by ConfigMutationTest: as for the empty string, Jackson threw and every later problem was lost
        String yaml = fixture.with("  orders:\n    url: http://127.0.0.1:9000", "  orders: !!binary aGVsbG8=\n"
                + "  old:\n    url: http://127.0.0.1:9000")
                .replace("certificate: certs/server.pem", "certificate: !!binary aGVsbG8=")
                .replace("enabled: true", "enabled: maybe");

        assertThat(fixture.problems(yaml)).containsExactly(
                "accessLog.enabled: \"maybe\" (expected: true or false)",
                "backends.orders: a !!binary value (expected: a mapping with keys bodyIdleTimeout, connectTimeout,"
                        + " coolDown, endpoints, healthCheck, idleTimeout, maxIdleConnections, responseTimeout, tls,"
                        + " url)",
                "listeners[0].tls.certificate: a !!binary value (expected: a file path, untagged or tagged !!str,"
                        + " !!int, !!bool or !!float)");
    }

    @Test
    void anEmptyKeyIsNamedByItsQuotes() {
        // found by ConfigMutationTest: the problem had no path at all, as if it were about the whole file
        assertThat(fixture.problems(ConfigFixture.VALID + "\"\": 1\n")).containsExactly(
                "\"\": unknown key (expected: one of accessLog, admin, backends, identities, listeners, reload,"
                        + " revocation, routes, shutdown, tests, trustAnchors, workers)");
        assertThat(fixture.problems(fixture.with("identities:\n", "identities:\n  \"\": { subjectCn: x }\n")))
                .containsExactly("identities.\"\": \"\" (expected: a name matching [A-Za-z0-9][A-Za-z0-9_.-]*)");
    }

    @Test
    void aDocumentThatIsNotAMapping() {
        assertThat(fixture.problems("- listeners\n")).containsExactly(
                "a list (expected: a mapping with keys accessLog, admin, backends, identities, listeners, reload,"
                        + " revocation, routes, shutdown, tests, trustAnchors, workers)");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
            idleTimeout: 2m            | idleTimeout: 2 minutes      | listeners[0].idleTimeout: "2 minutes" (expected: a duration like 500ms, 10s, 5m, 1h)
            idleTimeout: 2m            | idleTimeout: 120            | listeners[0].idleTimeout: 120 (expected: a duration like 500ms, 10s, 5m, 1h)
            maxHeaderSize: 32KiB       | maxHeaderSize: 32KB         | listeners[0].limits.maxHeaderSize: "32KB" (expected: a size like 512B, 16KiB, 1MiB, 2GiB)
            maxHeaderSize: 32KiB       | maxHeaderSize: 1.5          | listeners[0].limits.maxHeaderSize: 1.5 (expected: a size like 512B, 16KiB, 1MiB, 2GiB)
            address: 127.0.0.1:8443    | address: 127.0.0.1          | listeners[0].address: "127.0.0.1" (expected: host:port, with IPv6 as [::1]:8443)
            address: 127.0.0.1:8443    | address: 127.0.0.1:70000    | listeners[0].address: "127.0.0.1:70000" (expected: host:port with a port from 0 to 65535)
            address: 127.0.0.1:8443    | address: 8443               | listeners[0].address: 8443 (expected: host:port, e.g. 127.0.0.1:8443)
            url: http://127.0.0.1:9000 | url: 'http://bad host:9000' | backends.orders.url: "http://bad host:9000" (expected: http://host:port or https://host:port)
            maxConnections: 5000       | maxConnections: 2.5         | listeners[0].maxConnections: 2.5 (expected: an integer)
            maxConnections: 5000       | maxConnections: lots        | listeners[0].maxConnections: "lots" (expected: an integer)
            maxConnections: 5000       | maxConnections: 3000000000  | listeners[0].maxConnections: 3000000000 (expected: an integer)
            maxIdleConnections: 8      | maxIdleConnections: 8.5     | backends.orders.maxIdleConnections: 8.5 (expected: an integer)
            maxIdleConnections: 8      | maxIdleConnections: 9999999999 | backends.orders.maxIdleConnections: 9999999999 (expected: an integer)
            maxIdleConnections: 8      | maxIdleConnections: eight   | backends.orders.maxIdleConnections: "eight" (expected: an integer)
            enabled: true              | enabled: maybe              | accessLog.enabled: "maybe" (expected: true or false)
            enabled: true              | enabled: yes                | accessLog.enabled: "yes" (expected: true or false)
            enabled: true              | enabled: off                | accessLog.enabled: "off" (expected: true or false)
            maxIdleConnections: 8      | maxIdleConnections: 010     | backends.orders.maxIdleConnections: "010" (expected: an integer in decimal, without leading zeros)
            maxIdleConnections: 8      | maxIdleConnections: 0x10    | backends.orders.maxIdleConnections: "0x10" (expected: an integer in decimal, without leading zeros)
            maxIdleConnections: 8      | maxIdleConnections: 1_0     | backends.orders.maxIdleConnections: "1_0" (expected: an integer in decimal, without leading zeros)
            enabled: true              | enabled: 1                  | accessLog.enabled: 1 (expected: true or false)
            idleTimeout: 2m            | idleTimeout: .inf           | listeners[0].idleTimeout: ".inf" (expected: a duration like 500ms, 10s, 5m, 1h)
            maxIdleConnections: 8      | maxIdleConnections: -.Inf   | backends.orders.maxIdleConnections: "-.Inf" (expected: an integer)
            enabled: true              | enabled: .NaN               | accessLog.enabled: ".NaN" (expected: true or false)
            enabled: true              | enabled: {}                 | accessLog.enabled: a mapping (expected: true or false)
            certificate: certs/server.pem | certificate: ''          | listeners[0].tls.certificate: "" (expected: a file path)
            certificate: certs/server.pem | certificate: 42          | listeners[0].tls.certificate: 42 (expected: a file path)
            """)
    void badScalarValues(String target, String replacement, String expected) {
        assertThat(fixture.problems(fixture.with(target, replacement))).containsExactly(expected);
    }

    @Test
    void infinityOrNaNStopsNothing() {
        // Jackson reads these as floats it cannot parse, which used to end mapping at the first with a parse error.
        String yaml = fixture.with("idleTimeout: 2m", "idleTimeout: .inf")
                .replace("maxIdleConnections: 8", "maxIdleConnections: .nan")
                .replace("enabled: true", "enabled: maybe");

        assertThat(fixture.problems(yaml)).containsExactly(
                "accessLog.enabled: \"maybe\" (expected: true or false)",
                "backends.orders.maxIdleConnections: \".nan\" (expected: an integer)",
                "listeners[0].idleTimeout: \".inf\" (expected: a duration like 500ms, 10s, 5m, 1h)");
    }

    @Test
    void quotedNumbersAndBooleansAreAccepted() throws Exception {
        ProxyConfig config = fixture.load(fixture.with("maxIdleConnections: 8", "maxIdleConnections: \"8\"")
                .replace("enabled: true", "enabled: \"false\"")
                .replace("maxHeaderSize: 32KiB", "maxHeaderSize: 32768"));

        assertThat(config.backends().get("orders").maxIdleConnections()).isEqualTo(8);
        assertThat(config.accessLog().enabled()).isFalse();
        assertThat(config.listeners().get(0).limits().maxHeaderSize()).isEqualTo(DataSize.ofKibibytes(32));
    }

    @Test
    void aPemPastedWhereAFileNameBelongsIsNeverEchoed() {
        String yaml = fixture.with("privateKey: certs/server.key",
                "privateKey: |\n        -----BEGIN PRIVATE KEY-----\n        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49\n"
                        + "        -----END PRIVATE KEY-----");

        assertThat(fixture.problems(yaml)).containsExactly("listeners[0].tls.privateKey: <PEM text, not shown>"
                + " (expected: a file path, not the PEM text itself)");
    }

    @Test
    void aBadValueIsNotReportedTwiceByValidation() {
        // "0" fails to map; the "must be positive" rule must not pile on for the same path
        assertThat(fixture.problems(fixture.with("handshakeTimeout: 5s", "handshakeTimeout: 0")))
                .containsExactly("listeners[0].handshakeTimeout: 0 (expected: a duration like 500ms, 10s, 5m, 1h)");
    }
}
