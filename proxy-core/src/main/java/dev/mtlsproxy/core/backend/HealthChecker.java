package dev.mtlsproxy.core.backend;

import dev.mtlsproxy.config.HealthCheckConfig;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoop;
import io.netty.handler.codec.http.DefaultFullHttpRequest;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.HttpClientCodec;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.ImmediateEventExecutor;
import io.netty.util.concurrent.Promise;
import io.netty.util.concurrent.PromiseCombiner;
import io.netty.util.concurrent.ScheduledFuture;
import java.util.List;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;

/**
 * The active health check of one backend: a {@code GET} of the configured path to each endpoint on a fresh
 * connection, with the backend's TLS settings. It runs on one of the proxy's event loops with non-blocking I/O only,
 * so it never holds a loop up; a 2xx answer within the timeout passes, anything else fails, and each endpoint counts
 * the results towards its thresholds ({@link ActiveHealth}). All of a checker's probes run on one loop, which is what
 * keeps each endpoint's count confined.
 *
 * <p>Each endpoint has at most one check out: its next check is sent {@code interval} after the previous one was
 * counted (answered, failed or timed out), as Envoy and HAProxy do, not every {@code interval} regardless. So a
 * {@code timeout} longer than the {@code interval} never stacks checks on a backend that hangs, a slow endpoint does
 * not hold up the checks of the others, and a checker resumed after a failed reload waits for a check still out
 * instead of sending a second one beside it.
 */
final class HealthChecker {

    private final Backend backend;
    private final HealthCheckConfig config;
    private final List<Turns> turns;
    /**
     * The loop every check runs on and every result is counted on; null until started. Guarded by this; set once,
     * before the first task is queued on that loop, so the loop's tasks read it without the lock.
     */
    private EventLoop loop;
    /** The channel type of the probes; null until started. As {@link #loop}. */
    private Class<? extends Channel> channelType;
    private volatile boolean stopped;

    HealthChecker(Backend backend, HealthCheckConfig config) {
        this.backend = backend;
        this.config = config;
        this.turns = backend.endpoints().stream().map(Turns::new).toList();
    }

    /**
     * Starts probing, each endpoint at once; a backend carried over into a new generation is already started, and
     * stays as it is.
     *
     * @throws IllegalArgumentException for an interval that is not positive, which would check without pause; the
     *                                  validator rejects one in a file, but a reload takes records
     */
    synchronized void start(EventLoop loop, Class<? extends Channel> channelType) {
        if (this.loop != null || stopped) {
            return;
        }
        if (config.interval().isNegative() || config.interval().isZero()) {
            throw new IllegalArgumentException("health check interval " + config.interval() + " (expected: > 0)");
        }
        this.loop = loop;
        this.channelType = channelType;
        loop.execute(this::checkEachWithoutOneOut);
    }

    /**
     * Checks every endpoint once, on {@code loop}, apart from any schedule; the future completes when each result has
     * been counted. A checker's rounds must all use the same loop.
     */
    Future<Void> checkAll(EventLoop loop, Class<? extends Channel> channelType) {
        Promise<Void> round = loop.newPromise();
        loop.execute(() -> {
            PromiseCombiner all = new PromiseCombiner(loop);
            for (Endpoint endpoint : backend.endpoints()) {
                all.add(probe(loop, channelType, endpoint));
            }
            all.finish(round);
        });
        return round;
    }

    /**
     * Stops probing. The future completes once no result can be counted any more: results are counted on the
     * checker's loop, and each one counted after {@code stopped} is set sees it and is dropped, so once a task queued
     * behind the flag has run, every result is either counted already or will be dropped. A reload waits for that
     * before the next generation reads the verdicts (see {@link Backends#takeOverHealthFrom}). A check still out
     * stays out until it ends, so that a {@link #resume} cannot send another beside it.
     */
    synchronized Future<Void> stop() {
        stopped = true;
        if (loop == null) {
            return ImmediateEventExecutor.INSTANCE.newSucceededFuture(null);
        }
        if (loop.inEventLoop()) {
            // called from the loop itself: no result can be half-way through counting
            turns.forEach(Turns::cancelNext);
            return ImmediateEventExecutor.INSTANCE.newSucceededFuture(null);
        }
        Promise<Void> quiet = loop.newPromise();
        try {
            loop.execute(() -> {
                turns.forEach(Turns::cancelNext);
                quiet.setSuccess(null);
            });
        } catch (RejectedExecutionException e) {
            // The loop is shutting down, and the proxy with it: no generation will take these verdicts over.
            return ImmediateEventExecutor.INSTANCE.newSucceededFuture(null);
        }
        return quiet;
    }

