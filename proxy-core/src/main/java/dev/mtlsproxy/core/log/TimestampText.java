package dev.mtlsproxy.core.log;

import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;

/**
 * Writes an instant exactly as {@link Instant#toString()} does (ISO-8601 in UTC, the fraction in groups of three
 * digits, none when zero), into a reused buffer. The date and time of day change once a second, so they are formatted
 * once a second; per line only the fraction is. {@code Instant.toString} went through {@code DateTimeFormatter} for
 * every line, the largest cost of the access log writer after the JSON itself (issue #8). Not thread-safe: one per
 * writer thread.
 */
final class TimestampText {

    private static final DateTimeFormatter SECONDS =
            DateTimeFormatter.ofPattern("uuuu-MM-dd'T'HH:mm:ss").withZone(ZoneOffset.UTC);
    /** Years 0000-9999, where the pattern above writes what {@code Instant.toString} writes; outside, it is used. */
    private static final long FIRST_SECOND = Instant.parse("0000-01-01T00:00:00Z").getEpochSecond();
    private static final long LAST_SECOND = Instant.parse("9999-12-31T23:59:59Z").getEpochSecond();
    private static final int PREFIX = "2026-01-01T00:00:00".length();

    /** Room for the longest text of any instant: {@code Instant.MAX} is "+1000000000-12-31T23:59:59.999999999Z". */
    private final char[] chars = new char[Instant.MAX.toString().length()];
    /** The second whose date and time of day the buffer starts with. */
    private long second = Long.MIN_VALUE;

    /** Formats {@code time} into {@link #chars()}; returns the number of characters. */
    int format(Instant time) {
        long s = time.getEpochSecond();
        if (s < FIRST_SECOND || s > LAST_SECOND) {
            return copy(time.toString());
        }
        if (s != second) {
            SECONDS.format(time).getChars(0, PREFIX, chars, 0);
            second = s;
        }
        int length = PREFIX;
        int nano = time.getNano();
        if (nano != 0) {
            chars[length++] = '.';
            if (nano % 1_000_000 == 0) {
                length = digits(length, nano / 1_000_000, 3);
            } else if (nano % 1_000 == 0) {
                length = digits(length, nano / 1_000, 6);
            } else {
                length = digits(length, nano, 9);
            }
        }
        chars[length++] = 'Z';
        return length;
    }

    char[] chars() {
        return chars;
    }

    /** Writes {@code value} at {@code at} as exactly {@code count} decimal digits, zero-padded; returns the end. */
    private int digits(int at, int value, int count) {
        for (int i = at + count - 1; i >= at; i--) {
            chars[i] = (char) ('0' + value % 10);
            value /= 10;
        }
        return at + count;
    }

    private int copy(String text) {
        text.getChars(0, text.length(), chars, 0);
        second = Long.MIN_VALUE; // the date and time of day in the buffer are gone
        return text.length();
    }
}
