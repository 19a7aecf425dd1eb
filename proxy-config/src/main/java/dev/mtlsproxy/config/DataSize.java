package dev.mtlsproxy.config;

import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A number of bytes, written in YAML as {@code "64KiB"}, {@code "1MiB"}, {@code "512B"} or a plain byte count.
 * Only binary units exist: "KB" is ambiguous, so it is rejected rather than guessed.
 */
public record DataSize(long bytes) {

    private static final Pattern FORMAT = Pattern.compile("(\\d+)\\s*(B|KiB|MiB|GiB)?");

    public static DataSize ofBytes(long bytes) {
        return new DataSize(bytes);
    }

    public static DataSize ofKibibytes(long kib) {
        return new DataSize(Math.multiplyExact(kib, 1024L));
    }

    public static DataSize ofMebibytes(long mib) {
        return new DataSize(Math.multiplyExact(mib, 1024L * 1024L));
    }

    /**
     * Parses {@code "16KiB"}-style text.
     *
     * @throws IllegalArgumentException with the expected form, when the text is not a size
     */
    public static DataSize parse(String text) {
        Matcher m = FORMAT.matcher(text.trim());
        if (!m.matches()) {
            throw new IllegalArgumentException("expected: a size like 512B, 16KiB, 1MiB, 2GiB");
        }
        String unit = m.group(2) == null ? "B" : m.group(2);
        long factor = switch (unit) {
            case "KiB" -> 1024L;
            case "MiB" -> 1024L * 1024L;
            case "GiB" -> 1024L * 1024L * 1024L;
            default -> 1L;
        };
        try {
            return new DataSize(Math.multiplyExact(Long.parseLong(m.group(1)), factor));
        } catch (ArithmeticException | NumberFormatException tooLarge) {
            throw new IllegalArgumentException("expected: a size like 512B, 16KiB, 1MiB, 2GiB", tooLarge);
        }
    }

    /**
     * Size as an int, for Netty's int-typed limits. Throws rather than clamps: a limit quietly lower than the one
     * configured is a bug for the caller's validation to catch (HttpLimits' are at most 8MiB), not to inherit.
     *
     * @throws ArithmeticException when the size is beyond an int's range
     */
    public int toIntBytes() {
        if (bytes != (int) bytes) {
            throw new ArithmeticException(this + " does not fit in an int (" + Integer.MIN_VALUE + " to "
                    + Integer.MAX_VALUE + " bytes)");
        }
        return (int) bytes;
    }

    @Override
    public String toString() {
        if (bytes != 0 && bytes % (1024L * 1024L * 1024L) == 0) {
            return bytes / (1024L * 1024L * 1024L) + "GiB";
        }
        if (bytes != 0 && bytes % (1024L * 1024L) == 0) {
            return bytes / (1024L * 1024L) + "MiB";
        }
        if (bytes != 0 && bytes % 1024L == 0) {
            return bytes / 1024L + "KiB";
        }
        return String.format(Locale.ROOT, "%dB", bytes);
    }
}
