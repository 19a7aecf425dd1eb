package dev.mtlsproxy.config;

import java.util.Collection;
import java.util.List;
import java.util.stream.Collectors;

/** A configuration that cannot be used. The message lists every problem, one per line, sorted by path. */
public final class ConfigException extends Exception {

    private static final long serialVersionUID = 1L;

    @SuppressWarnings("serial") // an immutable list of records; nobody serialises this exception
    private final List<ConfigProblem> problems;

    ConfigException(Collection<ConfigProblem> problems) {
        this(problems.stream().distinct().sorted(ConfigProblem.ORDER).toList());
    }

    private ConfigException(List<ConfigProblem> sorted) {
        super(sorted.stream().map(ConfigProblem::toString).collect(Collectors.joining("\n")));
        this.problems = sorted;
    }

    /** Every problem found, sorted by path then message; never empty. */
    public List<ConfigProblem> problems() {
        return problems;
    }
}
