package dev.mtlsproxy.config;

import java.util.Map;

/**
 * Where the values of one loaded file were written, by YAML path. Kept beside the records, not in them, so that two
 * loads of the same settings from differently laid out files stay equal; what compares a loaded configuration with
 * another (a reload's restart-only settings) uses it to name the line, as validation does.
 */
public final class ConfigPositions {

    /** For a configuration that was not read from a file: problems name no line. */
    public static final ConfigPositions NONE = new ConfigPositions(Map.of());

    private final Map<String, YamlScan.Position> positions;

    ConfigPositions(Map<String, YamlScan.Position> positions) {
        this.positions = Map.copyOf(positions);
    }

    /** A problem at {@code path}, with the line and column of the nearest value the file has there. */
    public ConfigProblem problem(String path, String message) {
        YamlScan.Position at = nearest(path);
        return new ConfigProblem(path, message, at.line(), at.column());
    }

    /** Whether the file has a value at this path (an empty list included). */
    boolean has(String path) {
        return positions.containsKey(path);
    }

    /**
     * The position of the value at {@code path} or, when the file has none (a default, a removed key), of the value
     * around it that it has: the line to look at. The document itself is no useful position for a key missing at
     * the top, so such a path has none.
     */
    YamlScan.Position nearest(String path) {
        for (String p = path; !p.isEmpty(); p = YamlPaths.parent(p)) {
            YamlScan.Position at = positions.get(p);
            if (at != null) {
                return at;
            }
        }
        return YamlScan.Position.UNKNOWN;
    }
}
