package dev.mtlsproxy.config;

import java.nio.file.Path;
import java.util.List;

/**
 * TLS of a listener. There is no way to turn client authentication off: a listener without {@code clientCAs} is a
 * configuration error, never "mTLS disabled".
 *
 * @param certificate PEM file with the server certificate, leaf first, then intermediates
 * @param privateKey  PEM file with the matching PKCS#8 private key
 * @param clientCAs   PEM bundles of the CAs that client certificates must chain to
 * @param minVersion  lowest TLS version accepted; TLS 1.2 unless raised to 1.3
 */
public record ServerTlsConfig(Path certificate, Path privateKey, List<Path> clientCAs, TlsVersion minVersion) {

    public ServerTlsConfig {
        clientCAs = clientCAs == null ? List.of() : List.copyOf(clientCAs);
        minVersion = minVersion == null ? TlsVersion.TLS_1_2 : minVersion;
    }
}
