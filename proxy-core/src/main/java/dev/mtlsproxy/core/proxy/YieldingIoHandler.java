package dev.mtlsproxy.core.proxy;

import io.netty.channel.IoHandle;
import io.netty.channel.IoHandler;
import io.netty.channel.IoHandlerContext;
import io.netty.channel.IoHandlerFactory;
import io.netty.channel.IoRegistration;
import io.netty.util.concurrent.ThreadAwareExecutor;
import java.time.Duration;
import java.util.function.LongSupplier;

/**
 * An event loop's I/O handler that offers the CPU to other threads ({@link Thread#yield}, {@code sched_yield}) once
 * the loop has been busy for a while without a pause: no pass waited for events, every one found events ready or
 * tasks queued.
 *
 * <p>Why: under load the kernel now and then puts two of our loops on one CPU. A loop that always has work never
 * blocks, so the other waits for its whole time slice, several milliseconds on a 250 Hz kernel; tracing the
 * benchmark showed our own second loop was what 80-98% of those waits over 2 ms were waiting for, and they made
 * our keep-alive p99 twice HAProxy's (docs/BENCHMARKS.md, issue #8). A yield lets the scheduler switch to the
 * stacked loop (or another thread the loop's own writes woke) at once. When nothing else wants the CPU, it returns
 * at once: at most one cheap system call per {@code yieldAfter} of busy time, whatever the load.
 */
final class YieldingIoHandler implements IoHandler {

    /** Longer than a system call that finds events ready; shorter than any wait worth the name. */
    static final long PAUSE_NANOS = 50_000;

    private final IoHandler delegate;
    private final long yieldAfterNanos;
    private final LongSupplier nanoTime;
    private final Runnable yield;
    private final PassContext pass = new PassContext();
    /** When this loop last paused (found nothing to do, or waited), or last yielded. Confined to its thread. */
    private long busySince;

    YieldingIoHandler(IoHandler delegate, long yieldAfterNanos, LongSupplier nanoTime, Runnable yield) {
        this.delegate = delegate;
        this.yieldAfterNanos = yieldAfterNanos;
        this.nanoTime = nanoTime;
        this.yield = yield;
        this.busySince = nanoTime.getAsLong();
    }

    /** {@code handlers} as they are when {@code yieldAfter} is zero; otherwise each wrapped. */
    static IoHandlerFactory factory(IoHandlerFactory handlers, Duration yieldAfter) {
        return factory(handlers, yieldAfter, Thread::yield);
    }

    /** @param yield what yielding does; tests count it */
    static IoHandlerFactory factory(IoHandlerFactory handlers, Duration yieldAfter, Runnable yield) {
        if (yieldAfter.isZero()) {
            return handlers;
        }
        long nanos = yieldAfter.toNanos();
        return new IoHandlerFactory() {
            @Override
            public IoHandler newHandler(ThreadAwareExecutor executor) {
                return new YieldingIoHandler(handlers.newHandler(executor), nanos, System::nanoTime, yield);
            }

            @Override
            public boolean isChangingThreadSupported() {
                return handlers.isChangingThreadSupported();
            }
        };
    }

    @Override
    public int run(IoHandlerContext context) {
        pass.outer = context;
        pass.active = 0;
        boolean couldWait = context.canBlock(); // asked before the pass: tasks queued during it change the answer
        long start = nanoTime.getAsLong();
        int handled = delegate.run(pass);
        long end = nanoTime.getAsLong();
        // A pause: the pass could wait and found nothing, or what it did not spend handling events it spent
        // waiting for them. A pass that found nothing while tasks were queued is no pause: it did not wait, and
        // the tasks (such as a read continued after its quota of messages) are the work.
        boolean paused = handled == 0 ? couldWait : end - start - pass.active > PAUSE_NANOS;
        if (paused) {
            busySince = end;
        } else if (end - busySince >= yieldAfterNanos) {
            yield.run();
            busySince = nanoTime.getAsLong();
        }
        return handled;
    }

    /**
     * The loop's context, asking the I/O handler to report how long it spent handling events (Netty's epoll handler
     * does; it is how a pass that waited in {@code epoll_wait} is told from one that did not).
     */
    private static final class PassContext implements IoHandlerContext {
        IoHandlerContext outer;
        long active;

        @Override
        public boolean canBlock() {
            return outer.canBlock();
        }

        @Override
        public long delayNanos(long currentTimeNanos) {
            return outer.delayNanos(currentTimeNanos);
        }

        @Override
        public long deadlineNanos() {
            return outer.deadlineNanos();
        }

        @Override
        public boolean shouldReportActiveIoTime() {
            return true;
        }

        @Override
        public void reportActiveIoTime(long activeNanos) {
            active += activeNanos;
            if (outer.shouldReportActiveIoTime()) {
                outer.reportActiveIoTime(activeNanos);
            }
        }
    }

    @Override
    public void initialize() {
        delegate.initialize();
    }

    @Override
    public void prepareToDestroy() {
        delegate.prepareToDestroy();
    }

    @Override
    public void destroy() {
        delegate.destroy();
    }

    @Override
    public IoRegistration register(IoHandle handle) throws Exception {
        return delegate.register(handle);
    }

    @Override
    public void wakeup() {
        delegate.wakeup();
    }

    @Override
    public boolean isCompatible(Class<? extends IoHandle> handleType) {
        return delegate.isCompatible(handleType);
    }
}
