package dev.mtlsproxy.core.backend;

/**
 * The active health check's verdict on one endpoint, with hysteresis: in rotation, it takes
 * {@code unhealthyThreshold} consecutive failed checks to go out; out, {@code healthyThreshold} consecutive passes to
 * come back (HAProxy's {@code fall} and {@code rise}, Envoy's thresholds). A result that agrees with the verdict
 * resets the count the other way, so failures interleaved with passes never add up.
 *
 * <p>A new endpoint starts in rotation and its first check decides at once, either way; the thresholds apply from
 * then on. That is how the proxy always behaved at start-up, and HAProxy's default ({@code init-state up}: in, and
 * out at the first failure) and Envoy's (a host's first passing check makes it healthy) agree that the first result
 * is taken as it is. Starting out of rotation instead would answer 503 to every request of a freshly started proxy
 * until its checks came back, since no endpoint passing the active check means 503; a dead endpoint that started in
 * rotation costs at most a connect failure, which passive health retries elsewhere.
 *
 * <p>Thread-safety: {@link #record} is called only from the health checker's one event loop, so the counter is
 * confined to it; the verdict is volatile and read by any thread. A reload reads both to carry them over twice: when
 * it builds the next generation, and again once the checker has stopped and before the next one starts (see
 * {@code Backends#takeOverHealthFrom}), so the verdict and count the next generation starts from are the last ones
 * counted.
 */
final class ActiveHealth {

    private final int healthyThreshold;
    private final int unhealthyThreshold;
    private volatile boolean healthy;
    /** False until the first check's result is in: that one decides alone. */
    private volatile boolean decided;
    /** The latest result, and how many in a row were the same; confined to the checker's loop. */
    private boolean lastPassed;
    private int streak;

    private ActiveHealth(int healthyThreshold, int unhealthyThreshold, boolean healthy, boolean decided) {
        this.healthyThreshold = healthyThreshold;
        this.unhealthyThreshold = unhealthyThreshold;
        this.healthy = healthy;
        this.decided = decided;
    }

    /** A new endpoint: in rotation until its first check says otherwise. */
    static ActiveHealth initial(int healthyThreshold, int unhealthyThreshold) {
        return new ActiveHealth(healthyThreshold, unhealthyThreshold, true, false);
    }

    /**
     * The same endpoint in a rebuilt backend (a reload that changed its settings), asked the same question: it keeps
     * the verdict of the previous generation, so a reload does not put an endpoint that is out back into rotation.
     * Under the same thresholds it keeps the count too: the results so far answered the same question and are
     * counted against the same number, so two passes of three before a reload and one after bring the endpoint back,
     * and reloads that come more often than {@code threshold} checks (a controller rewriting a ConfigMap) cannot hold
     * a verdict still forever. Under other thresholds the count starts again, as in Envoy, whose health checker is
     * rebuilt with a changed cluster and counts from zero: a count reached against one number is not evidence for
     * another (a threshold lowered below it would flip the verdict on a result that agrees with it).
     *
     * <p>The count is confined to the checker's loop; it is read here while that checker still runs when the next
     * generation is built (an old value does no harm: it is read again) and again once the checker has stopped and
     * its loop has run a task queued after the stop, which orders every count it made before this read
     * ({@code Backends#takeOverHealthFrom}).
     */
    static ActiveHealth carriedOver(ActiveHealth previous, int healthyThreshold, int unhealthyThreshold) {
        ActiveHealth next = new ActiveHealth(healthyThreshold, unhealthyThreshold, previous.healthy,
                previous.decided);
        if (healthyThreshold == previous.healthyThreshold && unhealthyThreshold == previous.unhealthyThreshold) {
            next.lastPassed = previous.lastPassed;
            next.streak = previous.streak;
        }
        return next;
    }

    /**
     * The same endpoint under a check that asks something else ({@link HealthQuestion}: another path, Host, server
     * name or TLS setting). The verdict holds until the new check's first result, so a reload never puts an endpoint
     * that is out back into rotation unchecked; that result then decides alone, either way, as a new endpoint's first
     * check does, since the old check's results say nothing about the new one's: an endpoint taken out by a failing
     * old path is not kept out for {@code healthyThreshold} passes of a path that was never failing. The thresholds
     * apply from then on.
     */
    static ActiveHealth askedAnew(ActiveHealth previous, int healthyThreshold, int unhealthyThreshold) {
        return new ActiveHealth(healthyThreshold, unhealthyThreshold, previous.healthy, false);
    }

    boolean isHealthy() {
        return healthy;
    }

    /** Counts one check's result; true when it changed the verdict. */
    boolean record(boolean passed) {
        streak = passed == lastPassed ? streak + 1 : 1;
        lastPassed = passed;
        if (passed == healthy) {
            decided = true;
            return false;
        }
        if (decided && streak < (passed ? healthyThreshold : unhealthyThreshold)) {
            return false;
        }
        decided = true;
        healthy = passed;
        return true;
    }

    /** How many of the latest results in a row were the same as the latest one. */
    int streak() {
        return streak;
    }

    /** How many results in a row against the verdict would change it. */
    int threshold() {
        return healthy ? unhealthyThreshold : healthyThreshold;
    }
}
