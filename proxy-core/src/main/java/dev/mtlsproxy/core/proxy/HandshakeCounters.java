package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.core.identity.IdentityHandler;
import dev.mtlsproxy.core.identity.PeerIdentity;
import dev.mtlsproxy.core.tls.HandshakeFailureReason;
import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.atomic.LongAdder;

/** Handshake outcomes by reason, counted from every event loop. */
public final class HandshakeCounters implements IdentityHandler.HandshakeListener {

    private final LongAdder succeeded = new LongAdder();
    private final Map<HandshakeFailureReason, LongAdder> failed = new EnumMap<>(HandshakeFailureReason.class);

    public HandshakeCounters() {
        for (HandshakeFailureReason reason : HandshakeFailureReason.values()) {
            failed.put(reason, new LongAdder());
        }
    }

    @Override
    public void succeeded(PeerIdentity identity) {
        succeeded.increment();
    }

    @Override
    public void failed(HandshakeFailureReason reason) {
        failed.get(reason).increment();
    }

    public long successes() {
        return succeeded.sum();
    }

    public long failures(HandshakeFailureReason reason) {
        return failed.get(reason).sum();
    }
}
