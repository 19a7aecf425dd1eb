package dev.mtlsproxy.config;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.DeserializationContext;
import com.fasterxml.jackson.databind.deser.std.StdScalarDeserializer;
import com.fasterxml.jackson.databind.module.SimpleModule;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.format.DateTimeParseException;
import java.util.Arrays;

/**
 * Deserializers for every scalar in the config. On bad input they do not throw: they hand the value to
 * {@link DeserializationContext#handleWeirdStringValue} with a message starting {@code "expected: "}, so that
 * {@link ProblemCollector} records it with its path and mapping carries on.
 */
final class ValueDeserializers {

    /** Context attribute: the absolute directory that relative file paths in the YAML are resolved against. */
    static final String BASE_DIR = ValueDeserializers.class.getName() + ".baseDir";

    private ValueDeserializers() {
    }

    static SimpleModule module() {
        SimpleModule module = new SimpleModule("mtls-proxy-config");
        module.addDeserializer(Duration.class, new FromText<>(Duration.class, false, (s, c) -> Durations.parse(s)));
        module.addDeserializer(DataSize.class, new FromText<>(DataSize.class, true, (s, c) -> DataSize.parse(s)));
        module.addDeserializer(HostPort.class, new FromText<>(HostPort.class, false, (s, c) -> HostPort.parse(s)));
        module.addDeserializer(CpuAffinity.class,
                new FromText<>(CpuAffinity.class, true, (s, c) -> CpuAffinity.parse(s)));
        yamlEnum(module, TlsVersion.class);
        yamlEnum(module, PolicyMode.class);
        yamlEnum(module, CrlScope.class);
        yamlEnum(module, StaleCrlPolicy.class);
        yamlEnum(module, SessionResumption.class);
        yamlEnum(module, KeyExchangeGroup.class);
        yamlEnum(module, IoTransport.class);
        module.addDeserializer(URI.class, new FromText<>(URI.class, false, (s, c) -> URI.create(s.trim())));
        module.addDeserializer(Path.class, new FromText<>(Path.class, false, ValueDeserializers::path));
        module.addDeserializer(Instant.class, new FromText<>(Instant.class, false, (s, c) -> instant(s)));
        module.addDeserializer(Integer.class, new IntegerDeserializer());
        module.addDeserializer(Boolean.class, new BooleanDeserializer());
        return module;
    }

    /** An instant with its offset spelled out: a bare date or local time would depend on the machine's zone. */
    private static Instant instant(String text) {
        try {
            return OffsetDateTime.parse(text.trim()).toInstant();
        } catch (DateTimeParseException e) {
            throw new IllegalArgumentException(e);
        }
    }

    /** Registers the one deserializer of {@link YamlEnum}s: the constant whose {@code yaml()} is the text. */
    private static <E extends Enum<E> & YamlEnum> void yamlEnum(SimpleModule module, Class<E> type) {
        module.addDeserializer(type, new FromText<>(type, false, (s, c) -> Arrays.stream(type.getEnumConstants())
                .filter(v -> v.yaml().equals(s.trim()))
                .findFirst()
                .orElseThrow(IllegalArgumentException::new)));
    }

    private static Path path(String text, DeserializationContext ctxt) {
        if (text.isBlank()) {
            throw new IllegalArgumentException();
        }
        // a pasted PEM must not become a "file name" that later messages would echo
        if (text.contains("-----BEGIN") || text.indexOf('\n') >= 0) {
            throw new IllegalArgumentException(
                    ProblemCollector.EXPECTED_PREFIX + "a file path, not the PEM text itself");
        }
        Path base = (Path) ctxt.getAttribute(BASE_DIR);
        Path path = Path.of(text.trim());
        return (base == null ? path.toAbsolutePath() : base.resolve(path)).normalize();
    }

    @FunctionalInterface
    private interface Parser<T> {
        /** Throws IllegalArgumentException, optionally with a message starting "expected: ". */
        T parse(String text, DeserializationContext ctxt);
    }

    private static final class FromText<T> extends StdScalarDeserializer<T> {

        private static final long serialVersionUID = 1L;

        private final Class<T> type;
        private final boolean acceptsIntegers;
        private final transient Parser<T> parser;

        FromText(Class<T> type, boolean acceptsIntegers, Parser<T> parser) {
            super(type);
            this.type = type;
            this.acceptsIntegers = acceptsIntegers;
            this.parser = parser;
        }

