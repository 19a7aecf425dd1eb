package dev.mtlsproxy.config;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.Signature;
import java.security.cert.CRLException;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509CRL;
import java.security.cert.X509Certificate;
import java.security.spec.InvalidKeySpecException;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads certificates and private keys from PEM files. Only unencrypted PKCS#8 keys are accepted: one format means one
 * code path, and the error for any other format says how to convert it.
 */
public final class Pem {

    static final String PKCS1_SEC1 = "PKCS#1/SEC1 key; convert with: openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8";
    static final String ENCRYPTED = "encrypted key; the proxy cannot prompt for a passphrase, "
            + "decrypt with: openssl pkey -in KEY -out KEY.pk8";

    private static final Pattern BLOCK =
            Pattern.compile("-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \\1-----", Pattern.DOTALL);
    private static final List<String> KEY_ALGORITHMS = List.of("RSA", "EC", "Ed25519");
    private static final byte[] PROBE = "mtls-proxy key check".getBytes(StandardCharsets.US_ASCII);

    private Pem() {
    }

    /**
     * All {@code CERTIFICATE} blocks of a file, in file order (for a server certificate: leaf first).
     *
     * @throws PemException when the file is unreadable or has no valid certificate
     */
    public static List<X509Certificate> readCertificates(Path file) throws PemException {
        List<Block> blocks = blocks(file);
        CertificateFactory factory;
        try {
            factory = CertificateFactory.getInstance("X.509");
        } catch (CertificateException e) {
            throw new IllegalStateException("the JDK always has an X.509 certificate factory", e);
        }
        List<X509Certificate> certificates = new ArrayList<>();
        for (Block block : blocks) {
            if (!block.label().equals("CERTIFICATE")) {
                continue;
            }
            int n = certificates.size() + 1;
            byte[] der = decode(file, block, "CERTIFICATE block " + n);
            try {
                certificates.add((X509Certificate) factory.generateCertificate(new ByteArrayInputStream(der)));
            } catch (CertificateException | ClassCastException e) {
                throw new PemException(file, "CERTIFICATE block " + n + " is not a valid X.509 certificate");
            }
        }
        if (certificates.isEmpty()) {
            throw new PemException(file, "no CERTIFICATE block found" + foundLabels(blocks));
        }
        return List.copyOf(certificates);
    }

    /**
     * The private key of a file holding one unencrypted PKCS#8 {@code PRIVATE KEY} block (RSA, EC or Ed25519).
     *
     * @throws PemException when the file is unreadable, holds another key format, or the key does not parse
     */
    public static PrivateKey readPrivateKey(Path file) throws PemException {
        List<Block> blocks = blocks(file);
        Block block = blocks.stream()
                .filter(b -> b.label().endsWith("PRIVATE KEY"))
                .findFirst()
                .orElseThrow(() -> new PemException(file, "no PRIVATE KEY block found" + foundLabels(blocks)));
        String unsupported = switch (block.label()) {
            case "PRIVATE KEY" -> null;
            case "RSA PRIVATE KEY", "EC PRIVATE KEY" -> PKCS1_SEC1;
            case "ENCRYPTED PRIVATE KEY" -> ENCRYPTED;
            default -> "unsupported key format BEGIN " + block.label();
        };
        if (unsupported != null) {
            throw new PemException(file, unsupported);
        }
        byte[] der = decode(file, block, "PRIVATE KEY block");
        try {
            for (String algorithm : KEY_ALGORITHMS) {
                try {
                    return KeyFactory.getInstance(algorithm).generatePrivate(new PKCS8EncodedKeySpec(der));
                } catch (InvalidKeySpecException wrongAlgorithm) {
                    // PKCS#8 names its algorithm inside; trying each factory is simpler than parsing the DER
                } catch (GeneralSecurityException e) {
                    throw new IllegalStateException("the JDK always has a " + algorithm + " key factory", e);
                }
            }
        } finally {
            Arrays.fill(der, (byte) 0);
        }
        throw new PemException(file, "not an RSA, EC or Ed25519 PKCS#8 key");
    }

