package dev.mtlsproxy.core.testing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowable;
import static org.awaitility.Awaitility.await;

import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.file.Files;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.opentest4j.AssertionFailedError;

/**
 * The fixture's own promises, driven by calling its callbacks as JUnit would: a start-up that hangs fails at the
 * limit instead of hanging the build, and nothing it started outlives it.
 */
class ProxyFixtureTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";

    @Test
    void aStartUpThatHangsFailsAtTheLimitShowingWhereItIsStuckAndWhatItStartsLateIsClosed() throws Exception {
        CountDownLatch hang = new CountDownLatch(1);
        AtomicReference<TestBackend> lateBackend = new AtomicReference<>();
        ProxyFixture fixture = new ProxyFixture(pki -> {
            backendThatHangs(hang);
            lateBackend.set(TestBackend.start());
            return lateBackend.get();
        }, (pki, backend) -> RunningProxy.builder(pki), Duration.ofMillis(500), ProxyFixture.STOP_LIMIT);

        long before = System.nanoTime();
        Throwable failure = catchThrowable(() -> fixture.beforeEach(null));

        assertThat(Duration.ofNanos(System.nanoTime() - before)).isLessThan(Duration.ofSeconds(10));
        assertThat(failure).isInstanceOf(AssertionFailedError.class)
                .hasMessageStartingWith("ProxyFixture: start-up did not finish within 500 ms");
        assertThat(Arrays.stream(failure.getCause().getStackTrace()).map(StackTraceElement::getMethodName))
                .as("the stuck thread's stack").contains("backendThatHangs");
        assertThat(fixture.pki().dir()).as("what was started before the hang is closed").doesNotExist();

        hang.countDown();
        await().atMost(Duration.ofSeconds(10)).until(() -> lateBackend.get() != null);
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertRefused(lateBackend.get().port()));
    }

    @Test
    void aProxyTheTestStartsIsClosedAfterThatTestEvenWhenTheFixtureServesTheWholeClass() throws Exception {
        ProxyFixture fixture = ProxyFixture.proxyStartedByTheTest();
        fixture.beforeAll(null);
        try {
            fixture.beforeEach(null);
            assertThat(fixture.proxy()).as("no proxy until the test starts one").isNull();
            RunningProxy proxy = fixture.start(RunningProxy.builder(fixture.pki())
                    .identity("orders", ORDERS)
                    .backend("shop", fixture.backend().url())
                    .route("orders-api", "/orders", "shop", "orders"));
            assertThat(fixture.proxy()).isSameAs(proxy);
            try (MtlsClient client = fixture.connect(ORDERS)) {
                assertThat(client.get("/orders/1").status()).isEqualTo(200);
            }

            fixture.afterEach(null);

            assertRefused(proxy.address().getPort());
            assertThat(Files.exists(fixture.pki().caPem())).as("the class's PKI stays").isTrue();
            try (Socket stillListening = new Socket()) {
                stillListening.connect(new InetSocketAddress("127.0.0.1", fixture.backend().port()), 2000);
            }
        } finally {
            fixture.afterAll(null);
        }
        assertThat(fixture.pki().dir()).doesNotExist();
    }

    /** Deaf to interrupts, as a {@code syncUninterruptibly()} is: the fixture cannot end it, only stop waiting. */
    private static void backendThatHangs(CountDownLatch hang) {
        boolean released = false;
        while (!released) {
            try {
                released = hang.await(1, TimeUnit.MINUTES);
            } catch (InterruptedException ignored) {
                // keeps hanging
            }
        }
    }

    private static void assertRefused(int port) {
        assertThatThrownBy(() -> {
            try (Socket socket = new Socket()) {
                socket.connect(new InetSocketAddress("127.0.0.1", port), 2000);
            }
        }).isInstanceOf(ConnectException.class);
    }
}
