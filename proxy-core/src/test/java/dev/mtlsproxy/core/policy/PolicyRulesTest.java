package dev.mtlsproxy.core.policy;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.config.CertificateRequirements;
import dev.mtlsproxy.config.IdentityConfig;
import dev.mtlsproxy.config.PolicyMode;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.config.RouteConfig;
import dev.mtlsproxy.config.RuleConfig;
import dev.mtlsproxy.config.TrustAnchorConfig;
import dev.mtlsproxy.core.identity.PeerIdentity;
import dev.mtlsproxy.core.policy.PolicyDecision.Outcome;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;

/**
 * The policy language: CA-scoped identities and their matchers, ordered allow/deny rules, expiring grants,
 * certificate requirements, dry-run and SNI/Host consistency. Pure: records in, decisions out.
 */
class PolicyRulesTest {

    static final Instant NOW = Instant.parse("2026-11-27T12:00:00Z");
    static final String CORP = "corp";
    static final String PARTNERS = "partners";

    // ---- identities --------------------------------------------------------------------------------------------

    @Nested
    class Identities {

        @Test
        void anIdentityFromAnotherAnchorThatCopiesTheNamesNeverMatches() {
            Policy policy = policy()
                    .identity("orders", IdentityConfig.builder().trustAnchor(CORP)
                            .spiffeId("spiffe://corp/orders").build())
                    .route(route("/", RuleConfig.allow("orders")))
                    .build();

            assertThat(decide(policy, peer(CORP).uri("spiffe://corp/orders")).outcome()).isEqualTo(Outcome.ALLOW);
            PolicyDecision forged = decide(policy, peer(PARTNERS).uri("spiffe://corp/orders"));
            assertThat(forged.outcome()).isEqualTo(Outcome.DENY);
            assertThat(forged.reason()).isEqualTo(DenyReason.NO_RULE_MATCHED);
            assertThat(policy.identitiesOf(peer(PARTNERS).uri("spiffe://corp/orders").build())).isEmpty();
        }

        @Test
        void spiffePrefixMatchesOnSegmentBoundariesOnly() {
            Policy policy = only(IdentityConfig.builder().trustAnchor(CORP).spiffeIdPrefix("spiffe://td/ns/a").build());

            assertThat(allows(policy, peer(CORP).uri("spiffe://td/ns/a"))).isTrue();
            assertThat(allows(policy, peer(CORP).uri("spiffe://td/ns/a/sa/x"))).isTrue();
            assertThat(allows(policy, peer(CORP).uri("spiffe://td/ns/ab"))).isFalse();
            assertThat(allows(policy, peer(CORP).uri("spiffe://td/ns"))).isFalse();
        }

        @Test
        void trustDomainMatchesEveryIdOfThatDomainAndNoOther() {
            Policy policy = only(IdentityConfig.builder().trustAnchor(CORP).trustDomain("td").build());

            assertThat(allows(policy, peer(CORP).uri("spiffe://td/anything"))).isTrue();
            assertThat(allows(policy, peer(CORP).uri("spiffe://td.evil/anything"))).isFalse();
            assertThat(allows(policy, peer(CORP).uri("spiffe://tdx/anything"))).isFalse();
        }

        @Test
        void aCertificateWithTwoSpiffeIdsHasNone() {
            Policy policy = only(IdentityConfig.builder().trustAnchor(CORP).trustDomain("td").build());

            assertThat(allows(policy, peer(CORP).uri("spiffe://td/a").uri("spiffe://td/b"))).isFalse();
        }

        @Test
        void uriSanIsExact() {
            Policy policy = only(IdentityConfig.builder().trustAnchor(CORP).uriSan("https://ci.example/job").build());

            assertThat(allows(policy, peer(CORP).uri("https://ci.example/job"))).isTrue();
            assertThat(allows(policy, peer(CORP).uri("https://ci.example/job/2"))).isFalse();
        }

