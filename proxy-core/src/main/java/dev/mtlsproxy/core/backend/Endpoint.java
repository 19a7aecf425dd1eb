package dev.mtlsproxy.core.backend;

import dev.mtlsproxy.config.BackendTlsConfig;
import dev.mtlsproxy.config.HealthCheckConfig;
import dev.mtlsproxy.core.log.LogText;
import io.netty.bootstrap.Bootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoop;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslHandler;
import io.netty.resolver.NoopAddressResolverGroup;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.Promise;
import java.net.InetSocketAddress;
import java.net.URI;
import java.time.Duration;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One address of a backend, with its connection pool and health. Built once per configuration generation; its
 * address is resolved then, never on an event loop.
 *
 * <p>Health is two independent verdicts, both thread-safe: passive (a failed connection attempt takes the endpoint
 * out for the backend's {@code coolDown}) and active (the health check's verdict, when one is configured, which
 * changes only after the configured number of consecutive results: see {@link ActiveHealth}). The endpoint gets
 * requests while both say healthy, or, when every endpoint of its backend is cooling down, while the active check
 * does (see {@link Backend#pick}).
 */
public final class Endpoint {

    private static final Logger log = LoggerFactory.getLogger(Endpoint.class);

    private final String backend;
    private final String display;
    private final InetSocketAddress address;
    /** The name for SNI and host name verification: the configured serverName, else the URL's host. */
    private final String tlsHost;
    /** The Host of a request that came without one: see {@link #hostHeader()}. */
    private final String hostHeader;
    private final SslContext ssl;
    private final int connectTimeoutMillis;
    private final long coolDownNanos;
    private final Duration idleTimeout;
    private final BackendPool pool;
    /** System.nanoTime() until which the endpoint cools down after a failed connection; 0 when it does not. */
    private volatile long coolingUntil;
    /** The check's thresholds; null when the backend has no health check. */
    private final HealthCheckConfig check;
    /** What the check asks, to tell whether a reload's check asks the same; null without one. */
    private final HealthQuestion question;
    /**
     * The active health check's verdict; null when the backend has no health check. Replaced once at most, by
     * {@link #takeOverHealth}, before this endpoint's own checker starts.
     */
    private volatile ActiveHealth active;

    /**
     * @param tls the backend's TLS settings (null for http): the serverName gives SNI, the name verified and the
     *            Host; all of them are part of the health check's question
     */
    Endpoint(String backend, URI url, SslContext ssl, BackendTlsConfig tls, Duration connectTimeout,
            Duration coolDown, int maxIdle, Duration idleTimeout, HealthCheckConfig check, Endpoint previous) {
        boolean https = "https".equalsIgnoreCase(url.getScheme());
        String serverName = tls == null ? null : tls.serverName();
        int port = port(url);
        String host = url.getHost();
        this.backend = backend;
        this.display = host.toLowerCase(Locale.ROOT) + ":" + port;
        String bare = bareHost(url);
        this.address = new InetSocketAddress(bare, port);
        if (address.isUnresolved()) {
            // Resolution happens here, at load, never on an event loop; connections to it will fail until a reload
            // resolves the name (see Backend#build).
            log.warn("event=backend_unresolved backend={} endpoint={}", backend, display);
        }
        this.tlsHost = serverName != null ? serverName : bare;
        String name = serverName != null ? serverName : host.toLowerCase(Locale.ROOT); // IPv6 keeps its brackets
        this.hostHeader = url.getPort() < 0 || url.getPort() == (https ? 443 : 80) ? name : name + ":" + port;
        this.ssl = https ? ssl : null;
        // At least 1: Netty reads 0 as no timeout at all, which is what 500us rounded down would have become.
        this.connectTimeoutMillis = (int) Math.max(1, Math.min(Integer.MAX_VALUE, connectTimeout.toMillis()));
        this.coolDownNanos = coolDown.toNanos();
        this.idleTimeout = idleTimeout;
        this.pool = new BackendPool(maxIdle);
        this.check = check;
        this.question = check == null ? null : HealthQuestion.of(check, hostHeader, https, tlsHost, tls);
        this.active = check == null ? null : activeHealth(previous);
    }

    /**
     * A new endpoint starts in rotation, its first check deciding (see {@link ActiveHealth}). The same endpoint in a
     * rebuilt backend (a reload that changed the backend's settings) keeps the verdict it had, so a reload never puts
     * an endpoint that is out back into rotation, and under the same thresholds the count towards changing it
     * ({@link ActiveHealth#carriedOver}); unless its name now resolves to another address, which is another
     * server, not yet checked. When the check now asks something else ({@link HealthQuestion}), the verdict holds
     * only until its first result, which decides alone.
     *
     * @param previous the endpoint at the same URL in the backend this one replaces, or null
     */
    private ActiveHealth activeHealth(Endpoint previous) {
        ActiveHealth before = previous == null ? null : previous.active;
        if (before == null || !previous.address.equals(address)) {
            return ActiveHealth.initial(check.healthyThreshold(), check.unhealthyThreshold());
        }
        if (!question.equals(previous.question)) {
            return ActiveHealth.askedAnew(before, check.healthyThreshold(), check.unhealthyThreshold());
        }
        return ActiveHealth.carriedOver(before, check.healthyThreshold(), check.unhealthyThreshold());
    }

    /**
     * Reads {@code previous}'s verdict again, as {@link #activeHealth} did when this endpoint was built, now that
     * {@code previous}'s checker has stopped: building copied it while that checker was still probing, so a change
     * it saw since would otherwise be lost. Call before this endpoint's own checker starts, which is what makes the
     * replaced verdict safe to drop: nothing has been counted towards it.
     *
     * @param previous the endpoint at the same URL in the backend this one replaces, or null
     */
    void takeOverHealth(Endpoint previous) {
        if (active != null) {
            active = activeHealth(previous);
        }
    }

    /** What this endpoint's health check asks; null without one. */
    HealthQuestion healthQuestion() {
        return question;
    }

    static int port(URI url) {
        return url.getPort() >= 0 ? url.getPort() : "https".equalsIgnoreCase(url.getScheme()) ? 443 : 80;
    }

    /** The URL's host without the brackets of an IPv6 literal: what to resolve. */
    static String bareHost(URI url) {
        String host = url.getHost();
        return host.startsWith("[") && host.endsWith("]") ? host.substring(1, host.length() - 1) : host;
    }

    /** {@code host:port} as configured, for logs and the access log. */
    public String display() {
        return display;
    }

    public BackendPool pool() {
        return pool;
    }

    /** How long a pooled connection may stay unused before it is closed. */
    public Duration idleTimeout() {
        return idleTimeout;
    }

    public InetSocketAddress address() {
        return address;
    }

    /** The host header a health check sends, and the name TLS verifies: configured serverName, else the URL host. */
    String tlsHost() {
        return tlsHost;
    }

    /**
     * The Host a request gets when its client named none (HTTP/1.0 allows that, HTTP/1.1, which the backend is
     * spoken to in, does not): the name this endpoint's TLS is verified for ({@code serverName}), else the URL's
     * host, with the port unless it is the scheme's default. nginx sends the same, {@code $proxy_host}.
     */
    public String hostHeader() {
        return hostHeader;
    }

    public boolean isHealthy() {
        long until = coolingUntil;
        return isActivelyHealthy() && (until == 0 || System.nanoTime() - until >= 0);
    }

    /** The active health check's verdict alone (true when none is configured). */
    boolean isActivelyHealthy() {
        ActiveHealth verdict = active;
        return verdict == null || verdict.isHealthy();
    }

    /** Passive health: a connection attempt (TCP or TLS) failed; no requests for the cool-down. */
    public void connectFailed() {
        long until = System.nanoTime() + coolDownNanos;
        coolingUntil = until == 0 ? 1 : until;
    }

    /**
     * Active health: the result of one health check (only ever called by the backend's health checker, on its one
     * event loop). {@code event=backend_health} is logged when the verdict changes, and only then, as before there
     * were thresholds: the endpoint left or rejoined rotation. A result that counts towards a change without making
     * it is logged at debug level.
     */
    void checked(boolean passed, String cause) {
        ActiveHealth verdict = active;
        if (!verdict.record(passed)) {
            if (passed != verdict.isHealthy()) {
                log.debug("event=backend_health_check backend={} endpoint={} passed={} checks={} threshold={}"
                        + " cause=\"{}\"", backend, display, passed, verdict.streak(), verdict.threshold(), LogText.quoted(cause));
            }
            return;
        }
        if (passed) {
            log.info("event=backend_health backend={} endpoint={} healthy=true checks={}", backend, display,
                    verdict.streak());
        } else {
            log.warn("event=backend_health backend={} endpoint={} healthy=false checks={} cause=\"{}\"", backend,
                    display, verdict.streak(), LogText.quoted(cause));
        }
    }

    /**
     * Opens a connection on {@code loop}: TCP, then the TLS handshake for https endpoints (verifying the backend
     * and presenting the proxy's certificate if one is configured). The future completes when the connection is
     * ready for HTTP, and fails without anything of a request having been sent. It succeeds on {@code loop}, from
     * within the connect or handshake listener, so a listener of it runs while the channel is still active: no I/O
     * event, a close included, is handled in between (ForwardingHandler.attach relies on it).
     *
     * @param tail handlers after TLS, typically a {@link ChannelInitializer}
     */
    public Future<Channel> connect(EventLoop loop, Class<? extends Channel> channelType, ChannelHandler tail) {
        Promise<Channel> ready = loop.newPromise();
        long started = System.nanoTime();
        ChannelFuture connect = new Bootstrap()
                .group(loop)
                .channel(channelType)
                // Addresses were resolved when the configuration was built; never resolve on an event loop.
                .resolver(NoopAddressResolverGroup.INSTANCE)
                .option(ChannelOption.AUTO_READ, false)
                .option(ChannelOption.TCP_NODELAY, true)
                .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, connectTimeoutMillis)
                .handler(new ChannelInitializer<>() {
                    @Override
                    protected void initChannel(Channel ch) {
                        if (ssl != null) {
                            // Host and port give SNI (for names, not IP addresses), the name to verify and the
                            // session-resumption key.
                            SslHandler tls = ssl.newHandler(ch.alloc(), tlsHost, address.getPort());
                            tls.setHandshakeTimeoutMillis(connectTimeoutMillis);
                            ch.pipeline().addLast("tls", tls);
                        }
                        ch.pipeline().addLast(tail);
                    }
                })
                .connect(address);
        connect.addListener((ChannelFutureListener) f -> {
            if (!f.isSuccess()) {
                ready.tryFailure(f.cause());
                return;
            }
            Channel channel = f.channel();
            SslHandler tls = channel.pipeline().get(SslHandler.class);
            if (tls == null) {
                ready.trySuccess(channel);
                return;
            }
            // connectTimeout bounds TCP and TLS together: the handshake, which starts when the channel becomes
            // active (right after this listener), gets what the TCP connect left of it.
            long left = connectTimeoutMillis - TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);
            tls.setHandshakeTimeoutMillis(Math.max(1, left));
            tls.handshakeFuture().addListener(h -> {
                if (h.isSuccess()) {
                    ready.trySuccess(channel);
                } else {
                    ready.tryFailure(h.cause());
                    channel.close();
                }
            });
            // Auto-read is off: the handshake needs a first read, SslHandler asks for the rest until it is done.
            channel.read();
        });
        return ready;
    }

    @Override
    public String toString() {
        return backend + "/" + display;
    }
}
