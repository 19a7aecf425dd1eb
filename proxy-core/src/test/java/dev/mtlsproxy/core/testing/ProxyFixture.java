package dev.mtlsproxy.core.testing;

import io.netty.pkitesting.X509Bundle;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Comparator;
import java.util.Deque;
import java.util.stream.Stream;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

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

    private final BackendStart backendStart;
    private final Scenario scenario;
    /** What is running, last started first: closing pops it. */
    private final Deque<AutoCloseable> started = new ArrayDeque<>();
    /** Set when JUnit calls {@link #beforeAll}, which it does only for an extension on a static field. */
    private boolean perClass;
    private TestPki pki;
    private TestBackend backend;
    private RunningProxy proxy;

    /** A plain HTTP backend behind the scenario's proxy. */
    public ProxyFixture(Scenario scenario) {
        this(pki -> TestBackend.start(), scenario);
    }

    public ProxyFixture(BackendStart backend, Scenario scenario) {
        this.backendStart = backend;
        this.scenario = scenario;
    }

    public TestPki pki() {
        return pki;
    }

    public TestBackend backend() {
        return backend;
    }

    public RunningProxy proxy() {
        return proxy;
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
        if (!perClass) {
            close();
        }
    }

    @Override
    public void afterAll(ExtensionContext context) throws Exception {
        close();
    }

    private void start() throws Exception {
        try {
            Path dir = Files.createTempDirectory("proxy-fixture");
            started.push(() -> delete(dir));
            pki = TestPki.create(dir);
            backend = backendStart.start(pki);
            started.push(backend);
            proxy = scenario.proxy(pki, backend).start();
            started.push(proxy);
        } catch (Throwable failure) {
            try {
                close();
            } catch (Exception alsoFailed) {
                failure.addSuppressed(alsoFailed);
            }
            throw failure;
        }
    }

    /** Closes everything started, even when one fails to close; the first failure is thrown, the rest suppressed. */
    private void close() throws Exception {
        Exception failure = null;
        while (!started.isEmpty()) {
            try {
                started.pop().close();
            } catch (Exception e) {
                if (failure == null) {
                    failure = e;
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
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
