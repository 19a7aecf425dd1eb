package dev.mtlsproxy.config;

import java.security.cert.X509Certificate;
import java.util.HashMap;
import java.util.LinkedHashMap;
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
        Map<String, List<X509Certificate>> bundles = new LinkedHashMap<>();
        anchors.entrySet().stream().sorted(Map.Entry.comparingByKey()).forEach(e -> {
            String path = YamlPaths.key("trustAnchors", e.getKey());
            if (!YamlSchema.NAME.matcher(e.getKey()).matches()) {
                problems.add(path, Values.quote(e.getKey()) + " (expected: " + YamlSchema.NAME_EXPECTED + ")");
            }
            TrustAnchorConfig anchor = e.getValue();
            List<X509Certificate> cas = ListenerValidator.certificates(problems, path + ".caBundle",
                    anchor.caBundle(), CA_BUNDLE_EXPECTED);
            if (cas != null) {
                bundles.put(e.getKey(), cas);
            }
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
        // A listener trusts every anchor unless it names some, so an issuer in any bundle may be the one.
        List<X509Certificate> all = bundles.values().stream().flatMap(List::stream).toList();
        bundles.forEach((name, cas) -> {
            for (int n = 0; n < cas.size(); n++) {
                String unusable = ConstrainedIntermediates.withoutIssuer(cas.get(n), all, "no trust anchor");
                if (unusable != null) {
                    problems.add(YamlPaths.key("trustAnchors", name) + ".caBundle", anchors.get(name).caBundle()
                            + " (expected: " + CA_BUNDLE_EXPECTED + ") - certificate " + (n + 1) + " ("
                            + cas.get(n).getSubjectX500Principal().getName() + ") " + unusable);
                    return; // only the first offender is named, as above
                }
            }
        });
    }
}
