package dev.mtlsproxy.core.testing;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;

/**
 * A clock a test moves, for the proxy's judgement of certificate dates: what it verified is kept, so time has to pass
 * for the same instance. Read from the event loops, set from the test thread.
 */
public final class MovableClock extends Clock {

    private volatile Instant instant;

    public MovableClock(Instant instant) {
        this.instant = instant;
    }

    public void set(Instant instant) {
        this.instant = instant;
    }

    public void advance(Duration by) {
        this.instant = instant.plus(by);
    }

    @Override
    public Instant instant() {
        return instant;
    }

    @Override
    public ZoneId getZone() {
        return ZoneOffset.UTC;
    }

    @Override
    public Clock withZone(ZoneId zone) {
        return this;
    }
}
