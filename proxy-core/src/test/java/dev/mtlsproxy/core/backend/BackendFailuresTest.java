package dev.mtlsproxy.core.backend;

import static org.assertj.core.api.Assertions.assertThat;

import javax.net.ssl.SSLHandshakeException;
import org.junit.jupiter.api.Test;

/** How a failed backend connection is told in the log, where BoringSSL decided before the proxy's verifier did. */
class BackendFailuresTest {

    @Test
    void aBackendKeyWhoseUsageForbidsSigningIsNamedAsSuch() {
        // BoringSSL refuses an RSA server certificate whose key usage lacks digitalSignature (RFC 8446 4.4.2.2)
        // before the certificate reaches the proxy's trust manager.
        SSLHandshakeException refused = new SSLHandshakeException(
                "error:1000012e:SSL routines:OPENSSL_internal:KEY_USAGE_BIT_INCORRECT");

        assertThat(BackendFailures.describe(refused))
                .isEqualTo("backend certificate not for server authentication (key usage)");
    }

    @Test
    void anExceptionTheEngineWrappedAsAGeneralProblemIsNamedWithIt() {
        // What netty-tcnative makes of anything but an SSLException thrown by a trust manager.
        SSLHandshakeException wrapped = new SSLHandshakeException("General OpenSslEngine problem");
        wrapped.initCause(new IllegalStateException("unexpected \"state\"\nsecond line"));

        assertThat(BackendFailures.describe(wrapped))
                .isEqualTo("TLS failure: General OpenSslEngine problem (IllegalStateException: unexpected 'state')");
    }
}
