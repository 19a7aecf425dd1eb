package dev.mtlsproxy.core.testing;

import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import io.netty.pkitesting.X509Bundle;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Comparator;
import java.util.Deque;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.function.ThrowingSupplier;

/**
 * The end-to-end set-up most proxy tests share: a temporary directory, a {@link TestPki} minted in it, one
 * {@link TestBackend}, and a {@link RunningProxy} in front of it, built from the scenario the test class states:
 * <pre>{@code
 * @RegisterExtension
 * final ProxyFixture fixture = new ProxyFixture((pki, backend) -> RunningProxy.builder(pki)
 *         .identity("orders", ORDERS)
 *         .backend("shop", backend.url())
 *         .route("orders-api", "/orders", "shop", "orders"));
 * }</pre>
 * Registered on an instance field, everything is started before each test and closed after it; on a static field,
 * once for the class. Closing goes in reverse order of starting (proxy, backend, directory), and whatever was started
 * when start-up fails half way (an assumption that skips the class, a backend that cannot bind) is closed at once.
 *
 * <p>JUnit calls an extension's {@code beforeAll}/{@code beforeEach} before the class's own {@code @BeforeAll}/
 * {@code @BeforeEach} methods, so those run against a started proxy. What must be in place before the proxy starts
 * (a {@link LogCapture} for its start-up lines) belongs in a field initialiser above the fixture.
 *
 * <p>A test whose scenarios differ in the proxy's own configuration starts it itself, on the fixture's PKI and backend:
 * <pre>{@code
 * @RegisterExtension
 * final ProxyFixture fixture = ProxyFixture.proxyStartedByTheTest();
 *
 * RunningProxy proxy = fixture.start(RunningProxy.builder(fixture.pki()).sessionResumption(TICKETS)...);
 * }</pre>
 * A proxy started so is closed after the test that started it, also when the fixture is per class, and so is any
 * other backend the test hands to {@link #closedAfterTest}.
 *
 * <p>Starting and stopping are bounded ({@link #START_LIMIT}, {@link #STOP_LIMIT}): JUnit's default test timeout does
 * not cover extensions, so without a bound a start-up that hangs would hang the build. Past the limit the step fails
 * with the stuck thread's stack as its cause, and whatever that thread still starts afterwards is closed at once.
 */
