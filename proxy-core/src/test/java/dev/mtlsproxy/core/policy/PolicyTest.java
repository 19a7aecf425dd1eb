package dev.mtlsproxy.core.policy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mtlsproxy.config.IdentityConfig;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.config.RouteConfig;
import dev.mtlsproxy.config.TrustAnchorConfig;
import dev.mtlsproxy.core.identity.PeerIdentity;
import dev.mtlsproxy.core.policy.PolicyDecision.Outcome;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Route selection and grants, decided from records built by hand: no files, no TLS, no Netty. */
class PolicyTest {

    static final String ORDERS_ID = "spiffe://prod.test/ns/shop/sa/orders";
    static final String BILLING_ID = "spiffe://prod.test/ns/shop/sa/billing";

    static final PeerIdentity ORDERS = peer(ORDERS_ID, List.of("orders.shop.internal"), "orders");
    static final PeerIdentity BILLING = peer(BILLING_ID, List.of("billing.shop.internal"), "billing");

    // ---- grants ------------------------------------------------------------------------------------------------

    @Test
    void routeWithoutGrantsDeniesEveryone() {
        Policy policy = new PolicyBuilder()
                .identity("orders", IdentityConfig.spiffe(ORDERS_ID))
                .route("locked", null, "/", List.of())
                .build();

        PolicyDecision decision = decide(policy, ORDERS, "GET", "api.example.com", "/anything");

        assertThat(decision.outcome()).isEqualTo(Outcome.DENY);
        assertThat(decision.allowed()).isFalse();
        assertThat(decision.routeName()).isEqualTo("locked");
        assertThat(decision.identity()).isNull();
    }

    @Test
    void spiffeIdGrantAllowsThatWorkloadOnly() {
        Policy policy = new PolicyBuilder()
                .identity("orders", IdentityConfig.spiffe(ORDERS_ID))
                .route("orders-api", null, "/orders", List.of(), "orders")
                .build();

        PolicyDecision allowed = decide(policy, ORDERS, "GET", "api.example.com", "/orders/42");
        PolicyDecision denied = decide(policy, BILLING, "GET", "api.example.com", "/orders/42");

        assertThat(allowed.outcome()).isEqualTo(Outcome.ALLOW);
        assertThat(allowed.allowed()).isTrue();
        assertThat(allowed.identity()).isEqualTo("orders");
        assertThat(allowed.routeName()).isEqualTo("orders-api");
        assertThat(denied.outcome()).isEqualTo(Outcome.DENY);
        assertThat(denied.routeName()).isEqualTo("orders-api");
        assertThat(denied.identity()).isNull();
    }

    @Test
    void theFirstMatchingGrantNamesTheIdentity() {
        Policy policy = new PolicyBuilder()
                .identity("billing", IdentityConfig.spiffe(BILLING_ID))
                .identity("orders", IdentityConfig.spiffe(ORDERS_ID))
                .identity("shop-cn", IdentityConfig.builder().subjectCn("orders").build())
                .route("orders-api", null, "/orders", List.of(), "billing", "shop-cn", "orders")
                .build();

        assertThat(decide(policy, ORDERS, "GET", "", "/orders").identity()).isEqualTo("shop-cn");
    }

    @Test
    void spiffeIdThatIsAPrefixOfAnotherDoesNotMatchIt() {
        Policy policy = new PolicyBuilder()
                .identity("team-a", IdentityConfig.spiffe("spiffe://prod.test/ns/a"))
                .route("a-only", null, "/", List.of(), "team-a")
                .build();
        PeerIdentity teamA = peer("spiffe://prod.test/ns/a", List.of(), "a");
        PeerIdentity teamAb = peer("spiffe://prod.test/ns/ab", List.of(), "ab");
        PeerIdentity teamAChild = peer("spiffe://prod.test/ns/a/sa/x", List.of(), "x");

        assertThat(decide(policy, teamA, "GET", "", "/").outcome()).isEqualTo(Outcome.ALLOW);
        assertThat(decide(policy, teamAb, "GET", "", "/").outcome()).isEqualTo(Outcome.DENY);
        assertThat(decide(policy, teamAChild, "GET", "", "/").outcome()).isEqualTo(Outcome.DENY);
    }

