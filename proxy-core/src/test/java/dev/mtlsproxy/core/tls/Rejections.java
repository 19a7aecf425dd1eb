package dev.mtlsproxy.core.tls;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import java.security.cert.X509Certificate;

/** The reason a verifier refuses a chain, for tests that expect a refusal. */
final class Rejections {

    private Rejections() {
    }

    /** Fails the test when the chain is accepted. */
    static HandshakeFailureReason rejection(ClientChainVerifier verifier, X509Certificate[] chain) {
        ClientCertificateRejectedException e = catchThrowableOfType(ClientCertificateRejectedException.class,
                () -> verifier.verify(chain));
        assertThat(e).as("expected a rejection").isNotNull();
        return e.reason();
    }
}
