package dev.mtlsproxy.core.policy;

import dev.mtlsproxy.config.IdentityConfig;
import dev.mtlsproxy.config.IpRange;
import dev.mtlsproxy.config.SpiffeIds;
import dev.mtlsproxy.core.identity.PeerIdentity;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import javax.security.auth.x500.X500Principal;

/**
 * The name matchers of an identity, compiled: each configured field becomes one predicate and they combine with AND.
 * Pure and allocation-free on the match path; validation has already checked every value's syntax.
 */
@FunctionalInterface
interface PeerMatcher {

    boolean matches(PeerIdentity peer);

    static PeerMatcher compile(IdentityConfig c) {
        List<PeerMatcher> all = new ArrayList<>();
        if (c.spiffeId() != null) {
            String id = c.spiffeId();
            all.add(p -> id.equals(p.spiffeId()));
        }
        if (c.spiffeIdPrefix() != null) {
            String prefix = c.spiffeIdPrefix();
            all.add(p -> p.spiffeId() != null && coversOnSegment(prefix, p.spiffeId()));
        }
        if (c.trustDomain() != null) {
            String domainRoot = "spiffe://" + c.trustDomain();
            all.add(p -> p.spiffeId() != null && coversOnSegment(domainRoot, p.spiffeId()));
        }
        if (c.uriSan() != null) {
            String uri = c.uriSan();
            if (SpiffeIds.hasSpiffeScheme(uri)) {
                // A signing certificate's spiffe URI names a trust domain's authority, never the peer (README,
                // Identity); matching it here would give a CA certificate what spiffeId: refuses it.
                all.add(p -> !p.signingCertificate() && p.uriSans().contains(uri));
            } else {
                all.add(p -> p.uriSans().contains(uri));
            }
        }
        if (c.dnsSan() != null) {
            String name = c.dnsSan().toLowerCase(Locale.ROOT);
            if (name.startsWith("*.")) {
                HostPattern wildcard = HostPattern.of(name);
                all.add(p -> anyMatch(p.dnsSans(), wildcard::matches));
            } else {
                all.add(p -> p.dnsSans().contains(name));
            }
        }
        if (c.dnsSanSuffix() != null) {
            String suffix = "." + c.dnsSanSuffix().toLowerCase(Locale.ROOT);
            all.add(p -> anyMatch(p.dnsSans(), d -> d.endsWith(suffix) && d.length() > suffix.length()));
        }
        if (c.emailSan() != null) {
            String email = c.emailSan();
            all.add(p -> anyMatch(p.emailSans(), e -> sameEmail(email, e)));
        }
        if (c.ipSan() != null) {
            IpRange range = IpRange.parse(c.ipSan());
            all.add(p -> anyMatch(p.ipSans(), ip -> inRange(range, ip)));
        }
        if (c.subjectCn() != null) {
            String cn = c.subjectCn();
            all.add(p -> cn.equals(p.subjectCn()));
        }
        if (c.subjectO() != null) {
            String o = c.subjectO();
            all.add(p -> p.subjectO().contains(o));
        }
        if (c.subjectOu() != null) {
            String ou = c.subjectOu();
            all.add(p -> p.subjectOu().contains(ou));
        }
        if (c.issuerDn() != null) {
            X500Principal issuer = new X500Principal(c.issuerDn());
            all.add(p -> sameName(issuer, p.issuer()));
        }
        if (c.sha256() != null) {
            String hex = c.sha256().replace(":", "").toLowerCase(Locale.ROOT);
            all.add(p -> hex.equals(p.sha256()));
        }
        if (c.spkiSha256() != null) {
            String pin = c.spkiSha256();
            all.add(p -> pin.equals(p.spkiSha256()));
        }
        for (IdentityConfig item : c.allOf()) {
            all.add(compile(item));
        }
        if (!c.anyOf().isEmpty()) {
            List<PeerMatcher> any = c.anyOf().stream().map(PeerMatcher::compile).toList();
            all.add(p -> anyMatch(any, m -> m.matches(p)));
        }
        if (all.isEmpty()) {
            // Fail closed even if validation were bypassed: an empty matcher must never mean "anyone".
            return p -> false;
        }
        List<PeerMatcher> fixed = List.copyOf(all);
        return p -> {
            for (PeerMatcher m : fixed) {
                if (!m.matches(p)) {
                    return false;
                }
            }
            return true;
        };
    }

    /** {@code spiffe://td/ns/a} covers itself and {@code spiffe://td/ns/a/x}, never {@code spiffe://td/ns/ab}. */
    static boolean coversOnSegment(String prefix, String id) {
        String p = prefix.endsWith("/") ? prefix.substring(0, prefix.length() - 1) : prefix;
        return id.startsWith(p) && (id.length() == p.length() || id.charAt(p.length()) == '/');
    }

    /** Local parts are case-sensitive (RFC 5321), domains are not. */
    private static boolean sameEmail(String configured, String presented) {
        int a = configured.lastIndexOf('@');
        int b = presented.lastIndexOf('@');
        return a == b && a > 0 && configured.regionMatches(0, presented, 0, a)
                && configured.substring(a).equalsIgnoreCase(presented.substring(b));
    }

    private static boolean inRange(IpRange range, String ip) {
        try {
            return range.contains(IpRange.literal(ip));
        } catch (IllegalArgumentException e) {
            return false;
        }
    }

    private static boolean sameName(X500Principal configured, String presented) {
        try {
            return configured.equals(new X500Principal(presented));
        } catch (IllegalArgumentException e) {
            return false;
        }
    }

    private static <T> boolean anyMatch(List<T> values, java.util.function.Predicate<T> test) {
        for (T v : values) {
            if (test.test(v)) {
                return true;
            }
        }
        return false;
    }
}