    @Test
    void spiffeIdIsComparedExactlyNotCaseInsensitively() {
        Policy policy = new PolicyBuilder()
                .identity("orders", IdentityConfig.spiffe(ORDERS_ID))
                .route("all", null, "/", List.of(), "orders")
                .build();
        PeerIdentity shouting = peer("spiffe://prod.test/ns/shop/sa/ORDERS", List.of(), "orders");

        assertThat(decide(policy, shouting, "GET", "", "/").outcome()).isEqualTo(Outcome.DENY);
    }

    @Test
    void peerWithoutSpiffeIdIsDeniedBySpiffeGrant() {
        Policy policy = new PolicyBuilder()
                .identity("orders", IdentityConfig.spiffe(ORDERS_ID))
                .route("all", null, "/", List.of(), "orders")
                .build();
        PeerIdentity noSpiffe = peer(null, List.of("orders.shop.internal"), "orders");

        assertThat(decide(policy, noSpiffe, "GET", "", "/").outcome()).isEqualTo(Outcome.DENY);
    }

    @Test
    void dnsSanGrantIsCaseInsensitive() {
        Policy policy = new PolicyBuilder()
                .identity("orders", IdentityConfig.builder().dnsSan("Orders.Shop.INTERNAL").build())
                .route("all", null, "/", List.of(), "orders")
                .build();
        // PeerIdentities lower-cases DNS SANs; the configured name is lower-cased when compiled.
        PeerIdentity peer = peer(null, List.of("cache.shop.internal", "orders.shop.internal"), "whatever");

        PolicyDecision decision = decide(policy, peer, "GET", "", "/");

        assertThat(decision.outcome()).isEqualTo(Outcome.ALLOW);
        assertThat(decision.identity()).isEqualTo("orders");
        assertThat(decide(policy, BILLING, "GET", "", "/").outcome()).isEqualTo(Outcome.DENY);
    }

    @Test
    void dnsSanGrantNeedsAWholeNameNotASuffix() {
        Policy policy = new PolicyBuilder()
                .identity("orders", IdentityConfig.builder().dnsSan("orders.shop.internal").build())
                .route("all", null, "/", List.of(), "orders")
                .build();
        PeerIdentity lookalike = peer(null, List.of("evil-orders.shop.internal", "orders.shop.internal.evil"), "x");

        assertThat(decide(policy, lookalike, "GET", "", "/").outcome()).isEqualTo(Outcome.DENY);
    }

    @Test
    void subjectCnGrantMatchesTheExactCommonName() {
        Policy policy = new PolicyBuilder()
                .identity("legacy", IdentityConfig.builder().subjectCn("orders").build())
                .route("all", null, "/", List.of(), "legacy")
                .build();

        assertThat(decide(policy, ORDERS, "GET", "", "/").outcome()).isEqualTo(Outcome.ALLOW);
        assertThat(decide(policy, peer(null, List.of(), "Orders"), "GET", "", "/").outcome())
                .isEqualTo(Outcome.DENY);
        assertThat(decide(policy, peer(null, List.of(), null), "GET", "", "/").outcome()).isEqualTo(Outcome.DENY);
    }

    @Test
    void identityWithTwoFieldsRequiresBoth() {
        Policy policy = new PolicyBuilder()
                .identity("orders", IdentityConfig.builder().spiffeId(ORDERS_ID).subjectCn("orders").build())
                .route("all", null, "/", List.of(), "orders")
                .build();
        PeerIdentity rightIdWrongCn = peer(ORDERS_ID, List.of(), "billing");
        PeerIdentity rightCnWrongId = peer(BILLING_ID, List.of(), "orders");

        assertThat(decide(policy, ORDERS, "GET", "", "/").outcome()).isEqualTo(Outcome.ALLOW);
        assertThat(decide(policy, rightIdWrongCn, "GET", "", "/").outcome()).isEqualTo(Outcome.DENY);
        assertThat(decide(policy, rightCnWrongId, "GET", "", "/").outcome()).isEqualTo(Outcome.DENY);
    }

    @Test
    void identityWithNoFieldsIsRefusedAtCompileTimeRatherThanMatchingAnyone() {
        PolicyBuilder builder = new PolicyBuilder()
                .identity("anyone", IdentityConfig.builder().build())
                .route("all", null, "/", List.of(), "anyone");

        assertThatThrownBy(builder::build)
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("identity anyone has no matcher");
    }

