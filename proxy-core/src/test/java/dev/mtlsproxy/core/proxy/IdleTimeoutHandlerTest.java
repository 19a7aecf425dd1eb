package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelOutboundBuffer;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.util.ReferenceCountUtil;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * What the idle timeout takes for progress of what waits in the socket's queue, on a channel whose socket takes only
 * the bytes a test lets it take. The checks run on the real clock, driven by the test as the event loop would.
 */
class IdleTimeoutHandlerTest {

    static final Duration TIMEOUT = Duration.ofMillis(400);
    /** Timers never fire early; a check may run this much before the clock the test reads says so. */
    static final long CLOCK_SLACK_MILLIS = 50;

    SlowSocket channel;
    IdleEvents idle;
    ByteBuf message;

    @BeforeEach
    void open() {
        idle = new IdleEvents();
        channel = new SlowSocket(new IdleTimeoutHandler(TIMEOUT), idle);
        message = Unpooled.wrappedBuffer(new byte[1000]);
    }

    @AfterEach
    void close() {
        channel.finishAndReleaseAll();
        message.release();
    }

    @Test
    void aPeerTakingWhatWaitsForItInSmallPiecesIsNotIdleWhileItTakesThem() {
        channel.writeAndFlush(message.retain());
        long start = System.nanoTime();
        // No read, no flush: only the queue moves, 100 bytes every half timeout, over two timeouts and a half.
        long[] taken = {0};
        await().atMost(Duration.ofSeconds(5)).pollInterval(Duration.ofMillis(10)).until(() -> {
            long due = (millisSince(start) / (TIMEOUT.toMillis() / 2)) * 100;
            if (due > taken[0] && taken[0] < 500) {
                channel.take(100);
                taken[0] += 100;
            }
            channel.runScheduledPendingTasks();
            return millisSince(start) > TIMEOUT.toMillis() * 5 / 2 || idle.firedAt != 0;
        });
        assertThat(idle.firedAt != 0).as("idle while the peer was taking bytes").isFalse();

        // It stops taking them: idle between one and two timeouts after the last bytes left.
        long stopped = System.nanoTime();
        await().atMost(Duration.ofSeconds(5)).pollInterval(Duration.ofMillis(10)).until(() -> {
            channel.runScheduledPendingTasks();
            return idle.firedAt != 0;
        });
        assertThat(TimeUnit.NANOSECONDS.toMillis(idle.firedAt - stopped))
                .isBetween(TIMEOUT.toMillis() - CLOCK_SLACK_MILLIS, TIMEOUT.toMillis() * 2 + 500);
    }

    @Test
    void aBufferRecycledIntoTheSamePlaceWithTheSameTotalIsNotTakenForAQueueThatDidNotMove() {
        channel.writeAndFlush(message.retain());
        long start = System.nanoTime();
        // The peer sends all along and reads nothing: traffic, but what waits for it does not move. A check one
        // timeout in sees the message waiting.
        driveWithReadsUntil(() -> millisSince(start) >= TIMEOUT.toMillis() * 3 / 2);
        assertThat(idle.firedAt).isZero();

        // Then the peer takes it, and the next message is the same buffer object again, as a recycled one can be:
        // the same first message, at the same index, with the same total queued.
        channel.take(message.readableBytes());
        assertThat(message.refCnt()).as("written and released by the queue").isEqualTo(1);
        channel.writeAndFlush(message.retain());
        long moved = System.nanoTime();

        // It takes nothing more: idle a timeout after the last bytes left at the earliest, not at the next check.
        driveWithReadsUntil(() -> idle.firedAt != 0);
        assertThat(TimeUnit.NANOSECONDS.toMillis(idle.firedAt - moved))
                .as("from the last bytes taken to the idle event")
                .isGreaterThanOrEqualTo(TIMEOUT.toMillis() - CLOCK_SLACK_MILLIS);
    }

    @Test
    void theLastBytesLeavingTheQueueCountAsMovement() {
        long start = System.nanoTime();
        channel.writeAndFlush(message.retain());
        // The first check, a timeout in, sees the message waiting; the peer takes all of it just before the next one.
        await().atMost(Duration.ofSeconds(5)).pollInterval(Duration.ofMillis(10)).until(() -> {
            channel.runScheduledPendingTasks();
            return millisSince(start) >= TIMEOUT.toMillis() * 19 / 10;
        });
        channel.take(message.readableBytes());
        long emptied = System.nanoTime();

        // What the kernel took last is still on its way to the peer: a whole timeout from the check that saw it go.
        await().atMost(Duration.ofSeconds(5)).pollInterval(Duration.ofMillis(10)).until(() -> {
            channel.runScheduledPendingTasks();
            return idle.firedAt != 0;
        });
        assertThat(TimeUnit.NANOSECONDS.toMillis(idle.firedAt - emptied))
                .as("from the last bytes taken to the idle event")
                .isGreaterThanOrEqualTo(TIMEOUT.toMillis() - CLOCK_SLACK_MILLIS);
    }

