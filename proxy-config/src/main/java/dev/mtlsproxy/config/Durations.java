package dev.mtlsproxy.config;

import java.time.Duration;
import java.time.format.DateTimeParseException;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Durations as written in the config: {@code 500ms}, {@code 10s}, {@code 1m30s}, {@code 200us}, or ISO-8601 such as
 * {@code PT10S}.
 */
public final class Durations {

    static final String EXPECTED = "a duration like 500ms, 10s, 5m, 1h";

    /** The longest timeout or delay a setting may ask for: a year is beyond any sensible one. */
    static final Duration LONGEST_WAIT = Duration.ofDays(365);

    private static final Pattern PART = Pattern.compile("(\\d+)(us|ms|s|m|h|d)");
    private static final long[] UNIT_MILLIS = {86_400_000L, 3_600_000L, 60_000L, 1_000L};
    private static final String[] UNIT_NAMES = {"d", "h", "m", "s"};

    private Durations() {
    }

    /**
     * Parses a duration; a bare number is rejected because its unit would be a guess.
     *
     * @throws IllegalArgumentException with the expected form
     */
    static Duration parse(String text) {
        String s = text.trim();
        try {
            if (s.toUpperCase(Locale.ROOT).startsWith("P") || s.toUpperCase(Locale.ROOT).startsWith("-P")) {
                return Duration.parse(s);
            }
            Matcher m = PART.matcher(s);
            Duration total = Duration.ZERO;
            int at = 0;
            while (at < s.length()) {
                m.region(at, s.length());
                if (!m.lookingAt()) {
                    break;
                }
                total = total.plus(of(Long.parseLong(m.group(1)), m.group(2)));
                at = m.end();
            }
            if (at == 0 || at < s.length()) {
                throw new IllegalArgumentException("expected: " + EXPECTED);
            }
            return total;
        } catch (DateTimeParseException | ArithmeticException | NumberFormatException e) {
            throw new IllegalArgumentException("expected: " + EXPECTED, e);
        }
    }

    /** The shortest exact form in the config's own units, so messages echo what a user would write. */
    public static String format(Duration d) {
        if (d.isNegative()) {
            return "-" + format(d.negated());
        }
        if (d.getSeconds() == 0 && d.getNano() % 1_000_000 != 0 && d.getNano() % 1_000 == 0) {
            return d.toNanos() / 1_000 + "us";
        }
        if (d.getNano() % 1_000_000 != 0) {
            return d.toString();
        }
        if (d.getSeconds() > Long.MAX_VALUE / 1000) {
            // beyond milliseconds, but still in the units the file was written in: 1000000000000d, not PT24000000000000H
            return formatSeconds(d.getSeconds());
        }
        long ms = d.toMillis();
        if (ms == 0) {
            return "0s";
        }
        for (int i = 0; i < UNIT_MILLIS.length; i++) {
            if (ms % UNIT_MILLIS[i] == 0) {
                return ms / UNIT_MILLIS[i] + UNIT_NAMES[i];
            }
        }
        return ms + "ms";
    }

    private static String formatSeconds(long seconds) {
        for (int i = 0; i < UNIT_MILLIS.length; i++) {
            long unit = UNIT_MILLIS[i] / 1000;
            if (seconds % unit == 0) {
                return seconds / unit + UNIT_NAMES[i];
            }
        }
        return seconds + "s";
    }

    private static Duration of(long amount, String unit) {
        return switch (unit) {
            case "us" -> Duration.ofNanos(Math.multiplyExact(amount, 1_000L));
            case "ms" -> Duration.ofMillis(amount);
            case "s" -> Duration.ofSeconds(amount);
            case "m" -> Duration.ofMinutes(amount);
            case "h" -> Duration.ofHours(amount);
            default -> Duration.ofDays(amount);
        };
    }
}