    @Test
    void routeGrantingAnUnknownIdentityIsRefusedAtCompileTime() {
        PolicyBuilder builder = new PolicyBuilder()
                .identity("orders", IdentityConfig.spiffe(ORDERS_ID))
                .route("all", null, "/", List.of(), "ordres");

        assertThatThrownBy(builder::build)
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("route all rule 1 names unknown identity ordres");
    }

    // ---- host selection ----------------------------------------------------------------------------------------

    @Test
    void mostSpecificHostGroupWinsEvenAgainstALongerPrefixOnALessSpecificHost() {
        Policy policy = new PolicyBuilder()
                .identity("orders", IdentityConfig.spiffe(ORDERS_ID))
                .route("any-admin-keys", null, "/admin/keys", List.of(), "orders")
                .route("wildcard-admin", "*.example.com", "/admin", List.of(), "orders")
                .route("exact-root", "api.example.com", "/", List.of(), "orders")
                .build();

        assertThat(decide(policy, ORDERS, "GET", "api.example.com", "/admin/keys").routeName())
                .isEqualTo("exact-root");
        assertThat(decide(policy, ORDERS, "GET", "web.example.com", "/admin/keys").routeName())
                .isEqualTo("wildcard-admin");
        assertThat(decide(policy, ORDERS, "GET", "other.test", "/admin/keys").routeName())
                .isEqualTo("any-admin-keys");
    }

    @Test
    void hostWithRoutesNeverFallsBackToALessSpecificHost() {
        // Like an nginx server block: once api.example.com has routes, a path none of them covers is a 404 there,
        // not a request for the catch-all's routes.
        Policy policy = new PolicyBuilder()
                .identity("orders", IdentityConfig.spiffe(ORDERS_ID))
                .route("api-orders", "api.example.com", "/orders", List.of(), "orders")
                .route("catch-all", null, "/", List.of(), "orders")
                .build();

        PolicyDecision decision = decide(policy, ORDERS, "GET", "api.example.com", "/billing");

        assertThat(decision.outcome()).isEqualTo(Outcome.NO_ROUTE);
        assertThat(decision.route()).isNull();
        assertThat(decision.routeName()).isEqualTo("-");
    }

    @Test
    void exactHostIsMatchedCaseInsensitivelyThroughTheConfig() {
        // RouteConfig lower-cases the host; requests arrive lower-cased from Hosts.normalise.
        Policy policy = new PolicyBuilder()
                .identity("orders", IdentityConfig.spiffe(ORDERS_ID))
                .route("api", "API.Example.com", "/", List.of(), "orders")
                .build();

        assertThat(decide(policy, ORDERS, "GET", "api.example.com", "/").outcome()).isEqualTo(Outcome.ALLOW);
    }

    @Test
    void unknownHostWithOnlyExactRoutesIsNoRoute() {
        Policy policy = new PolicyBuilder()
                .identity("orders", IdentityConfig.spiffe(ORDERS_ID))
                .route("api", "api.example.com", "/", List.of(), "orders")
                .route("web", "web.example.com", "/", List.of(), "orders")
                .build();

        assertThat(decide(policy, ORDERS, "GET", "admin.example.com", "/").outcome()).isEqualTo(Outcome.NO_ROUTE);
        assertThat(decide(policy, ORDERS, "GET", "", "/").outcome()).isEqualTo(Outcome.NO_ROUTE);
        assertThat(decide(policy, ORDERS, "GET", "api.example.com.evil", "/").outcome())
                .isEqualTo(Outcome.NO_ROUTE);
    }

