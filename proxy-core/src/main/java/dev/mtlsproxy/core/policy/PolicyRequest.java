package dev.mtlsproxy.core.policy;

/**
 * What a policy decision looks at besides the client: the request as the proxy will forward it.
 *
 * @param method upper-case method
 * @param host   the Host header lower-cased, without port or trailing dot
 * @param path   normalised path, no query; exactly what the backend receives
 * @param sni    the TLS server name the client sent, normalised like {@code host}; null when none
 */
public record PolicyRequest(String method, String host, String path, String sni) {
}
