package dev.mtlsproxy.core.log;

/**
 * Text as the JSON log lines carry it: every string value of the access log, the audit log and the handshake-failure
 * lines passes through {@link #wellFormed} before Jackson writes it.
 *
 * <p>A Java string can hold a lone UTF-16 surrogate, which is no character and has no UTF-8 encoding. Left alone,
 * Jackson's byte writer (the access log) writes it as a JSON escape of that lone code unit, which I-JSON
 * (RFC 7493) forbids and which log shippers built on Rust's serde_json (Vector, for one) reject, losing the whole
 * line; its character writer (audit and handshake lines) leaves it to logback, whose UTF-8 encoder writes
 * {@code ?}. Each is replaced with U+FFFD here, as Go's encoding/json does, so every line is the same I-JSON
 * whichever writer and shipper handle it. Everything else is written as given: control characters are escaped by
 * Jackson, and {@code </script>}, U+2028 and U+2029 are valid JSON as they are.
 */
public final class LogText {

    private static final char REPLACEMENT = '\uFFFD';

    private LogText() {
    }

    /** {@code text} with each unpaired surrogate replaced with U+FFFD; the same instance when it has none, or null. */
    public static String wellFormed(String text) {
        if (text == null) {
            return null;
        }
        int first = firstUnpaired(text);
        if (first < 0) {
            return text; // the common case: nothing copied
        }
        StringBuilder out = new StringBuilder(text.length()).append(text, 0, first);
        int i = first;
        while (i < text.length()) {
            char c = text.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < text.length() && Character.isLowSurrogate(text.charAt(i + 1))) {
                out.append(c).append(text.charAt(i + 1));
                i += 2;
            } else {
                out.append(Character.isSurrogate(c) ? REPLACEMENT : c);
                i++;
            }
        }
        return out.toString();
    }

    /**
     * {@code text} as the value of a double-quoted {@code key="value"} field of the application log (docs/LOGS.md):
     * each {@code "} written as {@code '}, and each control character (C0, DEL, C1) as {@code \xNN}. For text a
     * client chose, such as the messages of the HTTP decoder, which quote the client's header name, version or
     * Content-Length as sent: left as it was, {@code Content-Length: 1" event=forged} ended the field and added one
     * to the line, and an escape sequence reached the terminal of whoever read the log.
     */
    public static String quoted(String text) {
        if (text == null) {
            return null;
        }
        StringBuilder out = null;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            boolean control = c < 0x20 || (c >= 0x7f && c <= 0x9f);
            if (c != '"' && !control) {
                if (out != null) {
                    out.append(c);
                }
                continue;
            }
            if (out == null) {
                out = new StringBuilder(text.length() + 16).append(text, 0, i);
            }
            if (control) {
                out.append(String.format("\\x%02x", (int) c));
            } else {
                out.append('\'');
            }
        }
        return out == null ? text : out.toString();
    }

    /** The index of the first surrogate that is not half of a pair, or -1. */
    private static int firstUnpaired(String text) {
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (!Character.isSurrogate(c)) {
                continue;
            }
            if (Character.isHighSurrogate(c) && i + 1 < text.length() && Character.isLowSurrogate(text.charAt(i + 1))) {
                i++; // a pair: skip its low half
                continue;
            }
            return i;
        }
        return -1;
    }
}
