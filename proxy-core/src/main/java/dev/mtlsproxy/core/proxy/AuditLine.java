package dev.mtlsproxy.core.proxy;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import dev.mtlsproxy.core.identity.PeerIdentity;
import dev.mtlsproxy.core.log.LogText;
import dev.mtlsproxy.core.policy.Policy;
import dev.mtlsproxy.core.policy.PolicyDecision;
import java.io.IOException;
import java.io.StringWriter;
import java.io.UncheckedIOException;

/**
 * The audit record of a refusal (or of a refusal a dry-run route only reports), as one JSON line: who (identity
 * name, certificate fingerprint, anchor), what (route, method, path), which rule and why.
 */
final class AuditLine {

    private static final JsonFactory JSON = new JsonFactory();

    private AuditLine() {
    }

    /**
     * @param policy names the client when no rule did: the first configured identity it is, if any
     */
    static String json(String listener, String remote, PeerIdentity peer, Policy policy, String method,
            String path, PolicyDecision decision) {
        String identity = identity(decision, peer, policy);
        StringWriter out = new StringWriter(384);
        try (JsonGenerator g = JSON.createGenerator(out)) {
            g.writeStartObject();
            field(g, "event", decision.dryRunDeny() ? "dry_run_denied" : "denied");
            field(g, "listener", listener);
            field(g, "remote", remote);
            field(g, "identity", identity);
            field(g, "peer", peer.displayName());
            field(g, "fingerprint", peer.sha256());
            field(g, "trustAnchor", peer.trustAnchor());
            field(g, "route", decision.routeName());
            field(g, "rule", decision.ruleLabel());
            field(g, "reason", decision.reasonText());
            if (!decision.detail().isEmpty()) {
                field(g, "detail", decision.detail());
            }
            field(g, "method", method);
            field(g, "path", path);
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toString();
    }

    /**
     * Who was refused, as the audit line and the access log name it: the identity the deciding rule named, else the
     * first configured identity the client is, else null ("unknown", the metrics label, could be an identity's name).
     */
    static String identity(PolicyDecision decision, PeerIdentity peer, Policy policy) {
        return decision.identity() != null ? decision.identity() : policy.identityOf(peer);
    }

    /** Through {@link LogText}: a lone surrogate is written as U+FFFD, not as whatever logback makes of it. */
    private static void field(JsonGenerator g, String name, String value) throws IOException {
        g.writeStringField(name, LogText.wellFormed(value));
    }
}
