package dev.mtlsproxy.core.log;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class LogTextTest {

    @Test
    void aSurrogateThatIsNotHalfOfAPairBecomesTheReplacementCharacter() {
        assertThat(LogText.wellFormed("a\uD800b")).isEqualTo("a\uFFFDb");
        assertThat(LogText.wellFormed("\uDC00")).isEqualTo("\uFFFD");
        assertThat(LogText.wellFormed("end\uD83D")).isEqualTo("end\uFFFD");
        assertThat(LogText.wellFormed("\uDE00\uD83D")).as("a pair reversed is two lone halves")
                .isEqualTo("\uFFFD\uFFFD");
        assertThat(LogText.wellFormed("\uD83D\uD83D\uDE00")).as("the second high surrogate pairs, the first not")
                .isEqualTo("\uFFFD\uD83D\uDE00");
    }

    @Test
    void wellFormedTextIsReturnedAsItIs() {
        String text = "/caf\u00e9/\uD83D\uDE00\u2028\u0000\"\\";
        assertThat(LogText.wellFormed(text)).isSameAs(text);
        assertThat(LogText.wellFormed(null)).isNull();
    }
}