    @Test
    void wildcardCoversExactlyOneExtraLabel() {
        Policy policy = new PolicyBuilder()
                .identity("orders", IdentityConfig.spiffe(ORDERS_ID))
                .route("wild", "*.example.com", "/", List.of(), "orders")
                .build();

        assertThat(decide(policy, ORDERS, "GET", "a.example.com", "/").outcome()).isEqualTo(Outcome.ALLOW);
        assertThat(decide(policy, ORDERS, "GET", "example.com", "/").outcome()).isEqualTo(Outcome.NO_ROUTE);
        assertThat(decide(policy, ORDERS, "GET", "a.b.example.com", "/").outcome()).isEqualTo(Outcome.NO_ROUTE);
        assertThat(decide(policy, ORDERS, "GET", "evilexample.com", "/").outcome()).isEqualTo(Outcome.NO_ROUTE);
        assertThat(decide(policy, ORDERS, "GET", ".example.com", "/").outcome()).isEqualTo(Outcome.NO_ROUTE);
        assertThat(decide(policy, ORDERS, "GET", "a.example.com.evil", "/").outcome())
                .isEqualTo(Outcome.NO_ROUTE);
    }

    @Test
    void deeperWildcardWinsForItsOwnSubdomain() {
        Policy policy = new PolicyBuilder()
                .identity("orders", IdentityConfig.spiffe(ORDERS_ID))
                .route("shallow", "*.example.com", "/", List.of(), "orders")
                .route("deep", "*.eu.example.com", "/", List.of(), "orders")
                .build();

        assertThat(decide(policy, ORDERS, "GET", "api.eu.example.com", "/").routeName()).isEqualTo("deep");
        assertThat(decide(policy, ORDERS, "GET", "eu.example.com", "/").routeName()).isEqualTo("shallow");
    }

    // ---- path selection ----------------------------------------------------------------------------------------

    @Test
    void longestPrefixWinsWithinAHostWhateverTheConfigOrder() {
        Policy policy = new PolicyBuilder()
                .identity("orders", IdentityConfig.spiffe(ORDERS_ID))
                .identity("billing", IdentityConfig.spiffe(BILLING_ID))
                .route("root", null, "/", List.of(), "orders", "billing")
                .route("admin-keys", null, "/admin/keys", List.of(), "billing")
                .route("admin", null, "/admin", List.of(), "orders")
                .build();

        assertThat(decide(policy, ORDERS, "GET", "", "/admin/keys/1").routeName()).isEqualTo("admin-keys");
        assertThat(decide(policy, ORDERS, "GET", "", "/admin/keys/1").outcome()).isEqualTo(Outcome.DENY);
        assertThat(decide(policy, ORDERS, "GET", "", "/admin/users").routeName()).isEqualTo("admin");
        assertThat(decide(policy, BILLING, "GET", "", "/admin/users").outcome()).isEqualTo(Outcome.DENY);
        assertThat(decide(policy, BILLING, "GET", "", "/public").routeName()).isEqualTo("root");
    }

    @Test
    void prefixMatchesOnSegmentBoundariesOnly() {
        Policy policy = new PolicyBuilder()
                .identity("orders", IdentityConfig.spiffe(ORDERS_ID))
                .route("api", null, "/api", List.of(), "orders")
                .build();

        assertThat(decide(policy, ORDERS, "GET", "", "/api").routeName()).isEqualTo("api");
        assertThat(decide(policy, ORDERS, "GET", "", "/api/").routeName()).isEqualTo("api");
        assertThat(decide(policy, ORDERS, "GET", "", "/api/x").routeName()).isEqualTo("api");
        assertThat(decide(policy, ORDERS, "GET", "", "/apiary").outcome()).isEqualTo(Outcome.NO_ROUTE);
        assertThat(decide(policy, ORDERS, "GET", "", "/ap").outcome()).isEqualTo(Outcome.NO_ROUTE);
        assertThat(decide(policy, ORDERS, "GET", "", "/API").outcome()).isEqualTo(Outcome.NO_ROUTE);
    }

    @Test
    void apiaryFallsToTheShorterPrefixNotToApi() {
        Policy policy = new PolicyBuilder()
                .identity("orders", IdentityConfig.spiffe(ORDERS_ID))
                .route("root", null, "/", List.of())
                .route("api", null, "/api", List.of(), "orders")
                .build();

        PolicyDecision decision = decide(policy, ORDERS, "GET", "", "/apiary");

        assertThat(decision.routeName()).isEqualTo("root");
        assertThat(decision.outcome()).isEqualTo(Outcome.DENY);
    }

