package dev.mtlsproxy.core.identity;

import static dev.mtlsproxy.core.testing.HostileText.expectedInLog;
import static dev.mtlsproxy.core.testing.HostileText.seedNote;
import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.mtlsproxy.core.testing.HostileText;
import dev.mtlsproxy.core.tls.HandshakeFailureReason;
import java.io.ByteArrayOutputStream;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.cert.CertificateParsingException;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Date;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import javax.security.auth.x500.X500Principal;
import org.bouncycastle.asn1.ASN1Encodable;
import org.bouncycastle.asn1.ASN1Primitive;
import org.bouncycastle.asn1.DERBMPString;
import org.bouncycastle.asn1.DERIA5String;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x500.X500NameBuilder;
import org.bouncycastle.asn1.x500.style.BCStyle;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.ContentSigner;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.junit.jupiter.api.Test;

/**
 * A refused handshake logs a summary of the certificate the client presented, which nothing has verified: its
 * subject, issuer and SANs are whatever the client put there. Certificates with random hostile names (UTF8String
 * values from any bytes, overlong and surrogate encodings included, BMPString values with lone surrogates, and
 * dNSName, URI and rfc822Name SANs of any bytes) go through {@link HandshakeFailureLine}; each line must be one JSON
 * object that gives back what the JDK read from the certificate ({@link PeerIdentities}, the model here), with a lone
 * surrogate as U+FFFD. The seed is printed with every failure.
 */
class HandshakeFailureLinePropertyTest {

    private static final int CASES = 150;

    @Test
    void everyPresentedCertificateIsSummarisedAsOneJsonObjectThatGivesBackItsNames() throws Exception {
        Random random = new Random(HostileText.SEED ^ 0x5a17L);
        KeyPairGenerator generator = KeyPairGenerator.getInstance("EC");
        generator.initialize(256);
        KeyPair key = generator.generateKeyPair();
        ContentSigner signer = new JcaContentSignerBuilder("SHA256withECDSA").build(key.getPrivate());
        int readable = 0;
        int unreadable = 0;
        int withEscapes = 0;
        int withControls = 0;
        int outsideTheBmp = 0;

        for (int i = 0; i < CASES; i++) {
            X509Certificate certificate = certificate(random, key, signer);
            String listener = HostileText.next(random);
            String remote = HostileText.next(random);
            String detail = HostileText.next(random);

            String line = HandshakeFailureLine.json(listener, remote, HandshakeFailureReason.UNKNOWN_CA, detail,
                    certificate);

            // As logback writes it: the line in UTF-8, then a newline.
            List<JsonNode> written = HostileText.parseLines((line + "\n").getBytes(StandardCharsets.UTF_8));
            assertThat(written).as(seedNote()).hasSize(1);
            Map<String, Object> expected = new LinkedHashMap<>();
            expected.put("event", "handshake_failed");
            expected.put("listener", expectedInLog(listener));
            expected.put("remote", expectedInLog(remote));
            expected.put("reason", "unknown_ca");
            expected.put("detail", expectedInLog(detail));
            Map<String, Object> summary = new LinkedHashMap<>();
            expected.put("certificate", summary);
            String subject = certificate.getSubjectX500Principal().getName(X500Principal.RFC2253);
            withEscapes += subject.contains("\\") ? 1 : 0;
            withControls += subject.chars().anyMatch(c -> c < 0x20) ? 1 : 0;
            outsideTheBmp += subject.codePoints().anyMatch(Character::isSupplementaryCodePoint) ? 1 : 0;
            summary.put("subject", expectedInLog(subject));
            summary.put("issuer", expectedInLog(certificate.getIssuerX500Principal().getName(X500Principal.RFC2253)));
            summary.put("serial", certificate.getSerialNumber().toString(16));
            try {
                PeerIdentity id = PeerIdentities.fromCertificate(certificate);
                readable++;
                summary.put("uris", id.uriSans().stream().map(HostileText::expectedInLog).toList());
                summary.put("dns", id.dnsSans().stream().map(HostileText::expectedInLog).toList());
            } catch (CertificateParsingException e) {
                unreadable++;
                summary.put("unreadable", e.getMessage());
            }
            summary.put("notAfter", certificate.getNotAfter().toInstant().toString());
            summary.put("sha256", PeerIdentities.sha256(certificate));
            HostileText.assertFields(written.get(0), expected, "case " + i);
        }

        // Both kinds of line were written: with the names, and with why they could not be read (most random SANs are
        // malformed); every subject, with the DN escapes and characters sought, reached the line either way.
        assertThat(readable).as(seedNote()).isPositive();
        assertThat(unreadable).as(seedNote()).isPositive();
        assertThat(withEscapes).as("subjects with DN escapes; " + seedNote()).isPositive();
        assertThat(withControls).as("subjects with control characters; " + seedNote()).isPositive();
        assertThat(outsideTheBmp).as("subjects with characters outside the BMP; " + seedNote()).isPositive();
    }