        @Test
        void aSecondUriOfAnySchemeTakesTheSpiffeIdAwayButNotTheUris() {
            Policy byId = only(IdentityConfig.builder().trustAnchor(CORP).spiffeId("spiffe://td/a").build());
            Policy byUri = only(IdentityConfig.builder().trustAnchor(CORP).uriSan("spiffe://td/a").build());
            Policy byOtherUri = only(IdentityConfig.builder().trustAnchor(CORP).uriSan("https://td/x").build());

            assertThat(allows(byId, peer(CORP).uri("spiffe://td/a"))).isTrue();
            assertThat(allows(byId, peer(CORP).uri("spiffe://td/a").uri("https://td/x"))).isFalse();
            assertThat(allows(byUri, peer(CORP).uri("spiffe://td/a").uri("https://td/x"))).isTrue();
            assertThat(allows(byOtherUri, peer(CORP).uri("spiffe://td/a").uri("https://td/x"))).isTrue();
        }

        @Test
        void uriSanNeverMatchesTheSpiffeUriOfASigningCertificateButStillItsOtherUris() {
            Policy bySpiffeUri = only(IdentityConfig.builder().trustAnchor(CORP).uriSan("spiffe://td/a").build());
            Policy byUpperCaseScheme = only(IdentityConfig.builder().trustAnchor(CORP).uriSan("SPIFFE://td/a")
                    .build());
            Policy byOtherUri = only(IdentityConfig.builder().trustAnchor(CORP).uriSan("https://td/x").build());

            assertThat(allows(bySpiffeUri, peer(CORP).uri("spiffe://td/a"))).isTrue();
            assertThat(allows(bySpiffeUri, peer(CORP).uri("spiffe://td/a").signingCertificate())).isFalse();
            assertThat(allows(byUpperCaseScheme, peer(CORP).uri("SPIFFE://td/a").signingCertificate())).isFalse();
            assertThat(allows(byOtherUri, peer(CORP).uri("https://td/x").signingCertificate())).isTrue();
        }

        @Test
        void dnsWildcardCoversExactlyOneLabel() {
            Policy policy = only(IdentityConfig.builder().trustAnchor(CORP).dnsSan("*.svc.example").build());

            assertThat(allows(policy, peer(CORP).dns("orders.svc.example"))).isTrue();
            assertThat(allows(policy, peer(CORP).dns("a.orders.svc.example"))).isFalse();
            assertThat(allows(policy, peer(CORP).dns("svc.example"))).isFalse();
        }

        @Test
        void dnsExactIsCaseInsensitiveAndSuffixCoversAnyDepthBelow() {
            Policy exact = only(IdentityConfig.builder().trustAnchor(CORP).dnsSan("Ops.Example").build());
            Policy suffix = only(IdentityConfig.builder().trustAnchor(CORP).dnsSanSuffix("internal.example").build());

            assertThat(allows(exact, peer(CORP).dns("ops.example"))).isTrue();
            assertThat(allows(suffix, peer(CORP).dns("a.b.internal.example"))).isTrue();
            assertThat(allows(suffix, peer(CORP).dns("internal.example"))).isFalse();
            assertThat(allows(suffix, peer(CORP).dns("evilinternal.example"))).isFalse();
        }

        @Test
        void emailComparesTheDomainCaseInsensitively() {
            Policy policy = only(IdentityConfig.builder().trustAnchor(CORP).emailSan("alice@Example.org").build());

            assertThat(allows(policy, peer(CORP).email("alice@example.ORG"))).isTrue();
            assertThat(allows(policy, peer(CORP).email("Alice@example.org"))).isFalse();
        }

        @Test
        void ipSanMatchesAnAddressOrACidrBlock() {
            Policy block = only(IdentityConfig.builder().trustAnchor(CORP).ipSan("10.1.0.0/16").build());
            Policy v6 = only(IdentityConfig.builder().trustAnchor(CORP).ipSan("fd00::1").build());

            assertThat(allows(block, peer(CORP).ip("10.1.200.3"))).isTrue();
            assertThat(allows(block, peer(CORP).ip("10.2.0.1"))).isFalse();
            assertThat(allows(v6, peer(CORP).ip("fd00:0:0:0:0:0:0:1"))).isTrue();
            assertThat(allows(v6, peer(CORP).ip("fd00:0:0:0:0:0:0:2"))).isFalse();
        }

