package dev.mtlsproxy.core.testing;

import io.netty.pkitesting.X509Bundle;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;

/**
 * A client whose TLS handshake has stopped where the server asked for its certificate, after the server's whole
 * flight, the server waiting for the client's, until {@link #resume} lets it go on; never resumed, it is a handshake
 * that never ends. The handshake runs on a thread of its own (a shared pool would queue a second stalled one behind
 * the first), and the TCP connection under it stays within reach, so that a test can see when the server gives up
 * on it ({@link #closedByServerWithin}).
 */
public final class StalledHandshake implements AutoCloseable {

    /** How long a handshake stays stalled at the most, should a test forget to resume or close it. */
    private static final Duration HELD_AT_MOST = Duration.ofMinutes(2);

    private final Socket tcp;
    private final long connectedAt;
    private volatile long stalledAt;
    private final CountDownLatch asked = new CountDownLatch(1);
    private final CountDownLatch resumed = new CountDownLatch(1);
    private final CompletableFuture<MtlsClient> client = new CompletableFuture<>();

    private StalledHandshake(Socket tcp) {
        this.tcp = tcp;
        this.connectedAt = System.nanoTime();
    }

    /**
     * Connects to {@code server} and starts a handshake presenting {@code certificate}; returns at once.
     * {@link #awaitStalled} waits until it has stopped.
     */
    public static StalledHandshake start(InetSocketAddress server, X509Bundle trustedRoot, X509Bundle certificate)
            throws Exception {
        StalledHandshake stalled = new StalledHandshake(new Socket(server.getAddress(), server.getPort()));
        SSLContext context = MtlsClient.clientContext(trustedRoot, certificate, stalled::holdUntilResumed);
        Thread handshake = new Thread(() -> {
            try {
                stalled.client.complete(MtlsClient.connect(stalled.tcp, context));
            } catch (Throwable e) {
                stalled.client.completeExceptionally(e);
            }
        }, "stalled-handshake");
        handshake.setDaemon(true);
        handshake.start();
        return stalled;
    }

    /** As {@link #start}, returning once the server has asked for the certificate: the handshake is held. */
    public static StalledHandshake at(InetSocketAddress server, X509Bundle trustedRoot, X509Bundle certificate)
            throws Exception {
        StalledHandshake stalled = start(server, trustedRoot, certificate);
        if (!stalled.awaitStalled(Duration.ofSeconds(10))) {
            stalled.close();
            throw new AssertionError("the server did not ask for a certificate within 10 s");
        }
        return stalled;
    }

    /** Whether the server asked for the certificate within {@code timeout}, so the handshake is held. */
    public boolean awaitStalled(Duration timeout) throws InterruptedException {
        return asked.await(timeout.toNanos(), TimeUnit.NANOSECONDS);
    }

    /**
     * {@link System#nanoTime()} when the TCP connection was established. A server's handshake timeout runs from its
     * accept, which a busy server makes later than this (the kernel completes the connection in the listen backlog)
     * and no later than {@link #stalledAt()}.
     */
    public long connectedAt() {
        return connectedAt;
    }

    /** {@link System#nanoTime()} when the server's flight had come and the handshake stopped; 0 before. */
    public long stalledAt() {
        return stalledAt;
    }

    /** Lets the handshake go on; the client once it is done, or what failed it. */
    public MtlsClient resume(Duration timeout) throws Exception {
        resumed.countDown();
        return client.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
    }

    /** As {@link #resume(Duration)}, waiting up to 10 s. */
    public MtlsClient resume() throws Exception {
        return resume(Duration.ofSeconds(10));
    }

    /**
     * While the handshake is held: true when the server closes the connection (EOF or reset, after whatever alert it
     * sends) within {@code timeout}; false when the time passes with it still open: a timeout is never a close.
     */
    public boolean closedByServerWithin(Duration timeout) throws IOException {
        long deadline = System.nanoTime() + timeout.toNanos();
        InputStream in = tcp.getInputStream();
        byte[] dropped = new byte[512];
        try {
            for (long left = timeout.toMillis(); left > 0; left = TimeUnit.NANOSECONDS.toMillis(deadline
                    - System.nanoTime())) {
                tcp.setSoTimeout((int) Math.min(Integer.MAX_VALUE, left));
                if (in.read(dropped) < 0) {
                    return true;
                }
            }
            return false;
        } catch (SocketTimeoutException e) {
            return false;
        } catch (IOException e) {
            return true;
        }
    }

    /** Lets the handshake thread go and closes the connection. */
    @Override
    public void close() throws IOException {
        resumed.countDown();
        tcp.close();
    }

    private void holdUntilResumed() {
        stalledAt = System.nanoTime();
        asked.countDown();
        try {
            resumed.await(HELD_AT_MOST.toNanos(), TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
