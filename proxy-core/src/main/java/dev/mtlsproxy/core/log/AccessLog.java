package dev.mtlsproxy.core.log;

/** Where finished requests go. Implementations must never block the caller, which is an event loop. */
@FunctionalInterface
public interface AccessLog {

    void log(AccessLogEntry entry);

    /** False when entries are discarded, so callers can skip building them (the per-request path does). */
    default boolean enabled() {
        return true;
    }

    AccessLog DISABLED = new AccessLog() {
        @Override
        public void log(AccessLogEntry entry) {
        }

        @Override
        public boolean enabled() {
            return false;
        }
    };
}