        @Override
        public T deserialize(JsonParser p, DeserializationContext ctxt) throws IOException {
            JsonToken token = p.currentToken();
            if (token == JsonToken.VALUE_STRING || (acceptsIntegers && token == JsonToken.VALUE_NUMBER_INT)) {
                String text = p.getText();
                try {
                    return parser.parse(text, ctxt);
                } catch (IllegalArgumentException | ArithmeticException e) {
                    return type.cast(ctxt.handleWeirdStringValue(type, text, failure(type, e)));
                }
            }
            if (token == JsonToken.VALUE_NUMBER_INT || token == JsonToken.VALUE_NUMBER_FLOAT) {
                return type.cast(ctxt.handleWeirdNumberValue(type, p.getNumberValue(), expected(type)));
            }
            return type.cast(ctxt.handleUnexpectedToken(type, p));
        }
    }

    private static final class IntegerDeserializer extends StdScalarDeserializer<Integer> {

        private static final long serialVersionUID = 1L;

        IntegerDeserializer() {
            super(Integer.class);
        }

        @Override
        public Integer deserialize(JsonParser p, DeserializationContext ctxt) throws IOException {
            JsonToken token = p.currentToken();
            if (token == JsonToken.VALUE_NUMBER_INT && !isPlainDecimal(p.getText())) {
                // YAML 1.1 reads 010 as 8, 0x10 as 16 and 1_000 as 1000; nobody writing a limit means that.
                return (Integer) ctxt.handleWeirdStringValue(Integer.class, p.getText(),
                        ProblemCollector.EXPECTED_PREFIX + "an integer in decimal, without leading zeros");
            }
            if (token == JsonToken.VALUE_NUMBER_INT && p.getNumberType() == JsonParser.NumberType.INT) {
                return p.getIntValue();
            }
            if (token == JsonToken.VALUE_NUMBER_INT || token == JsonToken.VALUE_NUMBER_FLOAT) {
                // no silent truncation of 1.5 to 1, nor of a long to garbage
                return (Integer) ctxt.handleWeirdNumberValue(Integer.class, p.getNumberValue(), expected(Integer.class));
            }
            if (token == JsonToken.VALUE_STRING) {
                String text = p.getText();
                try {
                    return Integer.valueOf(text.trim());
                } catch (NumberFormatException e) {
                    return (Integer) ctxt.handleWeirdStringValue(Integer.class, text, expected(Integer.class));
                }
            }
            return (Integer) ctxt.handleUnexpectedToken(Integer.class, p);
        }
    }

    private static final class BooleanDeserializer extends StdScalarDeserializer<Boolean> {

        private static final long serialVersionUID = 1L;

        BooleanDeserializer() {
            super(Boolean.class);
        }

        @Override
        public Boolean deserialize(JsonParser p, DeserializationContext ctxt) throws IOException {
            JsonToken token = p.currentToken();
            if (token == JsonToken.VALUE_TRUE || token == JsonToken.VALUE_FALSE) {
                // YAML 1.1 also reads yes/no/on/off/y/n as booleans; we take YAML 1.2's true and false only, so
                // "watch: no" or "enabled: on" is not a silent guess at what was meant.
                if (!p.getText().equalsIgnoreCase(String.valueOf(token == JsonToken.VALUE_TRUE))) {
                    return (Boolean) ctxt.handleWeirdStringValue(Boolean.class, p.getText(), expected(Boolean.class));
                }
                return token == JsonToken.VALUE_TRUE;
            }
            if (token == JsonToken.VALUE_STRING) {
                String text = p.getText().trim();
                if (text.equals("true") || text.equals("false")) {
                    return Boolean.valueOf(text);
                }
                return (Boolean) ctxt.handleWeirdStringValue(Boolean.class, p.getText(), expected(Boolean.class));
            }
            if (token == JsonToken.VALUE_NUMBER_INT || token == JsonToken.VALUE_NUMBER_FLOAT) {
                return (Boolean) ctxt.handleWeirdNumberValue(Boolean.class, p.getNumberValue(), expected(Boolean.class));
            }
            return (Boolean) ctxt.handleUnexpectedToken(Boolean.class, p);
        }
    }

    /** Digits only, with an optional minus and no leading zero: what every reader takes for the same number. */
    private static boolean isPlainDecimal(String text) {
        int start = text.startsWith("-") ? 1 : 0;
        if (text.length() == start || text.charAt(start) == '0' && text.length() > start + 1) {
            return false;
        }
        for (int i = start; i < text.length(); i++) {
            if (text.charAt(i) < '0' || text.charAt(i) > '9') {
                return false;
            }
        }
        return true;
    }

    private static String expected(Class<?> type) {
        return ProblemCollector.EXPECTED_PREFIX + YamlSchema.expected(type);
    }

    private static String failure(Class<?> type, RuntimeException e) {
        String message = e.getMessage();
        return message != null && message.startsWith(ProblemCollector.EXPECTED_PREFIX) ? message : expected(type);
    }
}
