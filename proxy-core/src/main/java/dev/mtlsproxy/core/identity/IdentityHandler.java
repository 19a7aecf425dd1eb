package dev.mtlsproxy.core.identity;

import dev.mtlsproxy.core.tls.ClientCertificateRejectedException;
import dev.mtlsproxy.core.tls.ClientChainVerifier;
import dev.mtlsproxy.core.tls.HandshakeFailureReason;
import dev.mtlsproxy.core.tls.HandshakeFailures;
import dev.mtlsproxy.core.tls.TrustAnchors;
import dev.mtlsproxy.core.tls.VerifiedChain;
import dev.mtlsproxy.core.http.Hosts;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.ssl.ReferenceCountedOpenSslEngine;
import io.netty.handler.ssl.SslHandler;
import io.netty.handler.ssl.SslHandshakeCompletionEvent;
import io.netty.internal.tcnative.SSL;
import io.netty.util.ReferenceCountUtil;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.util.Arrays;
import javax.net.ssl.ExtendedSSLSession;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SNIServerName;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLSession;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Captures the peer's identity once, when the handshake completes, then removes itself: nothing re-parses
 * certificates per request. The identity usually comes ready-made from the verifier, which derived it once for every
 * connection presenting the same chain. A resumed session's chain is judged again (dates, revocation), since no
 * verifier ran in its handshake. On a failed handshake it logs the classified reason (SslHandler closes the
 * channel).
 *
 * <p>New per channel, but stateless. The channel does not auto-read, so this handler also starts reading: once for
 * the handshake (SslHandler keeps reading until it completes) and once for the first request after it.
 */
public final class IdentityHandler extends ChannelInboundHandlerAdapter {

    private static final Logger log = LoggerFactory.getLogger(IdentityHandler.class);

    /** Told of every handshake outcome, from any event loop. */
    public interface HandshakeListener {
        /** @param group the key exchange group, as in {@link NegotiatedTls#group()} */
        void succeeded(String listener, PeerIdentity identity, String group, long handshakeNanos);

        void failed(String listener, HandshakeFailureReason reason);

        /** Whether a failure may be logged now; scanners must not be able to flood the log. */
        boolean mayLogFailure();
    }

    private final String listener;
    private final HandshakeListener listenerCallback;
    private final ClientChainVerifier verifier;
    private final TrustAnchors anchors;
    private long acceptedNanos;
    /** Set when a handshake that succeeded yields no identity: what the client sent behind its Finished is dropped. */
    private boolean rejectedAfterHandshake;

    /**
     * @param verifier the client-chain check of the TLS context that verifies this connection
     * @param anchors  that context's CAs, to scope the identity when the verifier no longer holds the chain
     */
    public IdentityHandler(String listener, HandshakeListener listenerCallback, ClientChainVerifier verifier,
            TrustAnchors anchors) {
        this.listener = listener;
        this.listenerCallback = listenerCallback;
        this.verifier = verifier;
        this.anchors = anchors;
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
        acceptedNanos = System.nanoTime();
        ctx.fireChannelActive();
        ctx.read();
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) throws Exception {
        if (evt instanceof SslHandshakeCompletionEvent completion) {
            if (completion.isSuccess()) {
                onSuccess(ctx);
            } else {
                onFailure(ctx, completion.cause());
            }
        }
        ctx.fireUserEventTriggered(evt);
    }

    private void onSuccess(ChannelHandlerContext ctx) {
        SslHandler tls = ctx.pipeline().get(SslHandler.class);
        PeerIdentity identity;
        X509Certificate[] x509Chain;
        SSLSession session = tls.engine().getSession();
        try {
            // What the handshake's verifier read, no more: the chain it accepted, which a reload or a resumption
            // judges again. A client may send more; the rest was never looked at.
            Certificate[] sent = session.getPeerCertificates();
            Certificate[] presented = Arrays.copyOf(sent, Math.min(sent.length, ClientChainVerifier.CERTIFICATES_READ));
            VerifiedChain verified = verifier.recall(presented);
            if (verified != null) {
                x509Chain = verified.chain();
                identity = verified.identity();
            } else {
                x509Chain = x509(presented);
                identity = PeerIdentities.fromCertificate(x509Chain[0]).withTrustAnchor(anchors.anchorOf(x509Chain));
            }
        } catch (SSLPeerUnverifiedException | java.security.cert.CertificateParsingException | ClassCastException e) {
            // Cannot happen with client auth REQUIRED; if it does, refuse rather than serve an anonymous peer.
            log.warn("event=identity_unavailable listener={} remote={} cause={}", listener,
                    ctx.channel().remoteAddress(), e.toString());
            listenerCallback.failed(listener, HandshakeFailureReason.OTHER);
            rejectedAfterHandshake = true;
            ctx.close();
            return;
        }
        if (resumed(tls) && !stillValid(ctx, x509Chain)) {
            return;
        }
        ctx.channel().attr(PeerIdentity.KEY).set(identity);
        ctx.channel().attr(PeerChain.KEY).set(x509Chain);
        NegotiatedTls negotiated = new NegotiatedTls(session.getProtocol(), session.getCipherSuite(),
                serverName(session), group(tls));
        ctx.channel().attr(NegotiatedTls.KEY).set(negotiated);
        listenerCallback.succeeded(listener, identity, negotiated.group(), System.nanoTime() - acceptedNanos);
        ctx.pipeline().remove(this);
        ctx.read();
    }

