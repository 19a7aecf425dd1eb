package dev.mtlsproxy.config;

import java.security.cert.X509Certificate;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import javax.security.auth.x500.X500Principal;

/**
 * Checks {@code trustAnchors:}: at least one, every bundle readable and made of CAs, and no CA in two anchors (the
 * anchor a chain verified to must be unambiguous, or identities scoped to one could be claimed through the other).
 */
final class TrustAnchorValidator {

    static final String CA_BUNDLE_EXPECTED = "a PEM bundle of CA certificates";

    private final Problems problems;

    TrustAnchorValidator(Problems problems) {
        this.problems = problems;
    }

    void validate(Map<String, TrustAnchorConfig> anchors) {
        if (anchors.isEmpty() && problems.failedNamesUnder("trustAnchors").isEmpty()) {
            problems.add("trustAnchors", "{} (expected: at least one trust anchor with a caBundle; client "
                    + "certificates are always required)");
            return;
        }
        Map<X509Certificate, String> owner = new HashMap<>();
        Map<X500Principal, String> subjects = new HashMap<>();
        anchors.entrySet().stream().sorted(Map.Entry.comparingByKey()).forEach(e -> {
            String path = YamlPaths.key("trustAnchors", e.getKey());
            if (!YamlSchema.NAME.matcher(e.getKey()).matches()) {
                problems.add(path, Values.quote(e.getKey()) + " (expected: " + YamlSchema.NAME_EXPECTED + ")");
            }
            TrustAnchorConfig anchor = e.getValue();
            List<X509Certificate> cas = ListenerValidator.certificates(problems, path + ".caBundle",
                    anchor.caBundle(), CA_BUNDLE_EXPECTED);
            for (int n = 0; cas != null && n < cas.size(); n++) {
                X509Certificate ca = cas.get(n);
                // getBasicConstraints() is -1 unless the certificate says CA:true; only the first offender is named
                if (ca.getBasicConstraints() < 0) {
                    problems.add(path + ".caBundle", anchor.caBundle() + " (expected: " + CA_BUNDLE_EXPECTED
                            + ") - certificate " + (n + 1) + " (" + ca.getSubjectX500Principal().getName()
                            + ") is not a CA");
                    return;
                }
                String earlier = owner.putIfAbsent(ca, e.getKey());
                String sameName = subjects.putIfAbsent(ca.getSubjectX500Principal(), e.getKey());
                if (earlier != null && !earlier.equals(e.getKey())) {
                    problems.add(path + ".caBundle", anchor.caBundle() + " (expected: CAs of this anchor only) - "
                            + "certificate " + (n + 1) + " (" + ca.getSubjectX500Principal().getName()
                            + ") is also in trust anchor " + Values.quote(earlier));
                } else if (sameName != null && !sameName.equals(e.getKey())) {
                    // the anchor a chain ends at is told by its issuer's name: two anchors may not share one
                    problems.add(path + ".caBundle", anchor.caBundle() + " (expected: CA names unique across trust "
                            + "anchors) - certificate " + (n + 1) + " (" + ca.getSubjectX500Principal().getName()
                            + ") has the name of a CA in trust anchor " + Values.quote(sameName));
                }
            }
        });
    }
}
