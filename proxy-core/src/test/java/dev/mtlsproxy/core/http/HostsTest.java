package dev.mtlsproxy.core.http;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** The Host header reduced to the one spelling routes are matched on, or refused. */
class HostsTest {

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource(delimiter = '|', value = {
        "api.example.com          | api.example.com",
        "API.Example.COM          | api.example.com",
        "api.example.com:8443     | api.example.com",
        "api.example.com:65535    | api.example.com",
        "api.example.com.         | api.example.com",
        "API.example.com.:443     | api.example.com",
        "my_service.internal      | my_service.internal",
        "10.1.2.3:80              | 10.1.2.3",
        "[::1]                    | ::1",
        "[::1]:8443               | ::1",
        "[2001:DB8::A]:443        | 2001:db8::a",
    })
    void hostIsCanonicalised(String header, String canonical) {
        assertThat(Hosts.normalise(header)).isEqualTo(canonical);
    }

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource(delimiter = '|', value = {
        "API.Example.COM          | api.example.com",
        "api.example.com.:8443    | api.example.com:8443",
        "API.example.com.:443     | api.example.com:443",
        "[2001:DB8::A]:443        | [2001:db8::a]:443",
        "[::1]                    | [::1]",
        "10.1.2.3:80              | 10.1.2.3:80",
    })
    void theForwardedHostIsTheJudgedHostWithThePortAsSent(String header, String forwarded) {
        assertThat(Hosts.forwarded(header)).isEqualTo(forwarded);
    }

    @Test
    void aHostAlreadyInItsJudgedSpellingIsForwardedAsTheSameString() {
        String header = "api.example.com:8443";
        assertThat(Hosts.forwarded(header)).isSameAs(header);
    }

    @Test
    void surroundingWhitespaceIsIgnored() {
        assertThat(Hosts.normalise("  api.example.com:443 ")).isEqualTo("api.example.com");
    }

    @Test
    void absentHeaderIsTheEmptyHostNotARefusal() {
        assertThat(Hosts.normalise(null)).isEqualTo("");
    }

    @ParameterizedTest(name = "\"{0}\"")
    @ValueSource(strings = {
        "a b",
        "host:99999",
        "host:65536",
        "host:",
        "host:-1",
        "host:80:80",
        "host:8o",
        ":443",
        "[::1",
        "[::1]x",
        "[::1]:",
        "[::1]:99999",
        "\u00e9vil",
        "\u00e9vil.example.com",
        "a/b",
        "a\\b",
        "user@host",
        "host#frag",
        "a.example.com,b.example.com",
        "",
        "   ",
        ".",
        // an empty label: not the name without it, which a backend that strips dots would read
        "api.example.com..",
        "api.example.com..:443",
        ".api.example.com",
        "api..example.com",
        "..",
    })
    void valueThatIsNotAHostIsRefused(String header) {
        assertThat(Hosts.normalise(header)).isNull();
    }

    @Test
    void bracketsHoldOnlyAnIpv6Literal() {
        assertThat(Hosts.normalise("[a b]")).isNull();
        assertThat(Hosts.normalise("[a/b]")).isNull();
        assertThat(Hosts.normalise("[admin.example.com]")).isNull();
        assertThat(Hosts.normalise("[]")).isNull();
    }

    @Test
    void portDigitsMustBeAscii() {
        assertThat(Hosts.normalise("host:\u0661\u0662")).isNull();
        assertThat(Hosts.normalise("[::1]:\uFF18\uFF10")).isNull();
    }
}
