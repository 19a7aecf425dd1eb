package dev.mtlsproxy.config;

import com.fasterxml.jackson.annotation.JsonValue;

/** The TLS versions the proxy speaks. Anything older than 1.2 is not representable. */
public enum TlsVersion {
    TLS_1_2("TLSv1.2"),
    TLS_1_3("TLSv1.3");

    private final String protocolName;

    TlsVersion(String protocolName) {
        this.protocolName = protocolName;
    }

    /** The JSSE/OpenSSL protocol name, which is also how it is spelled in YAML. */
    @JsonValue
    public String protocolName() {
        return protocolName;
    }
}
