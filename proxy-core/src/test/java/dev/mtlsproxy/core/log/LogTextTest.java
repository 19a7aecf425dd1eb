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

    @Test
    void aQuotedFieldValueHasNoDoubleQuoteAndNoControlCharacter() {
        assertThat(LogText.quoted("1\" event=forged x=\"")).isEqualTo("1' event=forged x='");
        assertThat(LogText.quoted("X\u001b]0;owned\u0007 a\r\nb\u007f\u0085"))
                .isEqualTo("X\\x1b]0;owned\\x07 a\\x0d\\x0ab\\x7f\\x85");
        String plain = "request head not complete within 600ms: caf\u00e9";
        assertThat(LogText.quoted(plain)).isSameAs(plain);
        assertThat(LogText.quoted(null)).isNull();
    }
}
