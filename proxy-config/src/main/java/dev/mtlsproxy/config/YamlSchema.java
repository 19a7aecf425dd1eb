package dev.mtlsproxy.config;

import java.lang.reflect.ParameterizedType;
import java.lang.reflect.RecordComponent;
import java.lang.reflect.Type;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * The shape of the YAML, read from the config records themselves so it cannot drift from them: a record is a mapping
 * whose keys are its component names, and every type has one phrase saying what a value of it looks like.
 */
final class YamlSchema {

    static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]*");
    static final String NAME_EXPECTED = "a name matching " + NAME.pattern();

    /** Records written as one scalar in YAML, e.g. {@code 16KiB} and {@code 127.0.0.1:8443}. */
    private static final Set<Class<?>> SCALAR_RECORDS = Set.of(DataSize.class, HostPort.class, CpuAffinity.class);

    private static final Map<Class<?>, String> SCALARS = Map.ofEntries(
            Map.entry(String.class, "a string"),
            Map.entry(Integer.class, "an integer"),
            Map.entry(Boolean.class, "true or false"),
            Map.entry(Duration.class, Durations.EXPECTED),
            Map.entry(DataSize.class, "a size like 512B, 16KiB, 1MiB, 2GiB"),
            Map.entry(HostPort.class, "host:port, e.g. 127.0.0.1:8443"),
            Map.entry(CpuAffinity.class, CpuAffinity.EXPECTED),
            Map.entry(Instant.class, "a date and time with offset, like 2026-12-31T18:00:00Z"),
            Map.entry(URI.class, BackendValidator.URL_EXPECTED),
            Map.entry(Path.class, "a file path"));

    private YamlSchema() {
    }

    static boolean isMapping(Class<?> type) {
        return type.isRecord() && !SCALAR_RECORDS.contains(type);
    }

    /** The keys a mapping for this record accepts, sorted. */
    static List<String> keys(Class<?> record) {
        return Arrays.stream(record.getRecordComponents()).map(RecordComponent::getName).sorted().toList();
    }

    /** The declared type under a key of a record's mapping, if the key exists. */
    static Optional<Type> keyType(Class<?> record, String key) {
        return Arrays.stream(record.getRecordComponents())
                .filter(c -> c.getName().equals(key))
                .map(RecordComponent::getGenericType)
                .findFirst();
    }

    static Class<?> raw(Type type) {
        if (type instanceof Class<?> c) {
            return c;
        }
        if (type instanceof ParameterizedType p && p.getRawType() instanceof Class<?> c) {
            return c;
        }
        return Object.class;
    }

    /** The element type of a {@code List<E>}, or the value type of a {@code Map<String, V>}. */
    static Type contentType(Type type) {
        if (type instanceof ParameterizedType p) {
            Type[] args = p.getActualTypeArguments();
            return args[args.length - 1];
        }
        return Object.class;
    }

    /** What a value of this type looks like in YAML, for "(expected: ...)". */
    static String expected(Type type) {
        Class<?> raw = raw(type);
        String scalar = SCALARS.get(raw);
        if (scalar != null) {
            return scalar;
        }
        if (raw.isEnum() && YamlEnum.class.isAssignableFrom(raw)) {
            return "one of " + String.join(", ",
                    Arrays.stream(raw.getEnumConstants()).map(e -> ((YamlEnum) e).yaml()).toList());
        }
        if (isMapping(raw)) {
            return "a mapping with keys " + String.join(", ", keys(raw));
        }
        if (Map.class.isAssignableFrom(raw)) {
            return "a mapping of names";
        }
        if (Collection.class.isAssignableFrom(raw)) {
            return "a list";
        }
        return "a " + raw.getSimpleName();
    }
}
