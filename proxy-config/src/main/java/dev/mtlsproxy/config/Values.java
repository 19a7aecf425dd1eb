package dev.mtlsproxy.config;

import java.util.Locale;

/** How values from the YAML are echoed in messages. */
final class Values {

    private static final int MAX_SHOWN = 80;

    private Values() {
    }

    /**
     * A string as a quoted literal, shortened when long. Text that looks like PEM is never echoed: someone who pasted a
     * key where a file name belongs must not find it in logs.
     */
    static String quote(String s) {
        if (s.contains("-----BEGIN")) {
            return "<PEM text, not shown>";
        }
        String shown = s.length() > MAX_SHOWN ? s.substring(0, MAX_SHOWN - 3) + "..." : s;
        StringBuilder out = new StringBuilder(shown.length() + 2).append('"');
        for (int i = 0; i < shown.length(); i++) {
            char c = shown.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\t' -> out.append("\\t");
                case '\r' -> out.append("\\r");
                default -> {
                    if (c < 0x20 || c == 0x7f) {
                        out.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        return out.append('"').toString();
    }
}