        @Test
        void subjectAttributesIssuerAndPinsMatchExactly() {
            Policy policy = only(IdentityConfig.builder().trustAnchor(CORP).subjectO("Shop").subjectOu("payments")
                    .issuerDn("CN=Issuing CA, O=Corp").build());
            Policy fingerprint = only(IdentityConfig.builder().trustAnchor(CORP).sha256("AB:" + "cd".repeat(31)).build());
            Policy spki = only(IdentityConfig.builder().trustAnchor(CORP).spkiSha256("A".repeat(43) + "=").build());

            assertThat(allows(policy, peer(CORP).subject("CN=x,OU=payments,O=Shop").issuer("CN=Issuing CA,O=Corp")))
                    .isTrue();
            assertThat(allows(policy, peer(CORP).subject("CN=x,OU=payments,O=Shop").issuer("CN=Other CA,O=Corp")))
                    .isFalse();
            assertThat(allows(policy, peer(CORP).subject("CN=x,OU=refunds,O=Shop").issuer("CN=Issuing CA,O=Corp")))
                    .isFalse();
            assertThat(allows(fingerprint, peer(CORP).sha256("ab" + "cd".repeat(31)))).isTrue();
            assertThat(allows(fingerprint, peer(CORP).sha256("ab" + "cd".repeat(30) + "ce"))).isFalse();
            assertThat(allows(spki, peer(CORP).spki("A".repeat(43) + "="))).isTrue();
            assertThat(allows(spki, peer(CORP).spki("B".repeat(43) + "="))).isFalse();
        }

        @Test
        void allOfAndAnyOfCombine() {
            Policy policy = only(IdentityConfig.builder().trustAnchor(CORP)
                    .allOf(IdentityConfig.builder().trustDomain("td").build())
                    .anyOf(IdentityConfig.builder().subjectOu("payments").build(),
                            IdentityConfig.builder().dnsSan("ops.example").build())
                    .build());

            assertThat(allows(policy, peer(CORP).uri("spiffe://td/x").subject("CN=x,OU=payments"))).isTrue();
            assertThat(allows(policy, peer(CORP).uri("spiffe://td/x").dns("ops.example"))).isTrue();
            assertThat(allows(policy, peer(CORP).uri("spiffe://td/x").subject("CN=x,OU=refunds"))).isFalse();
            assertThat(allows(policy, peer(CORP).uri("spiffe://other/x").subject("CN=x,OU=payments"))).isFalse();
        }
    }

    // ---- rules -------------------------------------------------------------------------------------------------

    @Nested
    class Rules {

        @Test
        void denyWinsOverAnAllowListedBeforeIt() {
            Policy policy = policy()
                    .identity("shop", IdentityConfig.builder().trustDomain("shop").build())
                    .identity("batch", IdentityConfig.spiffe("spiffe://shop/batch"))
                    .route(route("/orders", RuleConfig.allow("shop"),
                            RuleConfig.deny("batch").withMethods("DELETE")))
                    .build();

            PolicyDecision denied = decide(policy, "DELETE", "/orders/7", peer(CORP).uri("spiffe://shop/batch"));
            assertThat(denied.outcome()).isEqualTo(Outcome.DENY);
            assertThat(denied.rule()).isEqualTo(2);
            assertThat(denied.reasonText()).isEqualTo("denied by rule 2");
            assertThat(denied.identity()).isEqualTo("batch");

            PolicyDecision allowed = decide(policy, "GET", "/orders/7", peer(CORP).uri("spiffe://shop/batch"));
            assertThat(allowed.outcome()).isEqualTo(Outcome.ALLOW);
            assertThat(allowed.rule()).isEqualTo(1);
            assertThat(allowed.ruleLabel()).isEqualTo("rule-1");
        }

