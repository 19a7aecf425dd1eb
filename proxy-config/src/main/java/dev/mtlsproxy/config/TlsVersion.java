package dev.mtlsproxy.config;

/** The TLS versions the proxy speaks. Anything older than 1.2 is not representable. */
public enum TlsVersion implements YamlEnum {
    TLS_1_2("TLSv1.2"),
    TLS_1_3("TLSv1.3");

    private final String protocolName;

    TlsVersion(String protocolName) {
        this.protocolName = protocolName;
    }

    /** The JSSE/OpenSSL protocol name, which is also how it is spelled in YAML. */
    public String protocolName() {
        return protocolName;
    }

    @Override
    public String yaml() {
        return protocolName;
    }
}
