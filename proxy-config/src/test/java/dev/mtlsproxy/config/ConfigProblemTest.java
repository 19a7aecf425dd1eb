package dev.mtlsproxy.config;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import org.junit.jupiter.api.Test;

class ConfigProblemTest {

    @Test
    void showsTheLocationOnlyWhenKnown() {
        assertThat(new ConfigProblem("listeners[0].tls.minVersion",
                "\"TLSv1.1\" (expected: one of TLSv1.2, TLSv1.3)", 7, 17)).hasToString(
                "listeners[0].tls.minVersion: \"TLSv1.1\" (expected: one of TLSv1.2, TLSv1.3) at line 7, column 17");
        assertThat(new ConfigProblem("listeners", "[] (expected: at least one listener)", 0, 0))
                .hasToString("listeners: [] (expected: at least one listener)");
        assertThat(new ConfigProblem("", "empty configuration", 1, 1))
                .hasToString("empty configuration at line 1, column 1");
    }

    @Test
    void sortsByPathWithIndexesInNumericOrderThenByMessage() {
        List<ConfigProblem> problems = List.of(
                new ConfigProblem("routes[10].name", "a", 0, 0),
                new ConfigProblem("routes[2].name", "b", 0, 0),
                new ConfigProblem("routes[2].name", "a", 0, 0),
                new ConfigProblem("routes[2]", "z", 0, 0),
                new ConfigProblem("backends.x", "a", 0, 0),
                new ConfigProblem("", "a", 0, 0));

        ConfigException e = new ConfigException(problems);

        assertThat(e.problems()).extracting(ConfigProblem::toString).containsExactly(
                "a", "backends.x: a", "routes[2]: z", "routes[2].name: a", "routes[2].name: b", "routes[10].name: a");
        assertThat(e.getMessage()).isEqualTo(
                "a\nbackends.x: a\nroutes[2]: z\nroutes[2].name: a\nroutes[2].name: b\nroutes[10].name: a");
    }

    @Test
    void valuesAreQuotedEscapedShortenedAndNeverShowPem() {
        assertThat(Values.quote("a\"b\\c\n")).isEqualTo("\"a\\\"b\\\\c\\n\"");
        assertThat(Values.quote("x".repeat(100))).isEqualTo("\"" + "x".repeat(77) + "...\"");
        assertThat(Values.quote("-----BEGIN PRIVATE KEY-----\nMIIE")).isEqualTo("<PEM text, not shown>");
    }
}
