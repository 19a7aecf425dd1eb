package dev.mtlsproxy.app.admin;

import java.util.List;

/**
 * What a reload did, for {@code POST /admin/reload} and the log.
 *
 * @param success    whether a new generation is serving
 * @param generation the generation serving after the attempt
 * @param reason     null on success; otherwise the {@code config_reloads_total} reason label
 * @param problems   every problem, each with its YAML path or file; empty on success
 */
public record ReloadOutcome(boolean success, long generation, String reason, List<String> problems) {

    public ReloadOutcome {
        problems = List.copyOf(problems);
    }
}
