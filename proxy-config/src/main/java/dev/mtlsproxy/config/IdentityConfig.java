package dev.mtlsproxy.config;

import java.util.List;

/**
 * A named workload identity. Every matcher that is set must match the verified client certificate (they combine with
 * AND, as does {@code allOf}; {@code anyOf} needs one of its items); at least one must be set, so an identity can
 * never match "anyone". Items of {@code allOf}/{@code anyOf} are matchers only: no anchor, no requirements.
 *
 * @param trustAnchor    name under {@code trustAnchors:} the certificate must chain to; may be omitted only when
 *                       exactly one anchor is configured
 * @param spiffeId       exact SPIFFE ID (the certificate's single {@code spiffe://} URI SAN)
 * @param spiffeIdPrefix SPIFFE ID path prefix on segment boundaries: {@code spiffe://td/ns/a} covers
 *                       {@code spiffe://td/ns/a/x}, never {@code spiffe://td/ns/ab}
 * @param trustDomain    any SPIFFE ID of this trust domain
 * @param uriSan         exact URI SAN
 * @param dnsSan         DNS SAN, exact or {@code *.example.com} (exactly one label), case-insensitive
 * @param dnsSanSuffix   any DNS SAN strictly below this domain, at any depth
 * @param emailSan       exact e-mail SAN (the domain compared case-insensitively)
 * @param ipSan          an IP SAN equal to this address, or inside this CIDR
 * @param subjectCn      exact subject common name
 * @param subjectO       exact subject organisation (any of the subject's O attributes)
 * @param subjectOu      exact subject organisational unit (any of the subject's OU attributes)
 * @param issuerDn       the leaf's issuer DN, compared as X.500 names (attribute order and case as in the certificate)
 * @param sha256         SHA-256 fingerprint of the certificate, hex (colons allowed)
 * @param spkiSha256     SHA-256 of the SubjectPublicKeyInfo, base64 (as curl's and Envoy's SPKI pins)
 * @param allOf          matchers that must all match
 * @param anyOf          matchers of which one must match
 * @param require        conditions on the certificate itself
 */
public record IdentityConfig(
        String trustAnchor,
        String spiffeId,
        String spiffeIdPrefix,
        String trustDomain,
        String uriSan,
        String dnsSan,
        String dnsSanSuffix,
        String emailSan,
        String ipSan,
        String subjectCn,
        String subjectO,
        String subjectOu,
        String issuerDn,
        String sha256,
        String spkiSha256,
        List<IdentityConfig> allOf,
        List<IdentityConfig> anyOf,
        CertificateRequirements require) {

    public IdentityConfig {
        allOf = allOf == null ? List.of() : List.copyOf(allOf);
        anyOf = anyOf == null ? List.of() : List.copyOf(anyOf);
    }

    /** The common case: one exact SPIFFE ID under the only trust anchor. */
    public static IdentityConfig spiffe(String spiffeId) {
        return builder().spiffeId(spiffeId).build();
    }

    public static Builder builder() {
        return new Builder();
    }

    /** The same identity, scoped to this anchor. */
    public IdentityConfig withTrustAnchor(String anchor) {
        return new IdentityConfig(anchor, spiffeId, spiffeIdPrefix, trustDomain, uriSan, dnsSan, dnsSanSuffix,
                emailSan, ipSan, subjectCn, subjectO, subjectOu, issuerDn, sha256, spkiSha256, allOf, anyOf, require);
    }

    /** Whether any matcher is set on this level (requirements and anchor are not matchers). */
    public boolean hasMatcher() {
        return spiffeId != null || spiffeIdPrefix != null || trustDomain != null || uriSan != null || dnsSan != null
                || dnsSanSuffix != null || emailSan != null || ipSan != null || subjectCn != null || subjectO != null
                || subjectOu != null || issuerDn != null || sha256 != null || spkiSha256 != null || !allOf.isEmpty()
                || !anyOf.isEmpty();
    }

    /** For code and tests that build identities without YAML. */
    public static final class Builder {
        private String trustAnchor;
        private String spiffeId;
        private String spiffeIdPrefix;
        private String trustDomain;
        private String uriSan;
        private String dnsSan;
        private String dnsSanSuffix;
        private String emailSan;
        private String ipSan;
        private String subjectCn;
        private String subjectO;
        private String subjectOu;
        private String issuerDn;
        private String sha256;
        private String spkiSha256;
        private List<IdentityConfig> allOf;
        private List<IdentityConfig> anyOf;
        private CertificateRequirements require;

        public Builder trustAnchor(String v) { trustAnchor = v; return this; }
        public Builder spiffeId(String v) { spiffeId = v; return this; }
        public Builder spiffeIdPrefix(String v) { spiffeIdPrefix = v; return this; }
        public Builder trustDomain(String v) { trustDomain = v; return this; }
        public Builder uriSan(String v) { uriSan = v; return this; }
        public Builder dnsSan(String v) { dnsSan = v; return this; }
        public Builder dnsSanSuffix(String v) { dnsSanSuffix = v; return this; }
        public Builder emailSan(String v) { emailSan = v; return this; }
        public Builder ipSan(String v) { ipSan = v; return this; }
        public Builder subjectCn(String v) { subjectCn = v; return this; }
        public Builder subjectO(String v) { subjectO = v; return this; }
        public Builder subjectOu(String v) { subjectOu = v; return this; }
        public Builder issuerDn(String v) { issuerDn = v; return this; }
        public Builder sha256(String v) { sha256 = v; return this; }
        public Builder spkiSha256(String v) { spkiSha256 = v; return this; }
        public Builder allOf(IdentityConfig... v) { allOf = List.of(v); return this; }
        public Builder anyOf(IdentityConfig... v) { anyOf = List.of(v); return this; }
        public Builder require(CertificateRequirements v) { require = v; return this; }

        public IdentityConfig build() {
            return new IdentityConfig(trustAnchor, spiffeId, spiffeIdPrefix, trustDomain, uriSan, dnsSan,
                    dnsSanSuffix, emailSan, ipSan, subjectCn, subjectO, subjectOu, issuerDn, sha256, spkiSha256,
                    allOf, anyOf, require);
        }
    }
}
