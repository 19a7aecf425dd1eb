package dev.mtlsproxy.config;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.exc.StreamConstraintsException;
import com.fasterxml.jackson.dataformat.yaml.YAMLParser;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.reflect.Type;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Pattern;
import org.yaml.snakeyaml.error.Mark;
import org.yaml.snakeyaml.error.MarkedYAMLException;

/**
 * A pass over the YAML tokens, before mapping, guided by {@link YamlSchema}. It finds what Jackson either cannot
 * report with a precise path or silently accepts, and records where every value sits so that later problems can name
 * a line:
 * <ul>
 *   <li>syntax errors and empty files (mapping is then skipped);</li>
 *   <li>unknown keys: Jackson buffers unknown properties of records and replays them without their real path or
 *       location, so they are reported here instead;</li>
 *   <li>duplicate keys: Jackson keeps one value of a repeated name silently, and aborts on a repeated record key
 *       (so mapping is skipped then);</li>
 *   <li>null list items and null named entries, which the mapper drops to keep the records null-free;</li>
 *   <li>an empty or blank string where a list or mapping belongs, which the mapper takes for null;</li>
 *   <li>aliases ({@code *name}), which Jackson does not expand: it would map the alias name as a string;</li>
 *   <li>YAML tags other than the plain types ({@code !!str}, {@code !!int}, {@code !!bool}, {@code !!float},
 *       {@code !!null}; {@code !!map} and {@code !!seq} on what they name): Jackson reads
 *       {@code path: !!binary L2FkbWlu} into a string field as the base64 text {@code "L2FkbWlu"}, and drops the
 *       others silently;</li>
 *   <li>a second YAML document, which the mapper would ignore.</li>
 * </ul>
 */
final class YamlScan {

    /** A position in the file; 0 when unknown. */
    record Position(int line, int column) {
        static final Position UNKNOWN = new Position(0, 0);
    }

    /**
     * @param problems     what the scan found
     * @param positions    where the value at each path starts
     * @param failedValues paths of values reported here that the mapper will drop or fail on
     * @param mappable     false when there is nothing Jackson could map: not YAML, empty, or a repeated record key
     */
    record Result(List<ConfigProblem> problems, Map<String, Position> positions, Set<String> failedValues,
                  boolean mappable) {
    }

    private final JsonParser parser;
    private final List<ConfigProblem> problems = new ArrayList<>();
    private final Map<String, Position> positions = new HashMap<>();
    private final Set<String> failedValues = new HashSet<>();
    private boolean repeatedRecordKey;

    private YamlScan(JsonParser parser) {
        this.parser = parser;
    }

    static Result scan(JsonFactory factory, String yaml) {
        JsonParser parser = null;
        try (JsonParser p = factory.createParser(yaml)) {
            parser = p;
            return new YamlScan(p).document();
        } catch (JsonProcessingException e) {
            return new Result(List.of(syntaxProblem(e, parser, factory.streamReadConstraints(), yaml)), Map.of(),
                    Set.of(), false);
        } catch (IOException e) {
            throw new UncheckedIOException("reading from a String cannot fail", e);
        }
    }

    private Result document() throws IOException {
        JsonToken first = parser.nextToken();
        if (first == null || first == JsonToken.VALUE_NULL) {
            Position at = first == null ? new Position(1, 1) : here();
            problems.add(problem("", "empty configuration (expected: " + YamlSchema.expected(ProxyConfig.class) + ")",
                    at));
            return new Result(problems, positions, failedValues, false);
        }
        value(ProxyConfig.class, "");
        if (parser.nextToken() != null) {
            problems.add(problem("", "a second YAML document (expected: one document per file)", here()));
        }
        return new Result(problems, positions, failedValues, !repeatedRecordKey);
    }

