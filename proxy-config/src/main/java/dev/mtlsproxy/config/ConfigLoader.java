package dev.mtlsproxy.config;

import com.fasterxml.jackson.annotation.JsonSetter;
import com.fasterxml.jackson.annotation.Nulls;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.cfg.CoercionAction;
import com.fasterxml.jackson.databind.cfg.CoercionInputShape;
import com.fasterxml.jackson.databind.cfg.MutableCoercionConfig;
import com.fasterxml.jackson.databind.type.LogicalType;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * Loads the YAML configuration: maps it onto the records, resolves relative file paths against the file's directory,
 * and validates everything in one pass, so a user sees every problem at once.
 *
 * <p>Loading happens in three steps, each feeding the next:
 * <ol>
 *   <li>{@link YamlScan}: syntax, unknown and duplicate keys, null items, and the position of every value;</li>
 *   <li>mapping with the one {@link ObjectMapper}, with {@link ProblemCollector} noting bad values instead of
 *       stopping;</li>
 *   <li>validation of the records, skipping values that already failed to map.</li>
 * </ol>
 */
public final class ConfigLoader {

    private static final ObjectMapper MAPPER = YAMLMapper.builder(new ConfigYamlFactory())
            .addModule(ValueDeserializers.module())
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            // strict lists: "methods: GET" is a type error rather than a guess
            .disable(DeserializationFeature.ACCEPT_SINGLE_VALUE_AS_ARRAY)
            // records copy lists with List.copyOf, which rejects nulls; YamlScan reports null items instead
            .defaultSetterInfo(JsonSetter.Value.forContentNulls(Nulls.SKIP))
            // "methods: ''" and "accessLog: ' '": Jackson throws on an empty or blank string where a list, a mapping
            // of names or a record belongs, past the collector, which ended mapping there and hid every later
            // problem. Taken for null, mapping goes on; YamlScan reports the value.
            .withCoercionConfig(LogicalType.Collection, ConfigLoader::emptyTextIsNull)
            .withCoercionConfig(LogicalType.Map, ConfigLoader::emptyTextIsNull)
            .withCoercionConfig(LogicalType.POJO, ConfigLoader::emptyTextIsNull)
            .build();

    private ConfigLoader() {
    }

    private static void emptyTextIsNull(MutableCoercionConfig config) {
        config.setCoercion(CoercionInputShape.EmptyString, CoercionAction.AsNull).setAcceptBlankAsEmpty(true);
    }

    /**
     * Reads and validates a configuration file; relative paths in it are relative to the file's directory.
     *
     * @throws ConfigException listing every problem found
     */
    public static ProxyConfig load(Path file) throws ConfigException {
        return loadWithPositions(file).config();
    }

    /**
     * As {@link #load}, with where each value was written: for what compares the result with another configuration
     * and should name the line in this file, as a reload does for the settings it cannot apply.
     *
     * @throws ConfigException listing every problem found
     */
    public static LoadedConfig loadWithPositions(Path file) throws ConfigException {
        Path absolute = file.toAbsolutePath().normalize();
        String yaml;
        try {
            yaml = Files.readString(absolute);
        } catch (CharacterCodingException e) {
            throw new ConfigException(List.of(notUtf8(absolute)));
        } catch (IOException e) {
            throw new ConfigException(List.of(new ConfigProblem("", absolute
                    + " (expected: a readable YAML file) - " + FileChecks.describe(e, absolute), 0, 0)));
        }
        return read(yaml, absolute.getParent());
    }

    /**
     * Names the first byte that is not UTF-8 and where it is: in a file saved as Latin-1 or Windows-1252 that is the
     * first accented letter, which an editor shows as the line and column of the character.
     */
    private static ConfigProblem notUtf8(Path file) {
        String problem = file + " (expected: a readable YAML file) - not UTF-8 text";
        ByteBuffer in;
        try {
            in = ByteBuffer.wrap(Files.readAllBytes(file));
        } catch (IOException e) {
            return new ConfigProblem("", problem, 0, 0);
        }
        CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder();
        CharBuffer out = CharBuffer.allocate(in.remaining());
        CoderResult result = decoder.decode(in, out, true);
        if (!result.isError()) {
            return new ConfigProblem("", problem, 0, 0);
        }
        String before = out.flip().toString();
        int line = (int) before.chars().filter(c -> c == '\n').count() + 1;
        int column = before.length() - before.lastIndexOf('\n');
        return new ConfigProblem("", problem + String.format(Locale.ROOT, " (byte 0x%02X; save the file as UTF-8)",
                in.get(in.position()) & 0xff), line, column);
    }

    /**
     * Validates configuration text as if it were a file in {@code baseDir}.
     *
     * @throws ConfigException listing every problem found
     */
    public static ProxyConfig parse(String yaml, Path baseDir) throws ConfigException {
        return read(yaml, baseDir).config();
    }

    private static LoadedConfig read(String yaml, Path baseDir) throws ConfigException {
        Path base = baseDir.toAbsolutePath().normalize();
        YamlScan.Result scan = YamlScan.scan(MAPPER.getFactory(), yaml);
        List<ConfigProblem> problems = new ArrayList<>(scan.problems());
        if (!scan.mappable()) {
            throw new ConfigException(problems);
        }
        ProblemCollector collector = new ProblemCollector(scan);
        ProxyConfig config;
        try {
            config = MAPPER.readerFor(ProxyConfig.class)
                    .withHandler(collector)
                    .withAttribute(ValueDeserializers.BASE_DIR, base)
                    .readValue(yaml);
        } catch (JsonProcessingException e) {
            problems.addAll(collector.problems());
            problems.add(translate(e, scan.positions()));
            throw new ConfigException(problems);
        }
        problems.addAll(collector.problems());
        if (config == null) {
            // the document is not a mapping; that is reported, and there is nothing to validate
            throw new ConfigException(problems);
        }
        Set<String> failed = new HashSet<>(collector.failedPaths());
        failed.addAll(scan.failedValues());
        ConfigPositions positions = new ConfigPositions(scan.positions());
        Problems validation = new Problems(positions, failed);
        config = ConfigValidator.resolveAccessLog(config, base);
        new ConfigValidator(validation).validate(config);
        problems.addAll(validation.all());
        if (!problems.isEmpty()) {
            throw new ConfigException(problems, config);
        }
        return new LoadedConfig(config, positions);
    }

    /**
     * Things that are valid but probably not meant: a route that allows nobody, an identity no route allows, a rule
     * that can never match (as of {@code now}, for expiring grants). Each is {@code path: what}, sorted by path.
     */
    public static List<String> warnings(ProxyConfig config, Instant now) {
        return ConfigWarnings.of(config, now);
    }

    /** A failure Jackson could not hand to the collector, in the same form as every other problem. */
    static ConfigProblem translate(JsonProcessingException e, Map<String, YamlScan.Position> positions) {
        String path = e instanceof JsonMappingException m ? YamlPaths.of(m.getPath()) : "";
        YamlScan.Position at = positions.get(path);
        JsonLocation l = e.getLocation();
        if (at == null) {
            at = l == null ? YamlScan.Position.UNKNOWN
                    : new YamlScan.Position(Math.max(l.getLineNr(), 0), Math.max(l.getColumnNr(), 0));
        }
        String detail = String.valueOf(e.getOriginalMessage()).lines().findFirst().orElse("");
        return new ConfigProblem(path, "cannot be read - " + detail, at.line(), at.column());
    }
}
