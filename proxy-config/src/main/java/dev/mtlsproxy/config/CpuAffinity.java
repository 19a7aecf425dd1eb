package dev.mtlsproxy.config;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.TreeSet;

/**
 * Which CPUs the event loops are pinned to, written in YAML as {@code none}, {@code auto}, or a CPU list in the
 * notation of {@code taskset -c}, {@code docker --cpuset-cpus} and {@code /proc/PID/status}: {@code "0-3,6"}.
 * Whether the listed CPUs exist on the machine is checked at start, not at load: {@code validate} may run elsewhere.
 *
 * @param mode how loops are placed
 * @param cpus for {@link Mode#LIST}, the CPUs in ascending order, each once; empty otherwise
 */
public record CpuAffinity(Mode mode, List<Integer> cpus) {

    /** Linux's CPU_SETSIZE: the most CPUs a sched_setaffinity mask of the C library's size can name. */
    public static final int MAX_CPUS = 1024;
    public static final String EXPECTED = "none, auto, or a CPU list like \"0-3,6\"";
    public static final CpuAffinity NONE = new CpuAffinity(Mode.NONE, List.of());
    public static final CpuAffinity AUTO = new CpuAffinity(Mode.AUTO, List.of());

    public enum Mode {
        /** The kernel places the loops, as it places any thread (the default). */
        NONE,
        /** Loop i on the i-th CPU this process may run on at start, round robin when there are more loops. */
        AUTO,
        /** Loop i on the i-th CPU of the list, round robin when there are more loops. */
        LIST
    }

    public CpuAffinity {
        cpus = List.copyOf(cpus);
        if ((mode == Mode.LIST) == cpus.isEmpty()) {
            throw new IllegalArgumentException("a CPU list names at least one CPU, none and auto name none: "
                    + mode + " " + cpus);
        }
    }

    /**
     * Parses {@code none}, {@code auto} or a CPU list.
     *
     * @throws IllegalArgumentException with the expected form, when the text is none of them
     */
    public static CpuAffinity parse(String text) {
        String trimmed = text.trim();
        switch (trimmed.toLowerCase(Locale.ROOT)) {
            case "none":
                return NONE;
            case "auto":
                return AUTO;
            default:
                return new CpuAffinity(Mode.LIST, cpuList(trimmed));
        }
    }

    private static List<Integer> cpuList(String text) {
        TreeSet<Integer> cpus = new TreeSet<>();
        for (String part : text.split(",", -1)) {
            String[] bounds = part.trim().split("-", -1);
            if (bounds.length > 2) {
                throw invalid();
            }
            int first = cpu(bounds[0]);
            int last = bounds.length == 2 ? cpu(bounds[1]) : first;
            if (last < first) {
                throw new IllegalArgumentException(ProblemCollector.EXPECTED_PREFIX + EXPECTED
                        + " - a range runs from the lower CPU to the higher");
            }
            for (int cpu = first; cpu <= last; cpu++) {
                if (!cpus.add(cpu)) {
                    throw new IllegalArgumentException(ProblemCollector.EXPECTED_PREFIX + EXPECTED
                            + " - CPU " + cpu + " is listed twice");
                }
            }
        }
        return new ArrayList<>(cpus);
    }

    private static int cpu(String text) {
        String digits = text.trim();
        if (digits.isEmpty() || digits.length() > 4 || !digits.chars().allMatch(c -> c >= '0' && c <= '9')) {
            throw invalid();
        }
        int cpu = Integer.parseInt(digits);
        if (cpu >= MAX_CPUS) {
            throw new IllegalArgumentException(ProblemCollector.EXPECTED_PREFIX + EXPECTED
                    + " - CPUs are numbered 0 to " + (MAX_CPUS - 1));
        }
        return cpu;
    }

    private static IllegalArgumentException invalid() {
        return new IllegalArgumentException(ProblemCollector.EXPECTED_PREFIX + EXPECTED);
    }

    /** The CPU list in the notation it was written in, ranges joined: {@code 0-3,6}. */
    @Override
    public String toString() {
        if (mode != Mode.LIST) {
            return mode.name().toLowerCase(Locale.ROOT);
        }
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < cpus.size(); i++) {
            int first = cpus.get(i);
            while (i + 1 < cpus.size() && cpus.get(i + 1) == cpus.get(i) + 1) {
                i++;
            }
            if (text.length() > 0) {
                text.append(',');
            }
            text.append(first);
            if (cpus.get(i) != first) {
                text.append('-').append(cpus.get(i));
            }
        }
        return text.toString();
    }
}
