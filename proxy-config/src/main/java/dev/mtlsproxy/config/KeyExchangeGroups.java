package dev.mtlsproxy.config;

import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

/** Checks a {@code groups:} list, the same way for listeners and for backends. */
final class KeyExchangeGroups {

    private KeyExchangeGroups() {
    }

    static void check(Problems problems, String path, List<KeyExchangeGroup> groups, TlsVersion minVersion) {
        List<String> items = problems.itemPaths(path, groups.size());
        if (items.size() != groups.size()) {
            return;
        }
        if (groups.isEmpty()) {
            problems.add(path, "[] (expected: at least one key exchange group; leave groups out for the default "
                    + yamlList(KeyExchangeGroup.DEFAULTS) + ")");
            return;
        }
        Map<KeyExchangeGroup, String> firstUse = new HashMap<>();
        for (int i = 0; i < groups.size(); i++) {
            String item = items.get(i);
            String earlier = firstUse.putIfAbsent(groups.get(i), item);
            if (earlier != null) {
                problems.add(item, Values.quote(groups.get(i).yaml()) + " (expected: each group once) - also "
                        + earlier);
            }
        }
        // Without this, every TLS 1.2 client fails its handshake with nothing in the config to say why.
        if (minVersion == TlsVersion.TLS_1_2 && groups.stream().allMatch(KeyExchangeGroup::tls13Only)) {
            String classical = Arrays.stream(KeyExchangeGroup.values()).filter(g -> !g.tls13Only())
                    .map(KeyExchangeGroup::yaml).collect(Collectors.joining(", "));
            problems.add(path, yamlList(groups) + " (expected: also a group TLS 1.2 can use, one of " + classical
                    + ", or minVersion: TLSv1.3)");
        }
    }

    private static String yamlList(List<KeyExchangeGroup> groups) {
        return groups.stream().map(KeyExchangeGroup::yaml).collect(Collectors.joining(", ", "[", "]"));
    }
}