    @Test
    void aTunnelSideWithNoTrafficIsNotIdleWhileTheOtherSidesQueueMoves() {
        IdleEvents backendIdle = new IdleEvents();
        IdleTimeoutHandler backendHandler = new IdleTimeoutHandler(TIMEOUT);
        SlowSocket backend = new SlowSocket(backendHandler, backendIdle);
        try {
            IdleTimeoutHandler.joinTunnel(channel.pipeline().get(IdleTimeoutHandler.class), backendHandler);
            backend.writeAndFlush(message.retain());
            long start = System.nanoTime();
            // Nothing at all on the client side; the backend takes 100 bytes every half timeout, for two and a half.
            long[] taken = {0};
            await().atMost(Duration.ofSeconds(5)).pollInterval(Duration.ofMillis(10)).until(() -> {
                long due = (millisSince(start) / (TIMEOUT.toMillis() / 2)) * 100;
                if (due > taken[0] && taken[0] < 500) {
                    backend.take(100);
                    taken[0] += 100;
                }
                channel.runScheduledPendingTasks();
                backend.runScheduledPendingTasks();
                return millisSince(start) > TIMEOUT.toMillis() * 5 / 2 || idle.firedAt != 0 || backendIdle.firedAt != 0;
            });
            assertThat(idle.firedAt).as("the client side idle while the backend took bytes").isZero();
            assertThat(backendIdle.firedAt).as("the backend side idle while it took bytes").isZero();

            // The backend stops taking them, while the client keeps sending: the backend side is idle between one
            // and two timeouts after its last bytes left, whatever the client does.
            long stopped = System.nanoTime();
            await().atMost(Duration.ofSeconds(5)).pollInterval(Duration.ofMillis(10)).until(() -> {
                channel.writeInbound(Unpooled.wrappedBuffer(new byte[] {'x'}));
                channel.runScheduledPendingTasks();
                backend.runScheduledPendingTasks();
                return backendIdle.firedAt != 0;
            });
            assertThat(TimeUnit.NANOSECONDS.toMillis(backendIdle.firedAt - stopped))
                    .isBetween(TIMEOUT.toMillis() - CLOCK_SLACK_MILLIS, TIMEOUT.toMillis() * 2 + 500);
        } finally {
            backend.finishAndReleaseAll();
        }
    }

    private void driveWithReadsUntil(java.util.concurrent.Callable<Boolean> done) {
        await().atMost(Duration.ofSeconds(5)).pollInterval(Duration.ofMillis(10)).until(() -> {
            channel.writeInbound(Unpooled.wrappedBuffer(new byte[] {'x'}));
            channel.runScheduledPendingTasks();
            return done.call();
        });
    }

    private static long millisSince(long nanos) {
        return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - nanos);
    }

    /** Records when the first idle event came; drops what is read. */
    static final class IdleEvents extends ChannelInboundHandlerAdapter {
        volatile long firedAt;

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            ReferenceCountUtil.release(msg);
        }

        @Override
        public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
            if (evt instanceof IdleStateEvent && firedAt == 0) {
                firedAt = System.nanoTime();
            }
        }
    }

    /** A channel whose socket takes nothing but what {@link #take} lets it, as a peer that reads when it likes. */
    static final class SlowSocket extends EmbeddedChannel {
        private long allowed;

        SlowSocket(io.netty.channel.ChannelHandler... handlers) {
            super(handlers);
        }

        /** The socket takes this many bytes from the head of the queue now. */
        void take(long bytes) {
            allowed = bytes;
            // through the channel's own flush, as the event loop does when the socket becomes writable: below every
            // handler, so no handler sees a flush
            unsafe().flush();
        }

        @Override
        protected void doWrite(ChannelOutboundBuffer in) {
            while (allowed > 0 && in.current() instanceof ByteBuf head) {
                int bytes = (int) Math.min(allowed, head.readableBytes());
                allowed -= bytes;
                in.removeBytes(bytes);
            }
        }
    }
}