public final class ProxyFixture implements BeforeAllCallback, BeforeEachCallback, AfterEachCallback,
        AfterAllCallback {

    /** The backend a scenario needs; it may use the PKI for its own certificate. */
    @FunctionalInterface
    public interface BackendStart {
        TestBackend start(TestPki pki) throws Exception;
    }

    /** The proxy in front of the backend: identities, backends, routes, options. The fixture starts it. */
    @FunctionalInterface
    public interface Scenario {
        RunningProxy.Builder proxy(TestPki pki, TestBackend backend) throws Exception;
    }

    /**
     * Far above what a start-up takes (well under a second, a few on a loaded machine) and below JUnit's default
     * test timeout, so that a hang shows as this fixture's failure, not as the test's.
     */
    public static final Duration START_LIMIT = Duration.ofSeconds(30);
    /** The proxy's event loops get 5 s to shut down, the backend's 2 s. */
    public static final Duration STOP_LIMIT = Duration.ofSeconds(30);

    private final BackendStart backendStart;
    /** Null when the test starts the proxy itself. */
    private final Scenario scenario;
    private final Duration startLimit;
    private final Duration stopLimit;
    /**
     * What is running, last started first: closing pops it. Guarded by {@code this}: the steps that fill them run on
     * a thread of their own, to be bounded in time.
     */
    private final Deque<AutoCloseable> started = new ArrayDeque<>();
    /** Proxies the running test started: closed after it. Guarded by {@code this}. */
    private final Deque<AutoCloseable> startedByTest = new ArrayDeque<>();
    /** A step outran its limit and its thread may still start things: those are closed as they come. */
    private boolean abandoned;
    /** Set when JUnit calls {@link #beforeAll}, which it does only for an extension on a static field. */
    private boolean perClass;
    private volatile TestPki pki;
    private volatile TestBackend backend;
    private volatile RunningProxy proxy;

    /** A plain HTTP backend behind the scenario's proxy. */
    public ProxyFixture(Scenario scenario) {
        this(pki -> TestBackend.start(), scenario);
    }

    public ProxyFixture(BackendStart backend, Scenario scenario) {
        this(backend, scenario, START_LIMIT, STOP_LIMIT);
    }

    /** With other limits: for the fixture's own test, which must see a limit pass without waiting 30 s. */
    ProxyFixture(BackendStart backend, Scenario scenario, Duration startLimit, Duration stopLimit) {
        this.backendStart = backend;
        this.scenario = scenario;
        this.startLimit = startLimit;
        this.stopLimit = stopLimit;
    }

    /** The PKI and a plain HTTP backend; each test starts its proxy with {@link #start(RunningProxy.Builder)}. */
    public static ProxyFixture proxyStartedByTheTest() {
        return proxyStartedByTheTest(pki -> TestBackend.start());
    }

    /** The PKI and this backend; each test starts its proxy with {@link #start(RunningProxy.Builder)}. */
    public static ProxyFixture proxyStartedByTheTest(BackendStart backend) {
        return new ProxyFixture(backend, null);
    }

    public TestPki pki() {
        return pki;
    }

    public TestBackend backend() {
        return backend;
    }

    /** The scenario's proxy, or the one the test started last. */
    public RunningProxy proxy() {
        return proxy;
    }

    /**
     * Starts a proxy for the running test, within the start-up limit; it is closed after the test (a test may close
     * it earlier). What the start throws (an assumption, a configuration the proxy refuses) is thrown as it is.
     */
    public RunningProxy start(RunningProxy.Builder builder) {
        return within(startLimit, "starting the test's proxy", () -> {
            RunningProxy running = track(startedByTest, builder.start());
            proxy = running;
            return running;
        });
    }

    /**
     * Something else the running test started, a backend of its own (a {@link SocketBackend} with a script, say): it
     * is closed after the test, with the proxy, last started first.
     */
    public <T extends AutoCloseable> T closedAfterTest(T running) throws Exception {
        return track(startedByTest, running);
    }

    /** A client presenting {@code certificate}, connected to the proxy and trusting the test root. */
    public MtlsClient connect(X509Bundle certificate) throws Exception {
        return MtlsClient.connect(proxy.address(), pki.root(), certificate);
    }

    /** A client presenting a valid certificate for {@code spiffeId}, connected to the proxy. */
    public MtlsClient connect(String spiffeId) throws Exception {
        return connect(pki.client(spiffeId));
    }

    @Override
    public void beforeAll(ExtensionContext context) throws Exception {
        perClass = true;
        start();
    }

    @Override
    public void beforeEach(ExtensionContext context) throws Exception {
        if (!perClass) {
            start();
        }
    }

    @Override
    public void afterEach(ExtensionContext context) throws Exception {
        try {
            close(startedByTest, "stopping the test's proxy");
        } finally {
            if (!perClass) {
                close(started, "stopping");
            }
        }
    }

    @Override
    public void afterAll(ExtensionContext context) throws Exception {
        close(started, "stopping");
    }

    private void start() throws Exception {
        try {
            within(startLimit, "start-up", () -> {
                Path dir = Files.createTempDirectory("proxy-fixture");
                track(started, () -> delete(dir));
                pki = TestPki.create(dir);
                backend = track(started, backendStart.start(pki));
                if (scenario != null) {
                    proxy = track(started, scenario.proxy(pki, backend).start());
                }
                return null;
            });
        } catch (Throwable failure) {
            try {
                close(started, "stopping after a failed start-up");
            } catch (Throwable alsoFailed) {
                failure.addSuppressed(alsoFailed);
            }
            throw failure;
        }
    }

    /**
     * Runs {@code step} on a thread of its own, failing when it takes longer than {@code limit}; the failure's cause
     * carries the stack of the thread where it is stuck. What the step throws is thrown as it is.
     */
    private <T> T within(Duration limit, String step, ThrowingSupplier<T> work) {
        AtomicBoolean returned = new AtomicBoolean();
        try {
            return assertTimeoutPreemptively(limit, () -> {
                try {
                    return work.get();
                } finally {
                    returned.set(true);
                }
            }, () -> "ProxyFixture: " + step + " did not finish within " + limit.toMillis() + " ms");
        } catch (Throwable failure) {
            if (!returned.get()) {
                // Timed out: the step's thread goes on and may still start something nobody would close. From here
                // track() closes it instead. Everything it tracked before this point is in the deques.
                synchronized (this) {
                    abandoned = true;
                }
            }
            throw failure;
        }
    }

    private synchronized <T extends AutoCloseable> T track(Deque<AutoCloseable> into, T running) throws Exception {
        if (abandoned) {
            running.close();
            throw new IllegalStateException("started after the fixture stopped waiting for it; closed");
        }
        into.push(running);
        return running;
    }

    private synchronized AutoCloseable next(Deque<AutoCloseable> from) {
        return from.poll();
    }

    /**
     * Closes everything in {@code deque}, last started first, within the stop limit, even when one fails to close;
     * the first failure is thrown, the rest suppressed.
     */
    private void close(Deque<AutoCloseable> deque, String step) throws Exception {
        Exception failure = within(stopLimit, step, () -> {
            Exception first = null;
            for (AutoCloseable running = next(deque); running != null; running = next(deque)) {
                try {
                    running.close();
                } catch (Exception e) {
                    if (first == null) {
                        first = e;
                    } else {
                        first.addSuppressed(e);
                    }
                }
            }
            return first;
        });
        if (failure != null) {
            throw failure;
        }
    }

    private static void delete(Path dir) throws IOException {
        try (Stream<Path> files = Files.walk(dir)) {
            for (Path p : (Iterable<Path>) files.sorted(Comparator.reverseOrder())::iterator) {
                Files.delete(p);
            }
        }
    }
}
