package dev.mtlsproxy.config;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.time.Instant;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every message about the policy sections (trust anchors, identities, rules, tests) and every policy warning,
 * exactly, each from the valid fixture broken in one way.
 */
class PolicyValidationMessagesTest {

    @TempDir
    Path dir;

    ConfigFixture fixture;

    @BeforeEach
    void setUp() {
        fixture = new ConfigFixture(dir);
    }

    private String withSecondAnchor() {
        TestPki.write(dir.resolve("certs/partners.pem"), TestPki.ca("partners CA").getCertificatePEM());
        return fixture.with("  clients: { caBundle: certs/ca.pem }",
                "  clients: { caBundle: certs/ca.pem }\n  partners: { caBundle: certs/partners.pem }");
    }

    private String withIdentity(String yaml) {
        return fixture.with("  ops: { subjectCn: alice, dnsSan: ops.internal }",
                "  ops: { subjectCn: alice, dnsSan: ops.internal }\n  x: " + yaml);
    }

    private String withRules(String rulesYaml) {
        return fixture.with("""
                    backend: inventory
                    allow: [ops]
                """, """
                    backend: inventory
                    rules:
                """ + rulesYaml.indent(6));
    }

    @Test
    void withTwoAnchorsEveryIdentityNamesItsAnchor() {
        assertThat(fixture.problems(withSecondAnchor())).containsExactly(
                "identities.ops.trustAnchor: missing (expected: a name under trustAnchors:, known: clients, partners)"
                        + " - required when more than one trust anchor is configured",
                "identities.orders.trustAnchor: missing (expected: a name under trustAnchors:, known: clients,"
                        + " partners) - required when more than one trust anchor is configured");
    }

    @Test
    void anIdentityNamesAConfiguredAnchor() {
        assertThat(fixture.problems(withIdentity("{ trustAnchor: partner, trustDomain: td }"))).containsExactly(
                "identities.x.trustAnchor: \"partner\" (expected: a name under trustAnchors:, known: clients)");
    }

    @Test
    void aCaBelongsToOneAnchorAndCaNamesAreUnique() {
        TestPki.write(dir.resolve("certs/same-name.pem"), TestPki.ca("test-ca").getCertificatePEM());
        String yaml = fixture.with("  clients: { caBundle: certs/ca.pem }",
                "  clients: { caBundle: certs/ca.pem }\n  again: { caBundle: certs/ca.pem }\n"
                        + "  lookalike: { caBundle: certs/same-name.pem }");

        assertThat(fixture.problems(yaml).stream().filter(p -> p.startsWith("trustAnchors"))).containsExactly(
                "trustAnchors.clients.caBundle: " + fixture.abs("certs/ca.pem") + " (expected: CAs of this anchor"
                        + " only) - certificate 1 (CN=test-ca) is also in trust anchor \"again\"",
                "trustAnchors.lookalike.caBundle: " + fixture.abs("certs/same-name.pem") + " (expected: CA names"
                        + " unique across trust anchors) - certificate 1 (CN=test-ca) has the name of a CA in trust"
                        + " anchor \"again\"");
    }

    @Test
    void everyMatcherChecksItsSyntax() {
        String yaml = withIdentity("""
                {
                    spiffeIdPrefix: "spiffe://TD/x", trustDomain: "spiffe://td", uriSan: "not a uri",
                    dnsSan: "*.*.example", dnsSanSuffix: "-bad-", emailSan: "alice", ipSan: "10.0.0.0/33",
                    subjectO: " ", issuerDn: "not a dn", sha256: "abc", spkiSha256: "abc"
                  }""");

        assertThat(fixture.problems(yaml)).containsExactly(
                "identities.x.dnsSan: \"*.*.example\" (expected: a DNS name like ops.example.com, or *.example.com"
                        + " for one label)",
                "identities.x.dnsSanSuffix: \"-bad-\" (expected: a domain like internal.example.com)",
                "identities.x.emailSan: \"alice\" (expected: an e-mail address)",
                "identities.x.ipSan: \"10.0.0.0/33\" (expected: an IP address or CIDR block, like 10.0.0.0/8 or"
                        + " fd00::/8)",
                "identities.x.issuerDn: \"not a dn\" (expected: a distinguished name like CN=Issuing CA,O=Example)",
                "identities.x.sha256: \"abc\" (expected: a SHA-256 fingerprint, 64 hex digits, colons allowed)",
                "identities.x.spiffeIdPrefix: \"spiffe://TD/x\" (expected: spiffe://trust-domain/path)",
                "identities.x.spkiSha256: \"abc\" (expected: base64 of a SHA-256 digest, 44 characters ending in =)",
                "identities.x.subjectO: \" \" (expected: a non-empty name)",
                "identities.x.trustDomain: \"spiffe://td\" (expected: a trust domain like example.org, without"
                        + " spiffe://)",
                "identities.x.uriSan: \"not a uri\" (expected: an absolute URI)");
    }

