package dev.mtlsproxy.config;

import java.net.URI;
import java.net.URISyntaxException;
import java.util.Base64;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;
import javax.security.auth.x500.X500Principal;

/** Checks {@code identities:}: the anchor each is scoped to, and the syntax of every matcher. */
final class IdentityValidator {

    static final String SPIFFE_EXPECTED = "spiffe://trust-domain/path";
    static final String MATCHERS = "spiffeId, spiffeIdPrefix, trustDomain, uriSan, dnsSan, dnsSanSuffix, emailSan, "
            + "ipSan, subjectCn, subjectO, subjectOu, issuerDn, sha256, spkiSha256, allOf, anyOf";

    private static final Pattern TRUST_DOMAIN = Pattern.compile("[a-z0-9._-]+");

    private final Problems problems;
    private final Set<String> anchors;

    IdentityValidator(Problems problems, Set<String> anchors) {
        this.problems = problems;
        this.anchors = new TreeSet<>(anchors);
    }

    void validate(Map<String, IdentityConfig> identities) {
        identities.forEach((name, identity) -> {
            String path = YamlPaths.key("identities", name);
            if (!YamlSchema.NAME.matcher(name).matches() || name.equals(RuleConfig.ANYONE)) {
                problems.add(path, Values.quote(name) + " (expected: " + YamlSchema.NAME_EXPECTED + ")");
            }
            anchor(path + ".trustAnchor", identity.trustAnchor());
            matchers(path, identity);
            requirements(path + ".require", identity.require());
        });
    }

    /** Identities and policy-test peers are scoped the same way; with one anchor, naming it is optional. */
    void anchor(String path, String anchor) {
        if (anchor == null) {
            if (anchors.size() > 1) {
                problems.add(path, "missing (expected: a name under trustAnchors:, known: "
                        + String.join(", ", anchors) + ") - required when more than one trust anchor is configured");
            }
            return;
        }
        References.check(problems, path, anchor, "trustAnchors", anchors);
    }

    private void matchers(String path, IdentityConfig m) {
        if (!m.hasMatcher()) {
            problems.add(path, "{} (expected: at least one of " + MATCHERS + ")");
        }
        spiffeId(path + ".spiffeId", m.spiffeId());
        spiffeId(path + ".spiffeIdPrefix", m.spiffeIdPrefix());
        if (m.trustDomain() != null && !TRUST_DOMAIN.matcher(m.trustDomain()).matches()) {
            problems.add(path + ".trustDomain", Values.quote(m.trustDomain())
                    + " (expected: a trust domain like example.org, without spiffe://)");
        }
        if (m.uriSan() != null && !isAbsoluteUri(m.uriSan())) {
            problems.add(path + ".uriSan", Values.quote(m.uriSan()) + " (expected: an absolute URI)");
        }
        if (m.dnsSan() != null) {
            String host = m.dnsSan().toLowerCase(Locale.ROOT);
            if (!RouteValidator.isHostName(host.startsWith("*.") ? host.substring(2) : host)) {
                problems.add(path + ".dnsSan", Values.quote(m.dnsSan())
                        + " (expected: a DNS name like ops.example.com, or *.example.com for one label)");
            }
        }
        if (m.dnsSanSuffix() != null && !RouteValidator.isHostName(m.dnsSanSuffix().toLowerCase(Locale.ROOT))) {
            problems.add(path + ".dnsSanSuffix", Values.quote(m.dnsSanSuffix())
                    + " (expected: a domain like internal.example.com)");
        }
        if (m.emailSan() != null && !m.emailSan().matches("[^@\\s]+@[^@\\s]+")) {
            problems.add(path + ".emailSan", Values.quote(m.emailSan()) + " (expected: an e-mail address)");
        }
        if (m.ipSan() != null) {
            try {
                IpRange.parse(m.ipSan());
            } catch (IllegalArgumentException e) {
                problems.add(path + ".ipSan", Values.quote(m.ipSan())
                        + " (expected: an IP address or CIDR block, like 10.0.0.0/8 or fd00::/8)");
            }
        }
        nonBlank(path + ".subjectCn", m.subjectCn());
        nonBlank(path + ".subjectO", m.subjectO());
        nonBlank(path + ".subjectOu", m.subjectOu());
        if (m.issuerDn() != null) {
            try {
                new X500Principal(m.issuerDn());
            } catch (IllegalArgumentException e) {
                problems.add(path + ".issuerDn", Values.quote(m.issuerDn())
                        + " (expected: a distinguished name like CN=Issuing CA,O=Example)");
            }
        }
        if (m.sha256() != null && !isHexSha256(m.sha256())) {
            problems.add(path + ".sha256", Values.quote(m.sha256())
                    + " (expected: a SHA-256 fingerprint, 64 hex digits, colons allowed)");
        }
        if (m.spkiSha256() != null && !isBase64Sha256(m.spkiSha256())) {
            problems.add(path + ".spkiSha256", Values.quote(m.spkiSha256())
                    + " (expected: base64 of a SHA-256 digest, 44 characters ending in =)");
        }
        nested(path + ".allOf", m.allOf());
        nested(path + ".anyOf", m.anyOf());
    }

