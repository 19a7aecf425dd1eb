package dev.mtlsproxy.config;

import java.nio.file.Path;
import java.util.List;

/**
 * TLS of a listener. There is no way to turn client authentication off: client certificates must chain to one of the
 * configured {@code trustAnchors:}, and a configuration without any is an error, never "mTLS disabled".
 *
 * @param certificate  PEM file with the server certificate, leaf first, then intermediates
 * @param privateKey   PEM file with the matching PKCS#8 private key
 * @param trustAnchors names under {@code trustAnchors:} whose CAs this listener accepts; empty means all of them
 * @param minVersion   lowest TLS version accepted; TLS 1.2 unless raised to 1.3
 * @param sessionResumption whether clients may resume sessions; none unless set to tickets
 * @param groups       key exchange groups, most preferred first; {@link KeyExchangeGroup#DEFAULTS} unless set
 */
public record ServerTlsConfig(Path certificate, Path privateKey, List<String> trustAnchors, TlsVersion minVersion,
        SessionResumption sessionResumption, List<KeyExchangeGroup> groups) {

    public ServerTlsConfig {
        trustAnchors = trustAnchors == null ? List.of() : List.copyOf(trustAnchors);
        minVersion = minVersion == null ? TlsVersion.TLS_1_2 : minVersion;
        sessionResumption = sessionResumption == null ? SessionResumption.NONE : sessionResumption;
        // An explicit [] stays empty, for validation to report; only an absent list means the defaults.
        groups = groups == null ? KeyExchangeGroup.DEFAULTS : List.copyOf(groups);
    }

    public ServerTlsConfig(Path certificate, Path privateKey, List<String> trustAnchors, TlsVersion minVersion) {
        this(certificate, privateKey, trustAnchors, minVersion, null, null);
    }
}
