package dev.mtlsproxy.app;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * POSIX signal handlers through {@code sun.misc.Signal} (module jdk.unsupported), the only way a JVM can handle
 * SIGHUP or turn SIGTERM into a clean exit 0 instead of the shutdown-hook path's 143.
 *
 * <p>Reached by reflection: javac reports {@code sun.misc} as "internal proprietary API" with a warning that no
 * {@code @SuppressWarnings} silences, and the build runs with {@code -Werror}. The JVM calls a handler on its own
 * "SIGxxx handler" thread, never an event loop; handlers here only hand work to other threads.
 */
final class Signals {

    private static final Logger log = LoggerFactory.getLogger(Signals.class);

    private Signals() {
    }

    /**
     * Installs {@code action} for the named signal ("HUP", "TERM", "INT").
     *
     * <p>A signal the process was started with ignored stays ignored: HotSpot leaves such a shutdown signal alone
     * and returns {@code SIG_IGN} instead of installing the handler. {@code nohup} starts a process with SIGHUP
     * ignored (and a shell its background jobs with SIGINT ignored, which is meant); nginx, written in C, takes the
     * signal back, the JVM cannot. Without a word, {@code kill -HUP} would then do nothing at all, so it is logged
     * with what still works.
     *
     * @return false when this JVM or platform does not allow it, or the signal stays ignored (logged); the process
     *         then keeps the default, or the ignoring
     */
    static boolean handle(String name, Runnable action) {
        try {
            Class<?> signalClass = Class.forName("sun.misc.Signal");
            Class<?> handlerClass = Class.forName("sun.misc.SignalHandler");
            Object signal = signalClass.getConstructor(String.class).newInstance(name);
            InvocationHandler invocation = (Object proxy, Method method, Object[] args) -> {
                if (method.getName().equals("handle")) {
                    action.run();
                    return null;
                }
                return switch (method.getName()) {
                    case "toString" -> "mtls-proxy SIG" + name + " handler";
                    case "hashCode" -> System.identityHashCode(proxy);
                    case "equals" -> proxy == args[0];
                    default -> null;
                };
            };
            Object handler = Proxy.newProxyInstance(Signals.class.getClassLoader(), new Class<?>[] {handlerClass},
                    invocation);
            Object previous = signalClass.getMethod("handle", signalClass, handlerClass).invoke(null, signal, handler);
            if (previous != null && previous == handlerClass.getField("SIG_IGN").get(null)) {
                if (name.equals("INT")) {
                    // What a shell does to every background job: Ctrl-C is not meant for it. SIGTERM still drains.
                    log.debug("event=signal_ignored signal=SIGINT");
                } else {
                    log.warn("event=signal_ignored signal=SIG{} detail=\"the process was started with SIG{} ignored"
                            + " (nohup does that to SIGHUP), and the JVM keeps it ignored: {}\"", name, name,
                            name.equals("HUP") ? "reload with POST /admin/reload or reload.watch, or start the proxy"
                                    + " with the signal at its default (env --default-signal=HUP)"
                                    : "stop the proxy with SIGINT or SIGKILL");
                }
                return false;
            }
            return true;
        } catch (ReflectiveOperationException | RuntimeException | LinkageError e) {
            log.warn("event=signal_unavailable signal=SIG{} cause={}", name, e.toString());
            return false;
        }
    }
}
