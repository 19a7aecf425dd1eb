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
import io.netty.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * The active health check of one backend: every interval, a {@code GET} of the configured path to each endpoint on
 * a fresh connection, with the backend's TLS settings. It runs on one of the proxy's event loops with non-blocking
 * I/O only, so it never holds a loop up; a 2xx answer within the timeout is healthy, anything else is not.
 */
final class HealthChecker {

    private final Backend backend;
    private final HealthCheckConfig config;
    private volatile ScheduledFuture<?> schedule;
    private volatile boolean stopped;

    HealthChecker(Backend backend, HealthCheckConfig config) {
        this.backend = backend;
        this.config = config;
    }

    /** Starts probing; a backend carried over into a new generation is already started, and stays as it is. */
    synchronized void start(EventLoop loop, Class<? extends Channel> channelType) {
        if (schedule != null || stopped) {
            return;
        }
        schedule = loop.scheduleWithFixedDelay(() -> {
            for (Endpoint endpoint : backend.endpoints()) {
                probe(loop, channelType, endpoint);
            }
        }, 0, config.interval().toNanos(), TimeUnit.NANOSECONDS);
    }

    synchronized void stop() {
        stopped = true;
        ScheduledFuture<?> s = schedule;
        if (s != null) {
            s.cancel(false);
        }
    }

    private void probe(EventLoop loop, Class<? extends Channel> channelType, Endpoint endpoint) {
        Probe probe = new Probe(endpoint);
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
                    .set(HttpHeaderNames.HOST, endpoint.tlsHost())
                    .set(HttpHeaderNames.USER_AGENT, "mtls-proxy-health-check")
                    .set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
            channel.writeAndFlush(request);
            channel.read();
        });
    }

    /** One check of one endpoint; confined to the checker's event loop. */
    private final class Probe extends ChannelInboundHandlerAdapter {
        private final Endpoint endpoint;
        ScheduledFuture<?> timeout;
        Channel channel;
        boolean finished;

        Probe(Endpoint endpoint) {
            this.endpoint = endpoint;
        }

        void done(boolean healthy, String cause) {
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
                endpoint.checked(healthy, cause);
            }
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
