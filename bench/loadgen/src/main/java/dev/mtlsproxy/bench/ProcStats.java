package dev.mtlsproxy.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** CPU time and memory of processes, read from /proc (Linux only). */
final class ProcStats {

    private ProcStats() {
    }

    /**
     * utime + stime, in clock ticks, summed over the processes. A process's stat counts all its threads, so a JVM or
     * a threaded HAProxy is one pid; nginx is its master plus each worker.
     */
    static long cpuTicks(List<Integer> pids) {
        long sum = 0;
        for (int pid : pids) {
            sum += cpuTicks("/proc/" + pid + "/stat");
        }
        return sum;
    }

    static long selfCpuTicks() {
        return cpuTicks("/proc/self/stat");
    }

    private static long cpuTicks(String statFile) {
        String stat = read(statFile);
        // Field 2 (comm) is in parentheses and may contain spaces: count fields from the last ')'.
        String[] fields = stat.substring(stat.lastIndexOf(')') + 2).trim().split(" +");
        // fields[0] is field 3 (state); utime is field 14, stime field 15.
        return Long.parseLong(fields[11]) + Long.parseLong(fields[12]);
    }

    /** Busy and total jiffies of the whole machine (all CPUs), from the first line of /proc/stat. */
    static long[] machineTicks() {
        String line = read("/proc/stat").lines().findFirst().orElseThrow();
        String[] f = line.trim().split(" +");
        long total = 0;
        for (int i = 1; i < f.length && i <= 8; i++) {
            total += Long.parseLong(f[i]);
        }
        long idle = Long.parseLong(f[4]) + Long.parseLong(f[5]);
        return new long[] {total - idle, total};
    }

    /**
     * Memory of the processes in KiB: {@code [rss, pss]}. PSS divides shared pages among the processes sharing them,
     * so nginx's master and workers are not counted several times; for a single process the two are close.
     */
    static long[] memoryKib(List<Integer> pids) {
        long rss = 0;
        long pss = 0;
        for (int pid : pids) {
            for (String line : read("/proc/" + pid + "/smaps_rollup").split("\n")) {
                if (line.startsWith("Rss:")) {
                    rss += kib(line);
                } else if (line.startsWith("Pss:")) {
                    pss += kib(line);
                }
            }
        }
        return new long[] {rss, pss};
    }

    private static long kib(String line) {
        return Long.parseLong(line.replaceAll("[^0-9]", ""));
    }

    private static String read(String file) {
        try {
            return Files.readString(Path.of(file));
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + file + ": " + e.getMessage(), e);
        }
    }
}
