package dev.mtlsproxy.config;

import java.util.List;
import java.util.Locale;

/** Checks {@code tests:}: each names one client, a request it can parse, and a decision that exists. */
final class PolicyTestValidator {

    static final String REQUEST_EXPECTED = "METHOD URL, like GET https://api.example.org/orders/7";

    private final Problems problems;
    private final IdentityValidator anchors;

    PolicyTestValidator(Problems problems, IdentityValidator anchors) {
        this.problems = problems;
        this.anchors = anchors;
    }

    void validate(List<PolicyTestConfig> tests) {
        List<String> paths = problems.itemPaths("tests", tests.size());
        for (int i = 0; i < paths.size(); i++) {
            String path = paths.get(i);
            PolicyTestConfig test = tests.get(i);
            if ((test.certificate() == null) == (test.peer() == null)) {
                problems.add(path, "a test (expected: exactly one of certificate or peer)");
            }
            if (test.certificate() != null) {
                ListenerValidator.certificates(problems, path + ".certificate", test.certificate(),
                        "a PEM client certificate chain, leaf first");
            }
            if (test.peer() != null) {
                anchors.anchor(path + ".peer.trustAnchor", test.peer().trustAnchor());
            }
            if (test.request() == null) {
                problems.add(path + ".request", "missing (expected: " + REQUEST_EXPECTED + ")");
            } else if (!test.request().trim().matches("[A-Za-z]+ +\\S+")) {
                problems.add(path + ".request", Values.quote(test.request()) + " (expected: " + REQUEST_EXPECTED
                        + ")");
            }
            if (test.expect() == null) {
                problems.add(path + ".expect", "missing (expected: one of "
                        + String.join(", ", PolicyTestConfig.EXPECTATIONS) + ")");
            } else if (!PolicyTestConfig.EXPECTATIONS.contains(test.expect().toLowerCase(Locale.ROOT))) {
                problems.add(path + ".expect", Values.quote(test.expect()) + " (expected: one of "
                        + String.join(", ", PolicyTestConfig.EXPECTATIONS) + ")");
            }
            if (test.rule() != null && test.rule() < 1) {
                problems.add(path + ".rule", test.rule() + " (expected: a rule number, from 1)");
            }
        }
    }
}