        @Test
        void aRuleNamingGetCoversHeadButOneNamingHeadDoesNotCoverGet() {
            Policy policy = policy()
                    .identity("shop", IdentityConfig.builder().trustDomain("shop").build())
                    .identity("batch", IdentityConfig.spiffe("spiffe://shop/batch"))
                    .route(route("/orders", RuleConfig.deny("batch").withMethods("GET"),
                            RuleConfig.deny("shop").withMethods("HEAD").withPaths("/orders/archive"),
                            RuleConfig.allow("shop")))
                    .build();

            assertThat(decide(policy, "HEAD", "/orders/7", peer(CORP).uri("spiffe://shop/batch")).rule())
                    .isEqualTo(1);
            assertThat(decide(policy, "HEAD", "/orders/archive", peer(CORP).uri("spiffe://shop/a")).rule())
                    .isEqualTo(2);
            assertThat(decide(policy, "GET", "/orders/archive", peer(CORP).uri("spiffe://shop/a")).outcome())
                    .isEqualTo(Outcome.ALLOW);
        }

        @Test
        void denyAnyoneOnASubPathRefusesEveryClientThere() {
            Policy policy = policy()
                    .identity("shop", IdentityConfig.builder().trustDomain("shop").build())
                    .route(route("/orders", RuleConfig.deny("*").withPaths("/orders/internal"),
                            RuleConfig.allow("shop")))
                    .build();

            assertThat(decide(policy, "GET", "/orders/internal/x", peer(CORP).uri("spiffe://shop/a")).rule())
                    .isEqualTo(1);
            assertThat(decide(policy, "GET", "/orders/internals", peer(CORP).uri("spiffe://shop/a")).outcome())
                    .isEqualTo(Outcome.ALLOW);
        }

        @Test
        void noMatchingRuleDeniesWithThatReasonAndARouteWithoutRulesDeniesAll() {
            Policy policy = policy()
                    .identity("shop", IdentityConfig.builder().trustDomain("shop").build())
                    .route(route("/orders", RuleConfig.allow("shop").withMethods("GET")))
                    .route(route("/locked"))
                    .build();

            PolicyDecision noMatch = decide(policy, "POST", "/orders", peer(CORP).uri("spiffe://shop/a"));
            assertThat(noMatch.reasonText()).isEqualTo("no rule matched");
            assertThat(noMatch.ruleLabel()).isEqualTo("default-deny");
            assertThat(decide(policy, "GET", "/locked", peer(CORP).uri("spiffe://shop/a")).reason())
                    .isEqualTo(DenyReason.NO_RULES);
        }

        @Test
        void rulePathsAreSegmentPrefixesAndStarIsOneSegment() {
            Policy policy = policy()
                    .identity("shop", IdentityConfig.builder().trustDomain("shop").build())
                    .route(route("/api", RuleConfig.allow("shop").withPaths("/api/*/items")))
                    .build();
            Peer shop = peer(CORP).uri("spiffe://shop/a");

            assertThat(decide(policy, "GET", "/api/7/items", shop).outcome()).isEqualTo(Outcome.ALLOW);
            assertThat(decide(policy, "GET", "/api/7/items/3", shop).outcome()).isEqualTo(Outcome.ALLOW);
            assertThat(decide(policy, "GET", "/api/7/itemsx", shop).outcome()).isEqualTo(Outcome.DENY);
            assertThat(decide(policy, "GET", "/api/7/8/items", shop).outcome()).isEqualTo(Outcome.DENY);
            assertThat(decide(policy, "GET", "/api/7", shop).outcome()).isEqualTo(Outcome.DENY);
        }

        @Test
        void aPrefixNeverCoversALongerSegment() {
            Policy policy = policy()
                    .identity("shop", IdentityConfig.builder().trustDomain("shop").build())
                    .route(route("/api", RuleConfig.allow("shop")))
                    .build();

            assertThat(decide(policy, "GET", "/apiary", peer(CORP).uri("spiffe://shop/a")).outcome())
                    .isEqualTo(Outcome.NO_ROUTE);
        }

        @Test
        void anExpiredGrantNoLongerMatchesAndSaysSo() {
            Policy policy = policy()
                    .identity("contractor", IdentityConfig.spiffe("spiffe://shop/contractor"))
                    .route(route("/", RuleConfig.allow("contractor").withExpires(NOW.plusSeconds(60))))
                    .build();
            Peer contractor = peer(CORP).uri("spiffe://shop/contractor");

            assertThat(policy.decide(contractor.build(), request("GET", "/"), NOW).outcome())
                    .isEqualTo(Outcome.ALLOW);
            PolicyDecision later = policy.decide(contractor.build(), request("GET", "/"), NOW.plusSeconds(60));
            assertThat(later.outcome()).isEqualTo(Outcome.DENY);
            assertThat(later.reasonText()).isEqualTo("grant expired (rule 1)");
        }

