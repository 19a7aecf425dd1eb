package dev.mtlsproxy.core.testing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.platform.launcher.LauncherDiscoveryRequest;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;
import org.junit.platform.launcher.listeners.SummaryGeneratingListener;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@link LogCapture#quietly}: a logger's lines are captured but do not reach its parents (where the console appender
 * sits), and once the capture is closed they do again, so the quiet does not spill into later test classes. A
 * capture on the parent logger stands in for the console. Registered on a static field, JUnit closes it once the
 * class is done; on an instance field, once the test is.
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

    @Test
    void aQuietCaptureOnAStaticFieldIsClosedAfterItsClassesLastTest() {
        try (LogCapture parent = LogCapture.of(LogCaptureTest.class.getPackageName())) {
            SummaryGeneratingListener summary = new SummaryGeneratingListener();
            LauncherDiscoveryRequest onlyThatClass = LauncherDiscoveryRequestBuilder.request()
                    .selectors(selectClass(QuietForTheWholeClass.class))
                    .build();
            LauncherFactory.create().execute(onlyThatClass, summary);

            assertThat(summary.getSummary().getTestsSucceededCount()).as("the class ran").isEqualTo(1);
            assertThat(QuietForTheWholeClass.quiet.lines()).containsExactly("event=in_the_class n=1");
            assertThat(parent.lines()).as("on the way to the console").isEmpty();

            log.info("event=after_the_class n=2");

            assertThat(parent.lines()).containsExactly("event=after_the_class n=2");
            assertThat(QuietForTheWholeClass.quiet.lines()).as("detached").containsExactly("event=in_the_class n=1");
        }
    }

    @Test
    void aCaptureOnAnInstanceFieldHoldsOneTestsLinesAndIsClosedAfterItEvenWhenItsCleanUpThrows() {
        try (LogCapture parent = LogCapture.of(LogCaptureTest.class.getPackageName())) {
            SummaryGeneratingListener summary = new SummaryGeneratingListener();
            LauncherFactory.create().execute(LauncherDiscoveryRequestBuilder.request()
                    .selectors(selectClass(QuietForEachTest.class)).build(), summary);

            assertThat(summary.getSummary().getTestsFailedCount()).as("both ran, and their clean-up threw")
                    .isEqualTo(2);
            assertThat(QuietForEachTest.captures).hasSize(2);
            assertThat(QuietForEachTest.captures.get(0).lines()).hasSize(1);
            assertThat(QuietForEachTest.captures.get(1).lines()).hasSize(1)
                    .doesNotContainAnyElementsOf(QuietForEachTest.captures.get(0).lines());
            assertThat(parent.lines()).as("on the way to the console").isEmpty();

            log.info("event=after_the_tests n=3");

            assertThat(parent.lines()).containsExactly("event=after_the_tests n=3");
            for (LogCapture each : QuietForEachTest.captures) {
                assertThat(each.lines()).as("detached").hasSize(1);
            }
        }
    }

    /** Not run by the build itself (surefire skips nested classes): the test above runs it on a launcher of its own. */
    static class QuietForEachTest {

        static final List<LogCapture> captures = new CopyOnWriteArrayList<>();

        @RegisterExtension
        final LogCapture quiet = LogCapture.quietly(LogCaptureTest.class);

        @BeforeEach
        void remember() {
            captures.add(quiet);
        }

        @AfterEach
        void cleanUpThatThrows() {
            throw new IllegalStateException("a clean-up that fails before it closes anything");
        }

        @Test
        void first() {
            log.info("event=first n=1");
        }

        @Test
        void second() {
            log.info("event=second n=2");
        }
    }

    /** Not run by the build itself (surefire skips nested classes): the test above runs it on a launcher of its own. */
    static class QuietForTheWholeClass {

        @RegisterExtension
        static final LogCapture quiet = LogCapture.quietly(LogCaptureTest.class);

        @Test
        void logs() {
            log.info("event=in_the_class n=1");
        }
    }
}
