package dev.mtlsproxy.core.proxy;

/** A reload that changed nothing, with its classified reason; the message names the file or YAML path. */
public final class ReloadException extends Exception {

    private static final long serialVersionUID = 1L;

    private final ReloadFailureReason reason;

    public ReloadException(ReloadFailureReason reason, String message, Throwable cause) {
        super(message, cause);
        this.reason = reason;
    }

    public ReloadFailureReason reason() {
        return reason;
    }
}