    /**
     * Probes again after {@link #stop}, on the same loop, so every result is still counted there: a reload that
     * stopped this checker to hand its verdicts over failed before its successor served. An endpoint is checked at
     * once, as at start, unless a check of it is still out: that one is counted when it ends, as it would have been,
     * and the next follows an {@code interval} later.
     */
    synchronized void resume() {
        if (!stopped) {
            return;
        }
        stopped = false;
        if (loop != null) {
            loop.execute(this::checkEachWithoutOneOut);
        }
    }

    private void checkEachWithoutOneOut() {
        for (Turns t : turns) {
            t.nextIn(0);
        }
    }

    /** One endpoint's checks, one after another; confined to the checker's loop. */
    private final class Turns {
        private final Endpoint endpoint;
        /** The next check, while one is scheduled. */
        private ScheduledFuture<?> next;
        /** A check is out: the next one is scheduled only once this one is counted. */
        private boolean out;

        Turns(Endpoint endpoint) {
            this.endpoint = endpoint;
        }

        void nextIn(long nanos) {
            if (stopped || out || next != null) {
                return;
            }
            next = loop.schedule(this::check, nanos, TimeUnit.NANOSECONDS);
        }

        private void check() {
            next = null;
            if (stopped || out) {
                return;
            }
            out = true;
            probe(loop, channelType, endpoint).addListener(counted -> {
                out = false;
                nextIn(config.interval().toNanos());
            });
        }

        void cancelNext() {
            if (next != null) {
                next.cancel(false);
                next = null;
            }
        }
    }

    private Future<Void> probe(EventLoop loop, Class<? extends Channel> channelType, Endpoint endpoint) {
        Probe probe = new Probe(endpoint, loop.newPromise());
        ScheduledFuture<?> timeout = loop.schedule(() -> probe.done(false, "no answer within "
                + config.timeout().toMillis() + "ms"), config.timeout().toNanos(), TimeUnit.NANOSECONDS);
        probe.timeout = timeout;
        Future<Channel> connect = endpoint.connect(loop, channelType, new ChannelInitializer<>() {
            @Override
            protected void initChannel(Channel ch) {
                ch.pipeline().addLast(new HttpClientCodec(), probe);
            }
        });
        connect.addListener(f -> {
            if (!f.isSuccess()) {
                probe.done(false, BackendFailures.describe(f.cause()));
                return;
            }
            Channel channel = connect.getNow();
            if (probe.finished) {
                channel.close();
                return;
            }
            probe.channel = channel;
            FullHttpRequest request = new DefaultFullHttpRequest(HttpVersion.HTTP_1_1, HttpMethod.GET, config.path(),
                    Unpooled.EMPTY_BUFFER);
            request.headers()
                    // The endpoint's name with its port (brackets for IPv6), as a forwarded request without a
                    // Host gets: a bare "::1" is no valid Host, and a backend with name-based virtual hosts on a
                    // non-default port routes on the port too.
                    .set(HttpHeaderNames.HOST, endpoint.hostHeader())
                    .set(HttpHeaderNames.USER_AGENT, "mtls-proxy-health-check")
                    .set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
            channel.writeAndFlush(request);
            channel.read();
        });
        return probe.counted;
    }

    /** One check of one endpoint; confined to the checker's event loop. */
    private final class Probe extends ChannelInboundHandlerAdapter {
        private final Endpoint endpoint;
        /** Completes once the result has been counted (or dropped, by a stopped checker). */
        final Promise<Void> counted;
        ScheduledFuture<?> timeout;
        Channel channel;
        boolean finished;

        Probe(Endpoint endpoint, Promise<Void> counted) {
            this.endpoint = endpoint;
            this.counted = counted;
        }

        void done(boolean passed, String cause) {
            if (finished) {
                return;
            }
            finished = true;
            if (timeout != null) {
                timeout.cancel(false);
            }
            if (channel != null) {
                channel.close();
            }
            if (!stopped) {
                endpoint.checked(passed, cause);
            }
            counted.trySuccess(null);
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            try {
                if (msg instanceof HttpResponse response) {
                    int code = response.status().code();
                    done(code >= 200 && code < 300, "health check answered " + code);
                }
            } finally {
                ReferenceCountUtil.release(msg);
            }
        }

        @Override
        public void channelReadComplete(ChannelHandlerContext ctx) {
            if (!finished) {
                ctx.read();
            }
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            done(false, "connection closed before an answer");
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            done(false, BackendFailures.describe(cause));
        }
    }
}
