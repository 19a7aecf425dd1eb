package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.core.identity.PeerIdentity;
import dev.mtlsproxy.core.log.LogText;
import dev.mtlsproxy.core.policy.PolicyDecision;
import dev.mtlsproxy.core.policy.PolicyRequest;
import dev.mtlsproxy.core.tls.ClientCertificateRejectedException;
import io.netty.channel.Channel;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Judges an open connection's client chain by a generation newer than the one whose TLS context verified it, so
 * that a reload's revocations, removed CAs and CAs moved to another anchor reach connections that are already open.
 */
final class Reverification {

    private static final Logger log = LoggerFactory.getLogger(Reverification.class);
    private static final Logger audit = LoggerFactory.getLogger("dev.mtlsproxy.audit");

    private Reverification() {
    }

    /** Whether {@code chain} still passes under {@code generation}; logs why when it does not. */
    static boolean passes(String listener, Channel channel, X509Certificate[] chain, ListenerGeneration generation) {
        try {
            generation.serverTls().verifier().verify(chain);
        } catch (ClientCertificateRejectedException e) {
            log.warn("event=connection_closed listener={} remote={} reason={} detail=\"{}\" cause=reload", listener,
                    channel.remoteAddress(), e.reason().label(), LogText.quoted(e.getMessage()));
            return false;
        }
        // Identities are scoped to anchors: a chain whose CA now belongs to another anchor (or none) would keep the
        // names of the old one for as long as the connection lives. Closing makes the client come back attributed
        // anew, as any new connection is.
        PeerIdentity peer = channel.attr(PeerIdentity.KEY).get();
        String anchor = generation.anchors().anchorOf(chain);
        if (peer != null && !Objects.equals(anchor, peer.trustAnchor())) {
            log.warn("event=connection_closed listener={} remote={} reason=trust_anchor_changed detail=\"{} -> {}\""
                    + " cause=reload", listener, channel.remoteAddress(), peer.trustAnchor(), anchor);
            return false;
        }
        return true;
    }

    /**
     * The WebSocket tunnel on {@code channel} judged by {@code runtime}'s policy at {@code now}, as its upgrade
     * request was when it arrived; null when the connection is no tunnel. Any other request is judged once and is
     * soon over; a tunnel lives on, and without this neither a reload that removes its grant nor the grant's expiry
     * would reach it. Logs and audits a decision that no longer forwards: the caller closes the tunnel.
     */
    static PolicyDecision judgeTunnel(String listener, Channel channel, ProxyRuntime runtime, Instant now,
            String cause) {
        PolicyRequest tunnelled = channel.attr(ForwardingHandler.TUNNELLED_REQUEST).get();
        PeerIdentity peer = channel.attr(PeerIdentity.KEY).get();
        if (tunnelled == null || peer == null) {
            return null;
        }
        PolicyDecision decision = runtime.policy().decide(peer, tunnelled, now);
        if (decision.forwards()) {
            return decision;
        }
        audit.info("{}", AuditLine.json(listener, String.valueOf(channel.remoteAddress()), peer, runtime.policy(),
                tunnelled.method(), tunnelled.path(), decision));
        // The path is the client's: a " in it (a request target may hold one) would end the field.
        log.warn("event=connection_closed listener={} remote={} reason=tunnel_{} detail=\"{}\" cause={}",
                listener, channel.remoteAddress(), decision.label(),
                LogText.quoted(tunnelled.method() + " " + tunnelled.path() + ": " + decision.reasonText()), cause);
        return decision;
    }
}
