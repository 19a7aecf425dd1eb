package dev.mtlsproxy.config;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.node.POJONode;
import com.fasterxml.jackson.databind.node.TextNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Seeded mutations of valid configurations (the test fixture, {@code config/example.yaml} and {@code config/demo.yaml},
 * with real certificates), each judged on the project's promise for bad input: loading either succeeds with records
 * that keep every documented invariant, or throws {@link ConfigException} whose every problem names a YAML path that
 * is in the document (or, for a missing key, a key of the schema under a parent that is), says what was expected,
 * and echoes no Java class name and no "null" the user did not write. Never another exception, never a hang. Mutations
 * of independent places, combined, must report every one of their problems.
 *
 * <p>Mutations: deleted keys and items; scalars of the wrong type, null, empty, huge, negative, NaN/Infinity, 0x/010/1e9
 * forms, YAML 1.1 booleans; lists for maps and maps for lists; typos of keys; duplicate keys and names; enums in other
 * cases; bad durations, sizes, ports, URLs, SPIFFE IDs, hosts, CIDRs and paths; references to names nobody defined;
 * very long and very deep values; anchors and aliases (the billion-laughs shape included), tags ({@code !!binary},
 * {@code !!java.lang.Object}, local tags), several documents, a BOM, tabs, truncation, and bytes that are not UTF-8.
 *
 * <p>The mix comes from one seed, printed with every failure together with the YAML;
 * {@code -Dmtlsproxy.test.seed=N} runs that mix again and {@code -Dmtlsproxy.test.seed=random} a new one. A case
 * that found a bug is kept as an explicit test in the class its message belongs to.
 */
class ConfigMutationTest {

    static final long SEED = seedOf(System.getProperty("mtlsproxy.test.seed", "1"));
    static final int SINGLE_CASES = 300;
    static final int COMBINED_CASES = 50;
    /** Far more than any load needs (a few milliseconds); a case that takes this long is hanging. */
    static final Duration CASE_TIMEOUT = Duration.ofSeconds(10);

    private static final YAMLMapper YAML = new YAMLMapper();
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern CLASS_NAME = Pattern.compile(
            "\\b(java|javax|jdk|sun|com\\.fasterxml|org\\.yaml|dev\\.mtlsproxy)\\.[a-z]|\\w+(Exception|Error)\\b"
                    + "|\\bclass \\w|`");
    private static final Pattern QUOTED = Pattern.compile("\"(?:[^\"\\\\]|\\\\.)*\"");
    private static final Pattern NULL_WORD = Pattern.compile("\\bnull\\b");

    @TempDir
    Path dir;

    private final List<Base> bases = new ArrayList<>();
    private final List<String> failures = new ArrayList<>();
    private int loaded;
    private ExecutorService loader;

    static long seedOf(String property) {
        return property.equals("random") ? new SecureRandom().nextLong() : Long.parseLong(property);
    }

