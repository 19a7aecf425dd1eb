package dev.mtlsproxy.core.proxy;

import com.sun.jna.LastErrorException;
import com.sun.jna.Library;
import com.sun.jna.Native;
import com.sun.jna.NativeLong;
import com.sun.jna.Platform;
import dev.mtlsproxy.config.CpuAffinity;
import io.netty.channel.EventLoopGroup;
import io.netty.util.concurrent.EventExecutor;
import io.netty.util.concurrent.Future;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Pins each event loop to one CPU ({@code workers.cpuAffinity}), as nginx's {@code worker_cpu_affinity} and HAProxy's
 * {@code cpu-map} do. Unpinned, the scheduler now and then stacks both loops of a two-core machine on one CPU for
 * tens to hundreds of milliseconds while the other CPU runs something else; in the benchmark, pinning closed the p99
 * gap to HAProxy (docs/BENCHMARKS.md). Java has no API for a thread's affinity, so this calls Linux's
 * {@code sched_setaffinity} through JNA; nothing here is loaded unless pinning is configured.
 */
final class EventLoopAffinity {

    private static final Logger log = LoggerFactory.getLogger(EventLoopAffinity.class);

    /** Longs in the C library's cpu_set_t: {@link CpuAffinity#MAX_CPUS} bits. */
    private static final int MASK_LONGS = CpuAffinity.MAX_CPUS / Long.SIZE;
    /** Pid 0 is the calling thread for both calls. */
    private static final int CALLING_THREAD = 0;

    private EventLoopAffinity() {
    }

    /**
     * Pins the group's loops, in order, to the configured CPUs, round robin. Runs on each loop and waits for it, so
     * the proxy does not start half pinned.
     *
     * @return the CPU of each loop, in the group's order; empty when pinning is off
     * @throws UnusableSettingException when the platform cannot pin, or a listed CPU is not one this process may use
     */
    static List<Integer> pin(CpuAffinity affinity, EventLoopGroup group) throws InterruptedException {
        if (affinity.mode() == CpuAffinity.Mode.NONE) {
            return List.of();
        }
        if (!Platform.isLinux()) {
            throw new UnusableSettingException("workers.cpuAffinity: pinning event loops needs Linux; this is "
                    + System.getProperty("os.name") + " (set cpuAffinity: none)");
        }
        CLibrary c;
        try {
            c = Native.load(Platform.C_LIBRARY_NAME, CLibrary.class);
        } catch (LinkageError e) {
            // JNA unpacks its own native library into java.io.tmpdir (or jna.tmpdir): a noexec /tmp ends here, as an
            // UnsatisfiedLinkError the first time and a NoClassDefFoundError after it.
            throw new UnusableSettingException("workers.cpuAffinity: cannot load the native library that pins threads ("
                    + e.getMessage() + ")", e);
        }
        // The starting thread's set is the process's: taskset, a container's cpuset, or Kubernetes' static policy.
        List<Integer> allowed = cpus(getAffinity(c));
        List<Integer> targets = affinity.mode() == CpuAffinity.Mode.AUTO ? allowed : affinity.cpus();
        for (int cpu : targets) {
            if (!allowed.contains(cpu)) {
                throw new UnusableSettingException("workers.cpuAffinity: CPU " + cpu + " is not one this process may"
                        + " run on (it may run on " + new CpuAffinity(CpuAffinity.Mode.LIST, allowed) + ")");
            }
        }
        List<EventExecutor> loops = new ArrayList<>();
        group.forEach(loops::add);
        if (affinity.mode() == CpuAffinity.Mode.AUTO && allowed.size() > loops.size()) {
            // The telltale of a CPU quota without a cpuset (docker --cpus, Kubernetes limits): the JVM sized the
            // loops from the quota, so auto holds them to the first CPUs of a machine shared with other workloads.
            log.warn("event=cpu_affinity_partial detail=\"this process may run on CPUs {} but has fewer event loops;"
                    + " auto pins them to the first of those, which other workloads on this machine may also use."
                    + " Give the proxy a cpuset of its own, list its CPUs, or set cpuAffinity: none\"",
                    new CpuAffinity(CpuAffinity.Mode.LIST, allowed));
        }
        List<Integer> assigned = new ArrayList<>();
        List<Future<?>> pinned = new ArrayList<>();
        for (EventExecutor loop : loops) {
            int cpu = targets.get(assigned.size() % targets.size());
            assigned.add(cpu);
            pinned.add(loop.submit(() -> setAffinity(c, cpu)));
        }
        for (Future<?> done : pinned) {
            done.await();
            if (!done.isSuccess()) {
                throw new UnusableSettingException("workers.cpuAffinity: pinning an event loop failed: "
                        + done.cause().getMessage(), done.cause());
            }
        }
        return List.copyOf(assigned);
    }

    private static long[] getAffinity(CLibrary c) {
        long[] mask = new long[MASK_LONGS];
        try {
            c.sched_getaffinity(CALLING_THREAD, new NativeLong(mask.length * (long) Long.BYTES), mask);
        } catch (LastErrorException e) {
            throw new UnusableSettingException("workers.cpuAffinity: cannot read this process's CPUs (errno "
                    + e.getErrorCode() + ")", e);
        }
        return mask;
    }

    private static void setAffinity(CLibrary c, int cpu) {
        long[] mask = new long[MASK_LONGS];
        mask[cpu / Long.SIZE] = 1L << (cpu % Long.SIZE);
        try {
            c.sched_setaffinity(CALLING_THREAD, new NativeLong(mask.length * (long) Long.BYTES), mask);
        } catch (LastErrorException e) {
            throw new IllegalStateException("sched_setaffinity to CPU " + cpu + " failed (errno "
                    + e.getErrorCode() + ")", e);
        }
    }

    private static List<Integer> cpus(long[] mask) {
        List<Integer> cpus = new ArrayList<>();
        for (int cpu = 0; cpu < CpuAffinity.MAX_CPUS; cpu++) {
            if ((mask[cpu / Long.SIZE] & (1L << (cpu % Long.SIZE))) != 0) {
                cpus.add(cpu);
            }
        }
        return cpus;
    }

    /** glibc's calls; a cpu_set_t is an array of unsigned longs, CPU n at bit n % 64 of element n / 64. */
    interface CLibrary extends Library {
        int sched_getaffinity(int pid, NativeLong cpuSetSize, long[] mask) throws LastErrorException;

        int sched_setaffinity(int pid, NativeLong cpuSetSize, long[] mask) throws LastErrorException;
    }
}
