package dev.mtlsproxy.app.admin;

import java.util.List;

/**
 * What a reload did, for {@code POST /admin/reload} and the log.
 *
 * @param success       whether a new generation is serving
 * @param generation    the generation serving after the attempt
 * @param reason        null on success; otherwise the {@code config_reloads_total} reason label
 * @param problems      every problem, each with its YAML path or file; empty on success
 * @param restartNeeded on success, every changed setting the reload left as it runs (read at start only), each with
 *                      its YAML path; empty on failure, where a refusal for a restart lists them among the problems
 */
public record ReloadOutcome(boolean success, long generation, String reason, List<String> problems,
        List<String> restartNeeded) {

    public ReloadOutcome {
        problems = List.copyOf(problems);
        restartNeeded = List.copyOf(restartNeeded);
    }

    /** With no changed setting left to a restart. */
    public ReloadOutcome(boolean success, long generation, String reason, List<String> problems) {
        this(success, generation, reason, problems, List.of());
    }
}
