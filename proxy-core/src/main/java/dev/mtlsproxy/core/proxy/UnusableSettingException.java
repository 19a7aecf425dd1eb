package dev.mtlsproxy.core.proxy;

/**
 * A setting valid as written that this host cannot honour (a CPU outside the process's set, a transport the kernel
 * lacks). Its message names the setting and is meant for the operator as it is; a start that fails with it says so
 * in one line. Its own type, so that the start tells it apart from an {@link IllegalStateException} nobody foresaw,
 * whose stack trace is wanted.
 */
public final class UnusableSettingException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    UnusableSettingException(String message) {
        super(message);
    }

    UnusableSettingException(String message, Throwable cause) {
        super(message, cause);
    }
}
