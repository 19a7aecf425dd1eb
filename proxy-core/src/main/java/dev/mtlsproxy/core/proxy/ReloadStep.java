package dev.mtlsproxy.core.proxy;

import java.util.Locale;

/**
 * A step of a reload after the new generation went live: the {@code step} label of
 * {@code config_reload_step_failures_total}. A closed set. Past the swap a reload cannot fail any more, since the new
 * generation serves whatever happens next; a step that throws is logged ({@code event=reload_step_failed}) with what it
 * leaves undone, counted, and the reload goes on with the next step and reports success.
 */
public enum ReloadStep {
    /** The gauges that describe the configuration: certificate expiry, CRL nextUpdate, each backend's pool and health. */
    METRICS("the new generation serves; the certificate, CRL and backend gauges may show the previous generation or"
            + " miss a new backend until a later reload registers them"),
    /** Closing the backends the new generation rebuilt or removed: their health checks and idle connections. */
    RETIRE_BACKENDS("the new generation serves; backends it replaced or removed may go on with their health checks"
            + " and keep idle connections until a restart"),
    /** Judging open connections by the new CAs, CRLs and tunnel policy. */
    REVERIFY_CONNECTIONS("the new generation serves new connections and requests; connections opened before the reload"
            + " may not all have been judged by its CAs, CRLs and tunnel policy: reload again or restart to close"
            + " those that no longer pass");

    private final String meaning;

    ReloadStep(String meaning) {
        this.meaning = meaning;
    }

    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** What a failure of this step leaves undone, for the operator reading the log line. */
    String meaning() {
        return meaning;
    }
}
