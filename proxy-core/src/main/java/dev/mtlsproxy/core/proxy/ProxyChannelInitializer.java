package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.config.ListenerConfig;
import dev.mtlsproxy.core.http.StrictHttpServerCodec;
import dev.mtlsproxy.core.identity.IdentityHandler;
import dev.mtlsproxy.core.metrics.ProxyMetrics;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.socket.SocketChannel;
import io.netty.handler.ssl.SslHandler;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

/**
 * The one place where a client connection's pipeline is assembled, once the listener's {@link ConnectionLimit}
 * admitted it (one over the limit never gets here: it is closed on accept, unregistered). In order:
 * <pre>
 *   idle       IdleTimeoutHandler: a connection silent for idleTimeout is closed
 *   tls        SslHandler, client certificate required   (first codec: all after it is plaintext)
 *   identity   handshake complete -&gt; PeerIdentity attribute, first read; then removes itself
 *   generation HandshakeGenerationCheck: accepted before a reload, completed after it -&gt; judged anew; then removes
 *              itself
 *   http       StrictHttpServerCodec: ambiguous framing becomes a decoder failure, never a guess
 *   sequence   ExchangeSequencer: one exchange in flight; pipelined requests wait their turn
 *   guard      RequestGuard: decoder failures, Transfer-Encoding, Host -&gt; 400 and close; opens the Exchange
 *   authorize  AuthorizationHandler: normalised target, SNI vs Host, route, rules -&gt; 400/403/404/405/421, or pass
 *   forward    ForwardingHandler: backend connection and relay, auto-read off on both sides
 * </pre>
 * A connection closing after a response while the client may still send gets {@link LingeringClose} ("linger")
 * inserted after tls: from then on it drops every byte read, and nothing after it sees one.
 * All handlers are new per channel: each keeps per-connection state, confined to the channel's event loop.
 *
 * <p>A connection takes the listener's generation current when it is accepted (TLS context, limits, XFCC "By") and
 * keeps it; it joins the listener's channel group so a reload can re-verify it and a drain can close it.
 */
final class ProxyChannelInitializer extends ChannelInitializer<SocketChannel> {

    private final String listenerName;
    private final Supplier<ListenerGeneration> generation;
    private final Supplier<ProxyRuntime> runtime;
    private final ForwardingHandler.BackendConnector connector;
    private final IdentityHandler.HandshakeListener handshakes;
    private final ProxyMetrics metrics;
    private final Exchange.Recorder recorder;
    private final ChannelGroup connections;
    private final BooleanSupplier draining;

    ProxyChannelInitializer(String listenerName, Supplier<ListenerGeneration> generation,
            Supplier<ProxyRuntime> runtime, ForwardingHandler.BackendConnector connector,
            IdentityHandler.HandshakeListener handshakes, ProxyMetrics metrics, Exchange.Recorder recorder,
            ChannelGroup connections, BooleanSupplier draining) {
        this.listenerName = listenerName;
        this.generation = generation;
        this.runtime = runtime;
        this.connector = connector;
        this.handshakes = handshakes;
        this.metrics = metrics;
        this.recorder = recorder;
        this.connections = connections;
        this.draining = draining;
    }

    @Override
    protected void initChannel(SocketChannel ch) {
        ListenerGeneration current = generation.get();
        ListenerConfig listener = current.config();
        metrics.connectionOpened(listenerName);
        ch.closeFuture().addListener(f -> metrics.connectionClosed(listenerName));
        SslHandler tls = current.serverTls().newHandler(ch.alloc());
        tls.setHandshakeTimeoutMillis(listener.handshakeTimeout().toMillis());
        ChannelPipeline p = ch.pipeline();
        p.addLast("idle", new IdleTimeoutHandler(listener.idleTimeout()));
        p.addLast("tls", tls);
        p.addLast("identity", new IdentityHandler(listenerName, handshakes, current.serverTls().verifier(),
                current.anchors()));
        p.addLast("generation", new HandshakeGenerationCheck(listenerName, current, generation));
        p.addLast("http", new StrictHttpServerCodec(listener.limits(), listener.requestHeaderTimeout()));
        p.addLast("sequence", new ExchangeSequencer());
        p.addLast("guard", new RequestGuard(recorder));
        p.addLast("authorize", new AuthorizationHandler(listenerName, runtime, metrics));
        p.addLast("forward", new ForwardingHandler(runtime, connector, current.xfccBy(), metrics,
                listener.idleTimeout()));
        connections.add(ch);
        if (draining.getAsBoolean()) {
            // Accepted in the instant before the listener closed: its client is sending its first request, which
            // no client would retry on a fresh connection. It is served, with Connection: close.
            p.fireUserEventTriggered(DrainEvent.INSTANCE);
        }
    }
}
