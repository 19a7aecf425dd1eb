package dev.mtlsproxy.config;

import java.util.Collection;

/**
 * How the methods listed by a route or a rule are read, shared by the load-time warnings and the compiled policy so
 * both read a list the same way.
 */
public final class HttpMethods {

    private HttpMethods() {
    }

    /**
     * Whether a list of methods names this one: itself, or HEAD when the list names GET. HEAD is a GET whose response
     * has no body (RFC 9110, 9.3.2), and backends serve it so: Express, Spring, Go's ServeMux, Flask and Rails run
     * the GET handler for it, and its status and headers reach the client. A deny on GET that HEAD walked past would
     * leak what the deny hides and run what it forbids; nginx's {@code limit_except GET} covers HEAD the same way.
     */
    public static boolean names(Collection<String> methods, String method) {
        return methods.contains(method) || (method.equals("HEAD") && methods.contains("GET"));
    }
}
