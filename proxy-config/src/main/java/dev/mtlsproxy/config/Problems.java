package dev.mtlsproxy.config;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/**
 * Where validation reports to. It attaches the line of the nearest value the file has, and stays quiet about values
 * that already failed to map: a user told "not a duration" should not also hear "must be positive".
 */
final class Problems {

    private final Map<String, YamlScan.Position> positions;
    private final Set<String> failedPaths;
    private final List<ConfigProblem> problems = new ArrayList<>();

    Problems(Map<String, YamlScan.Position> positions, Set<String> failedPaths) {
        this.positions = positions;
        this.failedPaths = failedPaths;
    }

    void add(String path, String message) {
        if (failed(path)) {
            return;
        }
        YamlScan.Position at = positionOf(path);
        problems.add(new ConfigProblem(path, message, at.line(), at.column()));
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
        return positions.containsKey(path);
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

    private YamlScan.Position positionOf(String path) {
        // the document itself is no useful position for a key that is missing at the top
        for (String p = path; !p.isEmpty(); p = YamlPaths.parent(p)) {
            YamlScan.Position at = positions.get(p);
            if (at != null) {
                return at;
            }
        }
        return YamlScan.Position.UNKNOWN;
    }
}
