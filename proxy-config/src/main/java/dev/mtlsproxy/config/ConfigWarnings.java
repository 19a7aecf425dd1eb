package dev.mtlsproxy.config;

import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.cert.X509CRL;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Collectors;

/** Legal but probably unintended: worth saying at every load, never worth refusing to start. */
final class ConfigWarnings {

    private ConfigWarnings() {
    }

    static List<String> of(ProxyConfig config, Instant now) {
        List<String> warnings = new ArrayList<>();
        Set<String> used = new HashSet<>();
        Set<String> trusted = trustedAnchors(config);
        for (int i = 0; i < config.routes().size(); i++) {
            String path = YamlPaths.item("routes", i);
            RouteConfig route = config.routes().get(i);
            List<RuleConfig> rules = route.effectiveRules();
            if (rules.isEmpty()) {
                warnings.add(path + (route.rules().isEmpty() ? ".allow" : ".rules") + ": [] - route "
                        + Values.quote(String.valueOf(route.name())) + " denies every request");
            }
            for (RuleConfig rule : rules) {
                used.addAll(rule.identities());
            }
            namedTwice(path + ".allow", route.allow(), warnings);
            // with the allow shorthand there is one rule and its path is the route's allow list
            for (int r = 0; r < route.rules().size(); r++) {
                String rulePath = YamlPaths.item(path + ".rules", r);
                RuleConfig rule = route.rules().get(r);
                neverMatches(rulePath, route, rule, now).ifPresent(warnings::add);
                namedTwice(rulePath + (rule.isDeny() ? ".deny" : ".allow"), rule.identities(), warnings);
            }
        }
        config.identities().keySet().stream()
                .filter(name -> !used.contains(name))
                .sorted()
                .forEach(name -> warnings.add(YamlPaths.key("identities", name) + ": not allowed on any route"));
        config.identities().forEach((name, identity) -> {
            String anchor = identity.trustAnchor();
            if (anchor != null && config.trustAnchors().containsKey(anchor) && !trusted.contains(anchor)) {
                warnings.add(YamlPaths.key("identities", name) + ".trustAnchor: " + Values.quote(anchor)
                        + " - no listener trusts this anchor, so the identity never matches");
            }
        });
        config.trustAnchors().forEach((name, anchor) -> {
            warnings.addAll(casWithoutCrl(name, anchor));
            if (anchor.staleCrl() == StaleCrlPolicy.INSECURE_ALLOW) {
                warnings.add(YamlPaths.key("trustAnchors", name) + ".staleCrl: insecureAllow - a client certificate"
                        + " covered only by an expired CRL is accepted; a revocation published late is missed");
            }
        });
        for (int i = 0; i < config.listeners().size(); i++) {
            ServerTlsConfig tls = config.listeners().get(i).tls();
            notValidNow(YamlPaths.item("listeners", i) + ".tls.certificate", tls == null ? null : tls.certificate(), now,
                    "so every client refuses the handshake").ifPresent(warnings::add);
        }
        config.backends().forEach((name, backend) -> {
            BackendTlsConfig tls = backend.tls();
            if (tls != null && !tls.verifyHostname() && tls.spiffeId() == null) {
                warnings.add(YamlPaths.key("backends", name) + ".tls.verifyHostname: false - any certificate from"
                        + " serverCAs is accepted as backend " + Values.quote(name) + "; set spiffeId to pin it");
            }
            if (tls != null) {
                notValidNow(YamlPaths.key("backends", name) + ".tls.certificate", tls.certificate(), now,
                        "so a backend that asks for it refuses the handshake").ifPresent(warnings::add);
            }
        });
        warnings.sort(ConfigProblem::comparePaths);
        return List.copyOf(warnings);
    }

    /**
     * CAs of an anchor with CRLs that have none of their own among them. Revocation fails closed, so what such a CA
     * issued is refused at every handshake, while the load said nothing: the usual cause is the CRL file of another
     * CA, or of this one before it was re-keyed. A warning, not a problem: a CA that issues nothing yet (a new root
     * added ahead of a rotation) needs no CRL.
     */
    private static List<String> casWithoutCrl(String name, TrustAnchorConfig anchor) {
        if (anchor.crls().isEmpty() || anchor.caBundle() == null) {
            return List.of();
        }
        List<X509Certificate> cas;
        List<X509CRL> crls = new ArrayList<>();
        try {
            cas = Pem.readCertificates(anchor.caBundle());
            for (Path file : anchor.crls()) {
                crls.addAll(Crls.read(file));
            }
        } catch (PemException e) {
            // the load reported it; a file that changed since is the next load's to judge
            return List.of();
        }
        String path = YamlPaths.key("trustAnchors", name) + ".crls";
        String refused = anchor.crlScope() == CrlScope.LEAF ? "a client certificate it issued is refused"
                : "every chain through it is refused";
        List<String> found = new ArrayList<>();
        for (int n = 0; n < cas.size(); n++) {
            X509Certificate ca = cas.get(n);
            // A root pasted above its intermediate: chains end at the intermediate, which its CRL does not check
            boolean issuesAnotherOfTheBundle = cas.stream().anyMatch(other -> other != ca
                    && other.getIssuerX500Principal().equals(ca.getSubjectX500Principal()));
            if (!issuesAnotherOfTheBundle && crls.stream().noneMatch(crl -> issuedBy(crl, ca))) {
                found.add(path + ": none from " + ca.getSubjectX500Principal().getName() + " (caBundle certificate "
                        + (n + 1) + "), so " + refused + " (revocation fails closed); the CRLs are from "
                        + crls.stream().map(crl -> describeIssuer(crl, ca)).distinct()
                                .collect(Collectors.joining(", ")));
            }
        }
        return found;
    }

