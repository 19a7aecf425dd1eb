package dev.mtlsproxy.core.policy;

import java.util.ArrayList;
import java.util.List;

/**
 * Receives, in order, why a decision came out as it did: for {@code explain} and {@code test}. The proxy passes
 * {@link #NONE}, and the policy builds no note text unless {@link #enabled()}: a decision allocates nothing for it.
 */
public interface PolicyTrace {

    PolicyTrace NONE = new PolicyTrace() {
        @Override
        public void note(String line) {
        }

        @Override
        public boolean enabled() {
            return false;
        }
    };

    void note(String line);

    boolean enabled();

    /** Keeps every note. */
    final class Recording implements PolicyTrace {
        private final List<String> lines = new ArrayList<>();

        @Override
        public void note(String line) {
            lines.add(line);
        }

        @Override
        public boolean enabled() {
            return true;
        }

        public List<String> lines() {
            return List.copyOf(lines);
        }
    }
}
