package dev.mtlsproxy.app;

import dev.mtlsproxy.config.ConfigException;
import dev.mtlsproxy.config.ConfigLoader;
import dev.mtlsproxy.config.ConfigProblem;
import dev.mtlsproxy.config.ProxyConfig;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Instant;

/** {@code mtls-proxy validate}: every problem, one per line with its YAML path; warnings do not fail. */
final class ValidateCommand {

    private final PrintStream out;
    private final PrintStream err;

    ValidateCommand(PrintStream out, PrintStream err) {
        this.out = out;
        this.err = err;
    }

    int run(Path file) {
        ProxyConfig config = load(file, err);
        if (config == null) {
            return Command.INVALID;
        }
        for (String warning : ConfigLoader.warnings(config, Instant.now())) {
            err.println("warning: " + warning);
        }
        out.println(file + ": valid");
        return Command.OK;
    }

    /** Loads, or prints every problem and returns null. Shared with {@code run}, which refuses the same way. */
    static ProxyConfig load(Path file, PrintStream err) {
        try {
            return ConfigLoader.load(file);
        } catch (ConfigException e) {
            err.println(file + ": " + e.problems().size() + " problem" + (e.problems().size() == 1 ? "" : "s"));
            for (ConfigProblem problem : e.problems()) {
                err.println(problem);
            }
            return null;
        }
    }
}
