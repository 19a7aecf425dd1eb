package dev.mtlsproxy.core.testing;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.AppenderBase;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Predicate;
import org.slf4j.LoggerFactory;

/** Collects the formatted log lines of one logger while a test runs; thread-safe. */
public final class LogCapture extends AppenderBase<ILoggingEvent> implements AutoCloseable {

    private final Logger logger;
    private final List<String> lines = new CopyOnWriteArrayList<>();
    /** What {@link #quietly} found, to put back on close; null when the lines also go to the console. */
    private Boolean wasAdditive;

    private LogCapture(Logger logger) {
        this.logger = logger;
    }

    /** Starts capturing what {@code type}'s logger writes. */
    public static LogCapture of(Class<?> type) {
        return of(type.getName());
    }

    public static LogCapture of(String loggerName) {
        Logger logger = (Logger) LoggerFactory.getLogger(loggerName);
        LogCapture capture = new LogCapture(logger);
        capture.setContext(logger.getLoggerContext());
        capture.start();
        logger.addAppender(capture);
        return capture;
    }

    /**
     * Starts capturing what {@code type}'s logger writes and keeps those lines off the console until closed: for a
     * test that provokes warnings by the hundred and checks them itself (they are expected, and would drown whatever
     * else the build prints). Only this logger goes quiet; every other one, Netty's leak reports included, still prints.
     * Close it in the test's own clean-up, or the logger stays quiet for the test classes after it.
     */
    public static LogCapture quietly(Class<?> type) {
        LogCapture capture = of(type);
        capture.wasAdditive = capture.logger.isAdditive();
        // The console appender sits on the root logger (logback-test.xml): a non-additive logger does not reach it.
        capture.logger.setAdditive(false);
        return capture;
    }

    @Override
    protected void append(ILoggingEvent event) {
        lines.add(event.getFormattedMessage());
    }

    public List<String> lines() {
        return List.copyOf(lines);
    }

    /** The first line containing every fragment, waiting up to five seconds for it. */
    public String await(String... fragments) {
        Predicate<String> all = line -> {
            for (String f : fragments) {
                if (!line.contains(f)) {
                    return false;
                }
            }
            return true;
        };
        long deadline = System.nanoTime() + Duration.ofSeconds(5).toNanos();
        while (System.nanoTime() < deadline) {
            for (String line : lines) {
                if (all.test(line)) {
                    return line;
                }
            }
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        throw new AssertionError("no log line with " + List.of(fragments) + "; lines were:\n"
                + String.join("\n", lines));
    }

    @Override
    public void close() {
        if (wasAdditive != null) {
            logger.setAdditive(wasAdditive);
        }
        logger.detachAppender(this);
        stop();
    }
}
