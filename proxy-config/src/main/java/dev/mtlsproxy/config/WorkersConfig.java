package dev.mtlsproxy.config;

import java.time.Duration;

/**
 * The event loops: the threads that do all TLS, HTTP and forwarding work, each serving its own connections (nginx's
 * {@code worker_processes} and {@code worker_cpu_affinity}, HAProxy's {@code nbthread} and {@code cpu-map}). Read at
 * start only.
 *
 * @param threads     how many; null for the default, see {@link #threadCount}
 * @param cpuAffinity which CPUs they are pinned to; none by default. Pinning keeps the loops from being stacked on one
 *                    CPU by the scheduler (a latency tail under load), but on a host shared under CPU quotas it holds
 *                    loops to CPUs other workloads use too: it is for machines or cpusets the proxy has to itself.
 * @param yieldAfter  how long a loop may stay busy, never once finding nothing to do, before it offers its CPU to
 *                    other threads once ({@code sched_yield}); zero never. When the scheduler has stacked two loops on
 *                    one CPU, the waiting one otherwise waits for the running one's whole time slice (issue #8).
 * @param transport   how the loops do their I/O; {@code auto} (epoll, else NIO) by default, see {@link IoTransport}
 */
public record WorkersConfig(Integer threads, CpuAffinity cpuAffinity, Duration yieldAfter, IoTransport transport) {

    public static final int MAX_THREADS = 1024;
    public static final Duration DEFAULT_YIELD_AFTER = Duration.ofNanos(500_000);
    public static final Duration MAX_YIELD_AFTER = Duration.ofSeconds(1);
    public static final WorkersConfig DEFAULT = new WorkersConfig(null, null, null, null);

    public WorkersConfig {
        cpuAffinity = cpuAffinity == null ? CpuAffinity.NONE : cpuAffinity;
        yieldAfter = yieldAfter == null ? DEFAULT_YIELD_AFTER : yieldAfter;
        transport = transport == null ? IoTransport.AUTO : transport;
    }

    /** The defaults for what is not given. */
    public WorkersConfig(Integer threads, CpuAffinity cpuAffinity) {
        this(threads, cpuAffinity, null, null);
    }

    /**
     * The loops to start: as many as configured; else one per CPU of an explicit affinity list; else one per
     * processor the JVM may use (which honours a container's CPU limit).
     */
    public int threadCount(int availableProcessors) {
        if (threads != null) {
            return threads;
        }
        if (cpuAffinity.mode() == CpuAffinity.Mode.LIST) {
            return cpuAffinity.cpus().size();
        }
        return availableProcessors;
    }
}
