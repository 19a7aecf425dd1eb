package dev.mtlsproxy.core.testing;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Random;

/**
 * Strings a client or a certificate authority could put into a log line, for the JSON log writers' generative tests:
 * control characters, quotes and backslashes, {@code </script>}, U+2028 and U+2029, lone and reversed surrogates,
 * characters outside the BMP, noncharacters, and now and then a value of up to 65,536 characters.
 *
 * <p>The mix comes from one seed ({@link #SEED}), to be printed with every failure: {@code -Dmtlsproxy.test.seed=N}
 * runs that mix again and {@code -Dmtlsproxy.test.seed=random} a new one.
 */
public final class HostileText {

    public static final long SEED = seedOf(System.getProperty("mtlsproxy.test.seed", "1"));

    /** Lines are parsed strictly: one JSON object, nothing after it. */
    public static final ObjectMapper STRICT_JSON = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    private static final String[] PIECES = {"\"", "\\", "/", "</script>", "<!--", "\u2028", "\u2029", "\r\n", "\n",
        "\t", "\u0000", "\u007f", "\u0085", "\u00e9", "\uFEFF", "\uFFFD", "\uFFFE", "\uFFFF", "\\u0041", "\\\"", "%0A",
        ",", "+", "=", ";", "#", "<", ">", " ", "\uD83D\uDE00", "\uDBFF\uDFFF", "\uD800\uDC00", "{\"a\":1}", "null"};

    private HostileText() {
    }

    private static long seedOf(String property) {
        return property.equals("random") ? new SecureRandom().nextLong() : Long.parseLong(property);
    }

    /** How to name this run in an assertion: the seed, and how to replay it. */
    public static String seedNote() {
        return "seed " + SEED + " (-Dmtlsproxy.test.seed=" + SEED + " runs this mix again)";
    }

    /** A random hostile string; one in 100 is long (10,000 to 65,536 characters), one in 20 empty. */
    public static String next(Random random) {
        int roll = random.nextInt(100);
        if (roll < 5) {
            return "";
        }
        int length = roll < 6 ? 10_000 + random.nextInt(55_537) : 1 + random.nextInt(40);
        StringBuilder s = new StringBuilder(length + 16);
        while (s.length() < length) {
            append(random, s);
        }
        return s.toString();
    }

    private static void append(Random random, StringBuilder s) {
        switch (random.nextInt(10)) {
            case 0 -> s.append((char) random.nextInt(0x20)); // C0 controls
            case 1 -> s.append(PIECES[random.nextInt(PIECES.length)]);
            case 2 -> s.append((char) (0xD800 + random.nextInt(0x400))); // a high surrogate, paired only by chance
            case 3 -> s.append((char) (0xDC00 + random.nextInt(0x400))); // a low surrogate, alone or reversed
            case 4 -> s.appendCodePoint(0x10000 + random.nextInt(0x100000)); // outside the BMP, a proper pair
            case 5 -> {
                char c = (char) (0x80 + random.nextInt(0xFF80)); // anywhere in the BMP, surrogates included
                s.append(c);
            }
            default -> s.append((char) (0x20 + random.nextInt(0x5F))); // printable ASCII
        }
    }

    /**
     * What a log line must carry for {@code text}: the same, except that a surrogate which is not half of a pair
     * becomes U+FFFD (README, "Logs"). Written by code points, apart from the writers' code.
     */
    public static String expectedInLog(String text) {
        if (text == null) {
            return null;
        }
        StringBuilder out = new StringBuilder(text.length());
        text.codePoints().forEach(cp -> out.appendCodePoint(cp >= 0xD800 && cp <= 0xDFFF ? 0xFFFD : cp));
        return out.toString();
    }

    /**
     * Asserts that {@code line} holds exactly {@code expected}, in order: strings, JSON null as null, numbers as
     * longs, a list as an array and a map as an object of the same. A difference is described by where it starts,
     * not by printing values of 65,536 characters.
     */
    public static void assertFields(JsonNode line, Map<String, ?> expected, String what) {
        List<String> names = new ArrayList<>();
        line.fieldNames().forEachRemaining(names::add);
        assertThat(names).as("%s; %s", what, seedNote()).containsExactlyElementsOf(expected.keySet());
        for (Map.Entry<String, ?> field : expected.entrySet()) {
            assertValue(line.get(field.getKey()), field.getValue(), what + ": field " + field.getKey());
        }
    }

    private static void assertValue(JsonNode node, Object expected, String what) {
        if (expected instanceof Map<?, ?> object) {
            assertThat(node.isObject()).as("%s is an object; %s", what, seedNote()).isTrue();
            @SuppressWarnings("unchecked")
            Map<String, ?> fields = (Map<String, ?>) object;
            assertFields(node, fields, what);
            return;
        }
        if (expected instanceof List<?> array) {
            assertThat(node.isArray()).as("%s is an array; %s", what, seedNote()).isTrue();
            assertThat(node.size()).as("%s: elements; %s", what, seedNote()).isEqualTo(array.size());
            for (int i = 0; i < array.size(); i++) {
                assertValue(node.get(i), array.get(i), what + "[" + i + "]");
            }
            return;
        }
        Object actual = node.isNull() ? null : node.isNumber() ? (Object) node.asLong() : node.asText();
        if (!Objects.equals(actual, expected)) {
            throw new AssertionError("%s %s; %s".formatted(what, difference(expected, actual), seedNote()));
        }
    }

    private static String difference(Object expected, Object actual) {
        if (!(expected instanceof String e) || !(actual instanceof String a)) {
            return "expected " + expected + " but was " + actual;
        }
        int i = 0;
        while (i < e.length() && i < a.length() && e.charAt(i) == a.charAt(i)) {
            i++;
        }
        return "differs at index %d (lengths %d expected, %d written): expected ...%s... but was ...%s...".formatted(
                i, e.length(), a.length(), escaped(e, i), escaped(a, i));
    }

    private static String escaped(String s, int at) {
        StringBuilder out = new StringBuilder();
        for (int i = Math.max(0, at - 4); i < Math.min(s.length(), at + 6); i++) {
            out.append("\\u%04X".formatted((int) s.charAt(i)));
        }
        return out.toString();
    }

    /**
     * Splits what a JSON-lines writer wrote into lines and parses each: every line must be valid UTF-8, end with a
     * newline, hold no raw control character, and be exactly one JSON object.
     */
    public static List<JsonNode> parseLines(byte[] written) {
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(written)).toString();
        } catch (CharacterCodingException e) {
            throw new AssertionError("not valid UTF-8: " + e + "; " + seedNote(), e);
        }
        assertThat(text).as(seedNote()).endsWith("\n");
        List<JsonNode> lines = new ArrayList<>();
        for (String line : text.substring(0, text.length() - 1).split("\n", -1)) {
            lines.add(parseLine(line));
        }
        return lines;
    }

    /** One line, which must hold no raw control character and be exactly one JSON object. */
    public static JsonNode parseLine(String line) {
        for (int i = 0; i < line.length(); i++) {
            char c = line.charAt(i);
            if (c < 0x20) {
                throw new AssertionError("raw control character U+%04X at %d; %s".formatted((int) c, i, seedNote()));
            }
        }
        try {
            JsonNode node = STRICT_JSON.readTree(line);
            assertThat(node.isObject()).as("one JSON object per line; " + seedNote()).isTrue();
            return node;
        } catch (Exception e) {
            throw new AssertionError("not one JSON object: " + e.getMessage() + "; " + seedNote(), e);
        }
    }
}
