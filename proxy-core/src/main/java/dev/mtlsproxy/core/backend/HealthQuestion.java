package dev.mtlsproxy.core.backend;

import dev.mtlsproxy.config.BackendTlsConfig;
import dev.mtlsproxy.config.HealthCheckConfig;

/**
 * What one endpoint's active health check asks, as it is sent: the request and the TLS it goes over. A verdict is
 * the answer to one question; when a reload makes the check ask another, the new question's first result decides
 * ({@link ActiveHealth#askedAnew}), since results of the old one say nothing about it.
 *
 * <p>Part of the question, because each changes what passes:
 * <ul>
 *   <li>{@code healthCheck.path}: another resource;</li>
 *   <li>{@code host}, the Host sent ({@code tls.serverName}, else the URL's host, with the port unless it is the
 *       scheme's default): another virtual host;</li>
 *   <li>{@code serverName}, the name sent in SNI and verified (https only): another certificate, another server
 *       block;</li>
 *   <li>every other {@code tls} setting (https only): {@code serverCAs}, {@code verifyHostname} and {@code spiffeId}
 *       decide which certificate is accepted as the backend's, {@code certificate} and {@code privateKey} who the
 *       proxy is to a backend that authorises its clients, {@code minVersion} and {@code groups} whether a
 *       handshake is possible at all.</li>
 * </ul>
 *
 * <p>Not part of it, because they change when, how often or how patiently the question is asked, or how its answers
 * are counted, not what it asks: {@code healthCheck.interval}, {@code timeout}, {@code healthyThreshold},
 * {@code unhealthyThreshold}, and the backend's {@code connectTimeout} (which also bounds a check's handshake). A
 * verdict reached under another timeout stands until the new thresholds overturn it, as for an endpoint that got
 * slower. Nor are the settings checks do not use: the backend's pool, {@code coolDown}, {@code responseTimeout} and
 * {@code bodyIdleTimeout}.
 *
 * <p>Already the same, so not compared: the endpoint's scheme, host and port, because a verdict only ever passes to the
 * endpoint at the same URL and address ({@code Backend#endpointAt}); the method ({@code GET}) and the status that
 * passes (2xx), which are not settings; one that becomes a setting belongs here. TLS files rewritten in place (same
 * paths, new content) are taken as the same question: that is how a certificate is rotated, keeping its identity.
 *
 * @param path       the request path
 * @param host       the Host header
 * @param serverName the SNI and verified name; null for http
 * @param tls        the backend's TLS settings other than {@code serverName}, which {@code host} and
 *                   {@code serverName} already stand for (a serverName spelled out as the URL's host asks the same);
 *                   null for http
 */
record HealthQuestion(String path, String host, String serverName, BackendTlsConfig tls) {

    /** The question an endpoint's check asks; TLS parts only when the endpoint speaks TLS. */
    static HealthQuestion of(HealthCheckConfig check, String host, boolean https, String serverName,
            BackendTlsConfig tls) {
        return https
                ? new HealthQuestion(check.path(), host, serverName, tls == null ? null : tls.withServerName(null))
                : new HealthQuestion(check.path(), host, null, null);
    }
}
