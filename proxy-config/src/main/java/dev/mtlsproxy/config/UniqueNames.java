package dev.mtlsproxy.config;

import java.util.HashMap;
import java.util.Map;

/** Names of list items (listeners, routes) that must be unique: they label logs and metrics. */
final class UniqueNames {

    private final Problems problems;
    private final Map<String, String> firstUse = new HashMap<>();

    UniqueNames(Problems problems) {
        this.problems = problems;
    }

    /** Checks the name at {@code itemPath + ".name"}; the later of two equal names is the one reported. */
    void check(String itemPath, String name, String expected) {
        String path = itemPath + ".name";
        if (name == null) {
            problems.add(path, "missing (expected: " + expected + ")");
            return;
        }
        if (!YamlSchema.NAME.matcher(name).matches()) {
            problems.add(path, Values.quote(name) + " (expected: " + YamlSchema.NAME_EXPECTED + ")");
            return;
        }
        String earlier = firstUse.putIfAbsent(name, itemPath);
        if (earlier != null) {
            problems.add(path, Values.quote(name) + " (expected: " + expected + ") - also used by " + earlier);
        }
    }
}
