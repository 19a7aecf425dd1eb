package dev.mtlsproxy.core.testing;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@link LogCapture#quietly}: a logger's lines are captured but do not reach its parents (where the console appender
 * sits), and once the capture is closed they do again, so the quiet does not spill into later test classes. A
 * capture on the parent logger stands in for the console.
 */
class LogCaptureTest {

    static final Logger log = LoggerFactory.getLogger(LogCaptureTest.class);

    @Test
    void aQuietCaptureKeepsItsLoggersLinesFromTheParentsUntilClosed() {
        try (LogCapture parent = LogCapture.of(LogCaptureTest.class.getPackageName())) {
            try (LogCapture quiet = LogCapture.quietly(LogCaptureTest.class)) {
                log.info("event=expected n=1");

                assertThat(quiet.lines()).containsExactly("event=expected n=1");
                assertThat(parent.lines()).as("on the way to the console").isEmpty();
            }
            log.info("event=after_close n=2");

            assertThat(parent.lines()).containsExactly("event=after_close n=2");
        }
    }
}
