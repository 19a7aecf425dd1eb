package dev.mtlsproxy.core.proxy;

import java.util.List;

/**
 * A reload that changed nothing, with its classified reason and every problem found, each naming its file or YAML
 * path; the message is the problems, one per line.
 */
public final class ReloadException extends Exception {

    private static final long serialVersionUID = 1L;

    private final ReloadFailureReason reason;
    private final List<String> problems;

    public ReloadException(ReloadFailureReason reason, String message, Throwable cause) {
        super(message, cause);
        this.reason = reason;
        this.problems = List.of(String.valueOf(message));
    }

    /** A reload refused for several problems at once, all of them listed. */
    public ReloadException(ReloadFailureReason reason, List<String> problems) {
        super(String.join("\n", problems));
        this.reason = reason;
        this.problems = List.copyOf(problems);
    }

    public ReloadFailureReason reason() {
        return reason;
    }

    /** At least one. */
    public List<String> problems() {
        return problems;
    }
}
