package dev.mtlsproxy.core.log;

import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonFactoryBuilder;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.SerializableString;
import com.fasterxml.jackson.core.StreamWriteFeature;
import com.fasterxml.jackson.core.io.SerializedString;
import com.fasterxml.jackson.core.json.JsonWriteFeature;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
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
    /**
     * Closing a generator neither closes nor flushes the stream: the writer decides when bytes leave the buffer.
     * A character outside the BMP (an emoji in a certificate's subject) is written as its four UTF-8 bytes, as the
     * audit and handshake lines (written as characters, encoded by logback) carry it: Jackson's byte writer would
     * otherwise write two escapes of its UTF-16 halves, valid JSON but unreadable to anyone reading or grepping the
     * log. Only text holding surrogates takes another path.
     */
    private static final JsonFactory JSON = new JsonFactoryBuilder()
            .disable(StreamWriteFeature.AUTO_CLOSE_TARGET)
            .disable(StreamWriteFeature.FLUSH_PASSED_TO_STREAM)
            .enable(JsonWriteFeature.COMBINE_UNICODE_SURROGATES_IN_UTF8)
            .rootValueSeparator((String) null)
            .build();
    /** Entries the writer takes from the queue at once; while stuck it may hold this many. */
    public static final int BATCH = 256;
    private static final int BUFFER_BYTES = 64 * 1024;
    /** How long a writer that has caught up sleeps before it looks again; a line reaches the file this much later. */
    private static final long NAP_MILLIS = 1;
    /** How long the writer waits after its output failed before it tries again. */
    private static final long RETRY_MILLIS = 1000;

    /* Field names quoted and encoded once, not on every line. */
    private static final SerializableString TIME = new SerializedString("time");
    private static final SerializableString CONNECTION = new SerializedString("connection");
    private static final SerializableString CLIENT = new SerializedString("client");
    private static final SerializableString IDENTITY = new SerializedString("identity");
    private static final SerializableString PEER = new SerializedString("peer");
    private static final SerializableString FINGERPRINT = new SerializedString("fingerprint");
    private static final SerializableString ROUTE = new SerializedString("route");
    private static final SerializableString RULE = new SerializedString("rule");
    private static final SerializableString DECISION = new SerializedString("decision");
    private static final SerializableString METHOD = new SerializedString("method");
    private static final SerializableString PATH = new SerializedString("path");
    private static final SerializableString STATUS = new SerializedString("status");
    private static final SerializableString BYTES_IN = new SerializedString("bytesIn");
    private static final SerializableString BYTES_OUT = new SerializedString("bytesOut");
    private static final SerializableString DURATION_MICROS = new SerializedString("durationMicros");
    private static final SerializableString BACKEND = new SerializedString("backend");
    private static final SerializableString TLS_VERSION = new SerializedString("tlsVersion");
    private static final SerializableString CIPHER = new SerializedString("cipher");
    private static final SerializableString TLS_GROUP = new SerializedString("tlsGroup");

    private final BlockingQueue<AccessLogEntry> queue;
    /** The file written to, reopened on request; null when writing to a stream given (stdout). */
    private final Path file;
    /** Confined to the writer thread once started. */
    private OutputStream out;
    private final Thread writer;
    private volatile boolean reopenRequested;
    private final AtomicLong dropped = new AtomicLong();
    /** Confined to the writer thread. */
    private final TimestampText timestamps = new TimestampText();
    /** Entries of the current batch handed to the buffer so far; writer thread only. */
    private int encoded;
    private volatile boolean closed;

    public AsyncJsonAccessLog(OutputStream out, int capacity) {
        this(null, out, capacity);
    }

    private AsyncJsonAccessLog(Path file, OutputStream out, int capacity) {
        this.queue = new ArrayBlockingQueue<>(capacity);
        this.file = file;
        this.out = new BufferedOutputStream(out, BUFFER_BYTES);
        this.writer = new Thread(this::run, "access-log");
        this.writer.setDaemon(true);
        this.writer.start();
    }

    /** Appends to {@code file}, creating it if need be; {@link #reopen} opens it anew by name. */
    public static AsyncJsonAccessLog toFile(Path file, int capacity) throws IOException {
        return new AsyncJsonAccessLog(file, open(file), capacity);
    }

    private static OutputStream open(Path file) throws IOException {
        return Files.newOutputStream(file, StandardOpenOption.CREATE, StandardOpenOption.APPEND,
                StandardOpenOption.WRITE);
    }

    /**
     * Asks the writer to close the file and open it again by name, as logrotate's {@code postrotate} expects: after
     * the file was renamed, lines go to a new file at the configured path instead of on into the renamed one.
     * Nothing is lost: what was buffered goes to the old file first. No effect when writing to stdout.
     */
    public void reopen() {
        reopenRequested = true;
    }

    @Override
    public void log(AccessLogEntry entry) {
        if (!queue.offer(entry)) {
            dropped.incrementAndGet();
        }
    }

    /** Entries lost: the queue was full, or the output failed while they were being written. */
    public long dropped() {
        return dropped.get();
    }

    private void run() {
        List<AccessLogEntry> batch = new ArrayList<>(BATCH);
        while (!closed || !queue.isEmpty()) {
            try {
                if (reopenRequested) {
                    reopenNow();
                }
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
                    try {
                        write(batch);
                    } catch (IOException e) {
                        // The entries that never reached the buffer are lost: counted, as a full queue's are.
                        dropped.addAndGet(batch.size() - encoded);
                        throw e;
                    }
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
            if (file != null) {
                out.close();
            } else {
                out.flush(); // stdout is not ours to close
            }
        } catch (IOException e) {
            log.warn("event=access_log_write_failed cause={}", e.toString());
        }
    }

    /** On the writer. The new file is opened first: when that fails, lines keep going to the old one. */
    private void reopenNow() {
        reopenRequested = false;
        if (file == null) {
            return;
        }
        OutputStream next;
        try {
            next = new BufferedOutputStream(open(file), BUFFER_BYTES);
        } catch (IOException e) {
            log.warn("event=access_log_reopen_failed path={} cause={}", file, e.toString());
            return;
        }
        OutputStream previous = out;
        out = next;
        try {
            previous.close(); // flushes what was buffered into the old file
        } catch (IOException e) {
            log.warn("event=access_log_write_failed cause={}", e.toString());
        }
        log.info("event=access_log_reopened path={}", file);
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

    /** One JSON object and a newline per entry, into the buffer; {@link #encoded} counts them as they go. */
    private void write(List<AccessLogEntry> batch) throws IOException {
        encoded = 0;
        try (JsonGenerator g = JSON.createGenerator(out, JsonEncoding.UTF8)) {
            for (AccessLogEntry e : batch) {
                g.writeStartObject();
                g.writeFieldName(TIME);
                g.writeString(timestamps.chars(), 0, timestamps.format(e.time()));
                field(g, CONNECTION, e.connectionId());
                field(g, CLIENT, e.client());
                field(g, IDENTITY, e.identity());
                field(g, PEER, e.peer());
                field(g, FINGERPRINT, e.fingerprint());
                field(g, ROUTE, e.route());
                field(g, RULE, e.rule());
                field(g, DECISION, e.decision());
                field(g, METHOD, e.method());
                field(g, PATH, e.path());
                field(g, STATUS, e.status());
                field(g, BYTES_IN, e.bytesIn());
                field(g, BYTES_OUT, e.bytesOut());
                field(g, DURATION_MICROS, e.durationMicros());
                field(g, BACKEND, e.backend());
                field(g, TLS_VERSION, e.tlsVersion());
                field(g, CIPHER, e.cipher());
                field(g, TLS_GROUP, e.tlsGroup());
                g.writeEndObject();
                g.writeRaw('\n');
                g.flush(); // into the buffer (FLUSH_PASSED_TO_STREAM is off): the entry has left the generator
                encoded++;
            }
        }
    }

    /** A null value is written as JSON null; a lone surrogate as U+FFFD ({@link LogText}). */
    private static void field(JsonGenerator g, SerializableString name, String value) throws IOException {
        g.writeFieldName(name);
        g.writeString(LogText.wellFormed(value));
    }

    private static void field(JsonGenerator g, SerializableString name, long value) throws IOException {
        g.writeFieldName(name);
        g.writeNumber(value);
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
