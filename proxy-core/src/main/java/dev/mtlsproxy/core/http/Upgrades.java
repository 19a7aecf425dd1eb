package dev.mtlsproxy.core.http;

import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import java.util.List;

/**
 * Which protocol upgrades the proxy passes on: WebSocket only. Any other {@code Upgrade} (h2c above all) is removed
 * like every hop-by-hop header, because a tunnel of another HTTP version would carry requests the proxy never
 * authorised ("h2c smuggling"). A WebSocket tunnel carries frames of the one authorised exchange.
 */
public final class Upgrades {

    private Upgrades() {
    }

    /**
     * Whether this request asks to switch to WebSocket in a way the proxy relays: HTTP/1.1, {@code Connection:
     * upgrade}, exactly one {@code Upgrade: websocket}, and no body.
     */
    public static boolean isWebSocketRequest(HttpRequest request) {
        HttpHeaders headers = request.headers();
        if (!request.protocolVersion().equals(HttpVersion.HTTP_1_1)) {
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

    /** Whether the backend's answer switches to WebSocket: 101 with {@code Upgrade: websocket}. */
    public static boolean isWebSocketAccepted(HttpResponse response) {
        return response.status().code() == HttpResponseStatus.SWITCHING_PROTOCOLS.code()
                && HttpHeaderValues.WEBSOCKET.contentEqualsIgnoreCase(
                        String.valueOf(response.headers().get(HttpHeaderNames.UPGRADE)).trim());
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