    private static boolean resumed(SslHandler tls) {
        return tls.engine() instanceof ReferenceCountedOpenSslEngine engine && SSL.isSessionReused(engine.sslPointer());
    }

    /**
     * A resumed session's chain judged again, as a chain the verifier remembers is on every full handshake: dates,
     * revocation, stale CRLs. BoringSSL resumes a session whatever became of the certificate it was made with, for
     * as long as the ticket lives (48 hours, and each TLS 1.3 resumption issues new tickets), and a ticket stands in
     * for the private key: without this, an hour-long SVID would serve for days after it expired. A reload already
     * voids every ticket (new context, new ticket keys); this covers what changes without one: time.
     */
    private boolean stillValid(ChannelHandlerContext ctx, X509Certificate[] chain) {
        try {
            verifier.verify(chain);
            return true;
        } catch (ClientCertificateRejectedException e) {
            rejectedAfterHandshake = true;
            listenerCallback.failed(listener, e.reason());
            if (listenerCallback.mayLogFailure()) {
                log.info("{}", HandshakeFailureLine.json(listener, String.valueOf(ctx.channel().remoteAddress()),
                        e.reason(), "resumed session: " + e.getMessage(), e.presented()));
            }
            ctx.close();
            return false;
        }
    }

    /** Read once per connection: the JDK's SSLSession has no accessor for it. */
    private static String group(SslHandler tls) {
        if (!(tls.engine() instanceof ReferenceCountedOpenSslEngine engine)) {
            return null;
        }
        try {
            return SSL.getGroupName(engine.sslPointer());
        } catch (Exception e) {
            return null;
        }
    }

    private static X509Certificate[] x509(Certificate[] chain) {
        X509Certificate[] x509 = new X509Certificate[chain.length];
        for (int i = 0; i < chain.length; i++) {
            x509[i] = (X509Certificate) chain[i];
        }
        return x509;
    }

    private static String serverName(SSLSession session) {
        if (session instanceof ExtendedSSLSession extended) {
            for (SNIServerName name : extended.getRequestedServerNames()) {
                if (name instanceof SNIHostName host) {
                    return Hosts.normalise(host.getAsciiName());
                }
            }
        }
        return null;
    }

    private void onFailure(ChannelHandlerContext ctx, Throwable cause) {
        HandshakeFailureReason reason = HandshakeFailures.classify(cause);
        listenerCallback.failed(listener, reason);
        if (!listenerCallback.mayLogFailure()) {
            return;
        }
        if (reason == HandshakeFailureReason.CLIENT_CLOSED) {
            // A load balancer's TCP health check does this every few seconds: counted, logged only on request.
            if (log.isDebugEnabled()) {
                log.debug("{}", HandshakeFailureLine.json(listener, String.valueOf(ctx.channel().remoteAddress()),
                        reason, "the client closed the connection during the handshake", null));
            }
            return;
        }
        log.info("{}", HandshakeFailureLine.json(listener, String.valueOf(ctx.channel().remoteAddress()), reason,
                rootMessage(cause), HandshakeFailures.presented(cause)));
    }

    private static String rootMessage(Throwable t) {
        Throwable root = t;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        return String.valueOf(root.getMessage()).replace('"', '\'');
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (rejectedAfterHandshake) {
            ReferenceCountUtil.release(msg);
            return;
        }
        ctx.fireChannelRead(msg);
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        // Handshake errors arrive here too, after the completion event; the event already logged them.
        ctx.close();
    }
}