    private void nested(String listPath, List<IdentityConfig> items) {
        List<String> paths = problems.itemPaths(listPath, items.size());
        for (int i = 0; i < paths.size(); i++) {
            String path = paths.get(i);
            IdentityConfig item = items.get(i);
            if (item.trustAnchor() != null) {
                problems.add(path + ".trustAnchor", Values.quote(item.trustAnchor())
                        + " (expected: only on the identity itself, not inside allOf/anyOf)");
            }
            if (item.require() != null) {
                problems.add(path + ".require", "a mapping (expected: only on the identity itself, not inside "
                        + "allOf/anyOf)");
            }
            matchers(path, item);
        }
    }

    void requirements(String path, CertificateRequirements require) {
        if (require == null) {
            return;
        }
        List<String> keyTypes = problems.itemPaths(path + ".keyTypes", require.keyTypes().size());
        for (int i = 0; i < keyTypes.size(); i++) {
            if (!CertificateRequirements.KEY_TYPES.contains(require.keyTypes().get(i))) {
                problems.add(keyTypes.get(i), Values.quote(require.keyTypes().get(i))
                        + " (expected: one of " + String.join(", ", CertificateRequirements.KEY_TYPES) + ")");
            }
        }
        if (require.maxLifetime() != null) {
            problems.positive(path + ".maxLifetime", require.maxLifetime());
        }
        if (require.minRemainingLifetime() != null) {
            problems.positive(path + ".minRemainingLifetime", require.minRemainingLifetime());
        }
    }

    private void spiffeId(String path, String spiffeId) {
        if (spiffeId != null && !isSpiffeId(spiffeId)) {
            problems.add(path, Values.quote(spiffeId) + " (expected: " + SPIFFE_EXPECTED + ")");
        }
    }

    /** SPIFFE ID syntax, for identities and for the expected identity of a TLS backend. */
    static boolean isSpiffeId(String id) {
        return SpiffeIds.isValid(id);
    }

    private void nonBlank(String path, String value) {
        if (value != null && value.isBlank()) {
            problems.add(path, Values.quote(value) + " (expected: a non-empty name)");
        }
    }

    private static boolean isAbsoluteUri(String text) {
        try {
            return new URI(text).isAbsolute();
        } catch (URISyntaxException e) {
            return false;
        }
    }

    static boolean isHexSha256(String text) {
        String hex = text.replace(":", "");
        if (hex.length() != 64) {
            return false;
        }
        try {
            HexFormat.of().parseHex(hex);
            return true;
        } catch (IllegalArgumentException e) {
            return false;
        }
    }

    static boolean isBase64Sha256(String text) {
        try {
            return Base64.getDecoder().decode(text).length == 32;
        } catch (IllegalArgumentException e) {
            return false;
        }
    }
}
