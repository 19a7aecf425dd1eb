package dev.mtlsproxy.core.backend;

import io.netty.channel.Channel;
import io.netty.channel.EventLoop;
import java.util.ArrayDeque;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Idle keep-alive connections to one backend endpoint, kept per event loop: a connection is only ever reused by requests on
 * the loop that owns it, so the relay needs no locks and no cross-thread hand-off. Each deque is touched only by
 * its own event loop; the map itself is concurrent because loops create their deque lazily.
 */
public final class BackendPool {

    private final int maxIdlePerLoop;
    private final Map<EventLoop, ArrayDeque<Channel>> idle = new ConcurrentHashMap<>();
    /** Total idle connections over all loops, for the metric; the deques themselves are loop-confined. */
    private final AtomicInteger idleCount = new AtomicInteger();
    /** Set when the configuration generation retires: nothing is pooled any more. */
    private volatile boolean closed;

    BackendPool(int maxIdlePerLoop) {
        this.maxIdlePerLoop = maxIdlePerLoop;
    }

    /** @return a live idle connection owned by {@code loop}, or null. Call on {@code loop}. */
    public Channel acquire(EventLoop loop) {
        ArrayDeque<Channel> deque = idle.get(loop);
        if (deque == null) {
            return null;
        }
        Channel channel;
        while ((channel = deque.pollLast()) != null) {
            idleCount.decrementAndGet();
            if (channel.isActive()) {
                return channel;
            }
        }
        return null;
    }

    /**
     * Offers a connection whose last exchange completed cleanly. Call on its event loop.
     *
     * @return false when the pool is full; the caller closes the connection
     */
    public boolean release(Channel channel) {
        if (closed || !channel.isActive()) {
            return false;
        }
        ArrayDeque<Channel> deque = idle.computeIfAbsent(channel.eventLoop(), l -> new ArrayDeque<>());
        if (deque.size() >= maxIdlePerLoop) {
            return false;
        }
        deque.addLast(channel);
        idleCount.incrementAndGet();
        return true;
    }

    /** Forgets a connection that closed while idle. Call on its event loop. */
    public void remove(Channel channel) {
        ArrayDeque<Channel> deque = idle.get(channel.eventLoop());
        if (deque != null && deque.remove(channel)) {
            idleCount.decrementAndGet();
        }
    }

    public int idleConnections() {
        return idleCount.get();
    }

    /** Closes every idle connection, on shutdown or when a configuration generation retires. */
    public void closeAll() {
        closed = true;
        for (Map.Entry<EventLoop, ArrayDeque<Channel>> e : idle.entrySet()) {
            e.getKey().execute(() -> {
                Channel c;
                while ((c = e.getValue().poll()) != null) {
                    idleCount.decrementAndGet();
                    c.close();
                }
            });
        }
    }
}