    @Test
    void prefixEndingInSlashCoversWhatIsUnderItButNotTheBareName() {
        Policy policy = new PolicyBuilder()
                .identity("orders", IdentityConfig.spiffe(ORDERS_ID))
                .route("static", null, "/static/", List.of(), "orders")
                .build();

        assertThat(decide(policy, ORDERS, "GET", "", "/static/").routeName()).isEqualTo("static");
        assertThat(decide(policy, ORDERS, "GET", "", "/static/app.css").routeName()).isEqualTo("static");
        assertThat(decide(policy, ORDERS, "GET", "", "/static/js/app.js").routeName()).isEqualTo("static");
        assertThat(decide(policy, ORDERS, "GET", "", "/static").outcome()).isEqualTo(Outcome.NO_ROUTE);
        assertThat(decide(policy, ORDERS, "GET", "", "/staticfoo").outcome()).isEqualTo(Outcome.NO_ROUTE);
    }

    // ---- methods -----------------------------------------------------------------------------------------------

    @Test
    void pathMatchedButMethodNotAllowedIs405WithThatRoute() {
        Policy policy = new PolicyBuilder()
                .identity("orders", IdentityConfig.spiffe(ORDERS_ID))
                .route("orders-read", null, "/orders", List.of("get", "HEAD"), "orders")
                .build();

        PolicyDecision decision = decide(policy, ORDERS, "DELETE", "", "/orders/42");

        assertThat(decision.outcome()).isEqualTo(Outcome.METHOD_NOT_ALLOWED);
        assertThat(decision.routeName()).isEqualTo("orders-read");
        assertThat(decision.route().methods()).containsExactly("GET", "HEAD");
        assertThat(decision.identity()).isNull();
        assertThat(decide(policy, ORDERS, "GET", "", "/orders/42").outcome()).isEqualTo(Outcome.ALLOW);
    }

    @Test
    void traceIsNotAmongAnyMethod() {
        // TRACE sends the request back as received, headers the proxy added included, to a script that made it.
        Policy policy = new PolicyBuilder()
                .identity("orders", IdentityConfig.spiffe(ORDERS_ID))
                .route("orders-api", null, "/orders", List.of(), "orders")
                .build();

        PolicyDecision decision = decide(policy, ORDERS, "TRACE", "", "/orders/42");

        assertThat(decision.outcome()).isEqualTo(Outcome.METHOD_NOT_ALLOWED);
        assertThat(decision.routeName()).isEqualTo("orders-api");
        assertThat(decision.route().allowHeader()).isEqualTo("GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS");
        assertThat(decide(policy, ORDERS, "PROPFIND", "", "/orders/42").outcome()).isEqualTo(Outcome.ALLOW);
    }

    @Test
    void traceIsServedWhereARouteNamesIt() {
        Policy policy = new PolicyBuilder()
                .identity("orders", IdentityConfig.spiffe(ORDERS_ID))
                .route("orders-api", null, "/orders", List.of(), "orders")
                .route("orders-trace", null, "/orders", List.of("TRACE"), "orders")
                .build();

        PolicyDecision traced = decide(policy, ORDERS, "TRACE", "", "/orders/42");
        PolicyDecision denied = decide(policy, BILLING, "TRACE", "", "/orders/42");

        assertThat(traced.outcome()).isEqualTo(Outcome.ALLOW);
        assertThat(traced.routeName()).isEqualTo("orders-trace");
        assertThat(denied.outcome()).as("judged by that route's rules").isEqualTo(Outcome.DENY);
    }

    @Test
    void methodIsCaseSensitiveOnTheRequestSide() {
        // RFC 9110 9.1: method names are case-sensitive; "get" is not GET.
        Policy policy = new PolicyBuilder()
                .identity("orders", IdentityConfig.spiffe(ORDERS_ID))
                .route("orders-read", null, "/orders", List.of("GET"), "orders")
                .build();

        assertThat(decide(policy, ORDERS, "get", "", "/orders").outcome()).isEqualTo(Outcome.METHOD_NOT_ALLOWED);
    }

