package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.config.ListenerConfig;
import dev.mtlsproxy.core.tls.ListenerTls;
import dev.mtlsproxy.core.tls.ServerTlsContexts;
import dev.mtlsproxy.core.tls.TrustAnchors;

/**
 * What one listener uses from one configuration generation. A new connection takes the generation current when it
 * is accepted and keeps its TLS context for life; requests on it read the current policy each time.
 *
 * @param config    limits and timeouts
 * @param tls       the key material as read
 * @param serverTls the TLS context and the client-chain check inside it
 * @param anchors   the client CAs by trust anchor, for attributing verified chains
 * @param xfccBy    the proxy's own URI SAN for the XFCC "By" element, or null
 * @param maxConnections the connection limit in force: configured, or the default derived from the descriptor
 *                  limit ({@link ListenerConfig#connectionLimit})
 */
record ListenerGeneration(ListenerConfig config, ListenerTls tls, ServerTlsContexts.ServerTls serverTls,
        TrustAnchors anchors, String xfccBy, int maxConnections) {
}
