package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.config.ListenerConfig;
import dev.mtlsproxy.core.http.StrictHttpServerCodec;
import dev.mtlsproxy.core.identity.IdentityHandler;
import dev.mtlsproxy.core.metrics.ProxyMetrics;
import dev.mtlsproxy.core.tls.TrustAnchors;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.socket.SocketChannel;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslHandler;
import io.netty.handler.timeout.IdleStateHandler;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * The one place where a client connection's pipeline is assembled. In order:
 * <pre>
 *   idle       IdleStateHandler: a connection silent for idleTimeout is closed
 *   tls        SslHandler, client certificate required   (first codec: all after it is plaintext)
 *   identity   handshake complete -&gt; PeerIdentity attribute, first read; then removes itself
 *   http       StrictHttpServerCodec: ambiguous framing becomes a decoder failure, never a guess
 *   sequence   ExchangeSequencer: one exchange in flight; pipelined requests wait their turn
 *   guard      RequestGuard: decoder failures, Transfer-Encoding, Host -&gt; 400 and close; opens the Exchange
 *   authorize  AuthorizationHandler: normalised target, SNI vs Host, route, rules -&gt; 400/403/404/405/421, or pass
 *   forward    ForwardingHandler: backend connection and relay, auto-read off on both sides
 * </pre>
 * All handlers are new per channel: each keeps per-connection state, confined to the channel's event loop.
 */
final class ProxyChannelInitializer extends ChannelInitializer<SocketChannel> {

    private final ListenerConfig listener;
    private final SslContext sslContext;
    private final TrustAnchors anchors;
    private final String xfccBy;
    private final Supplier<ProxyRuntime> runtime;
    private final ForwardingHandler.BackendConnector connector;
    private final IdentityHandler.HandshakeListener handshakes;
    private final ProxyMetrics metrics;
    private final Exchange.Recorder recorder;

    ProxyChannelInitializer(ListenerConfig listener, SslContext sslContext, TrustAnchors anchors, String xfccBy,
            Supplier<ProxyRuntime> runtime, ForwardingHandler.BackendConnector connector,
            IdentityHandler.HandshakeListener handshakes, ProxyMetrics metrics, Exchange.Recorder recorder) {
        this.listener = listener;
        this.sslContext = sslContext;
        this.anchors = anchors;
        this.xfccBy = xfccBy;
        this.runtime = runtime;
        this.connector = connector;
        this.handshakes = handshakes;
        this.metrics = metrics;
        this.recorder = recorder;
    }

    @Override
    protected void initChannel(SocketChannel ch) {
        metrics.connectionOpened(listener.name());
        ch.closeFuture().addListener(f -> metrics.connectionClosed(listener.name()));
        SslHandler tls = sslContext.newHandler(ch.alloc());
        tls.setHandshakeTimeoutMillis(listener.handshakeTimeout().toMillis());
        ChannelPipeline p = ch.pipeline();
        p.addLast("idle", new IdleStateHandler(0, 0, listener.idleTimeout().toNanos(), TimeUnit.NANOSECONDS));
        p.addLast("tls", tls);
        p.addLast("identity", new IdentityHandler(listener.name(), handshakes, anchors));
        p.addLast("http", new StrictHttpServerCodec(listener.limits()));
        p.addLast("sequence", new ExchangeSequencer());
        p.addLast("guard", new RequestGuard(recorder));
        p.addLast("authorize", new AuthorizationHandler(listener.name(), runtime, metrics));
        p.addLast("forward", new ForwardingHandler(runtime, connector, xfccBy, metrics));
    }
}