    private void value(Type type, String path) throws IOException {
        positions.put(path, here());
        if (parser instanceof YAMLParser yaml && yaml.isCurrentAlias()) {
            failedValues.add(path);
            problems.add(problem(path, "*" + parser.getText()
                    + " (expected: the value written out; YAML aliases are not supported)", here()));
            return;
        }
        JsonToken token = parser.currentToken();
        String tag = parser instanceof YAMLParser yaml ? yaml.getTypeId() : null;
        if (tag != null && !isPlainTag(tag, token)) {
            problems.add(problem(path, taggedValue(tag, token, type), here()));
            if (!token.isStructStart()) {
                failedValues.add(path); // what the mapper makes of it is not what was written
                return;
            }
            // a mapping or list maps the same with its tag or without: its content is still checked
        }
        Class<?> raw = YamlSchema.raw(type);
        if (token == JsonToken.VALUE_STRING && parser.getText().isBlank() && isContainer(raw)) {
            // Jackson throws on these instead of telling the collector, which would end mapping here; the mapper
            // takes them for null (see ConfigLoader) and this is where they are reported
            failedValues.add(path);
            problems.add(problem(path, Values.quote(parser.getText()) + " (expected: " + YamlSchema.expected(type)
                    + ")", here()));
        } else if (token == JsonToken.START_OBJECT && YamlSchema.isMapping(raw)) {
            record(raw, path);
        } else if (token == JsonToken.START_OBJECT && Map.class.isAssignableFrom(raw)) {
            namedEntries(YamlSchema.contentType(type), path);
        } else if (token == JsonToken.START_ARRAY && List.class.isAssignableFrom(raw)) {
            list(YamlSchema.contentType(type), path);
        } else {
            // scalars, and values of the wrong shape: the mapper reports those with the same path
            parser.skipChildren();
        }
    }

    /** A value starting with {@code [v6]:port}, unquoted. */
    private static final Pattern UNQUOTED_IPV6 = Pattern.compile(":\\s+\\[[0-9A-Fa-f:.%]*:[0-9A-Fa-f:.%]*]:\\d");
    /** YAML's core schema, where Jackson reads each tag as the type it names: a tag that changes nothing. */
    private static final String CORE_SCHEMA = "tag:yaml.org,2002:";
    private static final Set<String> PLAIN_SCALAR_TAGS = Set.of("str", "int", "bool", "float", "null");
    private static final Pattern SIMPLE_TAG = Pattern.compile("!!?[A-Za-z][A-Za-z0-9_-]*");

    /** @param tag as {@link YAMLParser#getTypeId()} gives it: without its leading {@code !}s, {@code !!} resolved */
    private static boolean isPlainTag(String tag, JsonToken token) {
        if (!tag.startsWith(CORE_SCHEMA)) {
            return false; // a local tag (!foo), or the non-specific "!"
        }
        String type = tag.substring(CORE_SCHEMA.length());
        return switch (token) {
            case START_OBJECT -> type.equals("map");
            case START_ARRAY -> type.equals("seq");
            default -> PLAIN_SCALAR_TAGS.contains(type);
        };
    }

    /** What is wrong with a value tagged {@code tag}, and how to write it instead. */
    private static String taggedValue(String tag, JsonToken token, Type type) {
        // as a user writes it: !!binary, !foo
        String written = tag.startsWith(CORE_SCHEMA) ? "!!" + tag.substring(CORE_SCHEMA.length()) : "!" + tag;
        // a tag naming a class (!!java.net.URL) or a URI is not echoed: messages name no Java types
        String a = SIMPLE_TAG.matcher(written).matches() ? "a " + written + " " : "a tagged ";
        return switch (token) {
            case START_OBJECT -> a + "mapping (expected: the mapping untagged, or tagged !!map)";
            case START_ARRAY -> a + "list (expected: the list untagged, or tagged !!seq)";
            // where a list or mapping belongs, no scalar would do, tagged or not
            default -> a + "value (expected: " + YamlSchema.expected(type)
                    + (isContainer(YamlSchema.raw(type)) ? ""
                            : ", untagged or tagged !!str, !!int, !!bool or !!float") + ")";
        };
    }

    /** A list, a mapping of names or a record written as a mapping: what an empty string can never be. */
    private static boolean isContainer(Class<?> raw) {
        return YamlSchema.isMapping(raw) || Map.class.isAssignableFrom(raw) || List.class.isAssignableFrom(raw);
    }

    private void record(Class<?> record, String path) throws IOException {
        Set<String> seen = new HashSet<>();
        while (parser.nextToken() == JsonToken.FIELD_NAME) {
            String key = parser.currentName();
            String child = YamlPaths.key(path, key);
            Position keyAt = here();
            parser.nextToken();
            Optional<Type> type = YamlSchema.keyType(record, key);
            if (!seen.add(key)) {
                repeatedRecordKey = true;
                duplicate(child, keyAt);
            } else if (type.isEmpty()) {
                problems.add(problem(child,
                        "unknown key (expected: one of " + String.join(", ", YamlSchema.keys(record)) + ")", keyAt));
                parser.skipChildren();
            } else {
                value(type.get(), child);
            }
        }
    }

    private void namedEntries(Type valueType, String path) throws IOException {
        Set<String> seen = new HashSet<>();
        while (parser.nextToken() == JsonToken.FIELD_NAME) {
            String key = parser.currentName();
            String child = YamlPaths.key(path, key);
            Position keyAt = here();
            JsonToken token = parser.nextToken();
            if (!seen.add(key)) {
                duplicate(child, keyAt);
            } else if (token == JsonToken.VALUE_NULL) {
                nullValue(valueType, child);
            } else {
                value(valueType, child);
            }
        }
    }

