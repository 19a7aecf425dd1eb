package dev.mtlsproxy.config;

import java.util.Set;
import java.util.TreeSet;

/** Checks that a name refers to an entry of a named section ({@code identities:}, {@code backends:}, ...). */
final class References {

    private References() {
    }

    static void check(Problems problems, String path, String name, String section, Set<String> known) {
        // a name whose definition failed to map exists in the file; that failure is reported already
        if (name != null && (known.contains(name) || problems.failedNamesUnder(section).contains(name))) {
            return;
        }
        String expected = "(expected: a name under " + section + ":, known: "
                + (known.isEmpty() ? "none" : String.join(", ", new TreeSet<>(known))) + ")";
        problems.add(path, (name == null ? "missing" : Values.quote(name)) + " " + expected);
    }
}