    private static boolean issuedBy(X509CRL crl, X509Certificate ca) {
        return crl.getIssuerX500Principal().equals(ca.getSubjectX500Principal()) && signedBy(crl, ca);
    }

    private static String describeIssuer(X509CRL crl, X509Certificate ca) {
        String issuer = crl.getIssuerX500Principal().getName();
        return crl.getIssuerX500Principal().equals(ca.getSubjectX500Principal())
                ? issuer + " with another key" : issuer;
    }

    private static boolean signedBy(X509CRL crl, X509Certificate ca) {
        try {
            crl.verify(ca.getPublicKey());
            return true;
        } catch (GeneralSecurityException e) {
            return false;
        }
    }

    /**
     * A served certificate past its notAfter: every client refuses the handshake, yet it is no reason to refuse to
     * start (nginx and Envoy load it too), as the renewed file may be about to be written and is then reloaded.
     */
    /**
     * An identity named twice in one list: the second changes nothing, so it is often a slip for another name
     * ({@code [orders, orders]} for {@code [orders, ops]}), which then goes unallowed or undenied without a word.
     */
    private static void namedTwice(String listPath, List<String> names, List<String> warnings) {
        Map<String, String> first = new HashMap<>();
        for (int i = 0; i < names.size(); i++) {
            String item = YamlPaths.item(listPath, i);
            String earlier = first.putIfAbsent(names.get(i), item);
            if (earlier != null) {
                warnings.add(item + ": " + Values.quote(names.get(i)) + " - also " + earlier
                        + ", so this one changes nothing (was another identity meant?)");
            }
        }
    }

    /**
     * A certificate the proxy presents (a listener's, or its own to a backend) past its notAfter or before its
     * notBefore (a renewal written ahead of its start, a clock behind the CA's). A warning, not a problem, as nginx and
     * Envoy load it: the renewed file is reloaded when it is written.
     */
    private static Optional<String> notValidNow(String path, Path certificate, Instant now, String consequence) {
        if (certificate == null) {
            return Optional.empty();
        }
        X509Certificate leaf;
        try {
            leaf = Pem.readCertificates(certificate).get(0);
        } catch (PemException e) {
            return Optional.empty(); // the load reported it
        }
        Instant notBefore = leaf.getNotBefore().toInstant();
        Instant notAfter = leaf.getNotAfter().toInstant();
        if (now.isBefore(notBefore)) {
            return Optional.of(path + ": " + certificate + " - not valid until " + notBefore + ", " + consequence);
        }
        return now.isAfter(notAfter) ? Optional.of(path + ": " + certificate + " - expired at " + notAfter + ", "
                + consequence) : Optional.empty();
    }

    /** Anchors some listener accepts: its list, or every anchor when the list is empty. */
    private static Set<String> trustedAnchors(ProxyConfig config) {
        Set<String> trusted = new HashSet<>();
        for (ListenerConfig listener : config.listeners()) {
            if (listener.tls() == null) {
                continue;
            }
            trusted.addAll(listener.tls().trustAnchors().isEmpty() ? config.trustAnchors().keySet()
                    : listener.tls().trustAnchors());
        }
        return trusted;
    }

    private static Optional<String> neverMatches(String path, RouteConfig route, RuleConfig rule,
            Instant now) {
        // No method that the route serves and the rule covers: only one the lists name can be, HEAD through a GET.
        if (!route.methods().isEmpty() && !rule.methods().isEmpty()
                && rule.methods().stream().noneMatch(m -> HttpMethods.names(route.methods(), m))
                && route.methods().stream().noneMatch(m -> HttpMethods.names(rule.methods(), m))) {
            return Optional.of(path + ".methods: " + rule.methods() + " - the route serves only "
                    + route.methods() + ", so this rule never matches");
        }
        if (route.methods().isEmpty() && !rule.methods().isEmpty()
                && rule.methods().stream().allMatch("TRACE"::equals)) {
            return Optional.of(path + ".methods: " + rule.methods() + " - a route without methods serves every "
                    + "method but TRACE, so this rule never matches (name TRACE in the route's methods)");
        }
        if (!rule.isDeny() && rule.expires() != null && !rule.expires().isAfter(now)) {
            return Optional.of(path + ".expires: " + rule.expires() + " - already expired, so this "
                    + "grant never matches");
        }
        if (!rule.isDeny()) {
            for (RuleConfig other : route.rules()) {
                // deny wins: a deny with no method or path condition that covers every identity of this grant
                if (other.isDeny() && other.methods().isEmpty() && other.paths().isEmpty()
                        && (other.deny().contains(RuleConfig.ANYONE) || other.deny().containsAll(rule.allow()))) {
                    return Optional.of(path + ": allow " + rule.allow() + " - every identity it grants "
                            + "is denied by rule " + (route.rules().indexOf(other) + 1)
                            + " on the whole route (deny wins), so this grant never matches");
                }
            }
        }
        return Optional.empty();
    }
}
