package dev.mtlsproxy.config;

import java.math.BigInteger;
import java.util.Base64;
import java.util.HexFormat;
import java.util.Locale;
import java.util.regex.Pattern;

/**
 * The forms the emergency deny-list accepts, parsed in one place so validation and the revocation check agree:
 * serials and fingerprints in hex with optional colons (as {@code openssl x509 -serial -fingerprint} prints them),
 * SPKI pins in base64 (as Envoy's {@code verify_certificate_spki} and HPKP's {@code pin-sha256}).
 */
public final class DenyListValues {

    static final String SERIAL_EXPECTED =
            "a certificate serial number in hex, e.g. 4f:1a:09 or 4F1A09, -4f:1a:09 for a negative one";
    static final String FINGERPRINT_EXPECTED = "a SHA-256 fingerprint, 64 hex digits, colons allowed";
    static final String SPKI_PIN_EXPECTED = "a base64 SHA-256 of the SubjectPublicKeyInfo, 44 characters";

    private static final Pattern HEX = Pattern.compile("[0-9a-fA-F]+");

    private DenyListValues() {
    }

    /**
     * A serial in hex, a leading '-' for a negative one: the form of {@code openssl x509 -serial}, Go's
     * {@code big.Int} and this proxy's own logs. RFC 5280 wants a positive serial, but CAs that break it exist and
     * the handshake accepts their certificates, so the deny-list must be able to name them.
     *
     * @throws IllegalArgumentException when not hex
     */
    public static BigInteger serial(String text) {
        String trimmed = text.trim();
        boolean negative = trimmed.startsWith("-");
        String hex = (negative ? trimmed.substring(1) : trimmed).replace(":", "");
        if (hex.isEmpty() || hex.length() > 80 || !HEX.matcher(hex).matches()) {
            throw new IllegalArgumentException(SERIAL_EXPECTED);
        }
        BigInteger magnitude = new BigInteger(hex, 16);
        return negative ? magnitude.negate() : magnitude;
    }

    /** Lower-case hex without colons. @throws IllegalArgumentException when not 32 bytes of hex */
    public static String fingerprint(String text) {
        String hex = text.trim().replace(":", "");
        if (hex.length() != 64 || !HEX.matcher(hex).matches()) {
            throw new IllegalArgumentException(FINGERPRINT_EXPECTED);
        }
        return hex.toLowerCase(Locale.ROOT);
    }

    /** Canonical base64 of the 32-byte digest. @throws IllegalArgumentException when not that */
    public static String spkiPin(String text) {
        byte[] digest;
        try {
            digest = Base64.getDecoder().decode(text.trim());
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(SPKI_PIN_EXPECTED, e);
        }
        if (digest.length != 32) {
            throw new IllegalArgumentException(SPKI_PIN_EXPECTED);
        }
        return Base64.getEncoder().encodeToString(digest);
    }

    /** Hex of bytes, lower case, as fingerprints are compared. */
    public static String hex(byte[] bytes) {
        return HexFormat.of().formatHex(bytes);
    }
}
