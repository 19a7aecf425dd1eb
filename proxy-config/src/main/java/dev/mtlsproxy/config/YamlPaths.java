package dev.mtlsproxy.config;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonStreamContext;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonMappingException;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;

/** Paths as shown to users: {@code listeners[0].tls.minVersion}, {@code backends.orders.url}; the root is "". */
final class YamlPaths {

    private YamlPaths() {
    }

    /** An empty key is shown as {@code ""}: a problem with it still has a path, and it is not its parent's. */
    static String key(String parent, String key) {
        String shown = key.isEmpty() ? "\"\"" : key;
        return parent.isEmpty() ? shown : parent + "." + shown;
    }

    static String item(String parent, int index) {
        return parent + "[" + index + "]";
    }

    /** The enclosing path, "" at the top; a key containing dots is cut at its last dot, which is close enough. */
    static String parent(String path) {
        int cut = Math.max(path.lastIndexOf('.'), path.lastIndexOf('['));
        return cut < 0 ? "" : path.substring(0, cut);
    }

    /** Path of the value the parser is on. */
    static String of(JsonParser p) {
        JsonStreamContext context = p.getParsingContext();
        JsonToken token = p.currentToken();
        // on a START token the parser has already entered the new container, whose parent names this value
        if ((token == JsonToken.START_OBJECT || token == JsonToken.START_ARRAY) && context.getParent() != null) {
            context = context.getParent();
        }
        Deque<String> parts = new ArrayDeque<>();
        for (JsonStreamContext c = context; c != null && !c.inRoot(); c = c.getParent()) {
            if (c.inArray()) {
                parts.push("[" + Math.max(c.getCurrentIndex(), 0) + "]");
            } else if (c.getCurrentName() != null) {
                parts.push("." + key("", c.getCurrentName()));
            }
        }
        String path = String.join("", parts);
        return path.startsWith(".") ? path.substring(1) : path;
    }

    /** Path of the value a Jackson exception was about. */
    static String of(List<JsonMappingException.Reference> references) {
        String path = "";
        for (JsonMappingException.Reference r : references) {
            if (r.getFieldName() != null) {
                path = key(path, r.getFieldName());
            } else if (r.getIndex() >= 0) {
                path = item(path, r.getIndex());
            }
        }
        return path;
    }
}
