package dev.mtlsproxy.app.demo;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

/**
 * The PEM text form (RFC 7468): base64 of DER in 64-character lines between BEGIN and END labels.
 *
 * <p>Hand-rolled rather than BouncyCastle's {@code JcaPEMWriter}, which rewrites EC keys into the
 * SEC1 "EC PRIVATE KEY" form; the demo promises PKCS#8 "PRIVATE KEY" files.
 */
final class Pem {

    static final String CERTIFICATE = "CERTIFICATE";
    static final String PRIVATE_KEY = "PRIVATE KEY";

    private static final Base64.Encoder ENCODER =
            Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII));

    private Pem() {
    }

    static String encode(String label, byte[] der) {
        return "-----BEGIN " + label + "-----\n"
                + ENCODER.encodeToString(der) + "\n"
                + "-----END " + label + "-----\n";
    }

    /** Every block with {@code label}, in file order; text outside blocks is ignored, as RFC 7468 allows. */
    static List<byte[]> decodeAll(String text, String label) throws IOException {
        String begin = "-----BEGIN " + label + "-----";
        String end = "-----END " + label + "-----";
        List<byte[]> blocks = new ArrayList<>();
        int from = 0;
        while (true) {
            int start = text.indexOf(begin, from);
            if (start < 0) {
                return blocks;
            }
            int bodyStart = start + begin.length();
            int stop = text.indexOf(end, bodyStart);
            if (stop < 0) {
                throw new IOException("PEM " + label + " block without an END line");
            }
            try {
                blocks.add(Base64.getMimeDecoder().decode(text.substring(bodyStart, stop)));
            } catch (IllegalArgumentException e) {
                throw new IOException("PEM " + label + " block is not valid base64", e);
            }
            from = stop + end.length();
        }
    }

    /** The only block with {@code label}; anything else is an error. */
    static byte[] decodeOne(String text, String label) throws IOException {
        List<byte[]> blocks = decodeAll(text, label);
        if (blocks.size() != 1) {
            throw new IOException("expected one PEM " + label + " block, found " + blocks.size());
        }
        return blocks.get(0);
    }
}
