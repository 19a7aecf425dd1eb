package dev.mtlsproxy.core.log;

import java.time.Instant;

/**
 * One request as the access log records it. Immutable, so it can cross from the event loop to the writer thread.
 *
 * @param time          when the request arrived
 * @param connectionId  the channel id, to group requests of one connection
 * @param client        remote address
 * @param identity      name of the configured identity that was granted, or null
 * @param peer          SPIFFE ID or subject of the client certificate
 * @param fingerprint   SHA-256 of the client certificate
 * @param route         route name, "-" when none matched
 * @param rule          the policy rule that decided, "-" when none
 * @param decision      allow, deny, dry_run_deny, no_route, method_not_allowed, misdirected, bad_request
 * @param method        request method
 * @param path          normalised path (raw target when it could not be normalised)
 * @param status        status sent to the client; 0 when the connection closed before one was sent
 * @param bytesIn       request body bytes received
 * @param bytesOut      response body bytes sent
 * @param durationMicros from request head to end of response
 * @param backend       backend endpoint, or null when none was contacted
 * @param tlsVersion    negotiated TLS protocol
 * @param cipher        negotiated cipher suite
 * @param tlsGroup      negotiated key exchange group (e.g. X25519MLKEM768); null when BoringSSL names none (a
 *                      resumed TLS 1.2 session makes no key exchange)
 */
public record AccessLogEntry(
        Instant time, String connectionId, String client, String identity, String peer, String fingerprint,
        String route, String rule, String decision, String method, String path, int status, long bytesIn,
        long bytesOut, long durationMicros, String backend, String tlsVersion, String cipher,
        String tlsGroup) {
}
