package dev.mtlsproxy.app;

/** Exit codes shared by the commands. */
final class Command {

    static final int OK = 0;
    static final int INVALID = 1;
    /** Returned by long-running commands: the process lives until a signal, so Main must not exit. */
    static final int KEEP_RUNNING = -1;

    private Command() {
    }
}
