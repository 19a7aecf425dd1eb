package dev.mtlsproxy.core.log;

import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonFactoryBuilder;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.StreamWriteFeature;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes access log entries as JSON lines from a dedicated thread. The event loop only offers to a bounded queue;
 * when the queue is full the entry is dropped and counted, so a slow disk or pipe never slows a request.
 *
 * <p>Lines go through a buffer that is flushed whenever the writer has caught up with the queue: under load one write
 * call carries many lines, and a line written while the proxy is quiet still reaches the output within milliseconds.
 * A writer that has caught up naps instead of waiting on the queue, because a waiting writer is woken by every offer:
 * in the benchmark those wake-ups cost more than the writing (with the log on, proxy CPU per request went from
 * 29-32 to 20-21 µs; docs/BENCHMARKS.md, issue #8).
 */
public final class AsyncJsonAccessLog implements AccessLog, AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(AsyncJsonAccessLog.class);
    /** Closing a generator neither closes nor flushes the stream: the writer decides when bytes leave the buffer. */
    private static final JsonFactory JSON = new JsonFactoryBuilder()
            .disable(StreamWriteFeature.AUTO_CLOSE_TARGET)
            .disable(StreamWriteFeature.FLUSH_PASSED_TO_STREAM)
            .rootValueSeparator((String) null)
            .build();
    /** Entries the writer takes from the queue at once; while stuck it may hold this many. */
    public static final int BATCH = 256;
    private static final int BUFFER_BYTES = 64 * 1024;
    /** How long a writer that has caught up sleeps before it looks again; a line reaches the file this much later. */
    private static final long NAP_MILLIS = 1;
    /** How long the writer waits after its output failed before it tries again. */
    private static final long RETRY_MILLIS = 1000;

    private final BlockingQueue<AccessLogEntry> queue;
    private final OutputStream out;
    private final Thread writer;
    private final AtomicLong dropped = new AtomicLong();
    private volatile boolean closed;

    public AsyncJsonAccessLog(OutputStream out, int capacity) {
        this.queue = new ArrayBlockingQueue<>(capacity);
        this.out = new BufferedOutputStream(out, BUFFER_BYTES);
        this.writer = new Thread(this::run, "access-log");
        this.writer.setDaemon(true);
        this.writer.start();
    }

    @Override
    public void log(AccessLogEntry entry) {
        if (!queue.offer(entry)) {
            dropped.incrementAndGet();
        }
    }

    /** Entries lost because the queue was full. */
    public long dropped() {
        return dropped.get();
    }

    private void run() {
        List<AccessLogEntry> batch = new ArrayList<>(BATCH);
        while (!closed || !queue.isEmpty()) {
            try {
                if (queue.drainTo(batch, BATCH) == 0) {
                    out.flush();
                    // Caught up. A nap rather than a wait on the queue: a waiting writer is woken by every offer,
                    // and under load those wake-ups cost the event loops more than the writing did (issue #8).
                    // Only a writer that found nothing after its nap waits, so an idle proxy does not poll.
                    Thread.sleep(NAP_MILLIS);
                    if (queue.isEmpty()) {
                        AccessLogEntry first = queue.poll(100, TimeUnit.MILLISECONDS);
                        if (first != null) {
                            batch.add(first);
                            queue.drainTo(batch, BATCH - 1);
                        }
                    }
                }
                if (!batch.isEmpty()) {
                    write(batch);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            } catch (IOException e) {
                log.warn("event=access_log_write_failed cause={}", e.toString());
                // A full disk or a closed pipe. What is buffered stays for the next try, and meanwhile the queue
                // fills and further entries are dropped and counted. Without a pause this loop would spin on the
                // failing flush, a warning each time.
                if (!pause(RETRY_MILLIS)) {
                    return;
                }
            } finally {
                batch.clear();
            }
        }
        try {
            out.flush();
        } catch (IOException e) {
            log.warn("event=access_log_write_failed cause={}", e.toString());
        }
    }

    /** Sleeps; false when interrupted, and the writer then stops. */
    private static boolean pause(long millis) {
        try {
            Thread.sleep(millis);
            return true;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    /** One JSON object and a newline per entry, into the buffer. */
    private void write(List<AccessLogEntry> batch) throws IOException {
        try (JsonGenerator g = JSON.createGenerator(out, JsonEncoding.UTF8)) {
            for (AccessLogEntry e : batch) {
                g.writeStartObject();
                g.writeStringField("time", e.time().toString());
                g.writeStringField("connection", e.connectionId());
                g.writeStringField("client", e.client());
                g.writeStringField("identity", e.identity());
                g.writeStringField("peer", e.peer());
                g.writeStringField("fingerprint", e.fingerprint());
                g.writeStringField("route", e.route());
                g.writeStringField("rule", e.rule());
                g.writeStringField("decision", e.decision());
                g.writeStringField("method", e.method());
                g.writeStringField("path", e.path());
                g.writeNumberField("status", e.status());
                g.writeNumberField("bytesIn", e.bytesIn());
                g.writeNumberField("bytesOut", e.bytesOut());
                g.writeNumberField("durationMicros", e.durationMicros());
                g.writeStringField("backend", e.backend());
                g.writeStringField("tlsVersion", e.tlsVersion());
                g.writeStringField("cipher", e.cipher());
                g.writeStringField("tlsGroup", e.tlsGroup());
                g.writeEndObject();
                g.writeRaw('\n');
            }
        }
    }

    /** Drains what is queued, then stops the writer. */
    @Override
    public void close() {
        closed = true;
        try {
            writer.join(TimeUnit.SECONDS.toMillis(5));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
