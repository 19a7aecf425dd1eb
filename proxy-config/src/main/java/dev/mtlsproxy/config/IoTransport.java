package dev.mtlsproxy.config;

/**
 * How the event loops do their network I/O on Linux. {@code auto}: epoll where the platform has it, else Java NIO.
 * {@code io_uring}: the kernel's submission queues, fewer system calls per request (docs/BENCHMARKS.md); it must be
 * allowed where the proxy runs, and container runtimes' default seccomp profiles block it. Asked for and not
 * available, the proxy does not start, rather than run slower than configured without saying so.
 */
public enum IoTransport implements YamlEnum {
    AUTO("auto"),
    EPOLL("epoll"),
    IO_URING("io_uring"),
    NIO("nio");

    private final String text;

    IoTransport(String text) {
        this.text = text;
    }

    @Override
    public String yaml() {
        return text;
    }
}
