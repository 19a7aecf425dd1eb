package dev.mtlsproxy.core.http;

import dev.mtlsproxy.core.identity.PeerIdentity;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.util.AsciiString;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * Header rewriting at the proxy boundary, both directions.
 *
 * <p>Identity headers are the security contract with the backend: whatever a client sent under those names is
 * removed before anything is added, on every request, so a backend can trust them.
 */
public final class ForwardedHeaders {

    /** RFC 9110 7.6.1 hop-by-hop fields; framing (Transfer-Encoding, Content-Length) is handled by the codecs. */
    // Arrays, not lists, for the loops that run on every message: iterating a List.of allocates an iterator.
    private static final AsciiString[] HOP_BY_HOP = {
        HttpHeaderNames.CONNECTION, AsciiString.cached("keep-alive"), AsciiString.cached("proxy-connection"),
        HttpHeaderNames.PROXY_AUTHENTICATE, HttpHeaderNames.PROXY_AUTHORIZATION, HttpHeaderNames.TE,
        HttpHeaderNames.TRAILER, HttpHeaderNames.UPGRADE};

    private static final char[] HEX = "0123456789ABCDEF".toCharArray();

    /**
     * Headers that carry a client identity in some proxy's convention (Envoy, nginx, HAProxy, cloud load balancers).
     * A client must never be able to set any of them.
     */
    public static final List<AsciiString> IDENTITY_HEADERS = List.of(
            AsciiString.cached("x-forwarded-client-cert"),
            AsciiString.cached("x-client-cert"),
            AsciiString.cached("x-client-cert-chain"),
            AsciiString.cached("x-ssl-client-cert"),
            AsciiString.cached("x-ssl-client-dn"),
            AsciiString.cached("x-ssl-client-s-dn"),
            AsciiString.cached("x-ssl-client-verify"),
            AsciiString.cached("x-client-verify"),
            AsciiString.cached("x-client-dn"),
            AsciiString.cached("ssl-client-cert"));

    /**
     * Beginnings of the names other terminators give the client certificate and its verdict, field by field, in
     * families too large to list: nginx's and HAProxy's conventions ({@code X-SSL-Client-CN}, {@code -Verify},
     * {@code -SHA1}, {@code X-SSL-Cert}), Google Cloud's load balancer ({@code X-Client-Cert-Present},
     * {@code -Chain-Verified}, {@code -Spiffe}), AWS's ALB ({@code X-Amzn-Mtls-Clientcert-Subject}), Traefik
     * ({@code X-Forwarded-Tls-Client-Cert-Info}), Azure App Service ({@code X-ARR-ClientCert}), Cloudflare
     * ({@code Cf-Client-Cert-Sha256}) and Tomcat's SSLValve ({@code ssl_client_cert},
     * {@code ssl_client_escaped_cert}). A backend moved from behind one of them still believes what they set. Matched
     * as the CGI reading does, "_" as "-" and in any case.
     */
    private static final List<AsciiString> IDENTITY_PREFIXES = List.of(
            AsciiString.cached("x-ssl-"), AsciiString.cached("x-client-cert"), AsciiString.cached("ssl-client-"),
            AsciiString.cached("x-amzn-mtls-"), AsciiString.cached("x-forwarded-tls-client-cert"),
            AsciiString.cached("x-arr-clientcert"), AsciiString.cached("cf-client-cert"));

    private static final AsciiString XFCC = IDENTITY_HEADERS.get(0);
    private static final AsciiString XFF = AsciiString.cached("x-forwarded-for");
    private static final AsciiString XFP = AsciiString.cached("x-forwarded-proto");
    private static final AsciiString XFH = AsciiString.cached("x-forwarded-host");
    private static final AsciiString HTTPS = AsciiString.cached("https");

