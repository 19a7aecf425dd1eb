package dev.mtlsproxy.config;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.DeserializationContext;
import com.fasterxml.jackson.databind.JavaType;
import com.fasterxml.jackson.databind.JsonDeserializer;
import com.fasterxml.jackson.databind.deser.DeserializationProblemHandler;
import com.fasterxml.jackson.databind.deser.ValueInstantiator;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Turns Jackson's "stop at the first error" into "note it and go on": each bad value becomes a problem with its path,
 * and mapping continues with null in its place (the validator then skips that path). One instance per load.
 */
final class ProblemCollector extends DeserializationProblemHandler {

    /** Prefix of failure messages that already say what was expected; see {@link ValueDeserializers}. */
    static final String EXPECTED_PREFIX = "expected: ";

    private final Map<String, YamlScan.Position> positions;
    private final Set<String> reportedByScan;
    private final List<ConfigProblem> problems = new ArrayList<>();
    private final Set<String> failedPaths = new HashSet<>();

    ProblemCollector(YamlScan.Result scan) {
        this.positions = scan.positions();
        this.reportedByScan = scan.failedValues();
    }

    List<ConfigProblem> problems() {
        return problems;
    }

    /** Paths whose value could not be mapped and is null (or missing from its list) in the records. */
    Set<String> failedPaths() {
        return failedPaths;
    }

    @Override
    public boolean handleUnknownProperty(DeserializationContext ctxt, JsonParser p, JsonDeserializer<?> deserializer,
                                         Object beanOrClass, String propertyName) throws IOException {
        // already reported by YamlScan, which knows the real path (Jackson replays these from a buffer without it)
        p.skipChildren();
        return true;
    }

    @Override
    public Object handleWeirdStringValue(DeserializationContext ctxt, Class<?> targetType, String valueToConvert,
                                         String failureMsg) {
        add(ctxt.getParser(), Values.quote(valueToConvert), expected(targetType, failureMsg));
        return null;
    }

    @Override
    public Object handleWeirdNumberValue(DeserializationContext ctxt, Class<?> targetType, Number valueToConvert,
                                         String failureMsg) {
        add(ctxt.getParser(), String.valueOf(valueToConvert), expected(targetType, failureMsg));
        return null;
    }

    @Override
    public Object handleUnexpectedToken(DeserializationContext ctxt, JavaType targetType, JsonToken t, JsonParser p,
                                        String failureMsg) throws IOException {
        add(p, describe(p), YamlSchema.expected(targetType.getRawClass()));
        p.skipChildren();
        return null;
    }

    @Override
    public Object handleWeirdNativeValue(DeserializationContext ctxt, JavaType targetType, Object valueToConvert,
                                         JsonParser p) throws IOException {
        // "!!binary ..." where a mapping belongs: Jackson would otherwise stop mapping here
        add(p, describe(p), YamlSchema.expected(targetType.getRawClass()));
        return null;
    }

    @Override
    public Object handleMissingInstantiator(DeserializationContext ctxt, Class<?> instClass,
                                            ValueInstantiator valueInsts, JsonParser p, String msg)
            throws IOException {
        // a scalar where a mapping belongs
        add(p, describe(p), YamlSchema.expected(instClass));
        p.skipChildren();
        return null;
    }

    private void add(JsonParser p, String value, String expected) {
        String path = YamlPaths.of(p);
        failedPaths.add(path);
        if (reportedByScan.contains(path)) {
            return; // the scan said what is wrong here more precisely
        }
        YamlScan.Position at = positions.get(path);
        if (at == null) {
            JsonLocation l = p.currentTokenLocation();
            at = new YamlScan.Position(Math.max(l.getLineNr(), 0), Math.max(l.getColumnNr(), 0));
        }
        problems.add(new ConfigProblem(path, value + " (expected: " + expected + ")", at.line(), at.column()));
    }

    private static String expected(Class<?> targetType, String failureMsg) {
        return failureMsg != null && failureMsg.startsWith(EXPECTED_PREFIX)
                ? failureMsg.substring(EXPECTED_PREFIX.length())
                : YamlSchema.expected(targetType);
    }

    private static String describe(JsonParser p) throws IOException {
        JsonToken token = p.currentToken();
        if (token == null) {
            return "nothing";
        }
        return switch (token) {
            case START_OBJECT -> "a mapping";
            case START_ARRAY -> "a list";
            case VALUE_STRING -> Values.quote(p.getText());
            case VALUE_NULL -> "null";
            case VALUE_EMBEDDED_OBJECT -> "a !!binary value";
            default -> p.getText();
        };
    }
}
