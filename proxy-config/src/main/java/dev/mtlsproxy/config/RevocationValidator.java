package dev.mtlsproxy.config;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * Checks revocation settings: every trust anchor's CRLs readable, parseable and of a kind revocation checking can
 * apply ({@link Crls}) now, every deny-list entry under {@code revocation:} in its form.
 */
final class RevocationValidator {

    static final String CRL_EXPECTED = "its issuer's complete X.509 CRL, PEM or DER";

    private final Problems problems;

    RevocationValidator(Problems problems) {
        this.problems = problems;
    }

    void validate(Map<String, TrustAnchorConfig> anchors, RevocationConfig revocation) {
        anchors.entrySet().stream().sorted(Map.Entry.comparingByKey()).forEach(e -> {
            String path = YamlPaths.key("trustAnchors", e.getKey()) + ".crls";
            List<String> items = problems.itemPaths(path, e.getValue().crls().size());
            for (int i = 0; i < items.size(); i++) {
                crl(items.get(i), e.getValue().crls().get(i));
            }
        });
        entries("revocation.denySerials", revocation.denySerials(), DenyListValues::serial,
                DenyListValues.SERIAL_EXPECTED);
        entries("revocation.denyFingerprints", revocation.denyFingerprints(), DenyListValues::fingerprint,
                DenyListValues.FINGERPRINT_EXPECTED);
        entries("revocation.denySpkiPins", revocation.denySpkiPins(), DenyListValues::spkiPin,
                DenyListValues.SPKI_PIN_EXPECTED);
    }

    private void crl(String path, Path file) {
        String reason = FileChecks.unreadable(file);
        if (reason != null) {
            problems.add(path, file + " (expected: " + CRL_EXPECTED + ") - " + reason);
            return;
        }
        try {
            Crls.read(file);
        } catch (PemException e) {
            problems.add(path, file + " (expected: " + CRL_EXPECTED + ") - " + e.reason());
        }
    }

    private void entries(String listPath, List<String> values, Function<String, ?> parser, String expected) {
        List<String> items = problems.itemPaths(listPath, values.size());
        for (int i = 0; i < items.size(); i++) {
            try {
                parser.apply(values.get(i));
            } catch (IllegalArgumentException e) {
                problems.add(items.get(i), Values.quote(values.get(i)) + " (expected: " + expected
                        + ")");
            }
        }
    }
}