        @Test
        void anAllowLapsesAtTheEarlierOfItsGrantsExpiryAndTheCertificatesRequiredRemainingLifetime() {
            // What a WebSocket tunnel, one request that lasts, is judged again at.
            Policy policy = policy()
                    .identity("contractor", IdentityConfig.builder().trustAnchor(CORP)
                            .spiffeId("spiffe://shop/contractor")
                            .require(new CertificateRequirements(null, null, null, Duration.ofMinutes(10))).build())
                    .identity("staff", IdentityConfig.spiffe("spiffe://shop/staff"))
                    .route(route("/", RuleConfig.allow("contractor").withExpires(NOW.plusSeconds(3600)),
                            RuleConfig.allow("staff")))
                    .build();
            Peer contractor = peer(CORP).uri("spiffe://shop/contractor");

            assertThat(decide(policy, contractor.expiresIn(Duration.ofHours(5))).lapsesAt(contractor.build()))
                    .as("the grant's expiry comes first").isEqualTo(NOW.plusSeconds(3600));
            Peer endingSoon = peer(CORP).uri("spiffe://shop/contractor").expiresIn(Duration.ofMinutes(30));
            assertThat(decide(policy, endingSoon).lapsesAt(endingSoon.build()))
                    .as("ten minutes before the certificate ends").isEqualTo(NOW.plus(Duration.ofMinutes(20)));
            Peer staff = peer(CORP).uri("spiffe://shop/staff");
            assertThat(decide(policy, staff).lapsesAt(staff.build())).as("nothing lapses").isNull();
            Peer stranger = peer(CORP).uri("spiffe://shop/other");
            assertThat(decide(policy, stranger).lapsesAt(stranger.build())).as("not an allow").isNull();
        }

        @Test
        void dryRunRoutesReportTheDenyButForward() {
            Policy policy = policy()
                    .identity("ops", IdentityConfig.spiffe("spiffe://shop/ops"))
                    .route(new RouteConfig("admin", null, "/admin", List.of(), "shop", List.of(),
                            List.of(RuleConfig.allow("ops")), PolicyMode.DRY_RUN, null))
                    .build();

            PolicyDecision decision = decide(policy, "GET", "/admin", peer(CORP).uri("spiffe://shop/other"));

            assertThat(decision.outcome()).isEqualTo(Outcome.DENY);
            assertThat(decision.dryRunDeny()).isTrue();
            assertThat(decision.forwards()).isTrue();
            assertThat(decision.label()).isEqualTo("dry_run_deny");
        }
    }

    // ---- certificate requirements ------------------------------------------------------------------------------

    @Nested
    class Requirements {

        @Test
        void aLongLivedCertificateIsRefusedWhereShortLivedOnesAreRequired() {
            Policy policy = only(IdentityConfig.builder().trustAnchor(CORP).trustDomain("td")
                    .require(new CertificateRequirements(null, null, Duration.ofHours(24), null)).build());

            assertThat(allows(policy, peer(CORP).uri("spiffe://td/a").lifetime(Duration.ofHours(12)))).isTrue();
            PolicyDecision yearLong = decide(policy, peer(CORP).uri("spiffe://td/a").lifetime(Duration.ofDays(365)));
            assertThat(yearLong.outcome()).isEqualTo(Outcome.DENY);
            assertThat(yearLong.reasonText()).isEqualTo("certificate lifetime too long");
        }

