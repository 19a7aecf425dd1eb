package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.core.testing.Sockets;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.channels.ServerSocketChannel;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The limit judges each connection where the listening channel hands it to Netty's acceptor: one over the limit is
 * closed there, never registered with an event loop and never given a pipeline, so a flood at the limit costs no
 * registration, no epoll_ctl and no hop to a child loop. The listening channel is an {@link EmbeddedChannel} whose
 * pipeline end stands in for the acceptor; the connections are real sockets accepted on loopback.
 */
class ConnectionLimitAtAcceptTest {

    private final AtomicInteger refused = new AtomicInteger();
    private final ConnectionLimit limit = new ConnectionLimit("main", () -> 1, refused::incrementAndGet);
    private final EmbeddedChannel listening = new EmbeddedChannel(limit);
    private final EventLoopGroup childLoops = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
    private final List<AutoCloseable> opened = new ArrayList<>();
    private ServerSocketChannel server;

    @BeforeEach
    void listen() throws IOException {
        server = ServerSocketChannel.open().bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
        opened.add(server);
    }

    @AfterEach
    void close() throws Exception {
        listening.finishAndReleaseAll();
        for (AutoCloseable c : opened) {
            c.close();
        }
        childLoops.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }

    @Test
    void aConnectionOverTheLimitIsClosedOnAcceptWithoutEverBeingRegisteredAndAFreedSlotAdmitsTheNext()
            throws Exception {
        Socket firstClient = connect();
        Channel first = accept();
        listening.writeInbound(first);
        assertThat((Channel) listening.readInbound()).as("under the limit: handed on to the acceptor").isSameAs(first);
        childLoops.register(first).sync();
        assertThat(limit.open()).isEqualTo(1);

        Socket overClient = connect();
        Channel over = accept();
        listening.writeInbound(over);
        assertThat(listening.<Object>readInbound()).as("over the limit: never reaches the acceptor").isNull();
        assertThat(over.isRegistered()).as("never registered with an event loop").isFalse();
        assertThat(over.pipeline().names()).as("no handler was ever added")
                .containsExactly("DefaultChannelPipeline$TailContext#0");
        assertThat(over.isOpen()).isFalse();
        assertThat(Sockets.closedWithin(overClient, 2_000)).as("the client sees its connection closed at once").isTrue();
        assertThat(refused).hasValue(1);
        assertThat(limit.open()).as("a refused connection holds no slot").isEqualTo(1);
        assertThat(Sockets.closedWithin(firstClient, 100)).as("the admitted connection is untouched").isFalse();

        first.close().sync();
        assertThat(limit.open()).as("its slot is given back when it closes").isZero();
        connect();
        Channel next = accept();
        listening.writeInbound(next);
        assertThat((Channel) listening.readInbound()).isSameAs(next);
        assertThat(refused).hasValue(1);
        next.unsafe().closeForcibly();
    }

    @Test
    void aConnectionAdmittedWhileTheEventLoopsShutDownGivesItsSlotBackWhenItsRegistrationIsRefused()
            throws Exception {
        // The listener's loop still accepts, the loop a connection is handed to has terminated: what a shutdown
        // does to a listener that accepts until its own loop stops. Netty's acceptor tries to register it there.
        EventLoopGroup listenerLoop = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
        EventLoopGroup terminated = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
        terminated.shutdownGracefully(0, 0, TimeUnit.SECONDS).syncUninterruptibly();
        try {
            ConnectionLimit shuttingDown = new ConnectionLimit("main", () -> 1, refused::incrementAndGet);
            Channel listener = new ServerBootstrap()
                    .group(listenerLoop, terminated)
                    .channel(NioServerSocketChannel.class)
                    .handler(shuttingDown)
                    .childHandler(new ChannelInitializer<Channel>() {
                        @Override
                        protected void initChannel(Channel ch) {
                        }
                    })
                    .bind(InetAddress.getLoopbackAddress(), 0).sync().channel();

            Socket client = new Socket();
            opened.add(client);
            client.connect(listener.localAddress());
            assertThat(Sockets.closedWithin(client, 2_000)).as("its registration was refused, so it is closed")
                    .isTrue();
            // The accept that closed it has returned once the listener's loop runs a task submitted after it.
            listenerLoop.submit(() -> { }).sync();

            assertThat(refused).as("it was admitted, not refused").hasValue(0);
            assertThat(shuttingDown.open()).as("its slot came back although its loop is gone").isZero();
        } finally {
            // Closes the listening channel on its loop too.
            listenerLoop.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        }
    }

    private Socket connect() throws IOException {
        Socket socket = new Socket();
        opened.add(socket);
        socket.connect(server.getLocalAddress());
        return socket;
    }

    /** The accepted connection as Netty's listening channel hands it on: a child channel not yet registered. */
    private Channel accept() throws IOException {
        java.nio.channels.SocketChannel accepted = server.accept();
        opened.add(accepted);
        return new NioSocketChannel(accepted);
    }
}
