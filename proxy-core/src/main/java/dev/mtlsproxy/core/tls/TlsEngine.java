package dev.mtlsproxy.core.tls;

import io.netty.handler.ssl.OpenSsl;

/** The one place that decides which TLS engine runs: BoringSSL via netty-tcnative, or nothing. */
final class TlsEngine {

    private TlsEngine() {
    }

    static void requireOpenSsl() {
        if (!OpenSsl.isAvailable()) {
            throw new IllegalStateException(
                    "netty-tcnative (BoringSSL) is not available on this platform", OpenSsl.unavailabilityCause());
        }
    }
}
