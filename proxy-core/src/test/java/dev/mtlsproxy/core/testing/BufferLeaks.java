package dev.mtlsproxy.core.testing;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.buffer.ByteBufAllocator;

/** Whether Netty's leak detector, captured from {@code ResourceLeakDetector}'s logger, reported a leaked buffer. */
public final class BufferLeaks {

    private BufferLeaks() {
    }

    /**
     * Paranoid leak detection reports a leaked buffer when it is collected and a later allocation looks: so collect,
     * allocate, and read what it logged.
     *
     * @param leaks       a capture of {@code io.netty.util.ResourceLeakDetector}'s logger, open while the test ran
     * @param description what a failure says, e.g. with the seed that replays the run
     */
    public static void assertNoneReported(LogCapture leaks, String description) {
        for (int i = 0; i < 3; i++) {
            System.gc();
            for (int j = 0; j < 64; j++) {
                ByteBufAllocator.DEFAULT.buffer(1).release();
            }
        }
        assertThat(leaks.lines()).as(description).noneMatch(line -> line.contains("LEAK"));
    }
}
