package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.FixedRecvByteBufAllocator;
import io.netty.channel.IoHandle;
import io.netty.channel.IoHandler;
import io.netty.channel.IoHandlerContext;
import io.netty.channel.IoRegistration;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class YieldingIoHandlerTest {

    static final long YIELD_AFTER = TimeUnit.MICROSECONDS.toNanos(500);

    /**
     * A loop's passes, scripted: how long each waits for events, how many it then handles and for how long, reported
     * as Netty's epoll handler reports it.
     */
    static final class ScriptedPasses implements IoHandler {
        final Deque<long[]> passes = new ArrayDeque<>();
        long now;

        ScriptedPasses pass(long waitMicros, int handled, long activeMicros) {
            passes.add(new long[] {waitMicros, handled, activeMicros, 0});
            return this;
        }

        /** A pass that polls without waiting, because tasks are queued; they then run for {@code taskMicros}. */
        ScriptedPasses tasks(long taskMicros) {
            passes.add(new long[] {2, 0, 0, taskMicros});
            return this;
        }

        @Override
        public int run(IoHandlerContext context) {
            long[] pass = passes.remove();
            assertThat(context.canBlock()).isEqualTo(pass[3] == 0);
            now += TimeUnit.MICROSECONDS.toNanos(pass[0] + pass[2]);
            if (pass[1] > 0 && context.shouldReportActiveIoTime()) {
                context.reportActiveIoTime(TimeUnit.MICROSECONDS.toNanos(pass[2]));
            }
            return (int) pass[1];
        }

        @Override
        public IoRegistration register(IoHandle handle) {
            throw new UnsupportedOperationException();
        }

        @Override
        public void wakeup() {
        }

        @Override
        public boolean isCompatible(Class<? extends IoHandle> handleType) {
            return false;
        }
    }

    /** The loop's own context; it wants no reports. */
    static IoHandlerContext context(boolean tasksQueued) {
        return new IoHandlerContext() {
            @Override
            public boolean canBlock() {
                return !tasksQueued;
            }

            @Override
            public long delayNanos(long currentTimeNanos) {
                return Long.MAX_VALUE;
            }

            @Override
            public long deadlineNanos() {
                return -1;
            }
        };
    }

    private static int yieldsOver(ScriptedPasses passes) {
        AtomicInteger yields = new AtomicInteger();
        YieldingIoHandler loop = new YieldingIoHandler(passes, YIELD_AFTER, () -> passes.now,
                yields::incrementAndGet);
        while (!passes.passes.isEmpty()) {
            long taskMicros = passes.passes.peek()[3];
            loop.run(context(taskMicros > 0));
            passes.now += TimeUnit.MICROSECONDS.toNanos(taskMicros);
        }
        return yields.get();
    }

    @Test
    void aLoopThatFindsEventsReadyOnEveryPassYieldsOncePerPeriod() {
        ScriptedPasses passes = new ScriptedPasses();
        for (int i = 0; i < 10; i++) {
            passes.pass(2, 20, 100); // 1 ms of passes that never waited
        }
        assertThat(yieldsOver(passes)).as("after 500 us, and again after the next 500 us").isEqualTo(2);
    }

    @Test
    void aPassThatFindsNothingToDoStartsThePeriodAgain() {
        ScriptedPasses passes = new ScriptedPasses();
        for (int i = 0; i < 10; i++) {
            passes.pass(2, 20, 100).pass(2, 20, 100).pass(2, 20, 100).pass(2, 20, 100).pass(2, 0, 0);
        }
        assertThat(yieldsOver(passes)).as("never 500 us busy in a row").isZero();
    }

    @Test
    void aLoopWhoseWorkContinuesInTasksIsBusyThoughItsPassesFindNoEvents() {
        // A large body: Netty reads 16 messages per event, then goes on reading in a task.
        ScriptedPasses passes = new ScriptedPasses();
        for (int i = 0; i < 6; i++) {
            passes.pass(2, 1, 100).tasks(100);
        }
        assertThat(yieldsOver(passes)).isEqualTo(2);
    }

    @Test
    void aLoopThatWaitedForItsEventsHasNotBeenBusy() {
        // A quiet proxy: each pass waits in epoll_wait, then handles one request.
        ScriptedPasses passes = new ScriptedPasses();
        for (int i = 0; i < 10; i++) {
            passes.pass(10_000, 1, 20);
        }
        assertThat(yieldsOver(passes)).isZero();
    }

    @Test
    void zeroLeavesTheLoopsAsTheyAre() {
        var plain = Transport.best().ioHandlerFactory();
        assertThat(YieldingIoHandler.factory(plain, Duration.ZERO)).isSameAs(plain);
    }

    /** Works 50 us on every read. */
    @ChannelHandler.Sharable
    static final class SlowReader extends ChannelInboundHandlerAdapter {
        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            ((ByteBuf) msg).release();
            long until = System.nanoTime() + TimeUnit.MICROSECONDS.toNanos(50);
            while (System.nanoTime() < until) {
                Thread.onSpinWait();
            }
        }
    }

    @Test
    void aRealLoopKeptBusyYieldsAndAnIdleOneDoesNot() throws Exception {
        // Netty's own I/O handler must report the events it handled, or the loop would never look busy.
        Transport transport = Transport.best();
        AtomicInteger yields = new AtomicInteger();
        EventLoopGroup group = new MultiThreadIoEventLoopGroup(1,
                YieldingIoHandler.factory(transport.ioHandlerFactory(), Duration.ofNanos(YIELD_AFTER),
                        yields::incrementAndGet));
        try {
            // Reads of 1 KiB, 50 us of work each: slower than the writer, so data is always waiting.
            Channel server = new ServerBootstrap().group(group).channel(transport.serverChannel())
                    .childOption(ChannelOption.RECVBUF_ALLOCATOR, new FixedRecvByteBufAllocator(1024))
                    .childHandler(new SlowReader())
                    .bind("127.0.0.1", 0).sync().channel();
            int port = ((InetSocketAddress) server.localAddress()).getPort();

            try (Socket idle = new Socket("127.0.0.1", port)) {
                assertThat(idle.isConnected()).isTrue();
                Thread.sleep(100); // starting, binding and accepting are work: the loop may have yielded for them
                int afterStart = yields.get();
                Thread.sleep(300);
                assertThat(yields.get()).as("a loop with a connection and nothing to do").isEqualTo(afterStart);
            }
            int beforeLoad = yields.get();

            try (Socket busy = new Socket("127.0.0.1", port)) {
                Thread writer = new Thread(() -> {
                    byte[] chunk = new byte[1024];
                    try (OutputStream out = busy.getOutputStream()) {
                        while (!Thread.currentThread().isInterrupted()) {
                            out.write(chunk);
                        }
                    } catch (Exception closed) {
                        // the test is over
                    }
                }, "flood");
                writer.start();
                try {
                    await().atMost(Duration.ofSeconds(10)).until(() -> yields.get() >= beforeLoad + 10);
                } finally {
                    writer.interrupt();
                }
            }
            server.close().sync();
        } finally {
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS).sync();
        }
    }
}
