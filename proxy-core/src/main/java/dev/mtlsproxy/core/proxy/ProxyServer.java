package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.config.ConfigPositions;
import dev.mtlsproxy.config.ConfigProblem;
import dev.mtlsproxy.config.Durations;
import dev.mtlsproxy.config.ListenerConfig;
import dev.mtlsproxy.config.PemException;
import dev.mtlsproxy.config.ProcessLimits;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.config.RestartOnlySettings;
import dev.mtlsproxy.core.backend.Backend;
import dev.mtlsproxy.core.backend.Backends;
import dev.mtlsproxy.core.backend.Endpoint;
import dev.mtlsproxy.core.http.BackendHttpCodec;
import dev.mtlsproxy.core.identity.PeerIdentities;
import dev.mtlsproxy.core.identity.PeerIdentity;
import dev.mtlsproxy.core.log.AccessLog;
import dev.mtlsproxy.core.log.LogText;
import dev.mtlsproxy.core.metrics.ProxyMetrics;
import dev.mtlsproxy.core.identity.PeerChain;
import dev.mtlsproxy.core.tls.ListenerTls;
import dev.mtlsproxy.core.tls.RevocationChecker;
import dev.mtlsproxy.core.tls.ServerTlsContexts;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.binder.netty4.NettyEventExecutorMetrics;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.ChannelGroupFuture;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.util.concurrent.GlobalEventExecutor;
import com.sun.management.UnixOperatingSystemMXBean;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.net.InetSocketAddress;
import java.security.GeneralSecurityException;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.IntSupplier;
import java.util.function.Supplier;
import javax.net.ssl.SSLException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A running proxy: one event loop group sized to the cores, one server channel per listener, backend connections on
 * the same loops. Built from a validated {@link ProxyConfig}; everything it needs is passed in.
 *
 * <p>Everything built from one configuration (TLS contexts, client-chain checks, revocation data, policy, backends)
 * is one {@link Generation}, held in one reference. {@link #reload} builds the next generation completely, off the
 * event loops, and swaps that reference; a failure at any step before the swap leaves the old generation serving,
 * and none after it can undo the swap (see {@link #reload}). New connections
 * take the current generation's TLS context; requests read the current policy each time, so a removed grant denies
 * the next request on an open connection. After a swap, open connections are re-verified against the new CAs and
 * revocation data, and those that no longer pass are closed.
 */
public final class ProxyServer implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(ProxyServer.class);

    /** Everything built from one configuration, swapped as one reference. */
    private record Generation(long number, ProxyConfig config, ProxyRuntime runtime, RevocationChecker revocation,
            Map<String, ListenerGeneration> listeners) {

        TlsInventory tlsInventory() {
            return TlsInventory.of(listeners, runtime.backends().values(), revocation);
        }
    }

    private final EventLoopGroup group;
    private final Transport transport;
    private final Map<String, Channel> listeners;
    private final Map<String, ChannelGroup> connections;
    private final AtomicReference<Generation> current;
    private final AccessLog accessLog;
    private final ProxyMetrics metrics;
    private final Clock clock;
    /** The process's open-file and memory limits, read once at start: default connection limits derive from them. */
    private final ProcessLimits processLimits;
    private final AtomicBoolean closed = new AtomicBoolean();
    /** Reloads are serialised; the event loops never take this lock. */
    private final Object reloadLock = new Object();
    private volatile boolean draining;

    private ProxyServer(EventLoopGroup group, Transport transport, Map<String, Channel> listeners,
            Map<String, ChannelGroup> connections, AtomicReference<Generation> current, AccessLog accessLog,
            ProxyMetrics metrics, Clock clock, ProcessLimits processLimits) {
        this.group = group;
        this.transport = transport;
        this.listeners = listeners;
        this.connections = connections;
        this.current = current;
        this.accessLog = accessLog;
        this.metrics = metrics;
        this.clock = clock;
        this.processLimits = processLimits;
    }

    /** Every certificate and CRL the current generation loaded (admin inventory; the expiry gauges read the same). */
    public TlsInventory tlsInventory() {
        return current.get().tlsInventory();
    }

    /** The configuration generation serving now: 1 at start, +1 per successful reload. */
    public long generation() {
        return current.get().number();
    }

    /** The configuration the current generation was built from. */
    public ProxyConfig config() {
        return current.get().config();
    }

    /**
     * Loads the native libraries (BoringSSL through netty-tcnative, the epoll transport) now, so that a caller can
     * do it on another thread while it reads its configuration: they are the largest single step of start-up.
     * Reports nothing: {@link #start} reports an engine that cannot load.
     */
    public static void loadNativeLibraries() {
        Transport.best();
        ServerTlsContexts.engineDescription();
    }

    /**
     * Builds TLS contexts and the runtime (off any event loop), starts the event loops ({@code workers}: how many,
     * pinned or not), then binds every listener.
     */
    public static ProxyServer start(ProxyConfig config, AccessLog accessLog, ProxyMetrics metrics, Clock clock)
            throws PemException, IOException, GeneralSecurityException, InterruptedException {
        Transport transport = Transport.of(config.workers().transport());
        AtomicReference<Generation> current = new AtomicReference<>();
        ProcessLimits processLimits = processLimits();
        current.set(build(1, config, accessLog, metrics, clock, null, processLimits));
        Supplier<ProxyRuntime> runtime = () -> current.get().runtime();
        HandshakeObserver handshakes = new HandshakeObserver(metrics, runtime, clock);
        registerMetrics(current, metrics, clock);
        int threads = config.workers().threadCount(Runtime.getRuntime().availableProcessors());
        EventLoopGroup group = transport.newGroup(threads, config.workers().yieldAfter());
        Map<String, Channel> bound = new LinkedHashMap<>();
        Map<String, ChannelGroup> connections = new LinkedHashMap<>();
        for (ListenerConfig listener : config.listeners()) {
            connections.put(listener.name(), new DefaultChannelGroup(listener.name(), GlobalEventExecutor.INSTANCE));
        }
        ProxyServer server = new ProxyServer(group, transport, bound, Map.copyOf(connections), current, accessLog,
                metrics, clock, processLimits);
        try {
            List<Integer> cpus = EventLoopAffinity.pin(config.workers().cpuAffinity(), group);
            log.info("event=event_loops threads={} cpus={} yield_after={}", threads, cpus.isEmpty() ? "unpinned"
                    : String.join(",", cpus.stream().map(String::valueOf).toList()),
                    Durations.format(config.workers().yieldAfter()));
            current.get().runtime().backends().start(group, transport.clientChannel());
            ForwardingHandler.BackendConnector connector = backendConnector(transport);
            for (int i = 0; i < config.listeners().size(); i++) {
                ListenerConfig listener = config.listeners().get(i);
                String name = listener.name();
                IntSupplier maxConnections = () -> current.get().listeners().get(name).maxConnections();
                ConnectionLimit limit = new ConnectionLimit(name, maxConnections,
                        metrics.connectionsRefused(name)::increment);
                metrics.listenerStarted(name, maxConnections::getAsInt, limit::open);
                Exchange.Recorder recorder = new Exchange.Recorder(name, clock, accessLog, metrics);
                ServerBootstrap bootstrap = new ServerBootstrap()
                        .group(group)
                        .channel(transport.serverChannel())
                        .option(ChannelOption.SO_BACKLOG, 1024)
                        .handler(limit)
                        .childOption(ChannelOption.AUTO_READ, false)
                        .childOption(ChannelOption.TCP_NODELAY, true)
                        .childHandler(new ProxyChannelInitializer(name, () -> current.get().listeners().get(name),
                                runtime, connector, handshakes, metrics, recorder, connections.get(name),
                                () -> server.draining));
                ChannelFuture bind = bootstrap.bind(listener.address().host(), listener.address().port()).await();
                if (!bind.isSuccess()) {
                    throw new CannotBindException("listeners[" + i + "].address", listener.address(), bind.cause());
                }
                Channel channel = bind.channel();
                bound.put(name, channel);
                log.info("event=listening listener={} address={} transport={} tls=\"{}\" max_connections={}{}", name,
                        channel.localAddress(), transport.name(), ServerTlsContexts.engineDescription(),
                        current.get().listeners().get(name).maxConnections(), listener.maxConnections() != null ? " (configured)"
                                : " (default, from descriptor_limit=" + processLimits.openFiles() + " memory_bytes="
                                        + processLimits.memoryBytes() + ")");
            }
        } catch (InterruptedException | IOException | RuntimeException e) {
            // IOException: a failed bind, after earlier listeners were bound and the event loops started.
            for (Channel c : bound.values()) {
                c.close();
            }
            current.get().runtime().backends().close();
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
            throw e;
        }
        return server;
    }

    /** Builds a complete generation: revocation data, every listener's key material and TLS context, runtime. */
    private static Generation build(long number, ProxyConfig config, AccessLog accessLog, ProxyMetrics metrics,
            Clock clock, Backends previousBackends, ProcessLimits processLimits)
            throws PemException, GeneralSecurityException, SSLException {
        RevocationChecker revocation = RevocationChecker.load(config.trustAnchors(), config.revocation(),
                staleCrlWarner(metrics), clock);
        Map<String, ListenerGeneration> listeners = new LinkedHashMap<>();
        for (ListenerConfig listener : config.listeners()) {
            ListenerTls tls = ListenerTls.load(listener.tls(), config.trustAnchors());
            listeners.put(listener.name(), new ListenerGeneration(listener, tls,
                    ServerTlsContexts.forListener(tls, revocation, clock), tls.trustAnchors(), ownUriSan(tls),
                    listener.connectionLimit(processLimits, config.listeners().size())));
        }
        ProxyRuntime runtime = ProxyRuntime.build(config, accessLog, previousBackends);
        return new Generation(number, config, runtime, revocation, Collections.unmodifiableMap(listeners));
    }

    /**
     * The most files this process may have open (RLIMIT_NOFILE, which the JVM raises to the hard limit at start) and
     * the memory it may use (the JDK reads a container's cgroup limit here, else the machine's memory); -1 for what
     * the platform does not say.
     */
    static ProcessLimits processLimits() {
        var os = ManagementFactory.getOperatingSystemMXBean();
        return new ProcessLimits(os instanceof UnixOperatingSystemMXBean unix ? unix.getMaxFileDescriptorCount() : -1,
                os instanceof com.sun.management.OperatingSystemMXBean jdk ? jdk.getTotalMemorySize() : -1);
    }

    /** Counts every stale CRL accepted under insecureAllow; logs each (issuer, nextUpdate) once per generation. */
    private static RevocationChecker.StaleCrlListener staleCrlWarner(ProxyMetrics metrics) {
        Set<String> warned = ConcurrentHashMap.newKeySet();
        return (issuer, nextUpdate) -> {
            metrics.staleCrlAccepted();
            if (warned.add(issuer.getName() + nextUpdate)) {
                log.warn("event=stale_crl_accepted issuer=\"{}\" nextUpdate={} policy=insecureAllow",
                        LogText.quoted(issuer.getName()), nextUpdate);
            }
        };
    }

    /**
     * Builds the next generation from {@code config} and makes it current. Runs on the caller's thread (never an
     * event loop); concurrent calls are serialised.
     *
     * <p>Two halves, split by the swap of the current generation. Before it, anything that fails leaves the old
     * generation as it was, health checks included, and fails the reload. After it the new generation serves, so
     * nothing can fail the reload any more: a step that throws there ({@link ReloadStep}) is logged with what it
     * leaves undone and counted, the steps after it still run, and the reload reports the new generation.
     *
     * @return the new generation number
     * @throws ReloadException when anything before the swap fails; the old generation keeps serving, untouched
     */
    public long reload(ProxyConfig config) throws ReloadException {
        return reload(config, ConfigPositions.NONE);
    }

    /**
     * As above, for a configuration loaded from a file: a listener change that refuses the reload names its line and
     * column in {@code positions}, the file's.
     */
    public long reload(ProxyConfig config, ConfigPositions positions) throws ReloadException {
        synchronized (reloadLock) {
            Generation old = current.get();
            Generation next;
            try {
                requireSameListeners(old.config(), config, positions);
                next = build(old.number() + 1, config, accessLog, metrics, clock, old.runtime().backends(),
                        processLimits);
                startHealthChecks(old, next);
            } catch (ReloadException e) {
                metrics.reloadFailed(e.reason());
                throw e;
            } catch (PemException | GeneralSecurityException | SSLException e) {
                metrics.reloadFailed(ReloadFailureReason.TLS_MATERIAL);
                throw new ReloadException(ReloadFailureReason.TLS_MATERIAL, e.getMessage(), e);
            } catch (RuntimeException e) {
                metrics.reloadFailed(ReloadFailureReason.OTHER);
                throw new ReloadException(ReloadFailureReason.OTHER, e.toString(), e);
            }
            current.set(next);
            log.info("event=config_reloaded generation={}", next.number());
            afterSwap(next, ReloadStep.METRICS, () -> metrics.configLoaded(next.number(),
                    clock.instant().getEpochSecond()));
            afterSwap(next, ReloadStep.METRICS, () -> registerConfigurationMeters(current, metrics));
            // Backends not carried over lose their health checks and idle connections; busy ones finish.
            afterSwap(next, ReloadStep.RETIRE_BACKENDS, () -> old.runtime().backends().retireInto(
                    next.runtime().backends()));
            afterSwap(next, ReloadStep.REVERIFY_CONNECTIONS, () -> reverifyOpenConnections(next));
            return next.number();
        }
    }

    /**
     * Hands the health checks over from the old generation to the next: the old checks of every rebuilt backend
     * stop, the next generation takes their last word, and its own checks start. The old checks stop first, not at
     * retirement or once the new ones run, so that no result counts in both generations or in neither
     * ({@link Backends#takeOverHealthFrom}). Should either step fail (starting a check only schedules it, which
     * fails only while the event loops shut down), the next generation's checks are stopped and the old ones
     * started again, from the verdicts and counts they had, which only they change: the old generation is left as
     * it was, checking its backends. What fails in that hand-back is suppressed in the failure thrown.
     */
    private void startHealthChecks(Generation old, Generation next) {
        Backends before = old.runtime().backends();
        Backends after = next.runtime().backends();
        try {
            after.takeOverHealthFrom(before);
            after.start(group, transport.clientChannel());
        } catch (RuntimeException | Error e) {
            try {
                after.giveHealthBackTo(before);
            } catch (RuntimeException | Error handBack) {
                // The reload's own failure is what the caller hears, with the hand-back's attached; only running
                // out of memory and the JVM's own failures go first, as they are left to the JVM everywhere.
                if (handBack instanceof VirtualMachineError && !(handBack instanceof StackOverflowError)) {
                    handBack.addSuppressed(e);
                    throw handBack;
                }
                e.addSuppressed(handBack);
            }
            throw e;
        }
    }

    /**
     * Runs one step after the swap: what it throws is logged and counted, never thrown, since the new generation
     * serves already and a failed reload would misreport it. Running out of memory and the JVM's own failures are
     * left to the JVM, as everywhere else (README, "Reload and shutdown").
     */
    private void afterSwap(Generation next, ReloadStep step, Runnable action) {
        try {
            action.run();
        } catch (RuntimeException | Error e) {
            if (e instanceof VirtualMachineError && !(e instanceof StackOverflowError)) {
                throw e;
            }
            metrics.reloadStepFailed(step);
            log.error("event=reload_step_failed generation={} step={} meaning=\"{}\" cause=\"{}\"", next.number(),
                    step.label(), step.meaning(), LogText.quoted(e.toString()), e);
        }
    }

    /**
     * The sockets are bound at start: a reload that adds, removes, renames or moves a listener is refused, with every
     * such change at its YAML path.
     */
    private static void requireSameListeners(ProxyConfig old, ProxyConfig next, ConfigPositions positions)
            throws ReloadException {
        List<ConfigProblem> changes = RestartOnlySettings.listenerChanges(old, next, positions);
        if (!changes.isEmpty()) {
            throw new ReloadException(ReloadFailureReason.RESTART_REQUIRED,
                    changes.stream().map(ConfigProblem::toString).toList());
        }
    }

    /**
     * Re-judges every open connection's client chain by the new generation's CAs and revocation data, and each open
     * WebSocket tunnel by its policy, and closes those that fail: revocation and removed grants reach live tunnels. A connection still in its handshake has no chain yet;
     * {@link HandshakeGenerationCheck} judges it by the then current generation when the handshake completes.
     */
    private void reverifyOpenConnections(Generation next) {
        connections.forEach((listener, channels) -> {
            for (Channel channel : channels) {
                X509Certificate[] chain = channel.attr(PeerChain.KEY).get();
                if (chain != null && !Reverification.passes(listener, channel, chain, next.listeners().get(listener))) {
                    channel.close();
                } else if (channel.attr(ForwardingHandler.TUNNELLED_REQUEST).get() != null) {
                    // judged on its event loop, where the tunnel's own review timer lives
                    channel.pipeline().fireUserEventTriggered(ForwardingHandler.REVIEW_TUNNEL);
                }
            }
        });
    }

    /** Meters whose values come from the configuration: certificates, CRLs, backends, generation. */
    private static void registerMetrics(AtomicReference<Generation> current, ProxyMetrics metrics, Clock clock) {
        registerConfigurationMeters(current, metrics);
        metrics.configLoaded(current.get().number(), clock.instant().getEpochSecond());
    }

    /** The meters of the configuration itself: certificates, CRLs, backends. */
    private static void registerConfigurationMeters(AtomicReference<Generation> current, ProxyMetrics metrics) {
        Generation generation = current.get();
        TlsInventory inventory = generation.tlsInventory();
        List<ProxyMetrics.CertificateExpiry> certificates = new ArrayList<>();
        for (TlsInventory.Entry e : inventory.certificates()) {
            certificates.add(new ProxyMetrics.CertificateExpiry(e.role(), e.listener(), e.backend(), e.index(),
                    e.certificate().getNotAfter().toInstant().getEpochSecond()));
        }
        metrics.certificates(certificates);
        List<ProxyMetrics.CrlNextUpdate> crls = new ArrayList<>();
        for (TlsInventory.Crl crl : inventory.crls()) {
            // No nextUpdate: never stale (RevocationChecker), so +Inf, never 0 (which would read as long stale).
            crls.add(new ProxyMetrics.CrlNextUpdate(crl.anchor(), crl.index(), crl.crl().getNextUpdate() == null
                    ? Double.POSITIVE_INFINITY : crl.crl().getNextUpdate().toInstant().getEpochSecond()));
        }
        metrics.crls(crls);
        for (Backend backend : generation.runtime().backends().values()) {
            String name = backend.name();
            // Registered once per name; the suppliers read whichever generation is current.
            metrics.backendRegistered(name, () -> {
                Backend b = current.get().runtime().backends().get(name);
                return b == null ? 0 : b.idleConnections();
            }, () -> {
                Backend b = current.get().runtime().backends().get(name);
                return b == null ? 0 : b.healthyEndpoints();
            });
        }
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
                ch.pipeline()
                        .addLast("idle", new IdleTimeoutHandler(idleTimeout))
                        .addLast("http", new BackendHttpCodec())
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
    /** The event loops, for tests that check where they run. */
    EventLoopGroup eventLoops() {
        return group;
    }

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

    /** Closes every listening socket: no new connections; open ones carry on. */
    public void stopAccepting() {
        draining = true;
        for (Channel c : listeners.values()) {
            c.close().syncUninterruptibly();
        }
    }

    /**
     * Drains client connections: idle keep-alive connections (answered, nothing of a next request read) close now;
     * every other connection, a request in flight, a next request partly read, or no request answered yet (in its
     * handshake, or not yet sent its first request), closes once its next response is written. Call after
     * {@link #stopAccepting()}.
     *
     * @return true when every connection closed within the timeout; false when the rest were cut at the deadline
     */
    public boolean drain(Duration timeout) throws InterruptedException {
        draining = true;
        long deadline = System.nanoTime() + timeout.toNanos();
        List<ChannelGroupFuture> closed = new ArrayList<>();
        int open = 0;
        for (ChannelGroup channels : connections.values()) {
            closed.add(channels.newCloseFuture());
            for (Channel channel : channels) {
                open++;
                channel.pipeline().fireUserEventTriggered(DrainEvent.INSTANCE);
            }
        }
        log.info("event=draining connections={} timeout={}", open, Durations.format(timeout));
        boolean drained = awaitClosed(closed, deadline);
        // A connection accepted just before the listener closed joins its group when its event loop registers it,
        // which may be after the snapshot above; it got its DrainEvent on joining, and is served, so wait for it too.
        while (drained && openConnections() > 0) {
            closed.clear();
            for (ChannelGroup channels : connections.values()) {
                closed.add(channels.newCloseFuture());
            }
            drained = awaitClosed(closed, deadline);
        }
        if (!drained) {
            int cut = 0;
            for (ChannelGroup channels : connections.values()) {
                cut += channels.size();
                channels.close();
            }
            log.warn("event=drain_timeout connections_cut={}", cut);
        }
        return drained;
    }

    private static boolean awaitClosed(List<ChannelGroupFuture> closed, long deadline) throws InterruptedException {
        boolean all = true;
        for (ChannelGroupFuture f : closed) {
            all &= f.await(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
        }
        return all;
    }

    /** The client connections open now, over all listeners: for tests that look at one from the proxy's side. */
    List<Channel> clientConnections() {
        List<Channel> all = new ArrayList<>();
        connections.values().forEach(all::addAll);
        return all;
    }

    /** Number of client connections open now, over all listeners. */
    public int openConnections() {
        return connections.values().stream().mapToInt(ChannelGroup::size).sum();
    }

    /** Stops accepting, closes client connections, pooled backend connections and the event loops. */
    @Override
    public void close() {
        // As Closeable asks: a second close (a shutdown hook after a drain, a test's cleanup) changes nothing,
        // where it used to fail on event loops already shut down.
        if (closed.getAndSet(true)) {
            return;
        }
        stopAccepting();
        for (ChannelGroup channels : connections.values()) {
            channels.close().awaitUninterruptibly(5, TimeUnit.SECONDS);
        }
        current.get().runtime().backends().close();
        group.shutdownGracefully(0, 5, TimeUnit.SECONDS).syncUninterruptibly();
    }
}
