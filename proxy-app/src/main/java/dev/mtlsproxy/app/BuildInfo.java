package dev.mtlsproxy.app;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Properties;

/**
 * The version and git commit this build was made from, as {@code build-info.properties} records them (written by
 * the build, see proxy-app/pom.xml). A build without git or without .git (a source tarball) says {@code unknown}
 * for the commit; classes compiled by something other than Maven (an IDE) have no file and say {@code unknown} for
 * both.
 *
 * @param revision the abbreviated commit, {@code -dirty} appended when tracked files had uncommitted changes
 */
record BuildInfo(String version, String revision) {

    static final String UNKNOWN = "unknown";
    static final String RESOURCE = "build-info.properties";

    /** Read once: it is part of the jar, not of the environment. */
    private static final BuildInfo CURRENT = read();

    static BuildInfo current() {
        return CURRENT;
    }

    private static BuildInfo read() {
        Properties properties = new Properties();
        try (InputStream in = BuildInfo.class.getResourceAsStream(RESOURCE)) {
            if (in != null) {
                properties.load(in);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + RESOURCE + " from the jar", e);
        }
        return new BuildInfo(nonBlank(properties.getProperty("version")), nonBlank(properties.getProperty("revision")));
    }

    private static String nonBlank(String value) {
        return value == null || value.isBlank() ? UNKNOWN : value.strip();
    }

    /** What {@code mtls-proxy version} prints first: one line a bug report can quote and a script can parse. */
    String line() {
        return "mtls-proxy " + version + " (commit " + revision + ")";
    }
}
