package dev.mtlsproxy.config;

/**
 * SPIFFE ID syntax (SPIFFE-ID standard, section 2), for configured identities and for the IDs clients present:
 * {@code spiffe://} in lower case, a trust domain of lower-case letters, digits, '.', '-' and '_', then zero or more
 * path segments of letters, digits, '.', '-' and '_'. No empty segment, no "." or ".." segment, no trailing slash, no
 * percent-encoding, port, user info, query or fragment: every SPIFFE ID has one spelling, so comparing strings is
 * comparing identities.
 */
public final class SpiffeIds {

    /** The standard's limit on the whole URI. */
    public static final int MAX_LENGTH = 2048;
    private static final String SCHEME = "spiffe://";

    private SpiffeIds() {
    }

    public static boolean isValid(String id) {
        if (id == null || id.length() > MAX_LENGTH || !id.startsWith(SCHEME)) {
            return false;
        }
        int i = SCHEME.length();
        int trustDomainStart = i;
        for (; i < id.length() && id.charAt(i) != '/'; i++) {
            char c = id.charAt(i);
            if (!(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_')) {
                return false;
            }
        }
        if (i == trustDomainStart) {
            return false;
        }
        while (i < id.length()) {
            int segmentStart = ++i; // past the '/'
            for (; i < id.length() && id.charAt(i) != '/'; i++) {
                if (!isSegmentCharacter(id.charAt(i))) {
                    return false;
                }
            }
            int length = i - segmentStart;
            if (length == 0 || length <= 2 && id.regionMatches(segmentStart, "..", 0, length)) {
                return false;
            }
        }
        return true;
    }

    /** Whether the URI is of the spiffe scheme, valid ID or not: schemes compare case-insensitively (RFC 3986 3.1). */
    public static boolean hasSpiffeScheme(String uri) {
        return uri != null && uri.regionMatches(true, 0, SCHEME, 0, SCHEME.length());
    }

    private static boolean isSegmentCharacter(char c) {
        return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-'
                || c == '_';
    }
}
