package dev.mtlsproxy.config;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
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

    void nonNegative(String path, Duration duration) {
        if (duration.isNegative()) {
            add(path, Durations.format(duration) + " (expected: zero or a positive duration)");
        }
    }

    void positive(String path, DataSize size) {
        if (size.bytes() <= 0) {
            add(path, size + " (expected: a positive size)");
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
     * Whether the list at this path still has all its items. An item that failed to map is left out of the records,
     * which shifts the indexes after it; checking the rest would report problems at the wrong paths.
     */
    boolean itemsIntact(String listPath) {
        Pattern item = Pattern.compile(Pattern.quote(listPath) + "\\[\\d+]");
        return failedPaths.stream().noneMatch(p -> item.matcher(p).matches());
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
