package dev.mtlsproxy.config;

/**
 * Path patterns of rules: segment-boundary prefixes in which {@code *} stands for exactly one whole segment. Shared
 * by validation and by the compiled policy so both read a pattern the same way.
 */
public final class PathPatterns {

    private PathPatterns() {
    }

    /**
     * The characters other than "/" that a normalised request path spells raw, and so the only ones a pattern may
     * contain: the request-target normaliser decodes their escapes (a rule must see one spelling of a path, or
     * "%24batch" would walk past a deny on "$batch"), and a pattern with any other character could never match.
     * Unreserved characters, the sub-delimiters, ":" and "@", except "+" (a backend that decodes paths like form
     * data reads it as a space, so "%2B" and "+" stay as sent) and ";" (refused in request paths).
     */
    public static boolean isSpelledRaw(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                || c == '-' || c == '.' || c == '_' || c == '~'
                || c == '!' || c == '$' || c == '&' || c == '\'' || c == '(' || c == ')' || c == '*' || c == ','
                || c == '=' || c == ':' || c == '@';
    }

    /**
     * Whether a normalised path is covered by the pattern: equal to it, or below it on a segment boundary, with each
     * {@code *} of the pattern matching one non-empty segment. Case-sensitive, as paths are.
     */
    public static boolean covers(String pattern, String path) {
        if (pattern.equals("/")) {
            return true;
        }
        if (path.isEmpty() || path.charAt(0) != '/') {
            return false;
        }
        // Walks both strings segment by segment without allocating: this runs per request.
        int p = 1;
        int q = 1;
        while (true) {
            int pEnd = segmentEnd(pattern, p);
            int qEnd = segmentEnd(path, q);
            boolean wildcard = pEnd - p == 1 && pattern.charAt(p) == '*';
            if (wildcard ? qEnd == q : pEnd - p != qEnd - q || !pattern.regionMatches(p, path, q, pEnd - p)) {
                return false;
            }
            if (pEnd == pattern.length()) {
                return qEnd == path.length() || path.charAt(qEnd) == '/';
            }
            if (qEnd == path.length()) {
                return false;
            }
            p = pEnd + 1;
            q = qEnd + 1;
            if (p == pattern.length()) {
                return true; // a pattern ending in "/" covers everything below it
            }
        }
    }

    private static int segmentEnd(String s, int from) {
        int slash = s.indexOf('/', from);
        return slash < 0 ? s.length() : slash;
    }

    /** Whether every path a pattern covers is under the prefix (so the pattern can ever apply on that route). */
    public static boolean within(String pattern, String prefix) {
        if (prefix.equals("/")) {
            return true;
        }
        String p = prefix.endsWith("/") ? prefix.substring(0, prefix.length() - 1) : prefix;
        // compare segment by segment; a "*" in the pattern is not "under" a literal prefix segment
        String[] want = p.substring(1).split("/", -1);
        String[] have = pattern.substring(1).split("/", -1);
        if (have.length < want.length) {
            return false;
        }
        for (int i = 0; i < want.length; i++) {
            if (!want[i].equals(have[i])) {
                return false;
            }
        }
        return true;
    }
}