    @Test
    void routesWithTheSamePrefixSplitGrantsByMethod() {
        Policy policy = new PolicyBuilder()
                .identity("orders", IdentityConfig.spiffe(ORDERS_ID))
                .identity("billing", IdentityConfig.spiffe(BILLING_ID))
                .route("orders-read", null, "/orders", List.of("GET"), "orders", "billing")
                .route("orders-write", null, "/orders", List.of("POST", "PUT"), "orders")
                .build();

        assertThat(decide(policy, BILLING, "GET", "", "/orders/1").outcome()).isEqualTo(Outcome.ALLOW);
        PolicyDecision billingWrites = decide(policy, BILLING, "POST", "", "/orders/1");
        assertThat(billingWrites.outcome()).isEqualTo(Outcome.DENY);
        assertThat(billingWrites.routeName()).isEqualTo("orders-write");
        assertThat(decide(policy, ORDERS, "PUT", "", "/orders/1").routeName()).isEqualTo("orders-write");
        assertThat(decide(policy, ORDERS, "DELETE", "", "/orders/1").outcome())
                .isEqualTo(Outcome.METHOD_NOT_ALLOWED);
    }

    @Test
    void methodNotAllowedOnTheLongestPrefixIs405NotAShorterPrefixsGrant() {
        PeerIdentity ops = peer("spiffe://prod.test/ns/ops/sa/admin", List.of(), "ops");
        Policy policy = new PolicyBuilder()
                .identity("ops", IdentityConfig.spiffe(ops.spiffeId()))
                .identity("orders", IdentityConfig.spiffe(ORDERS_ID))
                .route("admin-read", null, "/admin", List.of("GET"), "ops")
                .route("public", null, "/", List.of(), "orders", "ops")
                .build();

        PolicyDecision decision = decide(policy, ORDERS, "POST", "", "/admin/users");

        assertThat(decision.outcome()).isEqualTo(Outcome.METHOD_NOT_ALLOWED);
        assertThat(decision.routeName()).isEqualTo("admin-read");
    }

    @Test
    void nothingMatchingIsNoRoute() {
        Policy policy = new PolicyBuilder()
                .identity("orders", IdentityConfig.spiffe(ORDERS_ID))
                .route("orders-api", null, "/orders", List.of(), "orders")
                .build();

        PolicyDecision decision = decide(policy, ORDERS, "GET", "api.example.com", "/billing");

        assertThat(decision).isEqualTo(PolicyDecision.NO_ROUTE);
        assertThat(decision.routeName()).isEqualTo("-");
    }

    @Test
    void emptyConfigurationIsNoRouteForEverything() {
        Policy policy = new PolicyBuilder().build();

        assertThat(decide(policy, ORDERS, "GET", "api.example.com", "/").outcome()).isEqualTo(Outcome.NO_ROUTE);
    }

    // ---- fixtures ----------------------------------------------------------------------------------------------

    static final Instant NOW = Instant.parse("2026-11-27T12:00:00Z");

    static PolicyDecision decide(Policy policy, PeerIdentity peer, String method, String host, String path) {
        return policy.decide(peer, new PolicyRequest(method, host, path, null), NOW);
    }

    static PeerIdentity peer(String spiffeId, List<String> dnsSans, String cn) {
        return new PeerIdentity(spiffeId, spiffeId == null ? List.of() : List.of(spiffeId), dnsSans, List.of(),
                List.of(), cn == null ? "O=mtls-proxy tests" : "CN=" + cn + ",O=mtls-proxy tests", cn,
                List.of("mtls-proxy tests"), List.of(), "CN=test root CA,O=mtls-proxy tests", "1a2b",
                "00".repeat(32), "", Instant.parse("2026-01-01T00:00:00Z"), Instant.parse("2030-01-01T00:00:00Z"),
                "EC", true, false, "clients");
    }

    /** Assembles a ProxyConfig with only what Policy reads: identities and routes. */
    static final class PolicyBuilder {
        private final Map<String, IdentityConfig> identities = new LinkedHashMap<>();
        private final List<RouteConfig> routes = new ArrayList<>();

        PolicyBuilder identity(String name, IdentityConfig identity) {
            identities.put(name, identity);
            return this;
        }

        PolicyBuilder route(String name, String host, String pathPrefix, List<String> methods, String... allow) {
            routes.add(new RouteConfig(name, host, pathPrefix, methods, "shop", List.of(allow)));
            return this;
        }

        Policy build() {
            return Policy.compile(new ProxyConfig(Map.of("clients", new TrustAnchorConfig(Path.of("ca.pem"))),
                    List.of(), identities, routes, Map.of(), null, null, null));
        }
    }
}
