package dev.mtlsproxy.core.log;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Instant;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class TimestampTextTest {

    private final TimestampText text = new TimestampText();

    private String format(Instant time) {
        return new String(text.chars(), 0, text.format(time));
    }

    @Test
    void writesWhatInstantToStringWritesForEveryKindOfFraction() {
        for (Instant time : new Instant[] {
                Instant.EPOCH,
                Instant.ofEpochSecond(60), // seconds of zero are written, unlike LocalTime.toString
                Instant.parse("2026-11-28T04:30:21Z"),
                Instant.parse("2026-11-28T04:30:21.100Z"),
                Instant.parse("2026-11-28T04:30:21.000001Z"),
                Instant.parse("2026-11-28T04:30:21.120300Z"),
                Instant.parse("2026-11-28T04:30:21.000000001Z"),
                Instant.parse("2026-11-28T04:30:21.999999999Z"),
                Instant.parse("0000-01-01T00:00:00Z"),
                Instant.parse("9999-12-31T23:59:59.5Z"),
                Instant.parse("+10000-01-01T00:00:00Z"),
                Instant.parse("-0001-12-31T23:59:59.25Z"),
                Instant.MAX,
                Instant.MIN}) {
            assertThat(format(time)).isEqualTo(time.toString());
        }
    }

    @Test
    void aNewSecondOrAClockSteppedBackIsNotWrittenWithTheDateOfTheLastLine() {
        Instant time = Instant.parse("2026-12-31T23:59:59.999Z");
        assertThat(format(time)).isEqualTo("2026-12-31T23:59:59.999Z");
        assertThat(format(time.plusMillis(1))).isEqualTo("2027-01-01T00:00:00Z");
        assertThat(format(time.minusSeconds(3600))).isEqualTo("2026-12-31T22:59:59.999Z");
        assertThat(format(Instant.parse("+10000-01-01T00:00:00Z"))).isEqualTo("+10000-01-01T00:00:00Z");
        assertThat(format(time)).as("after an instant outside the fast range").isEqualTo("2026-12-31T23:59:59.999Z");
    }

    @Test
    void agreesWithInstantToStringOnRandomInstantsInClockOrder() {
        SplittableRandom random = new SplittableRandom(8);
        long second = Instant.parse("2020-01-01T00:00:00Z").getEpochSecond();
        for (int i = 0; i < 200_000; i++) {
            second += random.nextInt(3); // mostly the same or the next second, as a clock read per request is
            int nano = switch (random.nextInt(4)) {
                case 0 -> 0;
                case 1 -> random.nextInt(1000) * 1_000_000;
                case 2 -> random.nextInt(1_000_000) * 1_000;
                default -> random.nextInt(1_000_000_000);
            };
            Instant time = Instant.ofEpochSecond(second, nano);
            assertThat(format(time)).isEqualTo(time.toString());
        }
    }
}
