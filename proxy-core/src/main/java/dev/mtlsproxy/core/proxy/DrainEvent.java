package dev.mtlsproxy.core.proxy;

/**
 * Fired into every client connection's pipeline when the proxy drains for shutdown: an idle keep-alive connection
 * (answered, nothing of a next request read) closes now; any other closes once its next response is written (with
 * {@code Connection: close}). See {@link ExchangeSequencer}.
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
