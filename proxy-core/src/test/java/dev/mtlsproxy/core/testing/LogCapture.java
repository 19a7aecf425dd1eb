package dev.mtlsproxy.core.testing;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.AppenderBase;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Predicate;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.slf4j.LoggerFactory;

/**
 * Collects the formatted log lines of one logger while a test runs; thread-safe.
 *
 * <p>Within one test, open it with try-with-resources. For a whole test class, register it on a static field:
 * <pre>{@code
 * @RegisterExtension
 * static final LogCapture log = LogCapture.of(ForwardingHandler.class);
 * }</pre>
 * It captures from the moment the class is initialised (before any fixture starts a proxy, so start-up lines are
 * in it) and is closed after the class's last {@code @AfterAll}, also when the class's set-up failed. Every test
 * class in a surefire JVM shares the logger tree, so a capture left open would keep its appender, and for
 * {@link #quietly} the logger's silence, in the classes that run after it.
 *
 * <p>For one test's lines only, register it on an instance field instead: each test gets its own, and it is closed
 * after that test's last {@code @AfterEach}, also when one of those throws (a close in an {@code @AfterEach} method
 * is skipped by anything that throws before it).
 * <pre>{@code
 * @RegisterExtension
 * final LogCapture log = LogCapture.of(ForwardingHandler.class);
 * }</pre>
 */
public final class LogCapture extends AppenderBase<ILoggingEvent>
        implements AutoCloseable, BeforeAllCallback, AfterEachCallback, AfterAllCallback {

    private final Logger logger;
    private final List<String> lines = new CopyOnWriteArrayList<>();
    private final Map<String, String> thrown = new ConcurrentHashMap<>();
    /** What {@link #quietly} found, to put back on close; null when the lines also go to the console. */
    private Boolean wasAdditive;
    /** Registered on a static field: it spans its class. One on an instance field never sees beforeAll. */
    private volatile boolean spansClass;

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
     * Close it in the test's own clean-up or register it as above, or the logger stays quiet for the test classes after
     * it.
     */
    public static LogCapture quietly(Class<?> type) {
        return quietly(type.getName());
    }

    /** As {@link #quietly(Class)}, for a logger named otherwise, such as the audit log's. */
    public static LogCapture quietly(String loggerName) {
        LogCapture capture = of(loggerName);
        capture.wasAdditive = capture.logger.isAdditive();
        // The console appender sits on the root logger (logback-test.xml): a non-additive logger does not reach it.
        capture.logger.setAdditive(false);
        return capture;
    }

    @Override
    protected void append(ILoggingEvent event) {
        if (event.getThrowableProxy() != null) {
            thrown.put(event.getFormattedMessage(), event.getThrowableProxy().getClassName());
        }
        lines.add(event.getFormattedMessage());
    }

    /** The class of the exception logged with this line (its stack trace goes with it), or null when none was. */
    public String thrownWith(String line) {
        return thrown.get(line);
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
    public void beforeAll(ExtensionContext context) {
        spansClass = true;
    }

    @Override
    public void afterEach(ExtensionContext context) {
        if (!spansClass) {
            close();
        }
    }

    @Override
    public void afterAll(ExtensionContext context) {
        close();
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