    /**
     * Fields about the hop into the proxy that the proxy does not set. A client sending them would speak for the
     * proxy: Spring's ForwardedHeaderFilter, for one, reads Forwarded before any X-Forwarded-* field.
     */
    private static final List<AsciiString> UNSET_FORWARDING = List.of(
            AsciiString.cached("forwarded"), AsciiString.cached("x-forwarded-port"),
            AsciiString.cached("x-forwarded-prefix"), AsciiString.cached("x-real-ip"));

    /**
     * The client's address in the conventions of CDNs and load balancers (Akamai and Cloudflare Enterprise,
     * Cloudflare, Fastly, Rackspace and Zeus, and generic ones), which the proxy does not set either. Backends read
     * them before the peer address: Rails' remote_ip takes Client-IP, Node's request-ip package the others, and so
     * does many a hand-written "real IP" helper behind a rate limit or an allow-list.
     */
    private static final List<AsciiString> UNSET_CLIENT_ADDRESS = List.of(
            AsciiString.cached("true-client-ip"), AsciiString.cached("x-client-ip"), AsciiString.cached("client-ip"),
            AsciiString.cached("cf-connecting-ip"), AsciiString.cached("fastly-client-ip"),
            AsciiString.cached("x-cluster-client-ip"));

    /**
     * Fields that restate the request's target or method, which some backends obey instead of the request line:
     * Symfony (so Laravel) takes the method of a POST from X-HTTP-Method-Override, and older Symfony and Zend took
     * the path from X-Original-URL or X-Rewrite-URL (CVE-2018-14773); an authorisation service behind nginx's
     * auth_request or Traefik's forwardAuth judges the request that X-Original-URI, or X-Forwarded-Uri and
     * X-Forwarded-Method, name. The policy judged the request line; a client must not be able to name another
     * request behind it.
     *
     * <p>gunicorn sets its WSGI environment's SCRIPT_NAME and PATH_INFO from request fields of those very names
     * (and REMOTE_USER where configured) when the peer is a trusted proxy, which by default is any peer on 127.0.0.1,
     * so a sidecar proxy: with {@code SCRIPT_NAME: /public}, {@code /public/admin} is served as {@code /admin}
     * (gunicorn#2650; nginx is safe only because it drops fields with underscores). The ReverseProxied middleware
     * of Flask's deployment snippets does the same with X-Script-Name. Listed with "-" like every other name: the
     * spellings with "_", the ones gunicorn reads, go with them.
     */
    private static final List<AsciiString> RESTATEMENTS = List.of(
            AsciiString.cached("x-original-url"), AsciiString.cached("x-rewrite-url"),
            AsciiString.cached("x-original-uri"), AsciiString.cached("x-forwarded-uri"),
            AsciiString.cached("x-forwarded-method"),
            AsciiString.cached("x-http-method-override"), AsciiString.cached("x-http-method"),
            AsciiString.cached("x-method-override"),
            AsciiString.cached("script-name"), AsciiString.cached("path-info"), AsciiString.cached("remote-user"),
            AsciiString.cached("x-script-name"));

    /**
     * Connection-specific fields that only requests carry, so responses are not searched for them. HTTP2-Settings
     * belongs to the h2c upgrade (RFC 7540 3.2.1), which is never relayed: a compliant client names it in
     * Connection, which removes it already; one that does not must not get it to the backend either.
     */
    private static final List<AsciiString> REQUEST_HOP_BY_HOP = List.of(AsciiString.cached("http2-settings"));

    /**
     * Proxy, which no HTTP standard defines: CGI passes it to the backend as HTTP_PROXY, the variable HTTP client
     * libraries read their outbound proxy from (httpoxy, CVE-2016-5385), so a client could send the backend's own
     * calls through a server of its choosing. nginx's and Apache's advice is to drop it; so does the proxy.
     */
    private static final List<AsciiString> CGI_HAZARDS = List.of(AsciiString.cached("proxy"));

