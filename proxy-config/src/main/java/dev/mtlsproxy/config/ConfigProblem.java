package dev.mtlsproxy.config;

import java.util.Comparator;
import java.util.Objects;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One thing wrong with a configuration file.
 *
 * @param path    where in the YAML, e.g. {@code listeners[0].tls.minVersion}; empty for the file as a whole
 * @param message {@code value (expected: ...)}, optionally followed by {@code - detail}
 * @param line    1-based line in the file, 0 when unknown
 * @param column  1-based column in the file, 0 when unknown
 */
public record ConfigProblem(String path, String message, int line, int column) {

    private static final Pattern NUMBER_OR_TEXT = Pattern.compile("\\d+|\\D+");

    /** Path order in which {@code routes[2]} comes before {@code routes[10]}, then message. */
    static final Comparator<ConfigProblem> ORDER =
            Comparator.comparing(ConfigProblem::path, ConfigProblem::comparePaths).thenComparing(ConfigProblem::message);

    public ConfigProblem {
        Objects.requireNonNull(path, "path");
        Objects.requireNonNull(message, "message");
    }

    @Override
    public String toString() {
        String where = line > 0 ? " at line " + line + ", column " + column : "";
        return (path.isEmpty() ? "" : path + ": ") + message + where;
    }

    static int comparePaths(String a, String b) {
        Matcher ma = NUMBER_OR_TEXT.matcher(a);
        Matcher mb = NUMBER_OR_TEXT.matcher(b);
        while (ma.find()) {
            if (!mb.find()) {
                return 1;
            }
            String pa = ma.group();
            String pb = mb.group();
            boolean numbers = Character.isDigit(pa.charAt(0)) && Character.isDigit(pb.charAt(0));
            int c = numbers ? compareNumbers(pa, pb) : pa.compareTo(pb);
            if (c != 0) {
                return c;
            }
        }
        return mb.find() ? -1 : 0;
    }

    private static int compareNumbers(String a, String b) {
        String x = a.replaceFirst("^0+(?=.)", "");
        String y = b.replaceFirst("^0+(?=.)", "");
        return x.length() != y.length() ? Integer.compare(x.length(), y.length()) : x.compareTo(y);
    }
}
