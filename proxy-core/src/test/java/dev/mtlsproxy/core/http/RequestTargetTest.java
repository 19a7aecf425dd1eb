package dev.mtlsproxy.core.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mtlsproxy.core.http.RequestTarget.InvalidTargetException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The request-target as policy checks it and the backend receives it. Every case is one a path-based check could
 * be fooled by if the proxy and the backend read the target differently.
 */
class RequestTargetTest {

    @Test
    void originFormKeepsThePathAndTheRawQueryAndHasNoAuthority() throws Exception {
        RequestTarget target = RequestTarget.parse("/orders/42?expand=items&sort=-date");

        assertThat(target).isEqualTo(new RequestTarget("/orders/42", "expand=items&sort=-date", null));
        assertThat(target.pathAndQuery()).isEqualTo("/orders/42?expand=items&sort=-date");
    }

    @Test
    void originFormWithoutQueryHasNullQuery() throws Exception {
        RequestTarget target = RequestTarget.parse("/orders");

        assertThat(target).isEqualTo(new RequestTarget("/orders", null, null));
        assertThat(target.pathAndQuery()).isEqualTo("/orders");
    }

    @Test
    void emptyQueryIsKeptAsEmptyNotDropped() throws Exception {
        assertThat(RequestTarget.parse("/orders?")).isEqualTo(new RequestTarget("/orders", "", null));
    }

    @Test
    void absoluteFormYieldsPathQueryAndAuthority() throws Exception {
        assertThat(RequestTarget.parse("http://host/x?q"))
                .isEqualTo(new RequestTarget("/x", "q", "host"));
    }

    @Test
    void absoluteFormKeepsThePortInTheAuthorityAndAcceptsHttpsInAnyCase() throws Exception {
        assertThat(RequestTarget.parse("HTTPS://api.example.com:8443/orders/1"))
                .isEqualTo(new RequestTarget("/orders/1", null, "api.example.com:8443"));
    }

    @Test
    void absoluteFormWithoutPathTargetsTheRoot() throws Exception {
        assertThat(RequestTarget.parse("http://api.example.com")).isEqualTo(new RequestTarget("/", null,
                "api.example.com"));
        assertThat(RequestTarget.parse("http://api.example.com?page=2")).isEqualTo(new RequestTarget("/", "page=2",
                "api.example.com"));
        assertThat(RequestTarget.parse("http://api.example.com?next=/x")).as("a query holding a slash")
                .isEqualTo(new RequestTarget("/", "next=/x", "api.example.com"));
    }

    @Test
    void absoluteFormPathIsNormalisedLikeOriginForm() throws Exception {
        assertThat(RequestTarget.parse("http://api.example.com/public/../admin"))
                .isEqualTo(new RequestTarget("/admin", null, "api.example.com"));
    }

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource(delimiter = '|', value = {
        "/                 | /",
        "/a/./b/../c       | /a/c",
        "//a///b           | /a/b",
        "/%7Euser          | /~user",
        "/%7euser          | /~user",
        "/%61dmin          | /admin",
        "/a-%5F.%2D        | /a-_.-",
        "/a/%2e%2e/b       | /b",
        "/a/%2E%2E/b       | /b",
        "/a/.%2e/b         | /b",
        "/a/%2e/b          | /a/b",
        "/caf%c3%a9        | /caf%C3%A9",
        "/odata/%24batch   | /odata/$batch",
        "/v1/items%3Aget   | /v1/items:get",
        "/v1/items%3aget   | /v1/items:get",
        "/u/%40me          | /u/@me",
        "/%21%26%27%28%29  | /!&'()",
        "/%2A%2C%3D        | /*,=",
        "/a%2Bb            | /a%2Bb",
        "/a%2bb            | /a%2Bb",
        "/a+b              | /a+b",
        "/%7Bx%7D          | /%7Bx%7D",
        "/a%20b            | /a%20b",
        "/%25%32%66        | /%252f",
        "/a/b/             | /a/b/",
        "/a/b/.            | /a/b/",
        "/a/b/..           | /a/",
        "/a/..             | /",
        "/.                | /",
        "/...              | /...",
    })
    void pathIsNormalised(String raw, String normalised) throws Exception {
        assertThat(RequestTarget.parse(raw).path()).isEqualTo(normalised);
    }

    /** No rule can name these characters, so forwarding them raw or escaped, as sent, decides nothing (README). */
    @Test
    void printableCharactersRfc3986WantsEscapedAreKeptAsSentInPathAndQuery() throws Exception {
        RequestTarget target = RequestTarget.parse("/a{b}/c|d/\"e\"/<f>^`?q={\"k\":[1|2]}^`<>");

        assertThat(target.path()).isEqualTo("/a{b}/c|d/\"e\"/<f>^`");
        assertThat(target.query()).isEqualTo("q={\"k\":[1|2]}^`<>");
    }