    /**
     * The certificate revocation lists of a file: {@code X509 CRL} PEM blocks, or one DER CRL (what most CAs publish
     * at their distribution point). Signatures are checked later, against the issuing CA.
     *
     * @throws PemException when the file is unreadable or holds no valid CRL
     */
    public static List<X509CRL> readCrls(Path file) throws PemException {
        byte[] raw;
        try {
            raw = Files.readAllBytes(file);
        } catch (IOException e) {
            throw new PemException(file, FileChecks.describe(e, file));
        }
        CertificateFactory factory;
        try {
            factory = CertificateFactory.getInstance("X.509");
        } catch (CertificateException e) {
            throw new IllegalStateException("the JDK always has an X.509 certificate factory", e);
        }
        // DER starts with a SEQUENCE tag; anything else is read as PEM text
        if (raw.length > 0 && raw[0] == 0x30) {
            try {
                return List.of((X509CRL) factory.generateCRL(new ByteArrayInputStream(raw)));
            } catch (CRLException | ClassCastException e) {
                throw new PemException(file, "not a valid DER X.509 CRL");
            }
        }
        List<Block> blocks = blocks(new String(raw, StandardCharsets.ISO_8859_1));
        List<X509CRL> crls = new ArrayList<>();
        for (Block block : blocks) {
            if (!block.label().equals("X509 CRL")) {
                continue;
            }
            int n = crls.size() + 1;
            byte[] der = decode(file, block, "X509 CRL block " + n);
            try {
                crls.add((X509CRL) factory.generateCRL(new ByteArrayInputStream(der)));
            } catch (CRLException | ClassCastException e) {
                throw new PemException(file, "X509 CRL block " + n + " is not a valid CRL");
            }
        }
        if (crls.isEmpty()) {
            throw new PemException(file, "no X509 CRL block found" + foundLabels(blocks));
        }
        return List.copyOf(crls);
    }

    /**
     * Whether the key is the private half of the certificate's public key: signs a fixed message with the key and
     * verifies it with the certificate, which works the same for every key type.
     */
    public static boolean keyMatchesCertificate(PrivateKey key, X509Certificate certificate) {
        String algorithm = switch (key.getAlgorithm()) {
            case "RSA" -> "SHA256withRSA";
            case "EC" -> "SHA256withECDSA";
            case "EdDSA", "Ed25519" -> "Ed25519";
            default -> null;
        };
        if (algorithm == null) {
            return false;
        }
        try {
            Signature signer = Signature.getInstance(algorithm);
            signer.initSign(key);
            signer.update(PROBE);
            byte[] signature = signer.sign();
            Signature verifier = Signature.getInstance(algorithm);
            verifier.initVerify(certificate.getPublicKey());
            verifier.update(PROBE);
            return verifier.verify(signature);
        } catch (GeneralSecurityException differentKeyTypeOrCurve) {
            return false;
        }
    }

    private static List<Block> blocks(Path file) throws PemException {
        String text;
        try {
            // PEM is ASCII; ISO-8859-1 maps every byte, so a binary (DER) file fails as "no block", not as a decode error
            text = Files.readString(file, StandardCharsets.ISO_8859_1);
        } catch (IOException e) {
            throw new PemException(file, FileChecks.describe(e, file));
        }
        return blocks(text);
    }

    private static List<Block> blocks(String text) {
        List<Block> blocks = new ArrayList<>();
        Matcher m = BLOCK.matcher(text);
        while (m.find()) {
            blocks.add(new Block(m.group(1), m.group(2)));
        }
        return blocks;
    }

    private static byte[] decode(Path file, Block block, String what) throws PemException {
        try {
            return Base64.getDecoder().decode(block.base64().replaceAll("\\s+", ""));
        } catch (IllegalArgumentException e) {
            throw new PemException(file, what + " is not valid base64");
        }
    }

    private static String foundLabels(List<Block> blocks) {
        if (blocks.isEmpty()) {
            return "";
        }
        return " (found: " + String.join(", ", blocks.stream().map(Block::label).distinct().toList()) + ")";
    }

    /** One {@code -----BEGIN label-----} section; its toString never shows the content. */
    private record Block(String label, String base64) {
        @Override
        public String toString() {
            return "Block[" + label + "]";
        }
    }
}
