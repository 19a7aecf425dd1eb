package dev.mtlsproxy.config;

import java.nio.file.Path;
import java.util.List;

/**
 * A policy test kept beside the configuration: who asks, what, and the decision expected. {@code mtls-proxy test}
 * runs them through the same decision code as the proxy.
 *
 * @param name        label in the report; defaults to the request
 * @param certificate a PEM client certificate chain, leaf first; verified against the trust anchors like a handshake
 * @param peer        instead of a certificate, a description of one
 * @param request     {@code METHOD URL}, e.g. {@code GET https://api.example.org/orders/7}
 * @param sni         the TLS server name the client sent; default the URL's host
 * @param expect      {@code allow}, {@code deny}, {@code not-found}, {@code method-not-allowed},
 *                    {@code bad-request} or {@code misdirected}
 * @param rule        optionally, the rule number (1-based, within the route) expected to decide
 */
public record PolicyTestConfig(
        String name, Path certificate, Peer peer, String request, String sni, String expect, Integer rule) {

    public static final List<String> EXPECTATIONS =
            List.of("allow", "deny", "not-found", "method-not-allowed", "bad-request", "misdirected");

    /**
     * A described client certificate.
     *
     * @param trustAnchor the anchor its chain verifies to; may be omitted when exactly one is configured
     * @param uriSans     URI SANs, SPIFFE ID included
     * @param dnsSans     DNS SANs
     * @param emailSans   e-mail SANs
     * @param ipSans      IP SANs
     * @param subject     subject DN, RFC 2253, e.g. {@code CN=alice,O=ops}
     * @param issuer      issuer DN, RFC 2253
     */
    public record Peer(String trustAnchor, List<String> uriSans, List<String> dnsSans, List<String> emailSans,
            List<String> ipSans, String subject, String issuer) {

        public Peer {
            uriSans = uriSans == null ? List.of() : List.copyOf(uriSans);
            dnsSans = dnsSans == null ? List.of() : List.copyOf(dnsSans);
            emailSans = emailSans == null ? List.of() : List.copyOf(emailSans);
            ipSans = ipSans == null ? List.of() : List.copyOf(ipSans);
            subject = subject == null ? "" : subject;
            issuer = issuer == null ? "" : issuer;
        }
    }
}
