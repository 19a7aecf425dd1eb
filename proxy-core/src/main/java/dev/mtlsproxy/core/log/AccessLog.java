package dev.mtlsproxy.core.log;

/** Where finished requests go. Implementations must never block the caller, which is an event loop. */
@FunctionalInterface
public interface AccessLog {

    void log(AccessLogEntry entry);

    AccessLog DISABLED = entry -> { };
}