    @Test
    void queryIsForwardedExactlyAsSentWhilePathIsNormalised() throws Exception {
        RequestTarget target = RequestTarget.parse("/a/./%7e/../b?next=/x/../y&enc=%2f%7e&raw=a;b");

        assertThat(target.path()).isEqualTo("/a/b");
        assertThat(target.query()).isEqualTo("next=/x/../y&enc=%2f%7e&raw=a;b");
        assertThat(target.pathAndQuery()).isEqualTo("/a/b?next=/x/../y&enc=%2f%7e&raw=a;b");
    }

    @ParameterizedTest(name = "{0} refused: {1}")
    @CsvSource(delimiter = '|', value = {
        "/..                  | path escapes the root",
        "/a/../..             | path escapes the root",
        "/%2e%2e/admin        | path escapes the root",
        "/a/%2E%2E/%2e%2e/etc | path escapes the root",
        "/admin%2f            | encoded slash or backslash in path",
        "/admin%2F            | encoded slash or backslash in path",
        "/public/..%2fadmin   | encoded slash or backslash in path",
        "/a%5cb               | encoded slash or backslash in path",
        "/a%5Cb               | encoded slash or backslash in path",
        "/a%00b               | encoded control character in path",
        "/admin%0A            | encoded control character in path",
        "/admin%0d            | encoded control character in path",
        "/a%09b               | encoded control character in path",
        "/a%1Fb               | encoded control character in path",
        "/a%7Fb               | encoded control character in path",
        "/public/%C0%AE%C0%AE/admin | overlong UTF-8 escape in path",
        "/%c0%afadmin         | overlong UTF-8 escape in path",
        "/%C1%BF              | overlong UTF-8 escape in path",
        "/%E0%80%AE           | overlong UTF-8 escape in path",
        "/%F0%80%80%AE        | overlong UTF-8 escape in path",
        "/a\\b                | backslash in path",
        "/admin;x             | path parameter (;) in path",
        "/admin;jsessionid=1  | path parameter (;) in path",
        "/public/..%3B/admin  | encoded semicolon in path",
        "/admin%3bx           | encoded semicolon in path",
        "/a#frag              | fragment in request-target",
        "/a?q#frag            | fragment in request-target",
        "*                    | request-target is not in origin-form or absolute-form",
        "example.com:443      | request-target is not in origin-form or absolute-form",
        "admin                | request-target is not in origin-form or absolute-form",
        "ftp://host/x         | request-target is not in origin-form or absolute-form",
        "http:/host/x         | request-target is not in origin-form or absolute-form",
        "/%                   | truncated percent-escape",
        "/%2                  | truncated percent-escape",
        "/a%2                 | truncated percent-escape",
        "/%zz                 | malformed percent-escape",
        "/%g0                 | malformed percent-escape",
        "/%-1x                | malformed percent-escape",
        "http://user@host/    | absolute-form target without a usable authority",
        "http://u:p@host/x    | absolute-form target without a usable authority",
        "http:///x            | absolute-form target without a usable authority",
    })
    void targetIsRefused(String raw, String reason) {
        assertThatThrownBy(() -> RequestTarget.parse(raw))
                .isInstanceOf(InvalidTargetException.class)
                .hasMessage(reason);
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"/caf%C3%A9", "/%E0%A0%80", "/%F0%90%80%80", "/%E0", "/%E0%20", "/%F0%3F"})
    void escapesOfNonAsciiBytesThatAreNotOverlongUtf8StayEscaped(String raw) throws Exception {
        // Valid UTF-8 (the smallest three- and four-byte forms), and bytes that begin no overlong form: a lenient
        // decoder reads none of them as an ASCII character.
        assertThat(RequestTarget.parse(raw).path()).isEqualTo(raw);
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"/a b", "/a\tb", "/a\u007fb", "/a\u0000b", "/caf\u00e9", "/\u2215admin"})
    void spacesControlsAndNonAsciiInThePathAreRefused(String raw) {
        assertThatThrownBy(() -> RequestTarget.parse(raw))
                .isInstanceOf(InvalidTargetException.class)
                .hasMessage("control, space or non-ASCII character in path");
    }

    /**
     * The query is forwarded as sent, so it holds only what every parser reads alike: a NUL would reach the backend
     * raw, and a byte above 0x7F re-encoded as UTF-8.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"/a?x\u0000y", "/a?x\u000by", "/a?x y", "/a?x\u007fy", "/a?caf\u00e9", "/a?\u00ff"})
    void controlsSpacesAndNonAsciiInTheQueryAreRefused(String raw) {
        assertThatThrownBy(() -> RequestTarget.parse(raw))
                .isInstanceOf(InvalidTargetException.class)
                .hasMessage("control, space or non-ASCII character in query");
    }

    /**
     * A rule's path names each character raw, so a request must reach the policy with one spelling of it:
     * backends decode "%24" before routing, and "/odata/%24batch" is the deny-listed "/odata/$batch" to them.
     */
    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource(delimiter = '|', value = {
        "/odata/%24batch          | /odata/$batch",
        "/odata/%24%62atch        | /odata/$batch",
        "/v1/projects%3AbatchDelete | /v1/projects:batchDelete",
        "/users/%40admin          | /users/@admin",
    })
    void escapesOfCharactersARulePathMayNameArriveDecoded(String raw, String path) throws Exception {
        assertThat(RequestTarget.parse(raw).path()).isEqualTo(path);
    }

    /**
     * The bypasses from the product's issue: with a rule on {@code /admin}, each request must either be refused or
     * arrive at policy as the path the backend will actually serve.
     */
    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource(delimiter = '|', value = {
        "/admin/../admin          | /admin",
        "//admin                  | /admin",
        "/./admin                 | /admin",
        "/public/../admin         | /admin",
        "/public/%2e%2e/admin     | /admin",
        "/public/.%2E/admin/      | /admin/",
        "/%61%64%6d%69%6e/keys    | /admin/keys",
        "///admin//keys           | /admin/keys",
    })
    void adminBypassAttemptsArriveAsTheRealPath(String raw, String path) throws Exception {
        assertThat(RequestTarget.parse(raw).path()).isEqualTo(path);
    }

    @Test
    void encodedSlashCannotSmuggleAParentSegmentPastAPrefixCheck() {
        // "/public/..%2fadmin" is "/public/..%2fadmin" to a prefix check but "/admin" to a backend that decodes
        // %2F before resolving dots; the only safe reading is none.
        assertThatThrownBy(() -> RequestTarget.parse("/public/..%2fadmin"))
                .isInstanceOf(InvalidTargetException.class);
        assertThatThrownBy(() -> RequestTarget.parse("/public/%2e%2e%2fadmin"))
                .isInstanceOf(InvalidTargetException.class);
    }

    @Test
    void percentEncodedPercentIsNotDecodedTwice() throws Exception {
        // %252e is the text "%2e", not a dot: decoding it twice would turn "/a/%252e%252e/b" into "/b".
        assertThat(RequestTarget.parse("/a/%252e%252e/b").path()).isEqualTo("/a/%252e%252e/b");
    }

    @Test
    void escapeDigitsMustBeAsciiHex() {
        assertThatThrownBy(() -> RequestTarget.parse("/a%\uFF13\uFF42"))
                .isInstanceOf(InvalidTargetException.class)
                .hasMessage("malformed percent-escape");
        assertThatThrownBy(() -> RequestTarget.parse("/a/%\uFF12\uFF45%\uFF12\uFF45/b"))
                .isInstanceOf(InvalidTargetException.class)
                .hasMessage("malformed percent-escape");
    }

    @Test
    void theShortcutForAnAlreadyNormalPathAgreesWithFullNormalisationOnEveryShortPath() throws Exception {
        // Every path of up to eight characters over "/", "." and "a": all the ways segments can be empty, dots,
        // or neither. The shortcut may only answer "unchanged" where the segment walk would return the same path.
        char[] alphabet = {'/', '.', 'a'};
        int checked = 0;
        for (int length = 1; length <= 8; length++) {
            int combinations = (int) Math.pow(alphabet.length, length - 1);
            for (int n = 0; n < combinations; n++) {
                StringBuilder path = new StringBuilder("/");
                for (int i = 0, rest = n; i < length - 1; i++, rest /= alphabet.length) {
                    path.append(alphabet[rest % alphabet.length]);
                }
                String candidate = path.toString();
                String full;
                try {
                    full = RequestTarget.normaliseSegments(candidate);
                } catch (InvalidTargetException climbsAboveRoot) {
                    assertThat(RequestTarget.isNormal(candidate)).as(candidate).isFalse();
                    continue;
                }
                assertThat(RequestTarget.isNormal(candidate)).as(candidate).isEqualTo(full.equals(candidate));
                assertThat(RequestTarget.normalisePath(candidate)).as(candidate).isEqualTo(full);
                checked++;
            }
        }
        assertThat(checked).isGreaterThan(1_000);
    }
}
