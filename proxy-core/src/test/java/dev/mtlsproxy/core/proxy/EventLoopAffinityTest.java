package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.mtlsproxy.config.CpuAffinity;
import dev.mtlsproxy.config.WorkersConfig;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import io.netty.util.concurrent.EventExecutor;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledOnOs;
import org.junit.jupiter.api.condition.OS;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * {@code workers.cpuAffinity} on a running proxy. Where each event loop may run is read from the kernel, by the loop
 * thread itself ({@code /proc/thread-self/status}), not from anything the proxy records.
 */
@EnabledOnOs(OS.LINUX)
class EventLoopAffinityTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";

    /** One PKI and backend for the class; each test starts the proxies it needs. */
    @RegisterExtension
    static final ProxyFixture fixture = ProxyFixture.proxyStartedByTheTest();
    /** The CPUs this test, and so a proxy it starts, may run on. */
    static List<Integer> allowed;

    @BeforeAll
    static void readAllowedCpus() throws Exception {
        allowed = cpusAllowed();
    }

    private static RunningProxy proxy(WorkersConfig workers) {
        return fixture.start(RunningProxy.builder(fixture.pki())
                .identity("orders", ORDERS)
                .backend("shop", fixture.backend().url())
                .route("orders", "/orders", "shop", "orders")
                .workers(workers));
    }

    @Test
    void autoPinsEachLoopToTheNextCpuTheProcessMayUseAndTheProxyServes() throws Exception {
        try (RunningProxy proxy = proxy(new WorkersConfig(3, CpuAffinity.AUTO))) {
            List<List<Integer>> expected = new ArrayList<>();
            for (int loop = 0; loop < 3; loop++) {
                expected.add(List.of(allowed.get(loop % allowed.size())));
            }

            assertThat(cpusOfEachLoop(proxy)).isEqualTo(expected);
            assertThat(ordersStatus(proxy)).isEqualTo(200);
        }
    }

    @Test
    void autoWithFewerLoopsThanUsableCpusWarnsThatItPinsToCpusOthersMayUse() throws Exception {
        assumeTrue(allowed.size() > 1, "this process may use one CPU only");
        try (LogCapture log = LogCapture.of(EventLoopAffinity.class);
                RunningProxy proxy = proxy(new WorkersConfig(1, CpuAffinity.AUTO))) {
            assertThat(cpusOfEachLoop(proxy)).containsExactly(List.of(allowed.get(0)));
            assertThat(log.lines()).singleElement().asString().contains("event=cpu_affinity_partial",
                    "this process may run on CPUs " + new CpuAffinity(CpuAffinity.Mode.LIST, allowed));
        }
    }

    @Test
    void autoWithOneLoopPerUsableCpuSaysNothing() throws Exception {
        try (LogCapture log = LogCapture.of(EventLoopAffinity.class);
                RunningProxy proxy = proxy(new WorkersConfig(allowed.size(), CpuAffinity.AUTO))) {
            assertThat(cpusOfEachLoop(proxy)).hasSize(allowed.size());
            assertThat(log.lines()).isEmpty();
        }
    }

    @Test
    void aCpuListStartsOneLoopPerListedCpuUnlessThreadsSaysMore() throws Exception {
        int last = allowed.get(allowed.size() - 1);
        CpuAffinity onlyLast = new CpuAffinity(CpuAffinity.Mode.LIST, List.of(last));

        try (RunningProxy proxy = proxy(new WorkersConfig(null, onlyLast))) {
            assertThat(cpusOfEachLoop(proxy)).containsExactly(List.of(last));
            assertThat(ordersStatus(proxy)).isEqualTo(200);
        }
        try (RunningProxy proxy = proxy(new WorkersConfig(2, onlyLast))) {
            assertThat(cpusOfEachLoop(proxy)).containsExactly(List.of(last), List.of(last));
        }
    }

    @Test
    void byDefaultNoLoopIsPinned() throws Exception {
        try (RunningProxy proxy = proxy(new WorkersConfig(2, null))) {
            assertThat(cpusOfEachLoop(proxy)).containsExactly(allowed, allowed);
        }
    }

    @Test
    void aCpuTheProcessMayNotUseStopsTheStartAndSaysWhichItMayUse() {
        int outside = 0;
        while (allowed.contains(outside)) {
            outside++;
        }
        assumeTrue(outside < CpuAffinity.MAX_CPUS, "this process may use every CPU a mask can name");
        CpuAffinity unusable = new CpuAffinity(CpuAffinity.Mode.LIST, List.of(outside));

        Throwable failure = catchThrowable(() -> proxy(new WorkersConfig(null, unusable)).close());

        assertThat(failure).isInstanceOf(IllegalStateException.class).hasMessage("workers.cpuAffinity: CPU " + outside
                + " is not one this process may run on (it may run on "
                + new CpuAffinity(CpuAffinity.Mode.LIST, allowed) + ")");
    }

    private static int ordersStatus(RunningProxy proxy) throws Exception {
        try (MtlsClient client = MtlsClient.connect(proxy.address(), fixture.pki().root(),
                fixture.pki().client(ORDERS))) {
            return client.get("/orders").status();
        }
    }

    /** Each loop reads its own status file: a test-only file read on an event loop, at rest. */
    private static List<List<Integer>> cpusOfEachLoop(RunningProxy proxy) throws Exception {
        List<List<Integer>> cpus = new ArrayList<>();
        for (EventExecutor loop : proxy.server().eventLoops()) {
            cpus.add(loop.submit(EventLoopAffinityTest::cpusAllowed).get());
        }
        return cpus;
    }

    /** The calling thread's {@code Cpus_allowed_list}, in the notation {@link CpuAffinity} parses. */
    private static List<Integer> cpusAllowed() throws Exception {
        for (String line : Files.readAllLines(Path.of("/proc/thread-self/status"))) {
            if (line.startsWith("Cpus_allowed_list:")) {
                return CpuAffinity.parse(line.substring(line.indexOf(':') + 1)).cpus();
            }
        }
        throw new AssertionError("no Cpus_allowed_list in /proc/thread-self/status");
    }
}
