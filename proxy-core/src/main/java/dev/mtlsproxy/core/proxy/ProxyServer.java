package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.config.HttpLimits;
import dev.mtlsproxy.config.ListenerConfig;
import dev.mtlsproxy.config.PemException;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.core.backend.Backend;
import dev.mtlsproxy.core.backend.Endpoint;
import dev.mtlsproxy.core.identity.PeerIdentities;
import dev.mtlsproxy.core.identity.PeerIdentity;
import dev.mtlsproxy.core.log.AccessLog;
import dev.mtlsproxy.core.metrics.ProxyMetrics;
import dev.mtlsproxy.core.tls.ListenerTls;
import dev.mtlsproxy.core.tls.ServerTlsContexts;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.binder.netty4.NettyEventExecutorMetrics;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.handler.codec.http.HttpClientCodec;
import io.netty.handler.codec.http.HttpDecoderConfig;
import io.netty.handler.timeout.IdleStateHandler;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.security.GeneralSecurityException;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A running proxy: one event loop group sized to the cores, one server channel per listener, backend connections on
 * the same loops. Built from a validated {@link ProxyConfig}; everything it needs is passed in.
 */
public final class ProxyServer implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(ProxyServer.class);

    private final EventLoopGroup group;
    private final Map<String, Channel> listeners;
    private final ProxyRuntime runtime;
    private final Map<String, ListenerTls> tls;

    private ProxyServer(EventLoopGroup group, Map<String, Channel> listeners, ProxyRuntime runtime,
            Map<String, ListenerTls> tls) {
        this.group = group;
        this.listeners = listeners;
        this.runtime = runtime;
        this.tls = tls;
    }

    /** The key material of every listener by name, as loaded at start, for the admin certificate inventory. */
    public Map<String, ListenerTls> listenerTls() {
        return tls;
    }

    /**
     * Builds TLS contexts and the runtime (off any event loop), then binds every listener.
     *
     * @param threads event loop threads; 0 means one per core
     */
    public static ProxyServer start(ProxyConfig config, AccessLog accessLog, ProxyMetrics metrics, Clock clock,
            int threads) throws PemException, IOException, GeneralSecurityException, InterruptedException {
        Transport transport = Transport.best();
        ProxyRuntime runtime = ProxyRuntime.build(config, accessLog);
        HandshakeObserver handshakes = new HandshakeObserver(metrics, () -> runtime, clock);
        Map<String, ListenerTls> tls = new LinkedHashMap<>();
        for (ListenerConfig listener : config.listeners()) {
            tls.put(listener.name(), ListenerTls.load(listener.tls()));
        }
        registerMetrics(tls, runtime, metrics, clock);
        int loops = threads > 0 ? threads : Runtime.getRuntime().availableProcessors();
        EventLoopGroup group = transport.newGroup(loops);
        Map<String, Channel> bound = new LinkedHashMap<>();
        try {
            runtime.backends().start(group, transport.clientChannel());
            ForwardingHandler.BackendConnector connector = backendConnector(transport);
            for (ListenerConfig listener : config.listeners()) {
                var sslContext = ServerTlsContexts.forListener(tls.get(listener.name()), clock);
                String by = ownUriSan(tls.get(listener.name()));
                metrics.listenerStarted(listener.name());
                Exchange.Recorder recorder = new Exchange.Recorder(listener.name(), clock, accessLog, metrics);
                ServerBootstrap bootstrap = new ServerBootstrap()
                        .group(group)
                        .channel(transport.serverChannel())
                        .option(ChannelOption.SO_BACKLOG, 1024)
                        .childOption(ChannelOption.AUTO_READ, false)
                        .childOption(ChannelOption.TCP_NODELAY, true)
                        .childHandler(new ProxyChannelInitializer(listener, sslContext, by, () -> runtime,
                                connector, handshakes, metrics, recorder));
                Channel channel = bootstrap.bind(listener.address().host(), listener.address().port()).sync()
                        .channel();
                bound.put(listener.name(), channel);
                log.info("event=listening listener={} address={} transport={} tls=\"{}\"", listener.name(),
                        channel.localAddress(), transport.name(), ServerTlsContexts.engineDescription());
            }
        } catch (IOException | GeneralSecurityException | InterruptedException | RuntimeException e) {
            for (Channel c : bound.values()) {
                c.close();
            }
            runtime.backends().close();
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
            throw e;
        }
        return new ProxyServer(group, bound, runtime, Map.copyOf(tls));
    }

    /** Meters whose values come from the configuration: certificates, backends, generation. */
    private static void registerMetrics(Map<String, ListenerTls> tls, ProxyRuntime runtime, ProxyMetrics metrics,
            Clock clock) {
        List<ProxyMetrics.CertificateExpiry> certificates = new ArrayList<>();
        tls.forEach((listener, material) -> {
            int i = 0;
            for (X509Certificate c : material.chain()) {
                certificates.add(new ProxyMetrics.CertificateExpiry("server", listener, i++,
                        c.getNotAfter().toInstant().getEpochSecond()));
            }
            i = 0;
            for (ListenerTls.SourcedCertificate ca : material.clientCAs()) {
                certificates.add(new ProxyMetrics.CertificateExpiry("client_ca", listener, i++,
                        ca.certificate().getNotAfter().toInstant().getEpochSecond()));
            }
        });
        metrics.certificates(certificates);
        for (Backend backend : runtime.backends().values()) {
            metrics.backendRegistered(backend.name(), backend::idleConnections, backend::healthyEndpoints);
        }
        metrics.configLoaded(1, clock.instant().getEpochSecond());
    }

    /** Connections to an endpoint: TCP, TLS for https endpoints, then the HTTP pipeline below. */
    private static ForwardingHandler.BackendConnector backendConnector(Transport transport) {
        return (loop, endpoint) -> endpoint.connect(loop, transport.clientChannel(), backendInitializer(endpoint));
    }

    /**
     * Backend pipeline after TLS: idle (closes pooled connections unused for idleTimeout), http (strict client
     * codec), relay.
     */
    private static ChannelInitializer<Channel> backendInitializer(Endpoint endpoint) {
        Duration idleTimeout = endpoint.idleTimeout();
        return new ChannelInitializer<>() {
            @Override
            protected void initChannel(Channel ch) {
                HttpDecoderConfig decoder = new HttpDecoderConfig()
                        .setMaxInitialLineLength(HttpLimits.DEFAULT.maxInitialLineLength().toIntBytes())
                        .setMaxHeaderSize(64 * 1024)
                        .setMaxChunkSize(64 * 1024)
                        .setAllowDuplicateContentLengths(false)
                        .setStrictLineParsing(true)
                        .setValidateHeaders(true);
                ch.pipeline()
                        .addLast("idle", new IdleStateHandler(0, 0, idleTimeout.toNanos(), TimeUnit.NANOSECONDS))
                        .addLast("http", new HttpClientCodec(decoder, false, false))
                        .addLast("relay", new BackendHandler(endpoint.pool()));
            }
        };
    }

    /** The proxy's own URI SAN (its SPIFFE ID, typically), for the XFCC "By" element. */
    private static String ownUriSan(ListenerTls tls) throws GeneralSecurityException {
        PeerIdentity own = PeerIdentities.fromCertificate(tls.chain().get(0));
        return own.spiffeId() != null ? own.spiffeId() : own.uriSans().isEmpty() ? null : own.uriSans().get(0);
    }

    /** The bound address of a listener, with the real port when the config asked for port 0. */
    public InetSocketAddress address(String listenerName) {
        Channel channel = listeners.get(listenerName);
        if (channel == null) {
            throw new IllegalArgumentException("no listener " + listenerName);
        }
        return (InetSocketAddress) channel.localAddress();
    }

    /** Event loop metrics (tasks pending, workers) for the proxy's own loops. */
    public void bindEventLoopMetrics(MeterRegistry registry) {
        new NettyEventExecutorMetrics(group).bindTo(registry);
    }

    public List<InetSocketAddress> addresses() {
        List<InetSocketAddress> all = new ArrayList<>();
        for (Channel c : listeners.values()) {
            all.add((InetSocketAddress) c.localAddress());
        }
        return all;
    }

    /** Stops accepting, closes pooled backend connections and the event loops. */
    @Override
    public void close() {
        for (Channel c : listeners.values()) {
            c.close().syncUninterruptibly();
        }
        runtime.backends().close();
        group.shutdownGracefully(0, 5, TimeUnit.SECONDS).syncUninterruptibly();
    }
}
