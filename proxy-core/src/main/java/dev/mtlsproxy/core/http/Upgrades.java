package dev.mtlsproxy.core.http;

import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Base64;
import java.util.List;

/**
 * Which protocol upgrades the proxy passes on: WebSocket only. Any other {@code Upgrade} (h2c above all) is removed
 * like every hop-by-hop header, because a tunnel of another HTTP version would carry requests the proxy never
 * authorised ("h2c smuggling"). A WebSocket tunnel carries frames of the one authorised exchange.
 *
 * <p>The switch is bound to the request: a 101 opens a tunnel only when it carries the {@code Sec-WebSocket-Accept}
 * computed from that request's {@code Sec-WebSocket-Key} (RFC 6455 4.2.2). Any other 101, such as one from a backend
 * that lets the client choose a status, would hand the client a raw connection to the backend on which no request
 * is judged any more; it is refused with 502, as a WebSocket client would refuse it (RFC 6455 4.1).
 */
public final class Upgrades {

    /** RFC 6455 1.3: appended to the key before hashing. */
    private static final byte[] ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11".getBytes(StandardCharsets.US_ASCII);

    private Upgrades() {
    }

    /**
     * Whether this request asks to switch to WebSocket in a way the proxy relays: a GET (RFC 6455 4.1) in HTTP/1.1,
     * {@code Connection: upgrade}, exactly one {@code Upgrade: websocket}, exactly one {@code Sec-WebSocket-Key}, and
     * no body.
     */
    public static boolean isWebSocketRequest(HttpRequest request) {
        HttpHeaders headers = request.headers();
        // Called for every request: most have no Upgrade, and contains() answers that without building a list.
        if (!request.protocolVersion().equals(HttpVersion.HTTP_1_1) || !HttpMethod.GET.equals(request.method())
                || !headers.contains(HttpHeaderNames.UPGRADE)) {
            return false;
        }
        List<String> key = headers.getAll(HttpHeaderNames.SEC_WEBSOCKET_KEY);
        if (key.size() != 1 || key.get(0).isBlank()) {
            return false;
        }
        List<String> upgrade = headers.getAll(HttpHeaderNames.UPGRADE);
        if (upgrade.size() != 1 || !HttpHeaderValues.WEBSOCKET.contentEqualsIgnoreCase(upgrade.get(0).trim())) {
            return false;
        }
        if (HttpUtil.isTransferEncodingChunked(request) || HttpUtil.getContentLength(request, 0L) != 0) {
            return false;
        }
        return connectionHasUpgrade(headers);
    }

    /** The {@code Sec-WebSocket-Accept} that answers a {@link #isWebSocketRequest WebSocket request}. */
    public static String expectedAccept(HttpRequest request) {
        try {
            MessageDigest sha1 = MessageDigest.getInstance("SHA-1");
            sha1.update(request.headers().get(HttpHeaderNames.SEC_WEBSOCKET_KEY).trim()
                    .getBytes(StandardCharsets.ISO_8859_1));
            return Base64.getEncoder().encodeToString(sha1.digest(ACCEPT_GUID));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java platform has SHA-1", e);
        }
    }

    /**
     * Why the backend's 101 is not the answer to the WebSocket request whose {@code Sec-WebSocket-Accept} is
     * {@code expectedAccept}, or null when it is: HTTP/1.1, exactly one {@code Upgrade: websocket},
     * {@code Connection: upgrade}, the accept value (RFC 6455 4.2.2), and no {@code Content-Length} or
     * {@code Transfer-Encoding}, which no 1xx may have (RFC 9110 8.6, RFC 9112 6.1) and which would make the bytes
     * after it both a body and the tunnel.
     */
    public static String whyNotWebSocketAnswer(HttpResponse response, String expectedAccept) {
        if (!response.protocolVersion().equals(HttpVersion.HTTP_1_1)) {
            // HTTP/1.0 defines no 1xx status (RFC 9110 15.2) and no Upgrade: whatever this is, it is not a switch.
            return "101 in an HTTP/1.0 response";
        }
        HttpHeaders headers = response.headers();
        List<String> upgrade = headers.getAll(HttpHeaderNames.UPGRADE);
        if (upgrade.size() != 1 || !HttpHeaderValues.WEBSOCKET.contentEqualsIgnoreCase(upgrade.get(0).trim())) {
            return "101 without exactly one Upgrade: websocket";
        }
        if (!connectionHasUpgrade(headers)) {
            return "101 without Connection: upgrade";
        }
        List<String> accept = headers.getAll(HttpHeaderNames.SEC_WEBSOCKET_ACCEPT);
        if (accept.size() != 1 || !accept.get(0).trim().equals(expectedAccept)) {
            return "101 whose Sec-WebSocket-Accept does not answer the request's key";
        }
        if (headers.contains(HttpHeaderNames.CONTENT_LENGTH) || headers.contains(HttpHeaderNames.TRANSFER_ENCODING)) {
            return "101 with a Content-Length or Transfer-Encoding";
        }
        return null;
    }

    /** Restores what the hop-by-hop strip removed, so the next hop sees the upgrade too. */
    public static void keepWebSocketUpgrade(HttpHeaders headers) {
        headers.set(HttpHeaderNames.UPGRADE, HttpHeaderValues.WEBSOCKET);
        headers.set(HttpHeaderNames.CONNECTION, HttpHeaderValues.UPGRADE);
    }

    private static boolean connectionHasUpgrade(HttpHeaders headers) {
        for (String connection : headers.getAll(HttpHeaderNames.CONNECTION)) {
            for (String token : connection.split(",")) {
                if (HttpHeaderValues.UPGRADE.contentEqualsIgnoreCase(token.trim())) {
                    return true;
                }
            }
        }
        return false;
    }
}
