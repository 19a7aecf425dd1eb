package dev.mtlsproxy.app;

import java.util.function.IntConsumer;

/**
 * What the process does on a signal: SIGHUP reloads and reopens the access log file; SIGTERM and SIGINT drain and
 * exit 0. The JVM's default for SIGTERM (run the shutdown hooks, exit 143) would cut requests in flight; handling the
 * signal ourselves lets them finish.
 *
 * <p>Installed before start-up begins, not once it is done: until then the JVM's default applies, which for SIGHUP
 * is to exit, and a script that edits the config and sends SIGHUP as soon as the proxy answers could land in the gap
 * between the first request served and the handler installed. A signal that arrives while the proxy starts is acted
 * on when it has started.
 */
final class ProcessSignals {

    private final IntConsumer exit;
    /** Guarded by this; null until started. */
    private RunCommand.Running running;
    private boolean reloadRequested;
    private boolean stopRequested;

    ProcessSignals(IntConsumer exit) {
        this.exit = exit;
    }

    /** Handles SIGHUP, SIGTERM and SIGINT from now on. */
    static ProcessSignals install(IntConsumer exit) {
        ProcessSignals signals = new ProcessSignals(exit);
        Signals.handle("HUP", signals::hangUp);
        Signals.handle("TERM", signals::terminate);
        Signals.handle("INT", signals::terminate);
        return signals;
    }

    /** Start-up is done: what was asked for meanwhile happens now. */
    synchronized void started(RunCommand.Running started) {
        running = started;
        if (reloadRequested) {
            reload();
        }
        if (stopRequested) {
            drainAndExit();
        }
    }

    /** SIGHUP: reload, and reopen the access log file (logrotate's postrotate sends it, as to nginx). */
    synchronized void hangUp() {
        if (running == null) {
            reloadRequested = true;
        } else {
            reload();
        }
    }

    private void reload() {
        if (running.accessLog() != null) {
            running.accessLog().reopen();
        }
        running.reloader().reload("sighup");
    }

    /** SIGTERM, SIGINT. */
    synchronized void terminate() {
        stopRequested = true;
        if (running != null) {
            drainAndExit();
        }
    }

    private void drainAndExit() {
        RunCommand.Running draining = running;
        if (draining.beginShutdown()) {
            Thread shutdown = new Thread(() -> {
                draining.shutdownGracefully();
                exit.accept(Command.OK);
            }, "shutdown");
            shutdown.start();
        }
    }
}