    /**
     * What a request never brings to the backend from the client, whichever list above gave the name: removed in
     * one loop over one array, a hash lookup each, before the proxy sets its own fields.
     */
    private static final AsciiString[] REMOVED = concat(IDENTITY_HEADERS, UNSET_FORWARDING, UNSET_CLIENT_ADDRESS,
            RESTATEMENTS, REQUEST_HOP_BY_HOP, CGI_HAZARDS);

    /**
     * Every name the proxy sets or removes from requests as the backend's source of truth about the client, the
     * request or the hop: none may arrive in trailers, nor spelled with underscores.
     */
    private static final AsciiString[] OWNED = concat(Arrays.asList(REMOVED), List.of(XFF, XFP, XFH));

    /**
     * Names whose spelling with "_" for "-" is removed from requests and their trailers: the owned ones, and the
     * hop-by-hop and framing fields, which the proxy removes or sets itself in their "-" spelling. A CGI-style
     * backend reads {@code Transfer_Encoding} as HTTP_TRANSFER_ENCODING and {@code Keep_Alive} as HTTP_KEEP_ALIVE,
     * the variables of the fields the proxy decided, and would believe a framing or a hop it never forwarded. Only
     * names with a "-" have such a spelling, so only those are kept (Connection, TE, Trailer, Upgrade have none).
     */
    private static final AsciiString[] UNDERSCORE_SPELLED = withDash(Arrays.asList(OWNED), Arrays.asList(HOP_BY_HOP),
            List.of(HttpHeaderNames.CONTENT_LENGTH, HttpHeaderNames.TRANSFER_ENCODING));

    @SafeVarargs
    private static AsciiString[] concat(List<AsciiString>... lists) {
        List<AsciiString> names = new ArrayList<>();
        for (List<AsciiString> list : lists) {
            names.addAll(list);
        }
        return names.toArray(new AsciiString[0]);
    }

    @SafeVarargs
    private static AsciiString[] withDash(List<AsciiString>... lists) {
        return Arrays.stream(concat(lists)).filter(n -> n.contains("-")).toArray(AsciiString[]::new);
    }

    private ForwardedHeaders() {
    }

    /**
     * Prepares request headers for the backend.
     *
     * @param by the proxy's own URI SAN for the XFCC {@code By} element, or null
     */
    public static void forBackend(HttpHeaders headers, SocketAddress client, PeerIdentity peer, String by) {
        forBackend(headers, clientIp(client), clientCertHeader(peer, by));
    }

    /**
     * As {@link #forBackend(HttpHeaders, SocketAddress, PeerIdentity, String)}, with the parts that are fixed for a
     * connection (the client's address and certificate) computed once by the caller: {@link #clientIp} and
     * {@link #clientCertHeader}. Pass them as {@link AsciiString}s where they are reused: the encoder copies those
     * as bytes instead of character by character, and the XFCC value is most of a forwarded request head.
     */
    public static void forBackend(HttpHeaders headers, CharSequence clientIp, CharSequence xfcc) {
        removeHopByHop(headers, true);
        for (AsciiString name : REMOVED) {
            headers.remove(name);
        }
        removeSpoofedSpellings(headers);
        if (!headers.contains(XFF)) {
            headers.set(XFF, clientIp);
        } else {
            StringBuilder chain = new StringBuilder();
            for (String prior : headers.getAll(XFF)) {
                if (!prior.isBlank()) {
                    chain.append(prior.trim()).append(", ");
                }
            }
            headers.set(XFF, chain.append(clientIp).toString());
        }
        headers.set(XFP, HTTPS);
        String host = headers.get(HttpHeaderNames.HOST);
        if (host != null) {
            headers.set(XFH, host);
        } else {
            headers.remove(XFH);
        }
        headers.set(XFCC, xfcc);
    }

    /** The client's address as X-Forwarded-For carries it. */
    public static String clientIp(SocketAddress client) {
        return client instanceof InetSocketAddress inet && inet.getAddress() != null
                ? inet.getAddress().getHostAddress() : String.valueOf(client);
    }

