package dev.mtlsproxy.app;

/** Exit codes shared by the commands, as {@link Main#USAGE} documents them. */
final class Command {

    static final int OK = 0;
    /** The command ran and the answer is no (invalid config, failed test, not ready, cannot start). */
    static final int INVALID = 1;
    /** The command line itself is wrong: nothing was run. */
    static final int USAGE = 2;
    /** Returned by long-running commands: the process lives until a signal, so Main must not exit. */
    static final int KEEP_RUNNING = -1;

    private Command() {
    }
}
