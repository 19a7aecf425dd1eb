package dev.mtlsproxy.config;

import java.nio.file.Path;
import java.util.List;

/**
 * How the proxy speaks TLS to a backend's https endpoints. The backend's certificate is always verified: there is
 * no way to trust every certificate, only a CA bundle that must be given.
 *
 * @param serverCAs      PEM bundles of the CAs the backend's certificate must chain to; at least one
 * @param serverName     the name sent in SNI and verified against the certificate's DNS SANs, never its subject CN;
 *                       default: each endpoint's host (an IP address is then verified against the IP SANs, without
 *                       SNI)
 * @param verifyHostname whether the certificate must be for {@code serverName} (or the endpoint's host); default
 *                       true. Turn off only together with {@code spiffeId}, for SPIFFE certificates without DNS SANs
 * @param spiffeId       when set, the backend's certificate must carry exactly this SPIFFE ID
 * @param certificate    the proxy's own certificate chain, leaf first, presented when the backend asks for one
 *                       (mTLS to the backend); with {@code privateKey}
 * @param privateKey     the PKCS#8 key of {@code certificate}
 * @param minVersion     lowest TLS version offered; TLS 1.2 unless raised to 1.3
 * @param groups         key exchange groups offered, most preferred first; {@link KeyExchangeGroup#DEFAULTS} unless
 *                       set
 */
public record BackendTlsConfig(
        List<Path> serverCAs,
        String serverName,
        Boolean verifyHostname,
        String spiffeId,
        Path certificate,
        Path privateKey,
        TlsVersion minVersion,
        List<KeyExchangeGroup> groups) {

    public BackendTlsConfig {
        serverCAs = serverCAs == null ? List.of() : List.copyOf(serverCAs);
        verifyHostname = verifyHostname == null ? Boolean.TRUE : verifyHostname;
        minVersion = minVersion == null ? TlsVersion.TLS_1_2 : minVersion;
        groups = groups == null ? KeyExchangeGroup.DEFAULTS : List.copyOf(groups);
    }

    /** Verifies the backend against these CAs, with every other setting at its default. */
    public static BackendTlsConfig trusting(Path... serverCAs) {
        return new BackendTlsConfig(List.of(serverCAs), null, null, null, null, null, null, null);
    }

    public BackendTlsConfig withClientCertificate(Path replacedCertificate, Path replacedKey) {
        return new BackendTlsConfig(serverCAs, serverName, verifyHostname, spiffeId, replacedCertificate, replacedKey,
                minVersion, groups);
    }

    public BackendTlsConfig withServerName(String replaced) {
        return new BackendTlsConfig(serverCAs, replaced, verifyHostname, spiffeId, certificate, privateKey,
                minVersion, groups);
    }

    public BackendTlsConfig withSpiffeId(String replaced, boolean verifyHostnameToo) {
        return new BackendTlsConfig(serverCAs, serverName, verifyHostnameToo, replaced, certificate, privateKey,
                minVersion, groups);
    }
}
