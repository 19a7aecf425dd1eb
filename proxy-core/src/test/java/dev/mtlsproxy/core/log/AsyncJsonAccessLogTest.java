package dev.mtlsproxy.core.log;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AsyncJsonAccessLogTest {

    static AccessLogEntry entry(String path, int status) {
        return new AccessLogEntry(Instant.parse("2026-11-24T10:00:00Z"), "c0ffee", "/127.0.0.1:5000", "orders",
                "spiffe://td/orders", "ab12", "orders-api", "allow:orders", "allow", "GET", path, status, 10, 20, 1234,
                "127.0.0.1:9000", "TLSv1.3", "TLS_AES_128_GCM_SHA256", "X25519MLKEM768");
    }

    @Test
    void eachRequestIsOneParsableJsonLineWithEveryField() throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        AsyncJsonAccessLog log = new AsyncJsonAccessLog(out, 16);
        log.log(entry("/a\"quoted\"\n", 200));
        log.log(entry("/b", 403));
        log.close();

        List<String> lines = out.toString(StandardCharsets.UTF_8).lines().toList();
        assertThat(lines).hasSize(2);
        JsonNode first = new ObjectMapper().readTree(lines.get(0));
        assertThat(first.get("path").asText()).isEqualTo("/a\"quoted\"\n");
        assertThat(first.get("status").asInt()).isEqualTo(200);
        assertThat(first.get("identity").asText()).isEqualTo("orders");
        assertThat(first.get("durationMicros").asLong()).isEqualTo(1234);
        assertThat(first.fieldNames()).toIterable().containsExactly("time", "connection", "client", "identity",
                "peer", "fingerprint", "route", "rule", "decision", "method", "path", "status", "bytesIn", "bytesOut",
                "durationMicros", "backend", "tlsVersion", "cipher", "tlsGroup");
        assertThat(new ObjectMapper().readTree(lines.get(1)).get("status").asInt()).isEqualTo(403);
    }

    @Test
    void aLineIsWrittenExactlyAsItWasBeforeTheWriterWasMadeFaster() throws Exception {
        // Log shippers parse these lines; the pre-encoded field names and the timestamp formatter must not change a
        // byte of them. Expected: what Instant.toString and writeStringField wrote, nulls and escapes included.
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        AsyncJsonAccessLog log = new AsyncJsonAccessLog(out, 16);
        log.log(new AccessLogEntry(Instant.parse("2026-11-24T10:00:00.000123Z"), "c0ffee", "/[::1]:5000", null,
                "CN=caf\u00e9", null, "-", "-", "no_route", "GET", "/x\u0001y", 404, 0, 9, 17, null, "TLSv1.2",
                "ECDHE-ECDSA-AES128-GCM-SHA256", null));
        log.close();

        assertThat(out.toString(StandardCharsets.UTF_8)).isEqualTo("{\"time\":\"2026-11-24T10:00:00.000123Z\","
                + "\"connection\":\"c0ffee\",\"client\":\"/[::1]:5000\",\"identity\":null,\"peer\":\"CN=caf\u00e9\","
                + "\"fingerprint\":null,\"route\":\"-\",\"rule\":\"-\",\"decision\":\"no_route\",\"method\":\"GET\","
                + "\"path\":\"/x\\u0001y\",\"status\":404,\"bytesIn\":0,\"bytesOut\":9,\"durationMicros\":17,"
                + "\"backend\":null,\"tlsVersion\":\"TLSv1.2\",\"cipher\":\"ECDHE-ECDSA-AES128-GCM-SHA256\","
                + "\"tlsGroup\":null}\n");
    }

    @Test
    void aLoneSurrogateIsWrittenAsTheReplacementCharacterNotAsAnEscapeThatStrictParsersReject() throws Exception {
        // Jackson wrote each as a lone JSON escape, which I-JSON forbids and serde_json-based shippers (Vector)
        // refuse, losing the whole line. A proper pair stays the character it encodes.
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        AsyncJsonAccessLog log = new AsyncJsonAccessLog(out, 16);
        log.log(entry("/a\uD800b\uDC00\uD83D\uDE00", 200));
        log.close();

        String line = out.toString(StandardCharsets.UTF_8);
        assertThat(line).contains("\"path\":\"/a\uFFFDb\uFFFD\uD83D\uDE00\"");
        assertThat(new ObjectMapper().readTree(line).get("path").asText()).isEqualTo("/a\uFFFDb\uFFFD\uD83D\uDE00");
    }

    /**
     * Jackson's byte writer wrote a character outside the BMP as the JSON escapes of its two UTF-16 halves (U+1F600
     * as twelve ASCII characters, the escapes of D83D and DE00): valid JSON, but a subject with an emoji was
     * unreadable in the log, and differed from the same subject in the audit and handshake lines, written as UTF-8.
     */
    @Test
    void aCharacterOutsideTheBmpIsWrittenAsItsFourUtf8BytesNotAsEscapedSurrogates() throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        AsyncJsonAccessLog log = new AsyncJsonAccessLog(out, 16);
        log.log(new AccessLogEntry(Instant.parse("2026-11-24T10:00:00Z"), "c0ffee", "/127.0.0.1:5000", "orders",
                "CN=smile \uD83D\uDE00,O=\uD800ops", "ab12", "orders-api", "allow:orders", "allow", "GET", "/", 200,
                10, 20, 1234, "127.0.0.1:9000", "TLSv1.3", "TLS_AES_128_GCM_SHA256", "X25519MLKEM768"));
        log.close();

        byte[] smile = {(byte) 0xF0, (byte) 0x9F, (byte) 0x98, (byte) 0x80}; // U+1F600 in UTF-8
        byte[] replacement = {(byte) 0xEF, (byte) 0xBF, (byte) 0xBD}; // U+FFFD: the lone surrogate
        String peer = "\"peer\":\"CN=smile " + new String(smile, StandardCharsets.ISO_8859_1) + ",O="
                + new String(replacement, StandardCharsets.ISO_8859_1) + "ops\"";
        assertThat(out.toString(StandardCharsets.ISO_8859_1)).contains(peer).doesNotContain("\\u");
    }

    @Test
    void aLineReachesTheOutputWhileTheLogStaysOpen() throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        AsyncJsonAccessLog log = new AsyncJsonAccessLog(out, 16);
        try {
            log.log(entry("/quiet", 200));

            await().atMost(Duration.ofSeconds(2)).until(() -> out.toString(StandardCharsets.UTF_8).endsWith("\n"));
            assertThat(out.toString(StandardCharsets.UTF_8)).contains("\"path\":\"/quiet\"");
        } finally {
            log.close();
        }
    }

    @Test
    void afterLogrotateRenamesTheFileAReopenWritesToANewFileAtThePathAndLosesNothing(@TempDir Path dir)
            throws Exception {
        Path file = dir.resolve("access.log");
        AsyncJsonAccessLog log = AsyncJsonAccessLog.toFile(file, 4096);
        try {
            for (int i = 0; i < 1000; i++) {
                log.log(entry("/before/" + i, 200));
            }
            Files.move(file, dir.resolve("access.log.1"));

            log.reopen();
            for (int i = 0; i < 1000; i++) {
                log.log(entry("/after/" + i, 200));
            }
        } finally {
            log.close();
        }
        // Lines in flight as the file is renamed may land on either side of the rotation; none is lost or doubled.
        List<String> paths = new ArrayList<>();
        for (String line : Files.readAllLines(dir.resolve("access.log.1"))) {
            paths.add(new ObjectMapper().readTree(line).get("path").asText());
        }
        List<String> reopened = Files.readAllLines(file);
        for (String line : reopened) {
            paths.add(new ObjectMapper().readTree(line).get("path").asText());
        }
        assertThat(paths).hasSize(2000).doesNotHaveDuplicates();
        assertThat(reopened).as("lines logged after the reopen go to the new file").isNotEmpty()
                .last().asString().contains("\"path\":\"/after/999\"");
    }

    @Test
    void everyLineOfABurstLargerThanTheBufferIsWrittenWhole() throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        AsyncJsonAccessLog log = new AsyncJsonAccessLog(out, 4096);
        for (int i = 0; i < 2000; i++) {
            log.log(entry("/burst/" + i, 200));
        }
        log.close();

        List<String> lines = out.toString(StandardCharsets.UTF_8).lines().toList();
        assertThat(log.dropped()).isZero();
        assertThat(lines).hasSize(2000);
        ObjectMapper json = new ObjectMapper();
        for (int i = 0; i < lines.size(); i++) {
            assertThat(json.readTree(lines.get(i)).get("path").asText()).isEqualTo("/burst/" + i);
        }
    }

    @Test
    void entriesLostToAFailingOutputAreCountedAsDroppedAndTheRestArriveWhole() throws Exception {
        FullDisk disk = new FullDisk();
        AsyncJsonAccessLog log = new AsyncJsonAccessLog(disk, 4096);
        for (int i = 0; i < 1000; i++) {
            log.log(entry("/burst/" + i, 200)); // several buffers' worth: the disk fails in the middle of a batch
        }
        await().atMost(Duration.ofSeconds(2)).until(() -> disk.attempts.get() > 0);
        // Past the writer's retry pause: its next batch, larger than the buffer, meets the full disk.
        Thread.sleep(1500);
        disk.full.set(false);
        log.close();

        List<String> lines = disk.written.toString(StandardCharsets.UTF_8).lines().toList();
        for (String line : lines) {
            assertThat(new ObjectMapper().readTree(line).get("path").asText()).startsWith("/burst/");
        }
        assertThat(log.dropped()).as("the rest of the batch that met the full disk").isPositive();
        assertThat(lines.size() + log.dropped()).isEqualTo(1000);
    }

    @Test
    void aFailingOutputIsRetriedAfterAPauseNotInALoopAndWhatWasBufferedArrivesOnceItRecovers() throws Exception {
        FullDisk disk = new FullDisk();
        AsyncJsonAccessLog log = new AsyncJsonAccessLog(disk, 16);
        try {
            log.log(entry("/while-full", 200));
            await().atMost(Duration.ofSeconds(2)).until(() -> disk.attempts.get() > 0);
            Thread.sleep(500);

            assertThat(disk.attempts.get()).as("write attempts in the half second after the first failure")
                    .isLessThan(3);

            disk.full.set(false);
            log.log(entry("/after", 200));
            await().atMost(Duration.ofSeconds(5)).until(() -> disk.written.toString(StandardCharsets.UTF_8)
                    .contains("/after"));
            assertThat(disk.written.toString(StandardCharsets.UTF_8)).contains("\"path\":\"/while-full\"");
        } finally {
            log.close();
        }
    }

    @Test
    void aStuckOutputDropsAndCountsEntriesInsteadOfBlockingTheCaller() throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        OutputStream stuck = new OutputStream() {
            @Override
            public void write(int b) {
                try {
                    release.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        };
        AsyncJsonAccessLog log = new AsyncJsonAccessLog(stuck, 4);
        long start = System.nanoTime();
        for (int i = 0; i < 1000; i++) {
            log.log(entry("/" + i, 200));
        }
        long elapsedMillis = (System.nanoTime() - start) / 1_000_000;

        // The stuck writer holds at most one batch (its 64 KiB buffer fills sooner) and the queue four; everything
        // else was dropped, not waited for.
        assertThat(log.dropped()).isGreaterThanOrEqualTo(1000 - 4 - AsyncJsonAccessLog.BATCH);
        assertThat(elapsedMillis).as("1000 log calls against a stuck output").isLessThan(1000);
        release.countDown();
        log.close();
    }

    /** An output that fails as a full disk does until {@link #full} is cleared, then keeps what it is given. */
    static final class FullDisk extends OutputStream {
        final AtomicInteger attempts = new AtomicInteger();
        final AtomicBoolean full = new AtomicBoolean(true);
        final ByteArrayOutputStream written = new ByteArrayOutputStream();

        @Override
        public void write(int b) throws IOException {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public synchronized void write(byte[] b, int off, int len) throws IOException {
            attempts.incrementAndGet();
            if (full.get()) {
                throw new IOException("No space left on device");
            }
            written.write(b, off, len);
        }
    }
}
