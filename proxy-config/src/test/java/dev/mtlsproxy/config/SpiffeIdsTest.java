package dev.mtlsproxy.config;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** One spelling per SPIFFE ID: what the standard allows, and the near misses it does not. */
class SpiffeIdsTest {

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"spiffe://prod.test", "spiffe://prod.test/ns/shop/sa/orders", "spiffe://a_b-c.9/X.y-z_1",
        "spiffe://td/..a", "spiffe://td/a..", "spiffe://td/.a"})
    void valid(String id) {
        assertThat(SpiffeIds.isValid(id)).isTrue();
    }

    @ParameterizedTest(name = "\"{0}\"")
    @ValueSource(strings = {"", "spiffe://", "spiffe:///path", "SPIFFE://td/a", "Spiffe://td/a", "spiffe://TD/a",
        "spiffe://td/", "spiffe://td//a", "spiffe://td/a/", "spiffe://td/.", "spiffe://td/..", "spiffe://td/a/./b",
        "spiffe://td/a/../b", "spiffe://td/a%2Fb", "spiffe://td/a?b", "spiffe://td/a#b", "spiffe://td:443/a",
        "spiffe://user@td/a", "spiffe://td/a b", "https://td/a", "spiffe:/td/a"})
    void invalid(String id) {
        assertThat(SpiffeIds.isValid(id)).isFalse();
    }

    @Test
    void theSpiffeSchemeIsToldInAnyCaseWhetherOrNotTheIdIsValid() {
        assertThat(SpiffeIds.hasSpiffeScheme("spiffe://td/a")).isTrue();
        assertThat(SpiffeIds.hasSpiffeScheme("SPIFFE://td/a/../b")).isTrue();
        assertThat(SpiffeIds.hasSpiffeScheme("https://td/a")).isFalse();
        assertThat(SpiffeIds.hasSpiffeScheme("spiffe:/td/a")).isFalse();
    }

    @Test
    void noLongerThanTheStandardAllows() {
        String prefix = "spiffe://td/";
        assertThat(SpiffeIds.isValid(prefix + "a".repeat(SpiffeIds.MAX_LENGTH - prefix.length()))).isTrue();
        assertThat(SpiffeIds.isValid(prefix + "a".repeat(SpiffeIds.MAX_LENGTH - prefix.length() + 1))).isFalse();
    }
}
