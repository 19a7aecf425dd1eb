package dev.mtlsproxy.core.log;

import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
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
 */
public final class AsyncJsonAccessLog implements AccessLog, AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(AsyncJsonAccessLog.class);
    private static final JsonFactory JSON = new JsonFactory();
    /** Entries the writer takes from the queue at once; while stuck it may hold this many. */
    public static final int BATCH = 256;

    private final BlockingQueue<AccessLogEntry> queue;
    private final OutputStream out;
    private final Thread writer;
    private final AtomicLong dropped = new AtomicLong();
    private volatile boolean closed;

    public AsyncJsonAccessLog(OutputStream out, int capacity) {
        this.queue = new ArrayBlockingQueue<>(capacity);
        this.out = out;
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
                AccessLogEntry first = queue.poll(100, TimeUnit.MILLISECONDS);
                if (first == null) {
                    continue;
                }
                batch.add(first);
                queue.drainTo(batch, BATCH - 1);
                for (AccessLogEntry e : batch) {
                    write(e);
                }
                out.flush();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            } catch (IOException e) {
                log.warn("event=access_log_write_failed cause={}", e.toString());
            } finally {
                batch.clear();
            }
        }
    }

    private void write(AccessLogEntry e) throws IOException {
        try (JsonGenerator g = JSON.createGenerator(new NonClosing(out), JsonEncoding.UTF8)) {
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
        }
        out.write('\n');
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

    /** The generator closes its target when done; stdout must stay open. */
    private static final class NonClosing extends java.io.FilterOutputStream {
        NonClosing(OutputStream out) {
            super(out);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            out.write(b, off, len);
        }

        @Override
        public void close() throws IOException {
            out.flush();
        }
    }
}
