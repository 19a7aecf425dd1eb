package dev.mtlsproxy.app;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Operators search their logs for the events the documentation names: every event the code logs is described in
 * docs/LOGS.md, and every event the README or docs/ name ({@code event=NAME} or {@code "event":"NAME"}) is one the
 * code logs. Events are read from the main sources of every module, where each is a literal: {@code event=NAME} in a
 * log format, or a JSON line's {@code field(g, "event", ...)}.
 */
class DocumentedLogEventsTest {

    /** Maven runs tests in the module directory. */
    private static final Path ROOT = Path.of("..");
    private static final List<String> MODULES = List.of("proxy-config", "proxy-core", "proxy-app");
    private static final Pattern TEXT_EVENT = Pattern.compile("event=([a-z_]+)");
    private static final Pattern JSON_EVENT_FIELD = Pattern.compile("\"event\",(.*)");
    private static final Pattern STRING_LITERAL = Pattern.compile("\"([a-z_]+)\"");
    private static final Pattern DOCUMENTED = Pattern.compile("event=([a-z_]+)|\"event\":\"([a-z_]+)\"");
    /** A row of docs/LOGS.md's tables: | `name` | level | what |. */
    private static final Pattern LOGS_ROW = Pattern.compile("(?m)^\\| `([a-z_]+)` \\|");
    private static final Path LOGS_MD = ROOT.resolve("docs").resolve("LOGS.md");

    @Test
    void everyLoggedEventIsInDocsLogsMd() throws IOException {
        Set<String> described = described();

        Set<String> undescribed = new TreeSet<>(logged());
        undescribed.removeAll(described);

        assertThat(undescribed).as("events the code logs that docs/LOGS.md does not describe").isEmpty();
    }

    @Test
    void everyDocumentedEventIsLogged() throws IOException {
        Set<String> named = new TreeSet<>(documented(Files.readString(ROOT.resolve("README.md"))));
        named.addAll(described());
        try (Stream<Path> docs = Files.list(ROOT.resolve("docs"))) {
            docs.filter(f -> f.toString().endsWith(".md")).forEach(f -> named.addAll(documented(read(f))));
        }

        named.removeAll(logged());

        assertThat(named).as("events the README or docs/ name that the code never logs").isEmpty();
    }

    /** The checker itself, on both spellings of an event in code and in documentation. */
    @Test
    void eventsAreFoundInCodeAndInDocs() {
        assertThat(events("""
                log.info("event=listening listener={} address={}", name, address);
                field(g, "event", decision.dryRunDeny() ? "dry_run_denied" : "denied");
                // a comment naming event=not_an_event is no log line
                """)).containsExactlyInAnyOrder("listening", "dry_run_denied", "denied");
        assertThat(documented("logged as `event=drain_timeout connections_cut=N`, audit `\"event\":\"denied\"`"))
                .containsExactlyInAnyOrder("drain_timeout", "denied");
        assertThat(described("""
                | event | level | what |
                |---|---|---|
                | `starting` | INFO | first line |
                | `"event":"denied"` | INFO | audit |
                """)).containsExactlyInAnyOrder("starting", "denied");
    }

    private static Set<String> logged() throws IOException {
        Set<String> events = new TreeSet<>();
        for (String module : MODULES) {
            try (Stream<Path> files = Files.walk(ROOT.resolve(module).resolve("src").resolve("main"))) {
                files.filter(f -> f.toString().endsWith(".java")).forEach(f -> events.addAll(events(read(f))));
            }
        }
        assertThat(events).as("events found in the main sources").hasSizeGreaterThan(30);
        return events;
    }

    /** Events logged by this source text; comments and Javadoc name events without logging them. */
    private static Set<String> events(String source) {
        Set<String> events = new TreeSet<>();
        source.lines().map(String::strip)
                .filter(line -> !line.startsWith("*") && !line.startsWith("/*") && !line.startsWith("//"))
                .forEach(line -> {
                    Matcher text = TEXT_EVENT.matcher(line);
                    while (text.find()) {
                        events.add(text.group(1));
                    }
                    Matcher json = JSON_EVENT_FIELD.matcher(line);
                    if (json.find()) {
                        Matcher literal = STRING_LITERAL.matcher(json.group(1));
                        while (literal.find()) {
                            events.add(literal.group(1));
                        }
                    }
                });
        return events;
    }

    /** The events docs/LOGS.md describes: its table rows, and the JSON lines' events. */
    private static Set<String> described() throws IOException {
        Set<String> events = described(Files.readString(LOGS_MD));
        assertThat(events).as("events described in docs/LOGS.md").hasSizeGreaterThan(30);
        return events;
    }

    private static Set<String> described(String logsMd) {
        Set<String> events = documented(logsMd);
        Matcher row = LOGS_ROW.matcher(logsMd);
        while (row.find()) {
            events.add(row.group(1));
        }
        return events;
    }

    private static Set<String> documented(String doc) {
        Set<String> events = new TreeSet<>();
        Matcher m = DOCUMENTED.matcher(doc);
        while (m.find()) {
            events.add(m.group(1) != null ? m.group(1) : m.group(2));
        }
        return events;
    }

    private static String read(Path file) {
        try {
            return Files.readString(file);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
