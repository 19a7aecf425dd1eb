package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.config.IoTransport;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.IoHandlerFactory;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.ServerChannel;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.epoll.EpollSocketChannel;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.channel.uring.IoUring;
import io.netty.channel.uring.IoUringIoHandler;
import io.netty.channel.uring.IoUringServerSocketChannel;
import io.netty.channel.uring.IoUringSocketChannel;
import java.time.Duration;

/** The event loops' I/O: native epoll or io_uring, or Java NIO (workers.transport). */
record Transport(String name, IoHandlerFactory ioHandlerFactory, Class<? extends ServerChannel> serverChannel,
        Class<? extends SocketChannel> clientChannel) {

    /** Epoll where the platform has it, NIO otherwise. */
    static Transport best() {
        return Epoll.isAvailable() ? epoll() : nio();
    }

    /** @throws UnusableSettingException when the transport asked for cannot be used here, with the reason */
    static Transport of(IoTransport configured) {
        return switch (configured) {
            case AUTO -> best();
            case NIO -> nio();
            case EPOLL -> {
                if (!Epoll.isAvailable()) {
                    throw unavailable("epoll", Epoll.unavailabilityCause());
                }
                yield epoll();
            }
            case IO_URING -> {
                if (!IoUring.isAvailable()) {
                    throw unavailable("io_uring", IoUring.unavailabilityCause());
                }
                yield new Transport("io_uring", IoUringIoHandler.newFactory(), IoUringServerSocketChannel.class,
                        IoUringSocketChannel.class);
            }
        };
    }

    private static Transport epoll() {
        return new Transport("epoll", EpollIoHandler.newFactory(), EpollServerSocketChannel.class,
                EpollSocketChannel.class);
    }

    private static Transport nio() {
        return new Transport("nio", NioIoHandler.newFactory(), NioServerSocketChannel.class, NioSocketChannel.class);
    }

    private static UnusableSettingException unavailable(String transport, Throwable cause) {
        String why = cause == null ? "unknown" : cause.getMessage() == null ? cause.toString() : cause.getMessage();
        return new UnusableSettingException("workers.transport: " + transport + " is not available here (" + why
                + "); a container's seccomp profile may block io_uring; transport: auto uses epoll", cause);
    }

    /** @param yieldAfter see {@link YieldingIoHandler}; zero for plain loops */
    EventLoopGroup newGroup(int threads, Duration yieldAfter) {
        return new MultiThreadIoEventLoopGroup(threads, YieldingIoHandler.factory(ioHandlerFactory, yieldAfter));
    }
}
