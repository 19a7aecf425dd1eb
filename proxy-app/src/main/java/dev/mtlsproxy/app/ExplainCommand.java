package dev.mtlsproxy.app;

import dev.mtlsproxy.config.Pem;
import dev.mtlsproxy.config.PemException;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.core.identity.PeerIdentity;
import dev.mtlsproxy.core.policy.Explanation;
import dev.mtlsproxy.core.policy.Policy;
import dev.mtlsproxy.core.tls.ClientCertificateRejectedException;
import dev.mtlsproxy.core.tls.ClientChains;
import java.io.PrintStream;
import java.nio.file.Path;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.util.List;

/**
 * {@code mtls-proxy explain --config FILE --cert CLIENT.pem [--sni HOST] METHOD URL}: what the proxy would do with
 * this request from this certificate, and why. Exit 0 whatever the decision (it is an answer, not a check; use
 * {@code test} for that), 1 when the config or certificate cannot be used.
 */
final class ExplainCommand {

    private final PrintStream out;
    private final PrintStream err;
    private final Clock clock;

    ExplainCommand(PrintStream out, PrintStream err) {
        this(out, err, Clock.systemUTC());
    }

    ExplainCommand(PrintStream out, PrintStream err, Clock clock) {
        this.out = out;
        this.err = err;
        this.clock = clock;
    }

    int run(Path configFile, Path certificate, String sni, List<String> methodAndUrl) {
        ProxyConfig config = ValidateCommand.load(configFile, err);
        if (config == null) {
            err.println("nothing explained: the config must load as run would load it; fix the problems above");
            return Command.INVALID;
        }
        PeerIdentity peer;
        try {
            List<X509Certificate> chain = Pem.readCertificates(certificate);
            String unread = unreadNote(chain.size());
            if (unread != null) {
                out.println("chain:      " + unread);
            }
            peer = identify(config, chain, clock);
        } catch (PemException e) {
            err.println(certificate + ": " + e.reason());
            return Command.INVALID;
        } catch (ClientCertificateRejectedException e) {
            out.println("handshake:  REFUSED (" + e.reason().label() + ") - " + e.getMessage());
            out.println("decision:   no HTTP request is possible with this certificate");
            return Command.OK;
        }
        Explanation explanation = Explanation.of(Policy.compile(config), peer, methodAndUrl.get(0),
                methodAndUrl.get(1), sni, clock.instant());
        explanation.lines().forEach(out::println);
        return Command.OK;
    }

    /**
     * What a handshake would leave unread of a PEM this long, said where the answer is printed, so that a chain
     * found only among the ignored certificates does not puzzle; null when it reads them all.
     */
    static String unreadNote(int certificates) {
        int unread = ClientChains.unread(certificates);
        return unread == 0 ? null : certificates + " certificates; a handshake reads only the first "
                + (certificates - unread) + ", and so does this: the last " + unread + " ignored";
    }

    /**
     * The identity a handshake with this chain would yield, verified against every configured anchor, from the
     * certificates the handshake would read.
     */
    static PeerIdentity identify(ProxyConfig config, List<X509Certificate> chain, Clock clock)
            throws PemException, ClientCertificateRejectedException {
        return ClientChains.of(config.trustAnchors(), config.revocation(), clock)
                .identify(chain.toArray(new X509Certificate[0]));
    }
}
