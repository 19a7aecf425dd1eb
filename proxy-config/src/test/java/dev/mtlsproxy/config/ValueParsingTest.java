package dev.mtlsproxy.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** The small parsers behind the YAML scalars: durations, sizes and addresses. */
class ValueParsingTest {

    @ParameterizedTest
    @CsvSource({
        "500ms, PT0.5S", "200us, PT0.0002S", "10s, PT10S", "5m, PT5M", "1h, PT1H", "1d, PT24H", "0s, PT0S", "1m30s, PT1M30S",
        "' 10s ', PT10S", "PT10S, PT10S", "pt1m, PT1M", "P1D, PT24H", "PT-1S, PT-1S"
    })
    void parsesDurations(String text, String iso) {
        assertThat(Durations.parse(text)).isEqualTo(Duration.parse(iso));
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "10", "10 s", "5 seconds", "1.5s", "10S", "-5s", "1w", "s", "10s5",
        "99999999999999999999s", "106751991167301d", "PT", "P1X"})
    void rejectsOtherDurations(String text) {
        assertThatThrownBy(() -> Durations.parse(text))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("expected: a duration like 500ms, 10s, 5m, 1h");
    }

    @ParameterizedTest
    @CsvSource({
        "PT0S, 0s", "PT0.5S, 500ms", "PT10S, 10s", "PT90S, 90s", "PT5M, 5m", "PT2H, 2h", "PT48H, 2d",
        "PT0.0005S, 500us", "PT0.0000005S, PT0.0000005S", "PT1.0005S, PT1.0005S", "PT-1S, -1s"
    })
    void formatsDurationsAsTheyWouldBeWritten(String iso, String text) {
        assertThat(Durations.format(Duration.parse(iso))).isEqualTo(text);
    }

    @ParameterizedTest
    @CsvSource({"512B, 512", "512, 512", "16KiB, 16384", "1MiB, 1048576", "2GiB, 2147483648", "' 8 KiB ', 8192",
        "0, 0"})
    void parsesSizes(String text, long bytes) {
        assertThat(DataSize.parse(text)).isEqualTo(DataSize.ofBytes(bytes));
    }

    @ParameterizedTest
    @ValueSource(strings = {"16KB", "16kib", "1.5MiB", "-1", "KiB", "", "99999999999GiB", "99999999999999999999"})
    void rejectsOtherSizes(String text) {
        assertThatThrownBy(() -> DataSize.parse(text))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("expected: a size like 512B, 16KiB, 1MiB, 2GiB");
    }

    @Test
    void printsSizesInTheLargestExactUnit() {
        assertThat(DataSize.parse("16KiB")).hasToString("16KiB");
        assertThat(DataSize.parse("1025")).hasToString("1025B");
    }

    @Test
    void aSizeBeyondAnIntIsRefusedAsAnIntNotClamped() {
        assertThat(DataSize.parse("2147483647").toIntBytes()).isEqualTo(Integer.MAX_VALUE);
        assertThatThrownBy(() -> DataSize.parse("2GiB").toIntBytes())
                .isInstanceOf(ArithmeticException.class)
                .hasMessage("2GiB does not fit in an int (-2147483648 to 2147483647 bytes)");
        assertThatThrownBy(() -> DataSize.ofBytes(-3L * 1024 * 1024 * 1024).toIntBytes())
                .isInstanceOf(ArithmeticException.class);
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', textBlock = """
            127.0.0.1:8443     | 127.0.0.1   | 8443
            localhost:0        | localhost   | 0
            [::1]:8443         | ::1         | 8443
            ' api.local:443 '  | api.local   | 443
            """)
    void parsesAddresses(String text, String host, int port) {
        HostPort address = HostPort.parse(text);

        assertThat(address).isEqualTo(new HostPort(host, port));
        assertThat(HostPort.parse(address.toString())).isEqualTo(address);
    }

    @ParameterizedTest
    @ValueSource(strings = {"localhost", ":8443", "::1:8443", "[::1]8443", "[::1]", "a:b:1"})
    void rejectsAddressesWithoutAClearPort(String text) {
        assertThatThrownBy(() -> HostPort.parse(text)).hasMessage("expected: host:port, with IPv6 as [::1]:8443");
    }

    @ParameterizedTest
    @ValueSource(strings = {"localhost:", "localhost:http", "localhost:65536", "localhost:-1", "[]:80"})
    void rejectsPortsOutOfRange(String text) {
        assertThatThrownBy(() -> HostPort.parse(text)).hasMessage("expected: host:port with a port from 0 to 65535");
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', textBlock = """
            none         | none
            AUTO         | auto
            ' 0-3,6 '    | 0-3,6
            3,1,2        | 1-3
            0 - 1, 4-4   | 0-1,4
            1023         | 1023
            """)
    void parsesCpuAffinity(String text, String normalised) {
        assertThat(CpuAffinity.parse(text)).hasToString(normalised);
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "x", "1-", "-1", "1-2-3", "0,,1", "1.5", "+1", "0x1", "1024", "99999", "0-1024"})
    void rejectsOtherCpuLists(String text) {
        assertThatThrownBy(() -> CpuAffinity.parse(text))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("expected: none, auto, or a CPU list like \"0-3,6\"");
    }

    @Test
    void aCpuListedTwiceIsRefusedRatherThanSilentlyMerged() {
        assertThatThrownBy(() -> CpuAffinity.parse("0-2,2"))
                .hasMessage("expected: none, auto, or a CPU list like \"0-3,6\" - CPU 2 is listed twice");
    }
}
