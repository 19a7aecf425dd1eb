package dev.mtlsproxy.config;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/**
 * Where validation reports to. It attaches the line of the nearest value the file has, and stays quiet about values
 * that already failed to map: a user told "not a duration" should not also hear "must be positive".
 */
final class Problems {

    private final ConfigPositions positions;
    private final Set<String> failedPaths;
    private final List<ConfigProblem> problems = new ArrayList<>();

    Problems(ConfigPositions positions, Set<String> failedPaths) {
        this.positions = positions;
        this.failedPaths = failedPaths;
    }

    void add(String path, String message) {
        if (failed(path)) {
            return;
        }
        problems.add(positions.problem(path, message));
    }

    void positive(String path, Duration duration) {
        if (duration.isNegative() || duration.isZero()) {
            add(path, Durations.format(duration) + " (expected: a positive duration)");
        }
    }

    /** A time the proxy waits for (a timeout, a delay): positive, and one its timers can count. */
    void positiveWait(String path, Duration duration) {
        positive(path, duration);
        notTooLong(path, duration);
    }

    /** As {@link #positiveWait}, where zero means not waiting at all. */
    void nonNegativeWait(String path, Duration duration) {
        if (duration.isNegative()) {
            add(path, Durations.format(duration) + " (expected: zero or a positive duration)");
        }
        notTooLong(path, duration);
    }

    private void notTooLong(String path, Duration duration) {
        // Timers run on nanosecond clocks, which overflow past about 292 years: validate passed 1000000000000d and
        // run then refused it with "long overflow", and a wait of a few centuries wrapped a deadline into the past.
        if (duration.compareTo(Durations.LONGEST_WAIT) > 0) {
            add(path, Durations.format(duration) + " (expected: at most " + Durations.format(Durations.LONGEST_WAIT)
                    + ")");
        }
    }

    void positive(String path, DataSize size) {
        if (size.bytes() <= 0) {
            add(path, size + " (expected: a positive size)");
        }
    }

    /** A positive size the proxy honours as written, not one it would silently cap. */
    void positive(String path, DataSize size, DataSize most) {
        positive(path, size);
        if (size.bytes() > most.bytes()) {
            add(path, size + " (expected: at most " + most + ")");
        }
    }

    /** Whether the file has a value at this path (an empty list included). */
    boolean isPresent(String path) {
        return positions.has(path);
    }

    /** Whether the value at this path, or one inside it, failed to map and was reported then. */
    boolean failed(String path) {
        return failedPaths.stream()
                .anyMatch(f -> f.equals(path) || f.startsWith(path + ".") || f.startsWith(path + "["));
    }

    List<ConfigProblem> all() {
        return problems;
    }

    /**
     * The YAML path of each of the {@code size} items the records hold of the list at this path. An item that failed
     * to map (a null, a value of the wrong shape) was reported then and is left out of the records, which shifts the
     * indexes after it: the records' item i is the file's item i plus the failed items before it. Checking the rest
     * at those paths reports every problem of the list in one run, as the others are reported.
     *
     * <p>Empty, so that the caller checks none, only when the file's items cannot be matched to the records' (the
     * file does not have as many items as the records and the failed ones together): no problem at a wrong path.
     */
    List<String> itemPaths(String listPath, int size) {
        Pattern item = Pattern.compile(Pattern.quote(listPath) + "\\[(\\d+)]");
        Set<Integer> dropped = new HashSet<>();
        for (String failed : failedPaths) {
            Matcher m = item.matcher(failed);
            if (m.matches()) {
                dropped.add(Integer.parseInt(m.group(1)));
            }
        }
        int inFile = size + dropped.size();
        if (!dropped.isEmpty() && (!positions.has(YamlPaths.item(listPath, inFile - 1))
                || positions.has(YamlPaths.item(listPath, inFile)))) {
            return List.of();
        }
        List<String> paths = new ArrayList<>(size);
        for (int index = 0; index < inFile; index++) {
            if (!dropped.contains(index)) {
                paths.add(YamlPaths.item(listPath, index));
            }
        }
        return paths;
    }

    /** Names under a section whose value failed to map: they exist in the file, so references to them are fine. */
    Set<String> failedNamesUnder(String section) {
        String prefix = section + ".";
        return failedPaths.stream()
                .filter(p -> p.startsWith(prefix))
                .map(p -> p.substring(prefix.length()))
                .collect(Collectors.toSet());
    }
}