    private void list(Type itemType, String path) throws IOException {
        int index = 0;
        for (JsonToken token = parser.nextToken(); token != JsonToken.END_ARRAY; token = parser.nextToken()) {
            String child = YamlPaths.item(path, index++);
            if (token == JsonToken.VALUE_NULL) {
                nullValue(itemType, child);
            } else {
                value(itemType, child);
            }
        }
    }

    private void duplicate(String path, Position keyAt) throws IOException {
        problems.add(problem(path, "duplicate key (expected: each key at most once)", keyAt));
        parser.skipChildren();
    }

    private void nullValue(Type type, String path) {
        positions.put(path, here());
        failedValues.add(path);
        problems.add(problem(path, "null (expected: " + YamlSchema.expected(type) + ")", here()));
    }

    private Position here() {
        JsonLocation l = parser.currentTokenLocation();
        return l.getLineNr() > 0 ? new Position(l.getLineNr(), Math.max(l.getColumnNr(), 0)) : Position.UNKNOWN;
    }

    private static ConfigProblem problem(String path, String message, Position at) {
        return new ConfigProblem(path, message, at.line(), at.column());
    }

    /**
     * A problem for YAML the parser gave up on. Jackson's own messages name Java types (SnakeYAML's event classes,
     * {@code StreamReadConstraints}), which tell a user nothing, so the cases that produce them get words of ours.
     */
    private static ConfigProblem syntaxProblem(JsonProcessingException e, JsonParser parser,
                                               StreamReadConstraints limits, String text) {
        if (e.getCause() instanceof MarkedYAMLException yaml && yaml.getProblemMark() != null) {
            String context = yaml.getContext() == null ? "" : yaml.getContext() + ": ";
            Mark mark = yaml.getProblemMark();
            String line = text.lines().skip(mark.getLine()).findFirst().orElse("");
            // "address: [::1]:8443" is a list followed by ":8443" to a YAML reader, whose own words do not say so
            String hint = UNQUOTED_IPV6.matcher(line).find() ? " - an IPv6 address in brackets starts a YAML list"
                    + " (expected: the address quoted, as in address: \"[::1]:8443\")" : "";
            return new ConfigProblem("", "not valid YAML - " + context + yaml.getProblem() + hint,
                    mark.getLine() + 1, mark.getColumn() + 1);
        }
        // a broken limit has no location of its own; the parser stopped where it was exceeded
        JsonLocation l = e.getLocation() != null || parser == null ? e.getLocation() : parser.currentLocation();
        int line = l == null ? 0 : Math.max(l.getLineNr(), 0);
        int column = l == null ? 0 : Math.max(l.getColumnNr(), 0);
        if (e instanceof StreamConstraintsException) {
            // the limits keep a hostile file from exhausting the stack or memory; nothing a proxy needs comes near
            return new ConfigProblem("", "not valid YAML - beyond the reader's limits (expected: at most "
                    + limits.getMaxNestingDepth() + " levels of nesting, keys of at most " + limits.getMaxNameLength()
                    + " characters, numbers of at most " + limits.getMaxNumberLength() + " digits)", line, column);
        }
        if (String.valueOf(e.getOriginalMessage()).contains("base64")) {
            // the parser decodes a !!binary scalar as it reads it, and stops at one that is not base64; a tagged
            // value is refused anyway (tags), so say which tag, not what the parser's state would suggest
            return new ConfigProblem("", "not valid YAML - a !!binary value that is not base64 (expected: the value"
                    + " untagged, or tagged !!str)", line, column);
        }
        if (String.valueOf(e.getOriginalMessage()).contains("code points")) {
            // SnakeYAML's size limit, reached mid-mapping, was told as the key problem below
            return new ConfigProblem("", "not valid YAML - beyond the reader's limits (expected: a file of at most "
                    + ConfigYamlFactory.MAX_CODE_POINTS + " characters)", line, column);
        }
        if (parser != null && parser.getParsingContext().inObject()
                && parser.currentToken() != JsonToken.FIELD_NAME) {
            // the parser stops at a key it cannot turn into a name: "? [a, b]: x" or "? {a: 1}: x"
            return new ConfigProblem("", "not valid YAML - a list or mapping used as a key (expected: a key that is"
                    + " a plain name, like name: value)", line, column);
        }
        String message = String.valueOf(e.getOriginalMessage()).lines().findFirst().orElse("unreadable");
        return new ConfigProblem("", "not valid YAML - " + message, line, column);
    }
}
