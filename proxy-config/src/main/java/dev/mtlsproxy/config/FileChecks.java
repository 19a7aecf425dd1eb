package dev.mtlsproxy.config;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Why a file cannot be read, in the words a person fixing the config needs. */
final class FileChecks {

    private FileChecks() {
    }

    /** The reason the file is not readable, or null when it is. */
    static String unreadable(Path file) {
        if (!Files.exists(file)) {
            return "no such file";
        }
        if (Files.isDirectory(file)) {
            return "is a directory";
        }
        if (!Files.isRegularFile(file)) {
            return "not a regular file";
        }
        if (!Files.isReadable(file)) {
            return "permission denied";
        }
        return null;
    }

    static String describe(IOException e, Path file) {
        String reason = unreadable(file);
        return reason != null ? reason : "cannot be read (" + e.getClass().getSimpleName() + ")";
    }
}
