package dev.mtlsproxy.app;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.core.testing.TestPki;
import io.netty.pkitesting.X509Bundle;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import org.bouncycastle.asn1.x509.GeneralName;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code explain} and {@code test}: the answers a policy author gets, from real certificates and configs. */
class PolicyToolsTest {

    /** Before the example's time-boxed grant lapses. */
    static final Clock CLOCK = Clock.fixed(Instant.now(), ZoneOffset.UTC);

    @TempDir
    Path dir;
    TestPki pki;
    final ByteArrayOutputStream out = new ByteArrayOutputStream();
    final ByteArrayOutputStream err = new ByteArrayOutputStream();

    @BeforeEach
    void mintPki() {
        pki = TestPki.create(dir);
    }

    @Test
    void theShippedExamplePassesItsOwnPolicyTests() throws Exception {
        Path example = ShippedExample.withCertificates(dir, pki);

        int code = new PolicyTestCommand(print(out), print(err), Clock.fixed(Instant.parse("2026-11-27T00:00:00Z"),
                ZoneOffset.UTC)).run(example);

        assertThat(code).as(stdout() + stderr()).isZero();
        assertThat(stdout()).contains("ok   tests[0] checkout reads orders: allow").contains("tests passed");
    }

    /**
     * As checked out, the example names certificate files the repository does not ship. The tools load the whole
     * config, as run does, and listed the missing files, then stopped without a word on the tests or the request.
     */
    @Test
    void theExampleAsCheckedOutListsItsMissingFilesAndSaysNothingWasRun() throws Exception {
        Path example = Path.of("..", "config", "example.yaml");

        int tested = new PolicyTestCommand(print(out), print(err), CLOCK).run(example);

        assertThat(tested).isEqualTo(1);
        assertThat(stderr()).contains("trustAnchors.workloads.caBundle: ")
                .endsWith("\nno tests run: the config must load as run would load it; fix the problems above\n");
        assertThat(stdout()).isEmpty();

        err.reset();
        Path client = write("client.pem", pki.client("spiffe://example.org/ns/shop/sa/orders").getCertificatePEM());
        int explained = Main.run(new String[] {"explain", "--config", example.toString(), "--cert", client.toString(),
                "DELETE", "https://api.example.org/orders/7"}, print(out), print(err));

        assertThat(explained).isEqualTo(1);
        assertThat(stderr()).contains("listeners[0].tls.certificate: ")
                .endsWith("\nnothing explained: the config must load as run would load it; fix the problems above\n");
    }

    @Test
    void aWrongExpectationFailsPrintedLikeExplain() throws Exception {
        Path config = config("""
                tests:
                  - name: billing reads orders
                    peer: { uriSans: ["spiffe://other.test/billing"] }
                    request: GET https://api.test/orders/1
                    expect: allow
                """);

        int code = new PolicyTestCommand(print(out), print(err), CLOCK).run(config);

        assertThat(code).isEqualTo(1);
        assertThat(stdout()).contains("FAIL tests[0] billing reads orders: expected allow, got deny")
                .contains("  identities: none")
                .contains("  route orders-api (host api.test, pathPrefix /orders)")
                .contains("  decision:   DENY (403) - no rule matched");
    }

    @Test
    void aTestCanPresentARealCertificateChain() throws Exception {
        Path client = write("orders.pem", pki.client("spiffe://prod.test/orders").getCertificatePEM());
        Path untrusted = write("rogue.pem", TestPki.clientOfAnotherRoot("spiffe://prod.test/orders")
                .getCertificatePEM());
        Path config = config("""
                tests:
                  - { certificate: %s, request: "POST https://api.test/orders", expect: allow, rule: 2 }
                  - { certificate: %s, request: "GET https://api.test/orders", expect: deny }
                """.formatted(client, untrusted));

        int code = new PolicyTestCommand(print(out), print(err), CLOCK).run(config);

        assertThat(code).isEqualTo(1);
        assertThat(stdout()).contains("ok   tests[0] POST https://api.test/orders: allow")
                .contains("FAIL tests[1] GET https://api.test/orders: the handshake would be refused (unknown_ca),"
                        + " expected deny");
    }

    @Test
    void explainShowsTheIdentityTheRouteEachRuleAndTheDecision() throws Exception {
        Path config = config("");
        Path batch = write("batch.pem", pki.client("spiffe://prod.test/batch").getCertificatePEM());

        int code = Main.run(new String[] {"explain", "--config", config.toString(), "--cert", batch.toString(),
                "DELETE", "https://api.test/orders/7"}, print(out), print(err));

        assertThat(code).as(stderr()).isZero();
        assertThat(stdout()).contains("client:     spiffe://prod.test/batch")
                .contains("anchor:     clients")
                .contains("identities: batch, prod")
                .contains("request:    DELETE api.test /orders/7  (server name api.test)")
                .contains("route orders-api (host api.test, pathPrefix /orders)")
                .contains("  rule 1 deny [batch] methods [DELETE]: DENY (client is batch)")
                .contains("decision:   DENY (403) - denied by rule 1");
    }

    @Test
    void explainSaysWhenTheHandshakeItselfWouldFail() throws Exception {
        Path config = config("");
        Path expired = write("expired.pem", pki.expiredClient("spiffe://prod.test/batch").getCertificatePEM());

        int code = Main.run(new String[] {"explain", "--config", config.toString(), "--cert", expired.toString(),
                "GET", "https://api.test/orders"}, print(out), print(err));

        assertThat(code).isZero();
        assertThat(stdout()).contains("handshake:  REFUSED (expired)");
    }