    @Test
    void nestedMatchersAreMatchersOnly() {
        String yaml = withIdentity("{ anyOf: [ { trustAnchor: clients, subjectOu: a }, {} ] }");

        assertThat(fixture.problems(yaml)).containsExactly(
                "identities.x.anyOf[0].trustAnchor: \"clients\" (expected: only on the identity itself, not inside"
                        + " allOf/anyOf)",
                "identities.x.anyOf[1]: {} (expected: at least one of " + IdentityValidator.MATCHERS + ")");
    }

    @Test
    void certificateRequirementsAreChecked() {
        String yaml = withIdentity("{ trustDomain: td, require: { keyTypes: [EC, DSA], maxLifetime: 0s } }");

        assertThat(fixture.problems(yaml)).containsExactly(
                "identities.x.require.keyTypes[1]: \"DSA\" (expected: one of EC, RSA, Ed25519)",
                "identities.x.require.maxLifetime: 0s (expected: a positive duration)");
    }

    @Test
    void aRouteHasAllowOrRulesNotBoth() {
        String yaml = fixture.with("    allow: [ops]\n", "    allow: [ops]\n    rules: [ { allow: [ops] } ]\n");

        assertThat(fixture.problems(yaml)).containsExactly("routes[1].allow: a list (expected: either allow or"
                + " rules on a route, not both) - allow is shorthand for one allow rule; add it to rules");
    }

    /**
     * A deny on a path that no normalised request path can equal never applies, while the backend, decoding the
     * request, serves what it names: "/inventory/a b" is "/inventory/a%20b" to the policy.
     */
    @Test
    void aRulePathHasOnlyCharactersARequestPathSpellsRaw() {
        String yaml = withRules("""
                - { deny: [orders], paths: ["/inventory/a b", "/inventory/a+b", "/inventory/./x", "/inventory/é"] }
                - { allow: [ops] }
                """);

        assertThat(fixture.problems(yaml)).containsExactly(
                "routes[1].rules[0].paths[0]: \"/inventory/a b\" (expected: " + RouteValidator.RULE_PATH_EXPECTED
                        + ") - contains \" \"",
                "routes[1].rules[0].paths[1]: \"/inventory/a+b\" (expected: " + RouteValidator.RULE_PATH_EXPECTED
                        + ") - contains \"+\"",
                "routes[1].rules[0].paths[2]: \"/inventory/./x\" (expected: " + RouteValidator.RULE_PATH_EXPECTED
                        + ") - contains a \".\" segment",
                "routes[1].rules[0].paths[3]: \"/inventory/é\" (expected: " + RouteValidator.RULE_PATH_EXPECTED
                        + ") - contains \"é\"");
    }

    /** Express, by default, serves "/inventory/admin" with the handler of "/inventory/admin/". */
    @Test
    void aDenyPathHasNoTrailingSlash() {
        String yaml = withRules("""
                - { deny: [orders], paths: [/inventory/admin/, /inventory/admin] }
                - { allow: [ops], paths: [/inventory/public/] }
                """);

        assertThat(fixture.problems(yaml)).containsExactly("routes[1].rules[0].paths[0]: \"/inventory/admin/\""
                + " (expected: a deny path without a trailing /) - it would not cover \"/inventory/admin\";"
                + " \"/inventory/admin\" covers both");
    }

    @Test
    void everyRuleIsCheckedWithItsPath() {
        String yaml = withRules("""
                - { methods: [GET] }
                - { allow: [ops], deny: [orders] }
                - { allow: ["*"] }
                - { deny: [nobody], expires: "2030-01-01T00:00:00Z" }
                - { allow: [ops], paths: [/orders/x, "/inventory/*x", inventory, /inventory/../x], methods: ["GE T"] }
                - { allow: [ops], expires: "tomorrow" }
                """);

        assertThat(fixture.problems(yaml)).containsExactly(
                "routes[1].rules[0]: a rule without identities (expected: exactly one of allow or deny, with at"
                        + " least one identity)",
                "routes[1].rules[1]: a rule with both (expected: exactly one of allow or deny, with at least one"
                        + " identity)",
                "routes[1].rules[2].allow[0]: \"*\" (expected: a name under identities:) - \"*\" (anyone) is for"
                        + " deny rules only: grants name who they grant",
                "routes[1].rules[3].deny[0]: \"nobody\" (expected: a name under identities:, known: ops, orders)",
                "routes[1].rules[3].expires: 2030-01-01T00:00:00Z (expected: only on allow rules) - a deny rule that"
                        + " lapses would silently widen access",
                "routes[1].rules[4].methods[0]: \"GE T\" (expected: an HTTP method like GET or POST)",
                "routes[1].rules[4].paths[0]: \"/orders/x\" (expected: a path under the route's pathPrefix"
                        + " \"/inventory\")",
                "routes[1].rules[4].paths[1]: \"/inventory/*x\" (expected: " + RouteValidator.RULE_PATH_EXPECTED
                        + ") - * stands for a whole segment only",
                "routes[1].rules[4].paths[2]: \"inventory\" (expected: " + RouteValidator.RULE_PATH_EXPECTED + ")",
                "routes[1].rules[4].paths[3]: \"/inventory/../x\" (expected: " + RouteValidator.RULE_PATH_EXPECTED
                        + ") - contains \"..\"",
                "routes[1].rules[5].expires: \"tomorrow\" (expected: a date and time with offset, like"
                        + " 2026-12-31T18:00:00Z)");
    }

