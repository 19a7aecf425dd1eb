package dev.mtlsproxy.core.proxy;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import dev.mtlsproxy.core.identity.PeerIdentity;
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
     * @param policy names the client when no rule did: the first configured identity it is
     */
    static String json(String listener, String remote, PeerIdentity peer, Policy policy, String method,
            String path, PolicyDecision decision) {
        String identity = decision.identity() != null ? decision.identity() : policy.identify(peer);
        StringWriter out = new StringWriter(384);
        try (JsonGenerator g = JSON.createGenerator(out)) {
            g.writeStartObject();
            g.writeStringField("event", decision.dryRunDeny() ? "dry_run_denied" : "denied");
            g.writeStringField("listener", listener);
            g.writeStringField("remote", remote);
            g.writeStringField("identity", identity);
            g.writeStringField("peer", peer.displayName());
            g.writeStringField("fingerprint", peer.sha256());
            g.writeStringField("trustAnchor", peer.trustAnchor());
            g.writeStringField("route", decision.routeName());
            g.writeStringField("rule", decision.ruleLabel());
            g.writeStringField("reason", decision.reasonText());
            if (!decision.detail().isEmpty()) {
                g.writeStringField("detail", decision.detail());
            }
            g.writeStringField("method", method);
            g.writeStringField("path", path);
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toString();
    }
}