        @Test
        void minimumRemainingLifetimeKeyTypeAndEkuAreChecked() {
            Policy policy = only(IdentityConfig.builder().trustAnchor(CORP).trustDomain("td")
                    .require(new CertificateRequirements(true, List.of("EC"), null, Duration.ofMinutes(10)))
                    .build());
            Peer good = peer(CORP).uri("spiffe://td/a");

            assertThat(allows(policy, good)).isTrue();
            assertThat(decide(policy, peer(CORP).uri("spiffe://td/a").expiresIn(Duration.ofMinutes(5))).reason())
                    .isEqualTo(DenyReason.CERTIFICATE_EXPIRES_TOO_SOON);
            assertThat(decide(policy, peer(CORP).uri("spiffe://td/a").keyType("RSA")).reason())
                    .isEqualTo(DenyReason.CERTIFICATE_KEY_TYPE);
            assertThat(decide(policy, peer(CORP).uri("spiffe://td/a").noClientAuthEku()).reason())
                    .isEqualTo(DenyReason.CERTIFICATE_NO_CLIENT_AUTH_EKU);
        }

        @Test
        void routeRequirementsApplyToEveryClient() {
            Policy policy = policy()
                    .identity("td", IdentityConfig.builder().trustDomain("td").build())
                    .route(new RouteConfig("r", null, "/", List.of(), "shop", List.of(),
                            List.of(RuleConfig.allow("td")), null,
                            new CertificateRequirements(null, null, Duration.ofHours(1), null)))
                    .build();

            assertThat(decide(policy, peer(CORP).uri("spiffe://td/a").lifetime(Duration.ofHours(2))).reason())
                    .isEqualTo(DenyReason.CERTIFICATE_LIFETIME_TOO_LONG);
        }

        @Test
        void aFailedRequirementNeverLiftsADeny() {
            Policy policy = policy()
                    .identity("contractors", IdentityConfig.builder().subjectOu("contractors")
                            .require(new CertificateRequirements(null, null, Duration.ofHours(1), null)).build())
                    .identity("staff", IdentityConfig.builder().trustDomain("corp").build())
                    .route(route("/", RuleConfig.deny("contractors"), RuleConfig.allow("staff")))
                    .build();

            PolicyDecision decision = decide(policy, peer(CORP).uri("spiffe://corp/x")
                    .subject("CN=x,OU=contractors").lifetime(Duration.ofDays(30)));

            assertThat(decision.reasonText()).isEqualTo("denied by rule 1");
        }
    }

    // ---- hosts -------------------------------------------------------------------------------------------------

    @Test
    void aServerNameForOneConfiguredHostAndAHostHeaderForAnotherIsMisdirected() {
        Policy policy = policy()
                .identity("td", IdentityConfig.builder().trustDomain("td").build())
                .route(new RouteConfig("a", "a.example", "/", List.of(), "shop", List.of("td")))
                .route(new RouteConfig("b", "b.example", "/", List.of(), "shop", List.of("td")))
                .build();
        PeerIdentity client = peer(CORP).uri("spiffe://td/x").build();

        assertThat(policy.decide(client, new PolicyRequest("GET", "b.example", "/", "a.example"), NOW).outcome())
                .isEqualTo(Outcome.MISDIRECTED);
        assertThat(policy.decide(client, new PolicyRequest("GET", "a.example", "/", "a.example"), NOW).outcome())
                .isEqualTo(Outcome.ALLOW);
        // a server name no route names (an IP, a generic name) says nothing about which host is meant
        assertThat(policy.decide(client, new PolicyRequest("GET", "b.example", "/", "lb.example"), NOW).outcome())
                .isEqualTo(Outcome.ALLOW);
    }

    @Test
    void explainTracesEveryRuleInOrder() {
        Policy policy = policy()
                .identity("shop", IdentityConfig.builder().trustDomain("shop").build())
                .identity("batch", IdentityConfig.spiffe("spiffe://shop/batch"))
                .route(route("/orders", RuleConfig.allow("shop"), RuleConfig.deny("batch").withMethods("DELETE")))
                .build();
        PolicyTrace.Recording trace = new PolicyTrace.Recording();

        policy.decide(peer(CORP).uri("spiffe://shop/batch").build(), request("DELETE", "/orders/1"), NOW, trace);

        assertThat(trace.lines()).containsExactly(
                "route r/orders (host *, pathPrefix /orders)",
                "  rule 2 deny [batch] methods [DELETE]: DENY (client is batch)");
    }

    // ---- fixtures ----------------------------------------------------------------------------------------------

    static PolicyRequest request(String method, String path) {
        return new PolicyRequest(method, "api.example", path, null);
    }

