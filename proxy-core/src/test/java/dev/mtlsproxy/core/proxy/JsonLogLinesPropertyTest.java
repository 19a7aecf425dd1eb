package dev.mtlsproxy.core.proxy;

import static dev.mtlsproxy.core.testing.HostileText.expectedInLog;
import static dev.mtlsproxy.core.testing.HostileText.seedNote;
import static org.assertj.core.api.Assertions.assertThat;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.encoder.JsonEncoder;
import ch.qos.logback.classic.encoder.PatternLayoutEncoder;
import ch.qos.logback.classic.spi.LoggingEvent;
import com.fasterxml.jackson.databind.JsonNode;
import dev.mtlsproxy.core.identity.PeerIdentities;
import dev.mtlsproxy.core.identity.PeerIdentity;
import dev.mtlsproxy.core.log.AccessLogEntry;
import dev.mtlsproxy.core.log.AsyncJsonAccessLog;
import dev.mtlsproxy.core.policy.DenyReason;
import dev.mtlsproxy.core.policy.PolicyDecision;
import dev.mtlsproxy.core.testing.HostileText;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The access log and the audit log are JSON lines that shippers parse; every string a client or a CA can choose
 * reaches them (path, method, the certificate's subject and SANs, and here every other string field too). Random
 * hostile strings ({@link HostileText}) go through the real writers: {@link AsyncJsonAccessLog}, and
 * {@link AuditLine} as logback writes it in both log formats. Each line must be exactly one JSON object (no raw
 * newline in it), valid UTF-8, and give back each field as {@link HostileText#expectedInLog} says: the input, with
 * a lone surrogate as U+FFFD; the access log writes a character outside the BMP as its UTF-8 bytes, never as escaped
 * surrogates. The seed is printed with every failure.
 */
class JsonLogLinesPropertyTest {

    private static final int CASES = 400;

    @Test
    void everyAccessLogLineIsOneJsonObjectThatGivesBackEveryField() {
        Random random = new Random(HostileText.SEED);
        List<AccessLogEntry> entries = new ArrayList<>();
        for (int i = 0; i < CASES; i++) {
            Instant time = Instant.ofEpochSecond(random.nextInt(2_000_000_000), random.nextInt(1_000_000_000));
            entries.add(new AccessLogEntry(time, text(random), text(random), text(random), text(random), text(random),
                    text(random), text(random), text(random), text(random), text(random), random.nextInt(600),
                    random.nextLong(Long.MAX_VALUE), random.nextLong(Long.MAX_VALUE), random.nextLong(Long.MAX_VALUE),
                    text(random), text(random), text(random), text(random)));
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        AsyncJsonAccessLog log = new AsyncJsonAccessLog(out, CASES);
        entries.forEach(log::log);
        log.close();

        List<JsonNode> lines = HostileText.parseLines(out.toByteArray());

        assertThat(log.dropped()).as(seedNote()).isZero();
        // A pair is written as the 4-byte UTF-8 of its character, a lone surrogate as U+FFFD: neither as an escape.
        assertThat(surrogateEscapes(out.toString(StandardCharsets.UTF_8))).as(seedNote()).isEmpty();
        assertThat(lines).as(seedNote()).hasSize(CASES);
        for (int i = 0; i < CASES; i++) {
            AccessLogEntry e = entries.get(i);
            Map<String, Object> expected = new LinkedHashMap<>();
            expected.put("time", e.time().toString());
            expected.put("connection", expectedInLog(e.connectionId()));
            expected.put("client", expectedInLog(e.client()));
            expected.put("identity", expectedInLog(e.identity()));
            expected.put("peer", expectedInLog(e.peer()));
            expected.put("fingerprint", expectedInLog(e.fingerprint()));
            expected.put("route", expectedInLog(e.route()));
            expected.put("rule", expectedInLog(e.rule()));
            expected.put("decision", expectedInLog(e.decision()));
            expected.put("method", expectedInLog(e.method()));
            expected.put("path", expectedInLog(e.path()));
            expected.put("status", (long) e.status());
            expected.put("bytesIn", e.bytesIn());
            expected.put("bytesOut", e.bytesOut());
            expected.put("durationMicros", e.durationMicros());
            expected.put("backend", expectedInLog(e.backend()));
            expected.put("tlsVersion", expectedInLog(e.tlsVersion()));
            expected.put("cipher", expectedInLog(e.cipher()));
            expected.put("tlsGroup", expectedInLog(e.tlsGroup()));
            HostileText.assertFields(lines.get(i), expected, "access log entry " + i);
        }
    }

    @Test
    void everyAuditLineIsOneJsonObjectThatGivesBackEveryFieldInBothLogFormats() throws Exception {
        Random random = new Random(HostileText.SEED ^ 0xa0d17L);
        LoggerContext context = new LoggerContext();
        PatternLayoutEncoder text = new PatternLayoutEncoder();
        text.setContext(context);
        text.setPattern("%msg%n"); // logback.xml's pattern ends so; what comes before the message is ours
        text.start();
        // As logback-json.xml configures it (proxy-app): the line is the formattedMessage of one JSON object.
        JsonEncoder json = new JsonEncoder();
        json.setContext(context);
        json.setWithSequenceNumber(false);
        json.setWithMDC(false);
        json.setWithKVPList(false);
        json.setWithArguments(false);
        json.setWithMessage(false);
        json.setWithFormattedMessage(true);
        json.start();

        for (int i = 0; i < CASES; i++) {
            String listener = text(random);
            String remote = text(random);
            String identity = HostileText.next(random);
            String method = text(random);
            String path = text(random);
            String detail = HostileText.next(random);
            String anchor = text(random);
            List<String> uris = random.nextBoolean() ? List.of(HostileText.next(random)) : List.of();
            PeerIdentity peer = PeerIdentities.described(uris, List.of(), List.of(), List.of(),
                    HostileText.next(random), HostileText.next(random), anchor);
            DenyReason reason = DenyReason.values()[random.nextInt(DenyReason.values().length)];
            PolicyDecision decision = new PolicyDecision(random.nextBoolean() ? PolicyDecision.Outcome.DENY
                    : PolicyDecision.Outcome.NO_ROUTE, null, random.nextInt(3), identity, reason, detail);

            // The identity is named by the decision: the policy is not asked.
            String line = AuditLine.json(listener, remote, peer, null, method, path, decision);

            Map<String, Object> expected = new LinkedHashMap<>();
            expected.put("event", "denied");
            expected.put("listener", expectedInLog(listener));
            expected.put("remote", expectedInLog(remote));
            expected.put("identity", expectedInLog(identity));
            expected.put("peer", expectedInLog(peer.displayName()));
            expected.put("fingerprint", "");
            expected.put("trustAnchor", expectedInLog(anchor));
            expected.put("route", "-");
            expected.put("rule", decision.ruleLabel());
            expected.put("reason", decision.reasonText());
            if (!detail.isEmpty()) {
                expected.put("detail", expectedInLog(detail));
            }
            expected.put("method", expectedInLog(method));
            expected.put("path", expectedInLog(path));

            LoggingEvent event = new LoggingEvent(AuditLine.class.getName(), context.getLogger("dev.mtlsproxy.audit"),
                    Level.INFO, "{}", null, new Object[] {line});
            byte[] textLine = text.encode(event);
            byte[] jsonLine = json.encode(event);
            assertThat(surrogateEscapes(new String(textLine, StandardCharsets.UTF_8))).as(seedNote()).isEmpty();
            assertThat(surrogateEscapes(new String(jsonLine, StandardCharsets.UTF_8))).as(seedNote()).isEmpty();
            List<JsonNode> asText = HostileText.parseLines(textLine);
            assertThat(asText).as(seedNote()).hasSize(1);
            HostileText.assertFields(asText.get(0), expected, "audit case " + i + " as text");
            List<JsonNode> asJson = HostileText.parseLines(jsonLine);
            assertThat(asJson).as(seedNote()).hasSize(1);
            JsonNode inner = HostileText.parseLine(asJson.get(0).get("formattedMessage").asText());
            HostileText.assertFields(inner, expected, "audit case " + i + " as JSON");
        }
    }

    /** The escapes in {@code json} of a code unit from D800 to DFFF (a surrogate); an escaped backslash is none. */
    private static List<String> surrogateEscapes(String json) {
        List<String> found = new ArrayList<>();
        for (int i = 0; i < json.length(); i++) {
            if (json.charAt(i) != '\\') {
                continue;
            }
            i++; // the escaped character: a backslash escaped is skipped whole
            if (json.charAt(i) == 'u') {
                int unit = Integer.parseInt(json.substring(i + 1, i + 5), 16);
                if (Character.isSurrogate((char) unit)) {
                    found.add(json.substring(i - 1, i + 5));
                }
                i += 4;
            }
        }
        return found;
    }

    /** Mostly hostile, sometimes null (a field the writer must spell as JSON null). */
    private static String text(Random random) {
        return random.nextInt(10) == 0 ? null : HostileText.next(random);
    }
}
