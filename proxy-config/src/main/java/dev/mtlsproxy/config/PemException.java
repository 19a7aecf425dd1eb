package dev.mtlsproxy.config;

import java.nio.file.Path;

/**
 * A PEM file that cannot be used. The reason names what is wrong with the file, never its content: no key material
 * ends up in messages or logs.
 */
public final class PemException extends Exception {

    private static final long serialVersionUID = 1L;

    @SuppressWarnings("serial") // Path is not Serializable; nobody serialises this exception
    private final Path file;
    private final String reason;

    PemException(Path file, String reason) {
        super(file + ": " + reason);
        this.file = file;
        this.reason = reason;
    }

    public Path file() {
        return file;
    }

    /** What is wrong, e.g. {@code no such file} or {@code no CERTIFICATE block found}. */
    public String reason() {
        return reason;
    }
}