    @BeforeEach
    void setUp() throws IOException {
        Path fixtureDir = dir.resolve("fixture");
        new ConfigFixture(fixtureDir);
        bases.add(new Base("ConfigFixture.VALID", fixtureDir, YAML.readTree(ConfigFixture.VALID)));
        for (String example : List.of("example.yaml", "demo.yaml")) {
            Path copy = ExampleConfigsTest.copyWithCertificates(dir, Path.of(example));
            bases.add(new Base(example, copy.getParent(), YAML.readTree(Files.readString(copy))));
        }
        loader = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "config-mutation-load");
            t.setDaemon(true);
            return t;
        });
    }

    @AfterEach
    void tearDown() {
        loader.shutdownNow();
    }

    @Test
    void everyMutationLoadsValidOrIsRejectedWithEveryProblemAtItsPath() throws Exception {
        for (Base base : bases) {
            // the starting points are valid, and the emitter writes them so: otherwise every verdict below is noise
            Outcome outcome = load(base, emit(base.tree()).text());
            assertThat(outcome.error()).as(base.name() + " as emitted").isNull();
            assertThat(outcome.problems()).as(base.name() + " as emitted").isNull();
        }
        Random random = new Random(SEED);
        List<Single> rejected = new ArrayList<>();
        for (int n = 0; n < SINGLE_CASES; n++) {
            Base base = bases.get(random.nextInt(bases.size()));
            Case c = random.nextInt(4) == 0 ? textMutation(base, random) : treeMutation(base, random);
            Outcome outcome = judge(base, c, n);
            if (outcome.problems() != null && c.combinable()) {
                rejected.add(new Single(base, c, outcome.problems()));
            }
        }
        int combinations = 0;
        for (int n = 0; n < COMBINED_CASES; n++) {
            combinations += combined(rejected, random, n) ? 1 : 0;
        }
        // a generator that stopped producing either outcome, or independent mutations, would prove nothing
        assertThat(rejected).as("rejected mutations").hasSizeGreaterThan(SINGLE_CASES / 4);
        assertThat(loaded).as("mutations that loaded").isGreaterThan(SINGLE_CASES / 20);
        assertThat(combinations).as("combined mutations").isGreaterThan(COMBINED_CASES / 2);
        assertThat(failures).as("seed " + SEED + " (-Dmtlsproxy.test.seed=" + SEED + " runs this mix again)")
                .isEmpty();
    }

    // ---------------------------------------------------------------- judging

    private record Outcome(List<ConfigProblem> problems, Throwable error) {
    }

    private Outcome judge(Base base, Case c, int n) {
        Outcome outcome = load(base, c);
        String label = "case " + n + " on " + base.name() + ": " + c.description();
        if (outcome.error() != null) {
            fail(label, c, "threw " + describe(outcome.error()));
            return outcome;
        }
        if (outcome.problems() == null) {
            loaded++;
            String text = c.text();
            List<String> broken = Invariants.of(loadQuietly(base, text));
            if (!broken.isEmpty()) {
                fail(label, c, "loaded, but " + String.join("; ", broken));
            }
            if (c.mustFail()) {
                fail(label, c, "loaded, but this mutation can never be valid");
            }
            return outcome;
        }
        JsonNode document = readDocument(c.text());
        for (ConfigProblem p : outcome.problems()) {
            String why = problemDefect(p, document);
            if (why != null) {
                fail(label, c, why + ": " + p);
            }
        }
        return outcome;
    }

    private ProxyConfig loadQuietly(Base base, String text) {
        try {
            return ConfigLoader.parse(text, base.dir());
        } catch (ConfigException e) {
            throw new AssertionError(e);
        }
    }

    /** What is wrong with one reported problem, or null. */
    private static String problemDefect(ConfigProblem p, JsonNode document) {
        String message = p.message();
        if (message.isBlank()) {
            return "an empty message";
        }
        String unquoted = QUOTED.matcher(message).replaceAll("\"\"");
        if (CLASS_NAME.matcher(unquoted).find()) {
            return "a Java name in the message";
        }
        if (p.path().isEmpty()) {
            // Problems of the file as a whole: no path can name them; they say where they are instead.
            boolean wholeFile = message.startsWith("not valid YAML - ") || message.startsWith("empty configuration")
                    || message.startsWith("a second YAML document") || message.startsWith("a list (expected")
                    || message.startsWith("a mapping (expected") || message.startsWith("\"");
            if (message.contains(" (expected: a readable YAML file) - ")) {
                return null; // the file itself, named by its path
            }
            if (!wholeFile) {
                return "a problem without a path";
            }
            return p.line() > 0 || message.startsWith("empty") ? null : "a problem of the file without a line";
        }
        if (!message.contains("(expected: ")) {
            return "a message that does not say what was expected";
        }
        JsonNode at = document == null ? null : resolve(document, p.path());
        if (NULL_WORD.matcher(unquoted).find() && !(message.startsWith("null (expected: ")
                && (at == null || at.isNull()))) {
            return "\"null\" in the message for a value that is not null";
        }
        if (document != null && at == null) {
            String parent = YamlPaths.parent(p.path());
            if (resolve(document, parent) == null) {
                return "a path that is not in the document, nor its parent";
            }
            if (!schemaHas(p.path())) {
                return "a path that is not in the document nor a key of the schema";
            }
        }
        return null;
    }

    private Outcome load(Base base, Case c) {
        if (c.bytes() != null) {
            return run(() -> {
                Path file = base.dir().resolve("mutated.yaml");
                Files.write(file, c.bytes());
                return ConfigLoader.load(file);
            });
        }
        return load(base, c.text());
    }

    private Outcome load(Base base, String text) {
        return run(() -> ConfigLoader.parse(text, base.dir()));
    }

    @FunctionalInterface
    private interface Load {
        ProxyConfig call() throws Exception;
    }

    private Outcome run(Load load) {
        Future<Outcome> future = loader.submit(() -> {
            try {
                load.call();
                return new Outcome(null, null);
            } catch (ConfigException e) {
                assertThat(e.problems()).isNotEmpty();
                return new Outcome(e.problems(), null);
            } catch (Throwable t) {
                return new Outcome(null, t);
            }
        });
        try {
            return future.get(CASE_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            future.cancel(true);
            // the hanging thread cannot be stopped; a fresh one serves the remaining cases
            loader.shutdownNow();
            loader = Executors.newSingleThreadExecutor();
            return new Outcome(null, new AssertionError("no answer within " + CASE_TIMEOUT));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return new Outcome(null, e);
        } catch (ExecutionException e) {
            return new Outcome(null, e.getCause());
        }
    }

    private void fail(String label, Case c, String why) {
        // long lines (deep or long values) shortened, so that a report stays readable
        String yaml = c.text().lines().map(l -> l.length() > 200 ? l.substring(0, 200) + "... (" + l.length()
                + " characters)" : l).collect(Collectors.joining("\n"));
        failures.add(label + "\n  " + why + "\n  seed " + SEED + "\n---- YAML\n" + yaml + "\n----");
    }

    private static String describe(Throwable t) {
        StackTraceElement[] trace = t.getStackTrace();
        String where = trace.length > 0 ? " at " + trace[0] : "";
        return t.getClass().getName() + ": " + String.valueOf(t.getMessage()).lines().findFirst().orElse("")
                + where;
    }

    // ---------------------------------------------------------------- combined mutations

    private record Single(Base base, Case c, List<ConfigProblem> problems) {

        /** Every path this case touched or was reported at. */
        Set<String> paths() {
            Set<String> all = new LinkedHashSet<>(c.touched());
            problems.forEach(p -> all.add(p.path()));
            return all;
        }

        Set<String> sections() {
            return c.touched().stream().map(ConfigMutationTest::section).collect(Collectors.toSet());
        }
    }

    /**
     * Two to four rejected mutations of one base, in different sections and with no path of one above or below a path
     * of another, applied together: every path each reported alone is reported again. (Their messages may differ: a
     * reference lists the names that are known, and another mutation may have removed one.)
     */
    private boolean combined(List<Single> rejected, Random random, int n) {
        Base base = bases.get(random.nextInt(bases.size()));
        List<Single> candidates = new ArrayList<>(rejected.stream().filter(s -> s.base() == base).toList());
        java.util.Collections.shuffle(candidates, random);
        List<Single> chosen = new ArrayList<>();
        int want = 2 + random.nextInt(3);
        for (Single s : candidates) {
            if (chosen.size() == want) {
                break;
            }
            if (chosen.stream().allMatch(o -> independent(o, s))) {
                chosen.add(s);
            }
        }
        if (chosen.size() < 2) {
            return false;
        }
        JsonNode tree = base.tree().deepCopy();
        for (Single s : chosen) {
            s.c().edit().accept(tree);
        }
        String text = emit(tree).text();
        Case together = new Case(chosen.stream().map(s -> s.c().description()).collect(Collectors.joining(" + ")),
                text, null, Set.of(), true, false, null);
        Outcome outcome = judge(base, together, SINGLE_CASES + n);
        if (outcome.problems() == null) {
            if (outcome.error() == null) {
                fail("combined case " + n, together, "loaded, but each part alone was rejected");
            }
            return true;
        }
        Set<String> reported = outcome.problems().stream().map(ConfigProblem::path).collect(Collectors.toSet());
        for (Single s : chosen) {
            for (ConfigProblem p : s.problems()) {
                if (!reported.contains(p.path())) {
                    fail("combined case " + n + " on " + base.name(), together, "lost a problem of "
                            + s.c().description() + ": " + p + "; reported: " + outcome.problems());
                }
            }
        }
        return true;
    }

    private static boolean independent(Single a, Single b) {
        if (a.sections().stream().anyMatch(b.sections()::contains)) {
            return false;
        }
        for (String x : a.paths()) {
            for (String y : b.paths()) {
                if (related(x, y)) {
                    return false;
                }
            }
        }
        return true;
    }

    private static boolean related(String a, String b) {
        return a.equals(b) || a.isEmpty() || b.isEmpty() || a.startsWith(b + ".") || a.startsWith(b + "[")
                || b.startsWith(a + ".") || b.startsWith(a + "[");
    }

    private static String section(String path) {
        int cut = path.indexOf('.');
        int bracket = path.indexOf('[');
        if (bracket >= 0 && (cut < 0 || bracket < cut)) {
            cut = bracket;
        }
        return cut < 0 ? path : path.substring(0, cut);
    }

    // ---------------------------------------------------------------- cases

    private record Base(String name, Path dir, JsonNode tree) {
    }

    /**
     * One mutated document.
     *
     * @param text       the YAML
     * @param bytes      when not null, the file's bytes, loaded through {@link ConfigLoader#load} instead
     * @param touched    the paths the mutation changed
     * @param combinable whether it is a tree edit that can be applied with others ({@link #edit})
     * @param mustFail   whether no outcome but rejection is right
     * @param edit       the tree edit, for combining
     */
    private record Case(String description, String text, byte[] bytes, Set<String> touched, boolean combinable,
                        boolean mustFail, java.util.function.Consumer<JsonNode> edit) {
    }

    /** A YAML fragment written as is, for values the tree cannot spell: {@code yes}, {@code 0x10}, tags, aliases. */
    private record Raw(String yaml) {
    }

    private static JsonNode raw(String yaml) {
        return new POJONode(new Raw(yaml));
    }

    private static final List<String> HOSTILE_SCALARS = List.of(
            "", "~", "null", "\"\"", "'   '", "x", "0", "-1", "65536", "2147483648", "99999999999999999999999",
            "1e9", "1.5", "-0.0", "0x10", "010", "0o17", "1_000", ".inf", "-.Inf", ".NaN", "yes", "no", "on", "off",
            "Y", "true", "false", "TRUE", "[]", "{}", "[1, 2]", "{a: 1}", "[[[]]]", "[~]", "[null, x]", "{x: ~}",
            "\"\\t\"", "\"\\u0000\"", "\"\\x7f\"", "\"é\"", "\"\\U0001F600\"", "2026-13-01", "2026-01-01T00:00:00",
            "!!binary aGVsbG8=", "!!java.lang.Object {}", "!!java.net.URL [\"http://x\"]", "!!str 12", "!!int \"12\"",
            "!foo bar", "!!timestamp 2001-12-14", "!!python/object/apply:os.system ['true']", "!!set {a, b}",
            "!!omap [a: 1]", "!!null ''", "!!float 1", "!!bool yes", "\"-----BEGIN PRIVATE KEY-----\\nAAAA\"",
            "'../../../../etc/passwd'", "/dev/zero", "/proc/self/environ", "\"*\"", "\"%00\"", "\"${HOME}\"");

    private static final Map<Pattern, List<String>> POOLS = new LinkedHashMap<>();

    static {
        POOLS.put(Pattern.compile("(?i).*(timeout|delay|interval|debounce|cooldown|lifetime|yieldafter)"), List.of(
                "10", "10 s", "10sec", "10S", "-5s", "0s", "0", "PT-1S", "-PT1S", "P106751991167301D",
                "9223372036854775807s", "9223372036854775807d", "99999999999999999999s", "1.5s", "1h-1m", "1m30",
                "s", "ms10", "1d1d", "PT", "P1Y", "1w", "500us0", "1m 30s", "\"\""));
        POOLS.put(Pattern.compile("(?i).*(size|length)"), List.of(
                "1KB", "1kib", "1 KiB", "-1KiB", "9999999999GiB", "0B", "0", "1.5KiB", "99999999999999999999",
                "8589934592", "1TiB", "KiB", "0x400", "1e3"));
        POOLS.put(Pattern.compile("address"), List.of(
                "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:99999999999", ":8443", "localhost",
                "[::1]8443", "[::1:8443", "::1:8443", "\"[::1]:8443\"", "127.0.0.1:", "127.0.0.1:84 43", "a b:1",
                "127.0.0.1:0x10", "256.0.0.1:1", "8443"));
        POOLS.put(Pattern.compile("url|endpoints"), List.of(
                "http://", "ftp://x:1", "http://x:0", "http://x:65536", "http://x:99999999999", "\"http://[::1\"",
                "http://user@x:1", "http://x:1/?q", "http://x:1#f", "x:1", "//x:1", "HTTP://X:1", "http:x",
                "\"http://exa mple:1\"", "http://x:-1", "https://x:1"));
        POOLS.put(Pattern.compile("(?i)spiffeid(prefix)?|urisans"), List.of(
                "spiffe://", "SPIFFE://x/y", "spiffe://x/../y", "spiffe://x/y/", "spiffe://X/y", "spiffe://x//y",
                "spiffe://x:1/y", "spiffe://u@x/y", "spiffe://x/y?q", "spiffe://x/%41", "spiffe:/x/y", "x/y"));
        POOLS.put(Pattern.compile("host|dnsSan|dnsSanSuffix|serverName|trustDomain"), List.of(
                "\"*\"", "\"*.*.a\"", "a..b", "-a.com", "a_b.com", "A.COM", "a.com:443", "a.com.", "\"*a.com\"",
                "\"é.com\"", "xn--", "[::1]", "1.2.3.4"));
        POOLS.put(Pattern.compile("ipSan"), List.of(
                "10.0.0.0/33", "10.0.0.0/8/8", "\"::/129\"", "1.2.3", "10.0.0.256", "10.0.0.0/-1", "10.0.0.0/",
                "localhost", "\"::ffff:10.0.0.1\"", "\"fe80::1%eth0\"", "010.0.0.1"));
        POOLS.put(Pattern.compile("pathPrefix|paths|path"), List.of(
                "a", "/a/../b", "/a//b", "/a%2f", "/a?x", "/a#x", "/a;x", "\"/a\\\\b\"", "/a/", "/a/./b", "\"/a b\"",
                "/*", "/a*", "/é", "\"\""));
        POOLS.put(Pattern.compile("(?i)minversion|crlscope|stalecrl|mode|sessionresumption|transport|groups"),
                List.of("tlsv1.3", "TLSV1.2", "TLSv1.1", "TLSv1", "Chain", "LEAF", "Deny", "insecureallow", "Dry-Run",
                        "dryrun", "NONE", "Tickets", "EPOLL", "io-uring", "x25519", "P256", "\"P-256 \""));
        POOLS.put(Pattern.compile("(?i)threads|maxidleconnections|.*threshold|rule"), List.of(
                "0", "-1", "1025", "2147483647", "2147483648", "1.0", "\"4\"", "\" 4 \"", "4x", "0x4", "04"));
        POOLS.put(Pattern.compile("cpuAffinity"), List.of(
                "\"3-1\"", "\"0-1024\"", "\"0,0\"", "\"0-\"", "\"-1\"", "\",\"", "AUTO", "\"0 - 3\"", "99999"));
        POOLS.put(Pattern.compile("backend|allow|deny|trustAnchor|trustAnchors"), List.of(
                "nope", "\"*\"", "ORDERS", "orders ", "\"\""));
        POOLS.put(Pattern.compile("(?i)deny(serials|fingerprints|spkipins)|sha256|spkisha256"), List.of(
                "zz", "4f:1a:0", "\"\"", "0x4f", "NVLqOrCMaHMj3M3Ed+Pa5BA7aaeSUNazWnRG/o4e+Ak", "AAAA",
                "5d41402abc4b2a76b9719d911017c5925d41402abc4b2a76b9719d911017c59"));
        POOLS.put(Pattern.compile("expires"), List.of(
                "2027-06-30", "2027-06-30T00:00:00", "\"2027-06-30T25:00:00Z\"", "tomorrow", "1700000000"));
        POOLS.put(Pattern.compile("request|expect|sni"), List.of(
                "GET", "\"GET  \"", "\"GET https://x/ extra\"", "ALLOW", "permit", "\"\""));
    }

    private Case treeMutation(Base base, Random random) {
        List<String> paths = new ArrayList<>();
        collectPaths(base.tree(), "", paths);
        String path = paths.get(random.nextInt(paths.size()));
        JsonNode original = resolve(base.tree(), path);
        String key = lastKey(path);
        int kind = random.nextInt(12);
        JsonNode replacement;
        String what;
        boolean mustFail = false;
        switch (kind) {
            case 0, 1 -> {
                return deletion(base, path);
            }
            case 2, 3 -> {
                String yaml = HOSTILE_SCALARS.get(random.nextInt(HOSTILE_SCALARS.size()));
                replacement = raw(yaml);
                what = "hostile value " + yaml;
            }
            case 4, 5, 6 -> {
                List<String> pool = POOLS.entrySet().stream().filter(e -> e.getKey().matcher(key).matches())
                        .map(Map.Entry::getValue).findFirst().orElse(null);
                if (pool == null || original == null || original.isContainerNode() && !original.isArray()) {
                    String text = original != null && original.isValueNode() ? original.asText() : key;
                    String changed = textVariant(text, random);
                    replacement = TextNode.valueOf(changed);
                    what = "text variant " + JSON.valueToTree(changed);
                } else {
                    String yaml = pool.get(random.nextInt(pool.size()));
                    replacement = original.isArray() && random.nextBoolean() ? raw("[" + yaml + "]") : raw(yaml);
                    what = "value for " + key + ": " + replacement;
                }
            }
            case 7 -> {
                replacement = wrongShape(original, random);
                what = "wrong shape " + replacement;
                mustFail = original != null && !original.isNull() && !(original.isObject() && original.isEmpty());
            }
            case 8 -> {
                return unknownKey(base, random);
            }
            case 9 -> {
                int depth = List.of(60, 1_000, 20_000).get(random.nextInt(3));
                boolean list = random.nextBoolean();
                String open = list ? "[" : "{a: ";
                String close = list ? "]" : "}";
                String deep = open.repeat(depth) + "x" + close.repeat(depth);
                if (random.nextBoolean() && !path.isEmpty()) {
                    replacement = raw(deep);
                    what = "nested " + depth + " deep";
                    mustFail = true;
                } else {
                    return deepIdentity(base, depth);
                }
            }
            case 10 -> {
                int length = List.of(300, 70_000, 300_000).get(random.nextInt(3));
                String c = List.of("a", "/", ".", "é", "\u0000").get(random.nextInt(5));
                replacement = TextNode.valueOf(c.repeat(length));
                what = length + " times " + JSON.valueToTree(c);
            }
            default -> {
                return reference(base, random);
            }
        }
        return edit(base, what + " at " + display(path), Set.of(path), mustFail,
                tree -> replace(tree, path, replacement));
    }

    private Case edit(Base base, String description, Set<String> touched, boolean mustFail,
                      java.util.function.Consumer<JsonNode> edit) {
        JsonNode tree = base.tree().deepCopy();
        edit.accept(tree);
        return new Case(description, emit(tree).text(), null, touched, true, mustFail, edit);
    }

    private Case deletion(Base base, String path) {
        boolean listItem = path.endsWith("]");
        JsonNode tree = base.tree().deepCopy();
        remove(tree, path);
        // deleting a list item renumbers the items after it, so it cannot be combined by path
        return new Case("delete " + display(path), emit(tree).text(), null, Set.of(path), !listItem, false,
                t -> remove(t, path));
    }

    private Case unknownKey(Base base, Random random) {
        List<String> objects = new ArrayList<>();
        collectPaths(base.tree(), "", objects);
        objects.add("");
        List<String> mappings = objects.stream()
                .filter(p -> resolve(base.tree(), p) instanceof ObjectNode o && !o.isEmpty()).toList();
        String parent = mappings.get(random.nextInt(mappings.size()));
        ObjectNode at = (ObjectNode) resolve(base.tree(), parent);
        List<String> keys = new ArrayList<>();
        at.fieldNames().forEachRemaining(keys::add);
        String near = keys.get(random.nextInt(keys.size()));
        String typo = typo(near, random);
        if (at.has(typo)) {
            typo = typo + "s";
        }
        String key = typo;
        String child = YamlPaths.key(parent, key);
        // under a mapping of names (identities, backends, ...) a new name is not a typo: it is a new entry
        boolean named = !parent.isEmpty() && isNamedMapping(parent);
        return edit(base, "key " + key + " near " + near + " at " + display(parent), Set.of(child), !named,
                tree -> ((ObjectNode) resolve(tree, parent)).set(key, at.get(near).deepCopy()));
    }

    /** allOf within allOf, deeper than anyone writes, as every identity matcher list may nest. */
    private Case deepIdentity(Base base, int depth) {
        String deep = "{allOf: [".repeat(depth) + "{subjectCn: x}" + "]}".repeat(depth);
        String path = "identities.deep";
        return edit(base, "identity nested " + depth + " deep", Set.of(path), depth > 100,
                tree -> tree.withObject("/identities").set("deep", raw(deep)));
    }

    private Case reference(Base base, Random random) {
        List<String> paths = new ArrayList<>();
        collectPaths(base.tree(), "", paths);
        List<String> refs = paths.stream().filter(p -> p.matches(
                "routes\\[\\d+]\\.(backend|allow\\[\\d+]|rules\\[\\d+]\\.(allow|deny)\\[\\d+])"
                        + "|identities\\.[^.]+\\.trustAnchor|listeners\\[\\d+]\\.tls\\.trustAnchors\\[\\d+]"
                        + "|tests\\[\\d+]\\.peer\\.trustAnchor")).toList();
        if (refs.isEmpty()) {
            return deletion(base, "backends");
        }
        String path = refs.get(random.nextInt(refs.size()));
        String name = List.of("nobody", "Orders", "orders.", "undefined-" + random.nextInt(100)).get(random.nextInt(4));
        return edit(base, "reference " + name + " at " + display(path), Set.of(path), true,
                tree -> replace(tree, path, TextNode.valueOf(name)));
    }

    private static boolean isNamedMapping(String path) {
        return path.equals("identities") || path.equals("backends") || path.equals("trustAnchors");
    }

    private static JsonNode wrongShape(JsonNode original, Random random) {
        JsonNodeFactory f = JsonNodeFactory.instance;
        if (original == null || original.isValueNode() || original instanceof POJONode) {
            return random.nextBoolean() ? f.arrayNode().add(original == null ? f.nullNode() : original.deepCopy())
                    : f.objectNode().set("value", original == null ? f.nullNode() : original.deepCopy());
        }
        if (original.isArray()) {
            return original.isEmpty() || random.nextBoolean() ? f.objectNode().set("items", original.deepCopy())
                    : original.get(0).deepCopy();
        }
        ArrayNode values = f.arrayNode();
        original.elements().forEachRemaining(v -> values.add(v.deepCopy()));
        return random.nextBoolean() ? values : TextNode.valueOf(original.toString());
    }

    private static String textVariant(String text, Random random) {
        String t = text.isEmpty() ? "x" : text;
        int at = random.nextInt(t.length());
        return switch (random.nextInt(12)) {
            case 0 -> t.toUpperCase(Locale.ROOT);
            case 1 -> t.toLowerCase(Locale.ROOT);
            case 2 -> t.substring(1);
            case 3 -> t.substring(0, at) + t.charAt(at) + t.substring(at);
            case 4 -> " " + t + "\t";
            case 5 -> t + "/";
            case 6 -> t.replaceAll("\\d+", "99999999999");
            case 7 -> t.replaceAll("\\d+", "-1");
            case 8 -> "-" + t;
            case 9 -> t + t;
            case 10 -> t.replace('.', ',');
            default -> t.substring(0, at);
        };
    }

    private static String typo(String key, Random random) {
        int at = random.nextInt(key.length());
        return switch (random.nextInt(5)) {
            case 0 -> key.toLowerCase(Locale.ROOT).equals(key) ? key.toUpperCase(Locale.ROOT)
                    : key.toLowerCase(Locale.ROOT);
            case 1 -> key.substring(0, at) + key.substring(at + 1) + (key.length() == 1 ? "x" : "");
            case 2 -> key + "s";
            case 3 -> key.substring(0, at) + "_" + key.substring(at);
            default -> at + 1 < key.length()
                    ? key.substring(0, at) + key.charAt(at + 1) + key.charAt(at) + key.substring(at + 2)
                    : key + "x";
        };
    }

    private Case textMutation(Base base, Random random) {
        Emitted emitted = emit(base.tree());
        String text = emitted.text();
        List<String> lines = new ArrayList<>(List.of(text.split("\n", -1)));
        int line = random.nextInt(Math.max(1, emitted.linePaths().size()));
        String linePath = emitted.linePaths().isEmpty() ? "" : emitted.linePaths().get(line);
        switch (random.nextInt(11)) {
            case 0 -> {
                // a key line with a scalar value, written twice
                List<Integer> keyLines = scalarKeyLines(lines);
                int at = keyLines.get(random.nextInt(keyLines.size()));
                lines.add(at + 1, lines.get(at));
                return text("duplicate line " + (at + 1) + " (" + lines.get(at).trim() + ")", String.join("\n", lines),
                        true);
            }
            case 1 -> {
                String l = lines.get(line);
                String indent = l.substring(0, l.length() - l.stripLeading().length());
                if (indent.isEmpty()) {
                    lines.set(line, "\t" + l);
                } else {
                    lines.set(line, "\t" + l.substring(Math.min(indent.length(), 2)));
                }
                return text("tab at line " + (line + 1) + " (" + display(linePath) + ")", String.join("\n", lines),
                        true);
            }
            case 2 -> {
                List<Integer> keyLines = scalarKeyLines(lines);
                int a = keyLines.get(random.nextInt(keyLines.size()));
                int b = keyLines.get(random.nextInt(keyLines.size()));
                int colon = lines.get(a).indexOf(": ");
                lines.set(a, lines.get(a).substring(0, colon + 2) + "&v " + lines.get(a).substring(colon + 2));
                if (a != b) {
                    int c2 = lines.get(b).indexOf(": ");
                    lines.set(b, lines.get(b).substring(0, c2 + 2) + "*v");
                }
                return text("anchor at line " + (a + 1) + ", alias at line " + (b + 1), String.join("\n", lines),
                        a != b);
            }
            case 3 -> {
                return text("billion laughs", billionLaughs(text, random), true);
            }
            case 4 -> {
                String second = random.nextBoolean() ? text : "listeners: []\n";
                String joined = switch (random.nextInt(3)) {
                    case 0 -> "---\n" + text + "\n---\n" + second;
                    case 1 -> text + "\n...\n---\n" + second;
                    default -> "--- !!map\n" + text;
                };
                return text("several documents", joined, false);
            }
            case 5 -> {
                return new Case("BOM then the document", "\uFEFF" + text, null, Set.of(), false, false, null);
            }
            case 6 -> {
                byte[] bytes = switch (random.nextInt(3)) {
                    case 0 -> ("# caf\u00e9\n" + text).getBytes(StandardCharsets.ISO_8859_1);
                    case 1 -> ("\uFEFF" + text).getBytes(StandardCharsets.UTF_16);
                    default -> ("\uFEFF" + text).getBytes(StandardCharsets.UTF_8);
                };
                return new Case("file bytes: " + bytes.length + " starting " + String.format("%02x%02x%02x",
                        bytes[0], bytes[1], bytes[2]), text, bytes, Set.of(), false, bytes[0] != (byte) 0xEF, null);
            }
            case 7 -> {
                int cut = random.nextInt(text.length());
                return text("truncated at character " + cut, text.substring(0, cut), false);
            }
            case 8 -> {
                String tag = List.of("!!java.lang.Object", "!!binary", "!foo", "!!str", "!!seq", "!!map",
                        "!<tag:yaml.org,2002:java.util.HashMap>", "!!javax.script.ScriptEngineManager")
                        .get(random.nextInt(8));
                List<Integer> keyLines = scalarKeyLines(lines);
                int at = keyLines.get(random.nextInt(keyLines.size()));
                int colon = lines.get(at).indexOf(": ");
                lines.set(at, lines.get(at).substring(0, colon + 2) + tag + " " + lines.get(at).substring(colon + 2));
                return text("tag " + tag + " at line " + (at + 1), String.join("\n", lines), false);
            }
            case 9 -> {
                String key = List.of("? [a, b]", "? {a: 1}", "1", "~", "\"\"", "\"a.b\"", "\"a[0]\"", "<<", "? |\n  x\n")
                        .get(random.nextInt(9));
                String section = List.of("identities", "backends", "trustAnchors", "")
                        .get(random.nextInt(4));
                String entry = key + ": {url: \"http://x:1\"}";
                String joined = section.isEmpty() ? entry + "\n" + text
                        : text.replaceFirst("(?m)^" + section + ":\n", section + ":\n  " + entry.replace("\n", "\n  ")
                                + "\n");
                return text("odd key " + key + " under " + (section.isEmpty() ? "the top" : section), joined,
                        false);
            }
            default -> {
                String junk = List.of("\u0000", "\u0007", "\"", "'", "{", "]", "%", "@", "`", ": :", "- -", "*",
                        "&", "!").get(random.nextInt(14));
                String l = lines.get(line);
                int at = random.nextInt(l.length() + 1);
                lines.set(line, l.substring(0, at) + junk + l.substring(at));
                return text(JSON.valueToTree(junk) + " inserted at line " + (line + 1) + ", column " + (at + 1),
                        String.join("\n", lines), false);
            }
        }
    }

    private static Case text(String description, String yaml, boolean mustFail) {
        return new Case(description, yaml, null, Set.of(), false, mustFail, null);
    }

    private static List<Integer> scalarKeyLines(List<String> lines) {
        List<Integer> keyLines = new ArrayList<>();
        for (int i = 0; i < lines.size(); i++) {
            String l = lines.get(i).stripLeading();
            if (!l.startsWith("-") && l.matches("[\\w\"][^:]*: [^\\[{].*")) {
                keyLines.add(i);
            }
        }
        return keyLines;
    }

    /** Anchors doubling at every level, under a key that takes a list of strings. */
    private static String billionLaughs(String text, Random random) {
        StringBuilder bomb = new StringBuilder("  denySerials: &l0 [\"ab\", \"ab\", \"ab\", \"ab\", \"ab\"]\n");
        int levels = 6 + random.nextInt(4);
        bomb.append("  denyFingerprints:\n");
        for (int i = 1; i <= levels; i++) {
            bomb.append("    - &l").append(i).append(" [").append(String.join(", ",
                    java.util.Collections.nCopies(9, "*l" + (i - 1)))).append("]\n");
        }
        bomb.append("  denySpkiPins: [*l").append(levels).append(", *l").append(levels).append("]\n");
        String without = text.replaceAll("(?ms)^revocation:\n(  .*?\n)*(?=\\S|\\z)", "");
        return without + (without.endsWith("\n") ? "" : "\n") + "revocation:\n" + bomb;
    }

    // ---------------------------------------------------------------- tree helpers

    private static void collectPaths(JsonNode node, String path, List<String> out) {
        if (node.isObject()) {
            node.properties().forEach(e -> {
                String child = YamlPaths.key(path, e.getKey());
                out.add(child);
                collectPaths(e.getValue(), child, out);
            });
        } else if (node.isArray()) {
            for (int i = 0; i < node.size(); i++) {
                String child = YamlPaths.item(path, i);
                out.add(child);
                collectPaths(node.get(i), child, out);
            }
        }
    }

    /** The node at a path; keys may contain dots, so every key that fits is tried. Null when there is none. */
    static JsonNode resolve(JsonNode node, String path) {
        if (path.isEmpty()) {
            return node;
        }
        if (path.startsWith("[")) {
            int close = path.indexOf(']');
            if (!node.isArray() || close < 0) {
                return null;
            }
            int index;
            try {
                index = Integer.parseInt(path.substring(1, close));
            } catch (NumberFormatException e) {
                return null;
            }
            JsonNode item = node.get(index);
            return item == null ? null : resolve(item, rest(path.substring(close + 1)));
        }
        if (!node.isObject()) {
            return null;
        }
        for (Map.Entry<String, JsonNode> e : node.properties()) {
            String key = YamlPaths.key("", e.getKey());
            if (path.equals(key)) {
                return e.getValue();
            }
            if (path.startsWith(key) && (path.charAt(key.length()) == '.' || path.charAt(key.length()) == '[')) {
                JsonNode found = resolve(e.getValue(), rest(path.substring(key.length())));
                if (found != null) {
                    return found;
                }
            }
        }
        return null;
    }

    private static String rest(String path) {
        return path.startsWith(".") ? path.substring(1) : path;
    }

    /** Whether the path, read through the config records, names a key they have. */
    private static boolean schemaHas(String path) {
        return schemaHas(ProxyConfig.class, path);
    }

    private static boolean schemaHas(java.lang.reflect.Type type, String rest) {
        if (rest.isEmpty()) {
            return true;
        }
        Class<?> raw = YamlSchema.raw(type);
        if (rest.startsWith("[")) {
            return List.class.isAssignableFrom(raw)
                    && schemaHas(YamlSchema.contentType(type), rest(rest.substring(rest.indexOf(']') + 1)));
        }
        if (Map.class.isAssignableFrom(raw)) {
            // a name may hold dots and brackets itself: any cut that leaves a path of the value will do
            for (int end = 1; end <= rest.length(); end++) {
                if ((end == rest.length() || rest.charAt(end) == '.' || rest.charAt(end) == '[')
                        && schemaHas(YamlSchema.contentType(type), rest(rest.substring(end)))) {
                    return true;
                }
            }
            return false;
        }
        if (!YamlSchema.isMapping(raw)) {
            return false;
        }
        int end = rest.length();
        int dot = rest.indexOf('.');
        int bracket = rest.indexOf('[');
        end = dot >= 0 ? Math.min(end, dot) : end;
        end = bracket >= 0 ? Math.min(end, bracket) : end;
        java.util.Optional<java.lang.reflect.Type> key = YamlSchema.keyType(raw, rest.substring(0, end));
        return key.isPresent() && schemaHas(key.get(), rest(rest.substring(end)));
    }

    private static String lastKey(String path) {
        String last = path.substring(YamlPaths.parent(path).length());
        last = last.startsWith(".") ? last.substring(1) : last;
        if (last.startsWith("[")) {
            String parent = YamlPaths.parent(path);
            return lastKey(parent);
        }
        return last;
    }

    private static void replace(JsonNode tree, String path, JsonNode value) {
        String parent = YamlPaths.parent(path);
        JsonNode at = resolve(tree, parent);
        String last = path.substring(parent.length());
        if (last.startsWith("[")) {
            ((ArrayNode) at).set(Integer.parseInt(last.substring(1, last.length() - 1)), value);
        } else {
            ((ObjectNode) at).set(rest(last), value);
        }
    }

    private static void remove(JsonNode tree, String path) {
        String parent = YamlPaths.parent(path);
        JsonNode at = resolve(tree, parent);
        String last = path.substring(parent.length());
        if (last.startsWith("[")) {
            ((ArrayNode) at).remove(Integer.parseInt(last.substring(1, last.length() - 1)));
        } else {
            ((ObjectNode) at).remove(rest(last));
        }
    }

    private static JsonNode readDocument(String text) {
        try {
            return YAML.readTree(text.startsWith("\uFEFF") ? text.substring(1) : text);
        } catch (IOException | RuntimeException e) {
            return null; // not YAML: only problems of the file as a whole can be right
        }
    }

    private static String display(String path) {
        return path.isEmpty() ? "the top" : path;
    }

    // ---------------------------------------------------------------- emitting YAML

    private record Emitted(String text, List<String> linePaths) {
    }

    /** Block-style YAML with every string double-quoted (so it means exactly the tree), and the path of each line. */
    private static Emitted emit(JsonNode tree) {
        StringBuilder out = new StringBuilder();
        List<String> linePaths = new ArrayList<>();
        emitMapping(tree, "", "", out, linePaths);
        return new Emitted(out.toString(), linePaths);
    }

    private static void emitMapping(JsonNode node, String path, String indent, StringBuilder out,
                                    List<String> linePaths) {
        node.properties().forEach(e -> {
            String child = YamlPaths.key(path, e.getKey());
            out.append(indent).append(key(e.getKey())).append(':');
            emitValue(e.getValue(), child, indent + "  ", out, linePaths);
        });
    }

    private static void emitValue(JsonNode value, String path, String indent, StringBuilder out,
                                  List<String> linePaths) {
        if (value.isObject() && !value.isEmpty()) {
            out.append('\n');
            linePaths.add(path);
            emitMapping(value, path, indent, out, linePaths);
        } else if (value.isArray() && !value.isEmpty()) {
            out.append('\n');
            linePaths.add(path);
            for (int i = 0; i < value.size(); i++) {
                String item = YamlPaths.item(path, i);
                out.append(indent).append('-');
                emitValue(value.get(i), item, indent + "  ", out, linePaths);
            }
        } else {
            out.append(' ').append(scalar(value)).append('\n');
            linePaths.add(path);
        }
    }

    private static String scalar(JsonNode value) {
        if (value instanceof POJONode pojo && pojo.getPojo() instanceof Raw r) {
            return r.yaml();
        }
        if (value.isObject()) {
            return "{}";
        }
        if (value.isArray()) {
            return "[]";
        }
        if (value.isTextual()) {
            return quote(value.asText());
        }
        return value.isNull() ? "null" : value.asText();
    }

    private static String key(String key) {
        return key.matches("[A-Za-z][A-Za-z0-9_-]*") ? key : quote(key);
    }

    private static String quote(String text) {
        try {
            return JSON.writeValueAsString(text);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }
}
