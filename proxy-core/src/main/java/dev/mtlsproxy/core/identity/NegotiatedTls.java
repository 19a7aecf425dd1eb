package dev.mtlsproxy.core.identity;

import io.netty.util.AttributeKey;

/**
 * What the handshake settled on, captured once with the identity for the access log.
 *
 * @param protocol e.g. TLSv1.3
 * @param cipher     the cipher suite's standard name
 * @param serverName the SNI host name the client sent, lower-cased without trailing dot; null when none
 * @param group      the key exchange group, as BoringSSL names it (X25519MLKEM768, X25519, P-256...); null when
 *                   there was none (a resumed TLS 1.2 session) or BoringSSL could not say
 */
public record NegotiatedTls(String protocol, String cipher, String serverName, String group) {

    public static final AttributeKey<NegotiatedTls> KEY = AttributeKey.valueOf(NegotiatedTls.class, "tls");
}
