package dev.mtlsproxy.core.http;

import io.netty.handler.codec.DecoderException;

/** A backend's response the proxy refuses to relay; the message says what was wrong, for the log. */
public final class InvalidResponseException extends DecoderException {
    private static final long serialVersionUID = 1L;

    InvalidResponseException(String message) {
        super(message);
    }
}
