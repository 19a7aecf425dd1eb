package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.config.HostPort;
import java.io.IOException;

/**
 * A configured address could not be bound (in use, not an address of this host, a privileged port). Its message
 * names the setting, as a config problem does, since several addresses may be configured and the operating system's
 * own error ({@code bind(..) failed with error(-98): Address already in use}) says which of them nowhere.
 */
public final class CannotBindException extends IOException {
    private static final long serialVersionUID = 1L;

    /** @param path the setting's YAML path, e.g. {@code listeners[1].address} or {@code admin.address} */
    public CannotBindException(String path, HostPort address, Throwable cause) {
        this(path, address.toString(), cause);
    }

    /** @param written the setting's value as the config writes it, e.g. a url */
    public CannotBindException(String path, String written, Throwable cause) {
        super(path + ": \"" + written + "\" (expected: an address this process can bind) - "
                + (cause.getMessage() != null ? cause.getMessage() : cause.getClass().getSimpleName()), cause);
    }
}