    @Test
    void explainRefusesALeafWithAMalformedNameAsTheHandshakeDoes() throws Exception {
        Path config = config("");
        Path cert = write("nul.pem", TestPki.clientWithRawSans(pki.root(), GeneralName.dNSName,
                "api.test\0.evil.test").getCertificatePEM());

        int code = Main.run(new String[] {"explain", "--config", config.toString(), "--cert", cert.toString(),
                "GET", "https://api.test/orders"}, print(out), print(err));

        assertThat(code).as(stderr()).isZero();
        assertThat(stdout()).contains("handshake:  REFUSED (other) - ")
                .contains("the subject alternative names cannot be read: a dNSName is malformed");
    }

    @Test
    void explainChecksRevocationAsTheHandshakeWould() throws Exception {
        X509Bundle compromised = pki.client("spiffe://prod.test/batch");
        String fingerprint = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
                .digest(compromised.getCertificate().getEncoded()));
        Path config = config("revocation: { denyFingerprints: [\"" + fingerprint + "\"] }\n");
        Path cert = write("compromised.pem", compromised.getCertificatePEM());

        int code = Main.run(new String[] {"explain", "--config", config.toString(), "--cert", cert.toString(),
                "GET", "https://api.test/orders"}, print(out), print(err));

        assertThat(code).as(stderr()).isZero();
        assertThat(stdout()).contains("handshake:  REFUSED (revoked)");
    }

    @Test
    void explainAndTestReadTheFirstTenCertificatesOfAPemAsTheHandshakeDoesAndSaySo() throws Exception {
        X509Bundle issuing = TestPki.intermediate(pki.root(), "issuing CA");
        X509Bundle batch = TestPki.issue(issuing, "spiffe://prod.test/batch", b -> b);
        List<String> strangers = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            strangers.add(TestPki.newRoot("stranger " + i).getCertificatePEM());
        }
        // The issuing CA tenth, two more after it: the handshake finds the path among the ten it reads.
        Path tenth = write("tenth.pem", batch.getCertificatePEM() + String.join("", strangers.subList(0, 8))
                + issuing.getCertificatePEM() + String.join("", strangers.subList(8, 10)));
        // The issuing CA eleventh: the handshake never sees it.
        Path eleventh = write("eleventh.pem", batch.getCertificatePEM() + String.join("", strangers.subList(0, 9))
                + issuing.getCertificatePEM());
        Path config = config("""
                tests:
                  - { certificate: %s, request: "GET https://api.test/orders", expect: allow }
                """.formatted(tenth));

        int explained = Main.run(new String[] {"explain", "--config", config.toString(), "--cert", tenth.toString(),
                "GET", "https://api.test/orders"}, print(out), print(err));

        assertThat(explained).as(stderr()).isZero();
        assertThat(stdout()).contains("chain:      12 certificates; a handshake reads only the first 10, and so does"
                        + " this: the last 2 ignored")
                .contains("client:     spiffe://prod.test/batch")
                .doesNotContain("REFUSED");

        out.reset();
        Main.run(new String[] {"explain", "--config", config.toString(), "--cert", eleventh.toString(),
                "GET", "https://api.test/orders"}, print(out), print(err));

        assertThat(stdout()).contains("chain:      11 certificates; a handshake reads only the first 10, and so does"
                        + " this: the last 1 ignored")
                .contains("handshake:  REFUSED (unknown_ca)");

        out.reset();
        int tested = new PolicyTestCommand(print(out), print(err), CLOCK).run(config);

        assertThat(tested).as(stdout() + stderr()).isZero();
        assertThat(stdout()).contains("note tests[0].certificate: 12 certificates; a handshake reads only the first"
                        + " 10, and so does this: the last 2 ignored")
                .contains("ok   tests[0] GET https://api.test/orders: allow");
    }

    @Test
    void explainNeedsACertificateAndARequest() throws Exception {
        Path config = config("");

        assertThat(Main.run(new String[] {"explain", "--config", config.toString(), "GET", "/"}, print(out),
                print(err))).isEqualTo(2);
        assertThat(stderr()).contains("missing --cert CLIENT.pem");
    }

    /** One anchor, one route with a deny and an allow, plus what the test appends. */
    private Path config(String more) throws Exception {
        return write("proxy.yaml", """
                trustAnchors:
                  clients: { caBundle: %s }
                listeners:
                  - address: 127.0.0.1:0
                    tls: { certificate: %s, privateKey: %s }
                identities:
                  prod: { trustDomain: prod.test }
                  batch: { spiffeId: "spiffe://prod.test/batch" }
                routes:
                  - name: orders-api
                    host: api.test
                    pathPrefix: /orders
                    backend: orders
                    rules:
                      - { deny: [batch], methods: [DELETE] }
                      - { allow: [prod] }
                backends:
                  orders: { url: "http://127.0.0.1:9" }
                """.formatted(pki.caPem(), pki.serverCertificatePem(), pki.serverKeyPem()) + more);
    }

    private Path write(String name, String text) throws Exception {
        return Files.writeString(dir.resolve(name), text);
    }

    private static PrintStream print(ByteArrayOutputStream sink) {
        return new PrintStream(sink, true, StandardCharsets.UTF_8);
    }

    private String stdout() {
        return out.toString(StandardCharsets.UTF_8);
    }

    private String stderr() {
        return err.toString(StandardCharsets.UTF_8);
    }
}
