package dev.mtlsproxy.core.http;

import java.time.Duration;

/**
 * A request head that was not complete the listener's {@code requestHeaderTimeout} after its first bytes were read:
 * the failed decoder result the codec hands on, which the request guard answers 408.
 */
public final class RequestHeadTimeoutException extends Exception {

    private static final long serialVersionUID = 1L;

    RequestHeadTimeoutException(Duration timeout) {
        super("request head not complete within " + timeout.toMillis() + "ms", null, false, false);
    }
}
