package dev.mtlsproxy.config;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.Function;

/**
 * The settings a reload cannot apply, compared between what runs and a configuration about to be loaded: one problem
 * per changed setting, at its path in the new file, in the form every configuration problem has
 * ({@code path: value needs a restart to change (running: value)}), with the line and column of that path in the
 * new file as {@code where} has them. Every change is listed, not the first.
 *
 * <p>A change the new file shows by leaving a value out (a removed listener, a setting back to its default) is placed
 * at the nearest value around it that the file has: the {@code listeners} list, the {@code workers} section. With
 * none around it either, or {@link ConfigPositions#NONE}, the problem names no line.
 */
public final class RestartOnlySettings {

    private static final String CHANGE = " needs a restart to change (running: ";

    private RestartOnlySettings() {
    }

    /**
     * Listeners added, removed, renamed or moved: the sockets are bound at start, so a reload with any of these is
     * refused. Listeners are matched by name; their order and every other listener setting may change on reload.
     */
    public static List<ConfigProblem> listenerChanges(ProxyConfig running, ProxyConfig next, ConfigPositions where) {
        Map<String, HostPort> before = new LinkedHashMap<>();
        running.listeners().forEach(l -> before.put(l.name(), l.address()));
        Map<String, HostPort> kept = new LinkedHashMap<>();
        next.listeners().forEach(l -> kept.put(l.name(), l.address()));
        List<String> removed = new ArrayList<>(before.keySet());
        removed.removeAll(kept.keySet());
        List<ConfigProblem> problems = new ArrayList<>();
        for (int i = 0; i < next.listeners().size(); i++) {
            ListenerConfig listener = next.listeners().get(i);
            String path = "listeners[" + i + "]";
            HostPort was = before.get(listener.name());
            if (was == null) {
                // a new name on the address of a removed listener is that listener renamed: one change, not two
                String renamed = removed.stream().filter(n -> before.get(n).equals(listener.address())).findFirst()
                        .orElse(null);
                if (renamed != null) {
                    removed.remove(renamed);
                    problems.add(where.problem(path + ".name", Values.quote(listener.name()) + CHANGE
                            + Values.quote(renamed) + ")"));
                } else {
                    problems.add(where.problem(path, "new listener " + Values.quote(listener.name())
                            + " needs a restart"));
                }
            } else if (!was.equals(listener.address())) {
                problems.add(where.problem(path + ".address", listener.address() + CHANGE + was + ")"));
            }
        }
        for (String name : removed) {
            problems.add(where.problem("listeners", "removing listener " + Values.quote(name) + " (running: "
                    + before.get(name) + ") needs a restart"));
        }
        problems.sort(ConfigProblem.ORDER);
        return List.copyOf(problems);
    }

    /**
     * Settings read once at start ({@code admin}, {@code accessLog}, {@code reload}, {@code workers}) that differ
     * from those the process {@code started} with: a reload applies everything else and leaves these as they run.
     * Compare with the configuration the process started with, not the last one reloaded: a change a reload could
     * not apply is still not applied after the next.
     */
    public static List<ConfigProblem> startOnlyChanges(ProxyConfig started, ProxyConfig next,
            ConfigPositions where) {
        List<ConfigProblem> problems = new ArrayList<>();
        compare(problems, where, "admin.address", started.admin(), next.admin(), AdminConfig::address);
        compare(problems, where, "accessLog.enabled", started.accessLog(), next.accessLog(),
                AccessLogConfig::enabled);
        compare(problems, where, "accessLog.path", started.accessLog(), next.accessLog(),
                a -> Values.quote(a.path()));
        compare(problems, where, "reload.watch", started.reload(), next.reload(), ReloadConfig::watch);
        compare(problems, where, "reload.debounce", started.reload(), next.reload(),
                r -> Durations.format(r.debounce()));
        compare(problems, where, "workers.threads", started.workers(), next.workers(),
                w -> w.threads() == null ? "default" : w.threads());
        compare(problems, where, "workers.cpuAffinity", started.workers(), next.workers(),
                WorkersConfig::cpuAffinity);
        compare(problems, where, "workers.yieldAfter", started.workers(), next.workers(),
                w -> Durations.format(w.yieldAfter()));
        compare(problems, where, "workers.transport", started.workers(), next.workers(),
                w -> w.transport().yaml());
        problems.sort(ConfigProblem.ORDER);
        return List.copyOf(problems);
    }

    private static <T> void compare(List<ConfigProblem> problems, ConfigPositions where, String path, T started,
            T next, Function<T, Object> shown) {
        String was = String.valueOf(shown.apply(started));
        String now = String.valueOf(shown.apply(next));
        if (!Objects.equals(was, now)) {
            problems.add(where.problem(path, now + CHANGE + was + ")"));
        }
    }
}
