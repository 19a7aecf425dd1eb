package dev.mtlsproxy.core.proxy;

/**
 * Fired into every client connection's pipeline when the proxy drains for shutdown: an idle keep-alive connection
 * closes now, a connection with a request in flight closes once its response is written (with
 * {@code Connection: close}).
 */
final class DrainEvent {

    static final DrainEvent INSTANCE = new DrainEvent();

    private DrainEvent() {
    }

    @Override
    public String toString() {
        return "DrainEvent";
    }
}