    /**
     * Prepares the trailer fields of a chunked request for the backend. A client could otherwise deliver an identity
     * header after the body, to a backend that merges trailers into headers. Framing fields never appear here (the
     * decoder drops them).
     */
    public static void trailersForBackend(HttpHeaders trailers) {
        if (trailers.isEmpty()) {
            return;
        }
        for (AsciiString name : OWNED) {
            trailers.remove(name);
        }
        trailers.remove(HttpHeaderNames.HOST);
        removeSpoofedSpellings(trailers);
        removeHopByHop(trailers, true);
    }

    /**
     * Removes fields whose name is one of {@link #UNDERSCORE_SPELLED} with "_" in place of "-", and those of the
     * certificate families of {@link #IDENTITY_PREFIXES} in any spelling. Servers that turn field names into
     * CGI-style variables (Rack and Puma, gunicorn, PHP) give {@code X_SSL_Client_DN} and {@code X-SSL-Client-DN}
     * the same name, HTTP_X_SSL_CLIENT_DN; nginx drops every field with an underscore by default for this reason.
     * One pass over the fields present: most names are told apart by their first letter, and only a name with an
     * "_" is compared with the names above, the length first.
     */
    private static void removeSpoofedSpellings(HttpHeaders headers) {
        List<String> spoofed = null;
        for (Iterator<Map.Entry<CharSequence, CharSequence>> it = headers.iteratorCharSequence(); it.hasNext(); ) {
            CharSequence name = it.next().getKey();
            if (hasIdentityPrefix(name)
                    || (AsciiString.indexOf(name, '_', 0) >= 0 && isRemovedWithUnderscores(name))) {
                if (spoofed == null) {
                    spoofed = new ArrayList<>(2);
                }
                spoofed.add(name.toString());
            }
        }
        if (spoofed != null) {
            spoofed.forEach(headers::remove);
        }
    }

    private static boolean hasIdentityPrefix(CharSequence name) {
        char first = name.isEmpty() ? 0 : AsciiString.toLowerCase(name.charAt(0));
        if (first != 'x' && first != 's' && first != 'c') {
            return false;
        }
        for (AsciiString prefix : IDENTITY_PREFIXES) {
            if (name.length() >= prefix.length() && readsAs(prefix, name, prefix.length())) {
                return true;
            }
        }
        return false;
    }

    private static boolean isRemovedWithUnderscores(CharSequence name) {
        for (AsciiString owned : UNDERSCORE_SPELLED) {
            if (owned.length() == name.length() && readsAs(owned, name, name.length())) {
                return true;
            }
        }
        return false;
    }

    /** Whether the first {@code length} characters of {@code name} read as {@code owned}'s, "_" as "-", any case. */
    private static boolean readsAs(AsciiString owned, CharSequence name, int length) {
        for (int i = 0; i < length; i++) {
            char c = name.charAt(i);
            char expected = (char) owned.byteAt(i);
            if (c == '_' ? expected != '-' : AsciiString.toLowerCase(c) != expected) {
                return false;
            }
        }
        return true;
    }

    /** Prepares response headers (or trailers) for the client. */
    public static void forClient(HttpHeaders headers) {
        removeHopByHop(headers, false);
    }

    /**
     * Fields a peer must never be able to make us drop by naming them in Connection: without them the message's
     * framing or target changes between what we checked and what we forward. RequestGuard refuses such requests
     * outright; this is the second line.
     */
    public static boolean isProtectedFromConnection(String name) {
        return isFraming(name) || HttpHeaderNames.HOST.contentEqualsIgnoreCase(name);
    }

    /** Framing fields: protected in responses too, where Host targets nothing and goes like any field named. */
    private static boolean isFraming(String name) {
        return HttpHeaderNames.CONTENT_LENGTH.contentEqualsIgnoreCase(name)
                || HttpHeaderNames.TRANSFER_ENCODING.contentEqualsIgnoreCase(name);
    }

