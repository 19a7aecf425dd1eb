package dev.mtlsproxy.app;

import dev.mtlsproxy.config.Pem;
import dev.mtlsproxy.config.PemException;
import dev.mtlsproxy.config.PolicyTestConfig;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.core.identity.PeerIdentities;
import dev.mtlsproxy.core.identity.PeerIdentity;
import dev.mtlsproxy.core.policy.Explanation;
import dev.mtlsproxy.core.policy.Policy;
import dev.mtlsproxy.core.tls.ClientCertificateRejectedException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.util.List;
import java.util.Locale;

/**
 * {@code mtls-proxy test --config FILE}: runs the {@code tests:} of the config through the proxy's own decision code.
 * Exit 0 when every decision is as expected; at the first that is not, prints it like {@code explain} and exits 1.
 */
final class PolicyTestCommand {

    private final PrintStream out;
    private final PrintStream err;
    private final Clock clock;

    PolicyTestCommand(PrintStream out, PrintStream err) {
        this(out, err, Clock.systemUTC());
    }

    PolicyTestCommand(PrintStream out, PrintStream err, Clock clock) {
        this.out = out;
        this.err = err;
        this.clock = clock;
    }

    int run(Path configFile) {
        ProxyConfig config = ValidateCommand.load(configFile, err);
        if (config == null) {
            // A CI log must not leave it open whether the tests ran: they load the whole config, files included.
            err.println("no tests run: the config must load as run would load it; fix the problems above");
            return Command.INVALID;
        }
        if (config.tests().isEmpty()) {
            // a policy gate that ran nothing must not look like one that passed
            err.println(configFile + ": no tests (add a tests: section)");
            return Command.INVALID;
        }
        Policy policy = Policy.compile(config);
        String onlyAnchor = config.trustAnchors().size() == 1 ? config.trustAnchors().keySet().iterator().next()
                : null;
        for (int i = 0; i < config.tests().size(); i++) {
            PolicyTestConfig test = config.tests().get(i);
            String name = test.name() != null ? test.name() : test.request();
            String[] request = test.request().trim().split(" +", 2);
            String expected = test.expect().toLowerCase(Locale.ROOT);
            Explanation result;
            try {
                PeerIdentity peer;
                if (test.certificate() != null) {
                    List<X509Certificate> chain = Pem.readCertificates(test.certificate());
                    String unread = ExplainCommand.unreadNote(chain.size());
                    if (unread != null) {
                        out.println("note tests[" + i + "].certificate: " + unread);
                    }
                    peer = ExplainCommand.identify(config, chain, clock);
                } else {
                    peer = described(test.peer(), onlyAnchor);
                }
                result = Explanation.of(policy, peer, request[0], request[1], test.sni(), clock.instant());
            } catch (ClientCertificateRejectedException e) {
                out.println("FAIL tests[" + i + "] " + name + ": the handshake would be refused ("
                        + e.reason().label() + "), expected " + expected);
                return Command.INVALID;
            } catch (PemException e) {
                err.println("tests[" + i + "].certificate: " + test.certificate() + " - " + e.reason());
                return Command.INVALID;
            }
            boolean ruleMatches = test.rule() == null
                    || (result.decision() != null && result.decision().rule() == test.rule());
            if (!result.verdict().equals(expected) || !ruleMatches) {
                out.println("FAIL tests[" + i + "] " + name + ": expected " + expected
                        + (test.rule() == null ? "" : " by rule " + test.rule()) + ", got " + result.verdict()
                        + (result.decision() != null && result.decision().rule() > 0
                                ? " by rule " + result.decision().rule() : ""));
                result.lines().forEach(line -> out.println("  " + line));
                return Command.INVALID;
            }
            out.println("ok   tests[" + i + "] " + name + ": " + result.verdict());
        }
        out.println(config.tests().size() + " tests passed");
        return Command.OK;
    }

    private static PeerIdentity described(PolicyTestConfig.Peer peer, String onlyAnchor) {
        return PeerIdentities.described(peer.uriSans(), peer.dnsSans(), peer.emailSans(), peer.ipSans(),
                peer.subject(), peer.issuer(), peer.trustAnchor() != null ? peer.trustAnchor() : onlyAnchor);
    }
}