    /** A self-signed certificate with a random subject and random SANs, signed properly: only its names are odd. */
    private static X509Certificate certificate(Random random, KeyPair key, ContentSigner signer) throws Exception {
        X500NameBuilder subject = new X500NameBuilder(BCStyle.INSTANCE);
        for (int rdns = 1 + random.nextInt(4); rdns > 0; rdns--) {
            subject.addRDN(switch (random.nextInt(4)) {
                case 0 -> BCStyle.CN;
                case 1 -> BCStyle.O;
                case 2 -> BCStyle.OU;
                default -> BCStyle.L;
            }, value(random));
        }
        X500Name name = subject.build();
        Instant now = Instant.now();
        JcaX509v3CertificateBuilder builder = new JcaX509v3CertificateBuilder(name,
                new BigInteger(64, random).add(BigInteger.ONE), Date.from(now.minusSeconds(3600)),
                Date.from(now.plusSeconds(3600)), name, key.getPublic());
        List<GeneralName> sans = new ArrayList<>();
        for (int n = random.nextInt(4); n > 0; n--) {
            int type = new int[] {GeneralName.dNSName, GeneralName.uniformResourceIdentifier,
                GeneralName.rfc822Name}[random.nextInt(3)];
            // Any bytes: an IA5String is meant to be ASCII, which nothing checks before the JDK reads it.
            sans.add(new GeneralName(type, new DERIA5String(latin1(HostileText.next(random)))));
        }
        if (!sans.isEmpty()) {
            builder.addExtension(Extension.subjectAlternativeName, false,
                    new GeneralNames(sans.toArray(GeneralName[]::new)));
        }
        return new JcaX509CertificateConverter().getCertificate(builder.build(signer));
    }

    /** A DN attribute value: a UTF8String of any bytes, or a BMPString of any UTF-16 code units. */
    private static ASN1Encodable value(Random random) throws Exception {
        String text = HostileText.next(random);
        return switch (random.nextInt(3)) {
            case 0 -> new DERBMPString(text); // lone surrogates kept as they are
            case 1 -> utf8String(text.getBytes(StandardCharsets.UTF_8));
            default -> utf8String(modifiedUtf8(text)); // surrogates encoded one by one (CESU-8), as no encoder should
        };
    }

    /** The DER of a UTF8String with exactly {@code content}, valid UTF-8 or not. */
    private static ASN1Encodable utf8String(byte[] content) throws Exception {
        ByteArrayOutputStream der = new ByteArrayOutputStream();
        der.write(0x0C);
        if (content.length < 0x80) {
            der.write(content.length);
        } else {
            byte[] length = BigInteger.valueOf(content.length).toByteArray();
            int skip = length[0] == 0 ? 1 : 0;
            der.write(0x80 | (length.length - skip));
            der.write(length, skip, length.length - skip);
        }
        der.write(content);
        return ASN1Primitive.fromByteArray(der.toByteArray());
    }

    /** Each UTF-16 code unit as its own one-to-three-byte sequence, surrogates included. */
    private static byte[] modifiedUtf8(String text) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (char c : text.toCharArray()) {
            if (c < 0x80) {
                out.write(c);
            } else if (c < 0x800) {
                out.write(0xC0 | c >> 6);
                out.write(0x80 | c & 0x3F);
            } else {
                out.write(0xE0 | c >> 12);
                out.write(0x80 | c >> 6 & 0x3F);
                out.write(0x80 | c & 0x3F);
            }
        }
        return out.toByteArray();
    }

    /** The low byte of each character, as a string of those bytes. */
    private static String latin1(String text) {
        char[] chars = text.toCharArray();
        for (int i = 0; i < chars.length; i++) {
            chars[i] = (char) (chars[i] & 0xFF);
        }
        return new String(chars);
    }
}
