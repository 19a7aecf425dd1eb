package dev.mtlsproxy.core.identity;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.mtlsproxy.core.testing.TestPki;
import dev.mtlsproxy.core.tls.HandshakeFailureReason;
import io.netty.pkitesting.X509Bundle;
import java.nio.file.Path;
import java.security.cert.X509Certificate;
import org.bouncycastle.asn1.x509.GeneralName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class HandshakeFailureLineTest {

    @TempDir
    Path dir;

    @Test
    void aRefusedCertificateIsSummarisedSafelyAsJson() throws Exception {
        X509Bundle expired = TestPki.create(dir).expiredClient("spiffe://prod.test/ns/shop/sa/orders");

        String line = HandshakeFailureLine.json("main", "/10.0.0.7:5555", HandshakeFailureReason.EXPIRED,
                "EXPIRED at chain index 0", expired.getCertificate());

        JsonNode json = new ObjectMapper().readTree(line);
        assertThat(json.get("event").asText()).isEqualTo("handshake_failed");
        assertThat(json.get("reason").asText()).isEqualTo("expired");
        assertThat(json.at("/certificate/subject").asText()).isEqualTo("CN=orders,O=mtls-proxy tests");
        assertThat(json.at("/certificate/uris/0").asText()).isEqualTo("spiffe://prod.test/ns/shop/sa/orders");
        assertThat(json.at("/certificate/sha256").asText()).hasSize(64);
        assertThat(json.at("/certificate/notAfter").asText())
                .isEqualTo(expired.getCertificate().getNotAfter().toInstant().toString());
        assertThat(line).doesNotContain("BEGIN").doesNotContain("PRIVATE");
    }

    @Test
    void aCertificateWhoseNamesCannotBeReadIsStillNamedBySubjectSerialAndFingerprint() throws Exception {
        X509Bundle root = TestPki.create(dir).root();
        X509Certificate malformed = TestPki.clientWithRawSans(root, GeneralName.dNSName, "admin.prod.test\0.evil.test")
                .getCertificate();

        JsonNode json = new ObjectMapper().readTree(HandshakeFailureLine.json("main", "/10.0.0.7:5555",
                HandshakeFailureReason.OTHER, "leaf: the subject alternative names cannot be read", malformed));

        assertThat(json.at("/certificate/subject").asText()).isEqualTo("CN=orders,O=mtls-proxy tests");
        assertThat(json.at("/certificate/issuer").asText())
                .isEqualTo(root.getCertificate().getSubjectX500Principal().getName());
        assertThat(json.at("/certificate/serial").asText()).isEqualTo(malformed.getSerialNumber().toString(16));
        assertThat(json.at("/certificate/sha256").asText()).isEqualTo(PeerIdentities.sha256(malformed));
        assertThat(json.at("/certificate/notAfter").asText())
                .isEqualTo(malformed.getNotAfter().toInstant().toString());
        assertThat(json.at("/certificate/unreadable").asText())
                .isEqualTo("the subject alternative names cannot be read: a dNSName is malformed");
        assertThat(json.at("/certificate").has("dns")).as("the names are what could not be read").isFalse();
    }

    @Test
    void withoutACertificateThereIsNoSummary() throws Exception {
        JsonNode json = new ObjectMapper().readTree(HandshakeFailureLine.json("main", "/10.0.0.7:5555",
                HandshakeFailureReason.NO_CERTIFICATE, "PEER_DID_NOT_RETURN_A_CERTIFICATE", null));
        assertThat(json.has("certificate")).isFalse();
        assertThat(json.get("reason").asText()).isEqualTo("no_certificate");
    }
}