    static PolicyDecision decide(Policy policy, Peer peer) {
        return decide(policy, "GET", "/", peer);
    }

    static PolicyDecision decide(Policy policy, String method, String path, Peer peer) {
        return policy.decide(peer.build(), request(method, path), NOW);
    }

    static boolean allows(Policy policy, Peer peer) {
        return decide(policy, peer).allowed();
    }

    static RouteConfig route(String prefix, RuleConfig... rules) {
        return new RouteConfig("r" + prefix, null, prefix, List.of(), "shop", List.of(), List.of(rules), null, null);
    }

    /** A policy with one identity, granted everything: tests of a matcher alone. */
    static Policy only(IdentityConfig identity) {
        return policy().identity("x", identity).route(route("/", RuleConfig.allow("x"))).build();
    }

    static PolicyBuilder policy() {
        return new PolicyBuilder();
    }

    static Peer peer(String anchor) {
        return new Peer(anchor);
    }

    /** A verified client certificate, described field by field. */
    static final class Peer {
        private final String anchor;
        private final List<String> uris = new ArrayList<>();
        private final List<String> dns = new ArrayList<>();
        private final List<String> emails = new ArrayList<>();
        private final List<String> ips = new ArrayList<>();
        private String subject = "CN=client";
        private String issuer = "CN=Issuing CA,O=Corp";
        private String sha256 = "00".repeat(32);
        private String spki = "";
        private Instant notBefore = NOW.minus(Duration.ofHours(1));
        private Instant notAfter = NOW.plus(Duration.ofHours(11));
        private String keyType = "EC";
        private boolean clientAuth = true;
        private boolean signing;

        Peer(String anchor) {
            this.anchor = anchor;
        }

        Peer uri(String v) { uris.add(v); return this; }
        Peer dns(String v) { dns.add(v); return this; }
        Peer email(String v) { emails.add(v); return this; }
        Peer ip(String v) { ips.add(v); return this; }
        Peer subject(String v) { subject = v; return this; }
        Peer issuer(String v) { issuer = v; return this; }
        Peer sha256(String v) { sha256 = v; return this; }
        Peer spki(String v) { spki = v; return this; }
        Peer keyType(String v) { keyType = v; return this; }
        Peer noClientAuthEku() { clientAuth = false; return this; }
        /** A CA, or a certificate with keyCertSign or cRLSign: no SVID, whatever its URIs. */
        Peer signingCertificate() { signing = true; return this; }

        Peer lifetime(Duration d) {
            notBefore = NOW.minus(Duration.ofMinutes(1));
            notAfter = notBefore.plus(d);
            return this;
        }

        Peer expiresIn(Duration d) {
            notAfter = NOW.plus(d);
            return this;
        }

        PeerIdentity build() {
            PeerIdentity described = dev.mtlsproxy.core.identity.PeerIdentities.described(uris, dns, emails, ips,
                    subject, issuer, anchor);
            return new PeerIdentity(signing ? null : described.spiffeId(), described.uriSans(), described.dnsSans(),
                    emails, ips, subject, described.subjectCn(), described.subjectO(), described.subjectOu(), issuer,
                    "01", sha256, spki, notBefore, notAfter, keyType, clientAuth, signing, anchor);
        }
    }

    static final class PolicyBuilder {
        private final Map<String, IdentityConfig> identities = new LinkedHashMap<>();
        private final List<RouteConfig> routes = new ArrayList<>();

        PolicyBuilder identity(String name, IdentityConfig identity) {
            // scoped to CORP unless the test says otherwise, as validation would require with two anchors
            identities.put(name, identity.trustAnchor() != null ? identity : identity.withTrustAnchor(CORP));
            return this;
        }

        PolicyBuilder route(RouteConfig route) {
            routes.add(route);
            return this;
        }

        Policy build() {
            Map<String, TrustAnchorConfig> anchors = Map.of(CORP, new TrustAnchorConfig(Path.of("corp.pem")),
                    PARTNERS, new TrustAnchorConfig(Path.of("partners.pem")));
            return Policy.compile(new ProxyConfig(anchors, List.of(), identities, routes, Map.of(), null, null,
                    null));
        }
    }
}