    /** @param request whether these are a request's fields, where a named Host is kept too */
    private static void removeHopByHop(HttpHeaders headers, boolean request) {
        // Fields named in Connection are hop-by-hop too (RFC 9110 7.6.1), except the protected ones. Most requests
        // have no Connection field, and getAll builds a list even for none.
        if (headers.contains(HttpHeaderNames.CONNECTION)) {
            for (String connection : headers.getAll(HttpHeaderNames.CONNECTION)) {
                for (String token : connection.split(",")) {
                    String name = token.trim();
                    if (!name.isEmpty() && !(request ? isProtectedFromConnection(name) : isFraming(name))) {
                        headers.remove(name);
                    }
                }
            }
        }
        for (AsciiString name : HOP_BY_HOP) {
            headers.remove(name);
        }
    }

    /**
     * Envoy's {@code x-forwarded-client-cert} format: {@code By=..;Hash=..;Subject="..";URI=..;DNS=..}. Values that
     * contain {@code , ; = "} are quoted, with {@code "} escaped, so a crafted SAN cannot inject elements.
     *
     * <p>A header carries bytes, one per character: the encoder writes a character above U+00FF as {@code ?} and one
     * from U+0080 as a Latin-1 byte, so {@code CN=日本} and {@code CN=中国} both reached the backend as {@code CN=??}.
     * Every character outside printable ASCII is therefore written as the escapes of its UTF-8 bytes that its syntax
     * has: {@code \XX} in the subject (RFC 4514, and what OpenSSL's RFC 2253 output, Envoy's subject, writes),
     * {@code %XX} in a URI or DNS name (RFC 3987's mapping of an IRI to a URI).
     */
    public static String clientCertHeader(PeerIdentity peer, String by) {
        StringBuilder b = new StringBuilder(256);
        if (by != null) {
            element(b, "By", ascii(by, '%'), false);
        }
        element(b, "Hash", peer.sha256(), false);
        element(b, "Subject", ascii(peer.subject(), '\\'), true);
        for (String uri : peer.uriSans()) {
            element(b, "URI", ascii(uri, '%'), false);
        }
        for (String dns : peer.dnsSans()) {
            element(b, "DNS", ascii(dns, '%'), false);
        }
        return b.toString();
    }

    /** {@code text} with every character outside printable ASCII written as {@code escape} and hex, per UTF-8 byte. */
    private static String ascii(String text, char escape) {
        int i = 0;
        while (i < text.length() && text.charAt(i) >= 0x20 && text.charAt(i) < 0x7f) {
            i++;
        }
        if (i == text.length()) {
            return text;
        }
        StringBuilder b = new StringBuilder(text.length() + 16).append(text, 0, i);
        while (i < text.length()) {
            int c = text.codePointAt(i);
            i += Character.charCount(c);
            if (c >= 0x20 && c < 0x7f) {
                b.append((char) c);
                continue;
            }
            // A lone surrogate has no UTF-8 form; the JDK's encoder would write it as '?', which is text.
            boolean lone = c >= Character.MIN_SURROGATE && c <= Character.MAX_SURROGATE;
            String character = lone ? "\uFFFD" : Character.toString(c);
            for (byte octet : character.getBytes(StandardCharsets.UTF_8)) {
                b.append(escape).append(HEX[(octet >> 4) & 0xf]).append(HEX[octet & 0xf]);
            }
        }
        return b.toString();
    }

    private static void element(StringBuilder b, String key, String value, boolean alwaysQuote) {
        if (b.length() > 0) {
            b.append(';');
        }
        b.append(key).append('=');
        boolean quote = alwaysQuote;
        for (int i = 0; i < value.length() && !quote; i++) {
            char c = value.charAt(i);
            quote = c == ',' || c == ';' || c == '=' || c == '"';
        }
        if (!quote) {
            b.append(value);
            return;
        }
        b.append('"');
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            if (c == '"' || c == '\\') {
                b.append('\\');
            }
            b.append(c);
        }
        b.append('"');
    }
}
