package dev.mtlsproxy.core.http;

import dev.mtlsproxy.config.PathPatterns;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * A request-target reduced to the one form that is both checked by policy and sent to the backend, so the two can
 * never disagree about which resource is meant.
 *
 * <p>Normalisation: an escape of a character that a rule's path may contain is decoded (unreserved characters, so
 * {@code %2e} is a dot, and {@code ! $ & ' ( ) * , = : @}, so {@code /odata/%24batch} is {@code /odata/$batch}):
 * backends decode them before routing, so a rule must see one spelling, or {@code %24batch} would walk past a deny
 * on {@code $batch}. Other escapes get upper-case hex; {@code .} and {@code ..} segments are resolved, repeated
 * slashes merge. Refused outright, because backends disagree about them: an escape of {@code /}, {@code \},
 * {@code ;} or a control character, an overlong UTF-8 escape ({@code %C0%AE}), a raw backslash, a {@code ;} path parameter, a {@code ..} that climbs above the
 * root, a fragment, a malformed escape, a control, space or non-ASCII byte in the path or the query, and any form
 * other than origin-form ({@code /path}) or absolute-form ({@code http://host/path}).
 *
 * @param path      the normalised path, always starting with "/"
 * @param query     the raw query without "?", or null
 * @param authority the authority of an absolute-form target, or null
 */
public record RequestTarget(String path, String query, String authority) {

    /** Thrown for a target that must not be forwarded; the request gets 400. */
    public static final class InvalidTargetException extends Exception {
        private static final long serialVersionUID = 1L;

        InvalidTargetException(String reason) {
            super(reason);
        }
    }

    /** What the backend receives as the request-target: normalised path plus the query as sent. */
    public String pathAndQuery() {
        return query == null ? path : path + "?" + query;
    }

    public static RequestTarget parse(String uri) throws InvalidTargetException {
        String authority = null;
        String rest = uri;
        if (!uri.startsWith("/")) {
            String lower = uri.toLowerCase(Locale.ROOT);
            int schemeEnd = lower.startsWith("http://") ? 7 : lower.startsWith("https://") ? 8 : -1;
            if (schemeEnd < 0) {
                throw new InvalidTargetException("request-target is not in origin-form or absolute-form");
            }
            int slash = uri.indexOf('/', schemeEnd);
            int question = uri.indexOf('?', schemeEnd);
            // The authority ends at the first "/" or "?", whichever comes first: "http://host?next=/x" is host "host".
            int end = slash >= 0 && (question < 0 || slash < question) ? slash : question >= 0 ? question
                    : uri.length();
            authority = uri.substring(schemeEnd, end);
            if (authority.isEmpty() || authority.indexOf('@') >= 0) {
                throw new InvalidTargetException("absolute-form target without a usable authority");
            }
            rest = slash >= 0 && (question < 0 || slash < question) ? uri.substring(slash) : "/" + uri.substring(end);
        }
        if (rest.indexOf('#') >= 0) {
            throw new InvalidTargetException("fragment in request-target");
        }
        int q = rest.indexOf('?');
        String rawPath = q >= 0 ? rest.substring(0, q) : rest;
        String query = q >= 0 ? rest.substring(q + 1) : null;
        if (query != null) {
            // The query is forwarded as sent, so it must be bytes every parser reads alike: a NUL would reach the
            // backend raw, and a byte above 0x7F would reach it re-encoded as UTF-8 (the request line is text).
            checkQuery(query);
        }
        return new RequestTarget(normalisePath(rawPath), query, authority);
    }

    static String normalisePath(String raw) throws InvalidTargetException {
        String decoded = decodeEscapes(raw);
        if (decoded.indexOf('\\') >= 0) {
            throw new InvalidTargetException("backslash in path");
        }
        if (decoded.indexOf(';') >= 0) {
            throw new InvalidTargetException("path parameter (;) in path");
        }
        return isNormal(decoded) ? decoded : normaliseSegments(decoded);
    }

    /**
     * True when {@link #normaliseSegments} would return the path unchanged: it starts with "/" and no segment is
     * empty (except after a trailing slash), "." or "..". Nearly every request's path is like this, and a scan is
     * cheaper than splitting and joining it again.
     */
    static boolean isNormal(String path) {
        int length = path.length();
        if (length == 0 || path.charAt(0) != '/') {
            return false;
        }
        int start = 1;
        for (int i = 1; i <= length; i++) {
            if (i < length && path.charAt(i) != '/') {
                continue;
            }
            int segment = i - start;
            if ((segment == 0 && i < length)
                    || (segment == 1 && path.charAt(start) == '.')
                    || (segment == 2 && path.charAt(start) == '.' && path.charAt(start + 1) == '.')) {
                return false;
            }
            start = i + 1;
        }
        return true;
    }

    /** Resolves "." and ".." and merges repeated slashes; a trailing slash stays. */
    static String normaliseSegments(String decoded) throws InvalidTargetException {
        List<String> segments = new ArrayList<>();
        for (String segment : decoded.split("/", -1)) {
            if (segment.isEmpty() || segment.equals(".")) {
                continue;
            }
            if (segment.equals("..")) {
                if (segments.isEmpty()) {
                    throw new InvalidTargetException("path escapes the root");
                }
                segments.remove(segments.size() - 1);
                continue;
            }
            segments.add(segment);
        }
        boolean trailingSlash = decoded.length() > 1 && (decoded.endsWith("/") || decoded.endsWith("/.")
                || decoded.endsWith("/.."));
        StringBuilder out = new StringBuilder(decoded.length());
        for (String segment : segments) {
            out.append('/').append(segment);
        }
        if (out.length() == 0 || trailingSlash) {
            out.append('/');
        }
        return out.toString();
    }

    private static String decodeEscapes(String raw) throws InvalidTargetException {
        if (raw.indexOf('%') < 0) {
            checkCharacters(raw);
            return raw;
        }
        StringBuilder out = new StringBuilder(raw.length());
        for (int i = 0; i < raw.length(); i++) {
            char c = raw.charAt(i);
            if (c != '%') {
                checkCharacter(c);
                out.append(c);
                continue;
            }
            if (i + 2 >= raw.length()) {
                throw new InvalidTargetException("truncated percent-escape");
            }
            int hi = hexValue(raw.charAt(i + 1));
            int lo = hexValue(raw.charAt(i + 2));
            if (hi < 0 || lo < 0) {
                throw new InvalidTargetException("malformed percent-escape");
            }
            char decoded = (char) (hi << 4 | lo);
            if (decoded == '/' || decoded == '\\') {
                throw new InvalidTargetException("encoded slash or backslash in path");
            }
            if (decoded == ';') {
                // Kept encoded, "/public/..%3B/admin" is a plain segment here, but "/public/..;/admin" and then
                // "/admin" to a backend that strips path parameters after decoding; decoded, it is a parameter.
                throw new InvalidTargetException("encoded semicolon in path");
            }
            if (decoded < 0x20 || decoded == 0x7f) {
                // Refused as their raw forms are: "/admin%0A" is not "/admin" to the policy, but it is to a backend
                // that decodes the path and matches it with a "$"-anchored pattern (Django's CVE-2021-44420).
                throw new InvalidTargetException("encoded control character in path");
            }
            if (startsOverlongUtf8(decoded, raw, i + 3)) {
                // "%C0%AE" is not "." to the policy, but it is to a backend whose UTF-8 decoder accepts overlong
                // forms, so "/public/%C0%AE%C0%AE/admin" would be "/admin" there (Tomcat's CVE-2008-2938, IIS).
                // No UTF-8 encoder produces them.
                throw new InvalidTargetException("overlong UTF-8 escape in path");
            }
            // Decoded exactly when a rule's path may contain the character: one definition for both sides.
            if (PathPatterns.isSpelledRaw(decoded)) {
                out.append(decoded);
            } else {
                out.append('%').append(Character.toUpperCase(raw.charAt(i + 1)))
                        .append(Character.toUpperCase(raw.charAt(i + 2)));
            }
            i += 2;
        }
        return out.toString();
    }

    /**
     * Whether an escaped byte begins an overlong UTF-8 sequence: a lead byte of C0 or C1 always does; E0 does before
     * a continuation byte below A0, F0 before one below 90 (RFC 3629, section 4). {@code next} is where the escape
     * after it would start.
     */
    private static boolean startsOverlongUtf8(char lead, String raw, int next) {
        if (lead == 0xC0 || lead == 0xC1) {
            return true;
        }
        if ((lead != 0xE0 && lead != 0xF0) || next + 2 >= raw.length() || raw.charAt(next) != '%') {
            return false;
        }
        int hi = hexValue(raw.charAt(next + 1));
        int lo = hexValue(raw.charAt(next + 2));
        int continuation = hi < 0 || lo < 0 ? -1 : hi << 4 | lo;
        return continuation >= 0x80 && continuation < (lead == 0xE0 ? 0xA0 : 0x90);
    }

    /** ASCII hex only: Character.digit would also accept full-width digits. */
    private static int hexValue(char c) {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        if (c >= 'A' && c <= 'F') {
            return c - 'A' + 10;
        }
        return -1;
    }

    private static void checkQuery(String query) throws InvalidTargetException {
        for (int i = 0; i < query.length(); i++) {
            char c = query.charAt(i);
            if (c <= 0x20 || c >= 0x7f) {
                throw new InvalidTargetException("control, space or non-ASCII character in query");
            }
        }
    }

    private static void checkCharacters(String raw) throws InvalidTargetException {
        for (int i = 0; i < raw.length(); i++) {
            checkCharacter(raw.charAt(i));
        }
    }

    private static void checkCharacter(char c) throws InvalidTargetException {
        if (c <= 0x20 || c >= 0x7f) {
            throw new InvalidTargetException("control, space or non-ASCII character in path");
        }
    }
}