    @Test
    void modeIsEnforceOrDryRun() {
        assertThat(fixture.problems(fixture.with("    backend: inventory\n", "    backend: inventory\n    mode: audit\n")))
                .containsExactly("routes[1].mode: \"audit\" (expected: one of enforce, dry-run)");
    }

    @Test
    void policyTestsNameAClientARequestAndADecision() {
        String yaml = ConfigFixture.VALID + """
                tests:
                  - { request: "GET https://api.local/orders", expect: allow }
                  - { peer: { uriSans: ["spiffe://demo.local/orders"] }, certificate: certs/ca.pem, request: GET, expect: maybe, rule: 0 }
                  - { peer: { trustAnchor: elsewhere }, expect: deny }
                """;

        assertThat(fixture.problems(yaml)).containsExactly(
                "tests[0]: a test (expected: exactly one of certificate or peer)",
                "tests[1]: a test (expected: exactly one of certificate or peer)",
                "tests[1].expect: \"maybe\" (expected: one of allow, deny, not-found, method-not-allowed, bad-request,"
                        + " misdirected)",
                "tests[1].request: \"GET\" (expected: METHOD URL, like GET https://api.example.org/orders/7)",
                "tests[1].rule: 0 (expected: a rule number, from 1)",
                "tests[2].peer.trustAnchor: \"elsewhere\" (expected: a name under trustAnchors:, known: clients)",
                "tests[2].request: missing (expected: METHOD URL, like GET https://api.example.org/orders/7)");
    }

    @Test
    void warningsNameRulesThatCanNeverMatch() throws Exception {
        String yaml = fixture.with("""
                    methods: [get, POST]
                    backend: orders
                    allow: [orders, ops]
                """, """
                    methods: [get, POST]
                    backend: orders
                    rules:
                      - { allow: [orders], methods: [DELETE] }
                      - { allow: [ops], expires: "2020-01-01T00:00:00Z" }
                      - { deny: ["*"] }
                      - { allow: [orders] }
                """);

        assertThat(ConfigLoader.warnings(fixture.load(yaml), Instant.parse("2026-11-27T00:00:00Z"))).containsExactly(
                "routes[0].rules[0].methods: [DELETE] - the route serves only [GET, POST], so this rule never"
                        + " matches",
                "routes[0].rules[1].expires: 2020-01-01T00:00:00Z - already expired, so this grant never matches",
                "routes[0].rules[3]: allow [orders] - every identity it grants is denied by rule 3 on the whole"
                        + " route (deny wins), so this grant never matches");
    }

    @Test
    void aRuleForHeadOnARouteForGetCanMatchSinceGetServesHead() throws Exception {
        String yaml = fixture.with("""
                    methods: [get, POST]
                    backend: orders
                    allow: [orders, ops]
                """, """
                    methods: [GET]
                    backend: orders
                    rules:
                      - { deny: [orders], methods: [HEAD] }
                      - { allow: [ops], methods: [PUT] }
                      - { allow: [orders, ops] }
                """);

        assertThat(ConfigLoader.warnings(fixture.load(yaml), Instant.parse("2026-11-27T00:00:00Z"))).containsExactly(
                "routes[0].rules[1].methods: [PUT] - the route serves only [GET], so this rule never matches");
    }

    @Test
    void aWarningNamesARuleForTraceOnARouteForAnyMethod() throws Exception {
        String yaml = fixture.with("""
                    backend: inventory
                    allow: [ops]
                """, """
                    backend: inventory
                    rules:
                      - { allow: [ops], methods: [trace] }
                      - { allow: [ops], methods: [GET, TRACE] }
                """);

        assertThat(ConfigLoader.warnings(fixture.load(yaml), Instant.parse("2026-11-27T00:00:00Z"))).containsExactly(
                "routes[1].rules[0].methods: [TRACE] - a route without methods serves every method but TRACE, so"
                        + " this rule never matches (name TRACE in the route's methods)");
    }

    @Test
    void warningsNameIdentitiesOfAnAnchorNoListenerTrusts() throws Exception {
        String yaml = withSecondAnchor()
                .replace("orders: { spiffeId", "orders: { trustAnchor: partners, spiffeId")
                .replace("ops: { subjectCn", "ops: { trustAnchor: clients, subjectCn")
                .replace("      minVersion: TLSv1.3", "      minVersion: TLSv1.3\n      trustAnchors: [clients]");

        assertThat(ConfigLoader.warnings(fixture.load(yaml), Instant.now())).containsExactly(
                "identities.orders.trustAnchor: \"partners\" - no listener trusts this anchor, so the identity never"
                        + " matches");
    }
}
