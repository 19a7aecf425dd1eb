package dev.mtlsproxy.config;

import java.util.Collection;
import java.util.List;
import java.util.Optional;
import java.util.stream.Collectors;

/** A configuration that cannot be used. The message lists every problem, one per line, sorted by path. */
public final class ConfigException extends Exception {

    private static final long serialVersionUID = 1L;

    @SuppressWarnings("serial") // an immutable list of records; nobody serialises this exception
    private final List<ConfigProblem> problems;
    @SuppressWarnings("serial")
    private final ProxyConfig attempted;

    ConfigException(Collection<ConfigProblem> problems) {
        this(problems, null);
    }

    ConfigException(Collection<ConfigProblem> problems, ProxyConfig attempted) {
        this(problems.stream().distinct().sorted(ConfigProblem.ORDER).toList(), attempted);
    }

    private ConfigException(List<ConfigProblem> sorted, ProxyConfig attempted) {
        super(sorted.stream().map(ConfigProblem::toString).collect(Collectors.joining("\n")));
        this.problems = sorted;
        this.attempted = attempted;
    }

    /**
     * The configuration as it was read, when the file could be mapped at all: never to be served, but its file
     * references say what to watch, so that a file it names and that is missing now (a Secret mounted after its
     * ConfigMap) triggers another attempt when it appears.
     */
    public Optional<ProxyConfig> attempted() {
        return Optional.ofNullable(attempted);
    }

    /** Every problem found, sorted by path then message; never empty. */
    public List<ConfigProblem> problems() {
        return problems;
    }
}
