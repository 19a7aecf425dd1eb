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
     * @return false when this JVM or platform does not allow it (logged); the process then keeps the default
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
            signalClass.getMethod("handle", signalClass, handlerClass).invoke(null, signal, handler);
            return true;
        } catch (ReflectiveOperationException | RuntimeException | LinkageError e) {
            log.warn("event=signal_unavailable signal=SIG{} cause={}", name, e.toString());
            return false;
        }
    }
}
