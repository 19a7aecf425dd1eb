package dev.mtlsproxy.config;

/**
 * The event loops: the threads that do all TLS, HTTP and forwarding work, each serving its own connections (nginx's
 * {@code worker_processes} and {@code worker_cpu_affinity}, HAProxy's {@code nbthread} and {@code cpu-map}). Read at
 * start only.
 *
 * @param threads     how many; null for the default, see {@link #threadCount}
 * @param cpuAffinity which CPUs they are pinned to; none by default. Pinning keeps the loops from being stacked on one
 *                    CPU by the scheduler (a latency tail under load), but on a host shared under CPU quotas it holds
 *                    loops to CPUs other workloads use too: it is for machines or cpusets the proxy has to itself.
 */
public record WorkersConfig(Integer threads, CpuAffinity cpuAffinity) {

    public static final int MAX_THREADS = 1024;
    public static final WorkersConfig DEFAULT = new WorkersConfig(null, null);

    public WorkersConfig {
        cpuAffinity = cpuAffinity == null ? CpuAffinity.NONE : cpuAffinity;
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
