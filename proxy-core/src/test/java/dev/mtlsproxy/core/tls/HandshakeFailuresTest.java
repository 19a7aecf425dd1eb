package dev.mtlsproxy.core.tls;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.handler.codec.DecoderException;
import io.netty.handler.ssl.SslHandshakeTimeoutException;
import java.nio.channels.ClosedChannelException;
import java.security.cert.CertificateException;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLHandshakeException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Handshake failures as the SslHandler reports them, reduced to the closed set of metric labels. */
class HandshakeFailuresTest {

    @Test
    void verifierRejectionIsFoundByTypeAnywhereInTheCauseChain() {
        var rejected = new ClientCertificateRejectedException(HandshakeFailureReason.BAD_EKU, "at chain index 0",
                null, null);
        var handshake = (SSLHandshakeException) new SSLHandshakeException("General OpenSslEngine problem")
                .initCause(new CertificateException("wrapped by the engine", rejected));
        var decoder = new DecoderException(handshake);

        assertThat(HandshakeFailures.classify(decoder)).isEqualTo(HandshakeFailureReason.BAD_EKU);
    }

    @Test
    void typedRejectionWinsOverAReasonCodeInSomeMessage() {
        var rejected = new ClientCertificateRejectedException(HandshakeFailureReason.EXPIRED, "EXPIRED", null, null);
        var wrapper = new SSLHandshakeException("error:100000f0:SSL routines:OPENSSL_internal:UNSUPPORTED_PROTOCOL");
        wrapper.initCause(rejected);

        assertThat(HandshakeFailures.classify(wrapper)).isEqualTo(HandshakeFailureReason.EXPIRED);
    }

    @Test
    void everyReasonTheVerifierCanGiveSurvivesClassification() {
        for (HandshakeFailureReason reason : HandshakeFailureReason.values()) {
            var rejected = new ClientCertificateRejectedException(reason, "detail", null, null);
            assertThat(HandshakeFailures.classify(new DecoderException(rejected))).isEqualTo(reason);
        }
    }

    @Test
    void handshakeTimeoutIsClassifiedByType() {
        var timeout = new SslHandshakeTimeoutException("handshake timed out after 10000ms");

        assertThat(HandshakeFailures.classify(timeout)).isEqualTo(HandshakeFailureReason.HANDSHAKE_TIMEOUT);
        assertThat(HandshakeFailures.classify(new DecoderException(timeout)))
                .isEqualTo(HandshakeFailureReason.HANDSHAKE_TIMEOUT);
    }

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource(delimiter = '|', value = {
        "error:1000045c:SSL routines:OPENSSL_internal:PEER_DID_NOT_RETURN_A_CERTIFICATE | NO_CERTIFICATE",
        "error:100000f0:SSL routines:OPENSSL_internal:UNSUPPORTED_PROTOCOL              | PROTOCOL_VERSION",
        "error:1000042e:SSL routines:OPENSSL_internal:TLSV1_ALERT_PROTOCOL_VERSION      | PROTOCOL_VERSION",
        "error:100000fc:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER              | PROTOCOL_VERSION",
        "error:1000012e:SSL routines:OPENSSL_internal:KEY_USAGE_BIT_INCORRECT           | BAD_EKU",
        "error:100000b8:SSL routines:OPENSSL_internal:NO_SHARED_CIPHER                  | PROTOCOL_VERSION",
        "error:100000c7:ssl routines:openssl_internal:peer_did_not_return_a_certificate | NO_CERTIFICATE",
        "error:1a000064:ECDSA routines:OPENSSL_internal:BAD_SIGNATURE                   | BAD_SIGNATURE",
    })
    void boringSslReasonCodeInTheMessageIsClassified(String message, HandshakeFailureReason reason) {
        var handshake = new SSLHandshakeException(message);

        assertThat(HandshakeFailures.classify(handshake)).isEqualTo(reason);
        assertThat(HandshakeFailures.classify(new DecoderException(handshake))).isEqualTo(reason);
    }

    @Test
    void proseThatMerelyDescribesAReasonIsNotAReasonCode() {
        var prose = new SSLHandshakeException("peer did not return a certificate");

        assertThat(HandshakeFailures.classify(prose)).isEqualTo(HandshakeFailureReason.OTHER);
    }

    @Test
    void aConnectionClosedMidHandshakeIsClientClosed() {
        assertThat(HandshakeFailures.classify(new ClosedChannelException()))
                .isEqualTo(HandshakeFailureReason.CLIENT_CLOSED);
        assertThat(HandshakeFailures.classify(new DecoderException(new ClosedChannelException())))
                .isEqualTo(HandshakeFailureReason.CLIENT_CLOSED);
    }

    @Test
    void unknownFailuresAreOther() {
        assertThat(HandshakeFailures.classify(new SSLException("Received fatal alert: bad_record_mac")))
                .isEqualTo(HandshakeFailureReason.OTHER);
        assertThat(HandshakeFailures.classify(new DecoderException((Throwable) null)))
                .isEqualTo(HandshakeFailureReason.OTHER);
        assertThat(HandshakeFailures.classify(null)).isEqualTo(HandshakeFailureReason.OTHER);
    }
}
