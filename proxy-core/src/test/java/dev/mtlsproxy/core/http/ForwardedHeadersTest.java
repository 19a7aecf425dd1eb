package dev.mtlsproxy.core.http;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mtlsproxy.core.identity.PeerIdentity;
import io.netty.handler.codec.http.DefaultHttpHeaders;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.util.AsciiString;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Stream;
import javax.security.auth.x500.X500Principal;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/** Header rewriting at the proxy boundary: what the backend may trust, and what must not cross. */
class ForwardedHeadersTest {

    static final String ORDERS_ID = "spiffe://prod.test/ns/shop/sa/orders";
    static final String PROXY_ID = "spiffe://proxy.test/mtls-proxy";
    static final String HASH = "3f1c9a8b7e6d5c4b3a29180706f5e4d3c2b1a09f8e7d6c5b4a3928170605f4e3";
    static final PeerIdentity ORDERS = peer(ORDERS_ID, List.of(ORDERS_ID), List.of("orders.shop.internal"),
            "CN=orders,O=mtls-proxy tests");

    // ---- X-Forwarded-Client-Cert -------------------------------------------------------------------------------

    @Test
    void clientCertHeaderHasEnvoysExactFormat() throws Exception {
        HttpHeaders headers = new DefaultHttpHeaders().set("host", "api.example.com");

        ForwardedHeaders.forBackend(headers, client("192.0.2.10"), ORDERS, PROXY_ID);

        assertThat(headers.getAll("x-forwarded-client-cert")).containsExactly(
                "By=spiffe://proxy.test/mtls-proxy"
                        + ";Hash=" + HASH
                        + ";Subject=\"CN=orders,O=mtls-proxy tests\""
                        + ";URI=spiffe://prod.test/ns/shop/sa/orders"
                        + ";DNS=orders.shop.internal");
    }

    @Test
    void clientCertHeaderWithoutByStartsWithTheHashAndListsEverySan() {
        PeerIdentity peer = peer(ORDERS_ID, List.of(ORDERS_ID, "https://docs.example.test/orders"),
                List.of("orders.shop.internal", "orders-v2.shop.internal"), "CN=orders");

        assertThat(ForwardedHeaders.clientCertHeader(peer, null)).isEqualTo(
                "Hash=" + HASH
                        + ";Subject=\"CN=orders\""
                        + ";URI=spiffe://prod.test/ns/shop/sa/orders"
                        + ";URI=https://docs.example.test/orders"
                        + ";DNS=orders.shop.internal"
                        + ";DNS=orders-v2.shop.internal");
    }

    @Test
    void craftedUriSanCannotInjectAnElementOrAKey() {
        // A URI may legally contain , ; and = : unquoted, this would read as a second element whose URI is admin's.
        String crafted = "spiffe://prod.test/ns/a,By=x;URI=spiffe://prod.test/ns/ops/sa/admin";
        PeerIdentity peer = peer(null, List.of(crafted), List.of(), "CN=a");

        String xfcc = ForwardedHeaders.clientCertHeader(peer, PROXY_ID);

        assertThat(xfcc).isEqualTo("By=spiffe://proxy.test/mtls-proxy;Hash=" + HASH + ";Subject=\"CN=a\""
                + ";URI=\"spiffe://prod.test/ns/a,By=x;URI=spiffe://prod.test/ns/ops/sa/admin\"");
        List<List<Map.Entry<String, String>>> elements = parseXfcc(xfcc);
        assertThat(elements).hasSize(1);
        assertThat(elements.get(0)).containsExactly(
                Map.entry("By", PROXY_ID),
                Map.entry("Hash", HASH),
                Map.entry("Subject", "CN=a"),
                Map.entry("URI", crafted));
    }

    @Test
    void quotesAndBackslashesInTheSubjectAreEscapedAndRoundTrip() {
        // RFC 2253 already escapes '"' and ',' inside a value with a backslash; both layers must survive.
        String subject = "CN=say \\\"hi\\\"\\, then;leave,O=x=y";
        PeerIdentity peer = peer(null, List.of(), List.of("a.example.test"), subject);

        String xfcc = ForwardedHeaders.clientCertHeader(peer, null);

        assertThat(xfcc).isEqualTo("Hash=" + HASH + ";Subject=\"CN=say \\\\\\\"hi\\\\\\\"\\\\, then;leave,O=x=y\""
                + ";DNS=a.example.test");
        List<List<Map.Entry<String, String>>> elements = parseXfcc(xfcc);
        assertThat(elements).hasSize(1);
        assertThat(elements.get(0)).containsExactly(
                Map.entry("Hash", HASH),
                Map.entry("Subject", subject),
                Map.entry("DNS", "a.example.test"));
    }

    @Test
    void valueContainingOnlyAnEqualsSignIsQuoted() {
        PeerIdentity peer = peer(null, List.of("urn:x=y"), List.of(), "CN=a");

        assertThat(ForwardedHeaders.clientCertHeader(peer, null)).endsWith(";URI=\"urn:x=y\"");
    }

    @Test
    void lineBreaksNeverReachTheHeaderEvenInUnquotedValues() {
        PeerIdentity peer = peer(null, List.of(), List.of("a.example.test\r\nx-injected: 1"), "CN=a");

        assertThat(ForwardedHeaders.clientCertHeader(peer, null)).doesNotContain("\r").doesNotContain("\n");
    }

    @Test
    void everyCharacterOutsidePrintableAsciiIsWrittenAsTheEscapesOfItsUtf8Bytes() {
        // A header carries one byte per character: the encoder wrote U+00E9 as a Latin-1 byte, anything above U+00FF
        // as '?' (two subjects in another script became one), and this class wrote a line break as a space.
        PeerIdentity peer = peer(null, List.of("https://example.test/caf\u00e9"), List.of(),
                "CN=a\nb,O=\uD83D\uDE00 \uD800x");

        assertThat(ForwardedHeaders.clientCertHeader(peer, null)).isEqualTo("Hash=" + HASH
                + ";Subject=\"CN=a\\\\0Ab,O=\\\\F0\\\\9F\\\\98\\\\80 \\\\EF\\\\BF\\\\BDx\""
                + ";URI=https://example.test/caf%C3%A9");
    }

    @Test
    void anEscapedSubjectReadsBackAsTheSameDistinguishedName() {
        X500Principal subject = new X500Principal("CN=\u65e5\u672c,O=Jos\u00e9\\, Ltd");
        PeerIdentity peer = peer(null, List.of(), List.of(), subject.getName(X500Principal.RFC2253));

        String sent = parseXfcc(ForwardedHeaders.clientCertHeader(peer, null)).get(0).get(1).getValue();

        assertThat(sent).isEqualTo("CN=\\E6\\97\\A5\\E6\\9C\\AC,O=Jos\\C3\\A9\\, Ltd");
        assertThat(new X500Principal(sent)).isEqualTo(subject);
    }

    // ---- identity headers from the client ----------------------------------------------------------------------

    static Stream<AsciiString> identityHeaders() {
        return ForwardedHeaders.IDENTITY_HEADERS.stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("identityHeaders")
    void identityHeaderSentByTheClientNeverReachesTheBackend(AsciiString name) {
        String spoofed = "By=spiffe://proxy.test/mtls-proxy;URI=spiffe://prod.test/ns/ops/sa/admin";
        HttpHeaders headers = new DefaultHttpHeaders()
                .set("host", "api.example.com")
                .add(shouted(name), spoofed)
                .add(name, spoofed);

        ForwardedHeaders.forBackend(headers, client("192.0.2.10"), ORDERS, PROXY_ID);

        if (name.contentEqualsIgnoreCase("x-forwarded-client-cert")) {
            assertThat(headers.getAll(name)).containsExactly(ForwardedHeaders.clientCertHeader(ORDERS, PROXY_ID));
        } else {
            assertThat(headers.contains(name)).as("%s still present", name).isFalse();
        }
        assertThat(headers.toString()).doesNotContain("ops/sa/admin");
    }

    @Test
    void identityHeadersAreTheKnownConventions() {
        assertThat(ForwardedHeaders.IDENTITY_HEADERS).extracting(AsciiString::toString).containsExactly(
                "x-forwarded-client-cert", "x-client-cert", "x-client-cert-chain", "x-ssl-client-cert",
                "x-ssl-client-dn", "x-ssl-client-s-dn", "x-ssl-client-verify", "x-client-verify", "x-client-dn",
                "ssl-client-cert");
    }

    @Test
    void namingTheClientCertHeaderInConnectionCannotSuppressIt() {
        // Apache's CVE-2022-31813: a client listing X-Forwarded-* in Connection made the proxy drop them.
        HttpHeaders headers = new DefaultHttpHeaders()
                .set("host", "api.example.com")
                .set("connection", "x-forwarded-client-cert, x-forwarded-for, x-forwarded-proto");

        ForwardedHeaders.forBackend(headers, client("192.0.2.10"), ORDERS, PROXY_ID);

        assertThat(headers.get("x-forwarded-client-cert")).isEqualTo(ForwardedHeaders.clientCertHeader(ORDERS,
                PROXY_ID));
        assertThat(headers.get("x-forwarded-for")).isEqualTo("192.0.2.10");
        assertThat(headers.get("x-forwarded-proto")).isEqualTo("https");
    }

    // ---- hop-by-hop ---------------------------------------------------------------------------------------------

    @Test
    void hopByHopHeadersAndThoseNamedInConnectionAreRemoved() {
        HttpHeaders headers = new DefaultHttpHeaders()
                .set("host", "api.example.com")
                .add("Connection", "keep-alive, X-Debug-Token")
                .add("connection", "x-trace-hop ,upgrade")
                .set("Keep-Alive", "timeout=5")
                .set("Proxy-Connection", "keep-alive")
                .set("Proxy-Authenticate", "Basic")
                .set("Proxy-Authorization", "Basic dXNlcjpwdw==")
                .set("TE", "trailers")
                .set("Trailer", "x-checksum")
                .set("Upgrade", "h2c")
                // Not named in Connection, as a compliant h2c client would: connection-specific all the same.
                .set("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")
                .set("X-Debug-Token", "abc")
                .set("X-Trace-Hop", "1")
                .set("Accept", "application/json")
                .set("Authorization", "Bearer end-to-end");

        ForwardedHeaders.forBackend(headers, client("192.0.2.10"), ORDERS, PROXY_ID);

        assertThat(headers.names()).containsExactlyInAnyOrder("host", "Accept", "Authorization",
                "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-client-cert");
        assertThat(headers.get("Authorization")).isEqualTo("Bearer end-to-end");
    }

    @Test
    void responseHopByHopHeadersAreRemovedForTheClient() {
        HttpHeaders headers = new DefaultHttpHeaders()
                .set("Connection", "keep-alive, X-Backend-Hop")
                .set("Keep-Alive", "timeout=60")
                .set("X-Backend-Hop", "node-7")
                .set("Upgrade", "websocket")
                .set("Content-Type", "text/plain")
                .set("Content-Length", "5");

        ForwardedHeaders.forClient(headers);

        assertThat(headers.names()).containsExactlyInAnyOrder("Content-Type", "Content-Length");
    }

    @Test
    void connectionCannotStripTheRequestsFraming() {
        HttpHeaders lengthFramed = new DefaultHttpHeaders()
                .set("host", "api.example.com")
                .set("content-length", "47")
                .set("connection", "keep-alive, content-length");
        HttpHeaders chunked = new DefaultHttpHeaders()
                .set("host", "api.example.com")
                .set("transfer-encoding", "chunked")
                .set("connection", "transfer-encoding");

        ForwardedHeaders.forBackend(lengthFramed, client("192.0.2.10"), ORDERS, PROXY_ID);
        ForwardedHeaders.forBackend(chunked, client("192.0.2.10"), ORDERS, PROXY_ID);

        assertThat(lengthFramed.get("content-length")).isEqualTo("47");
        assertThat(chunked.get("transfer-encoding")).isEqualTo("chunked");
    }

    @Test
    void connectionCannotStripHost() {
        HttpHeaders headers = new DefaultHttpHeaders()
                .set("host", "api.example.com")
                .set("connection", "host");

        ForwardedHeaders.forBackend(headers, client("192.0.2.10"), ORDERS, PROXY_ID);

        assertThat(headers.get("host")).isEqualTo("api.example.com");
        assertThat(headers.get("x-forwarded-host")).isEqualTo("api.example.com");
    }

    // ---- X-Forwarded-For / -Proto / -Host ----------------------------------------------------------------------

    @Test
    void forwardedForStartsWithTheClientAddress() {
        HttpHeaders headers = new DefaultHttpHeaders().set("host", "api.example.com");

        ForwardedHeaders.forBackend(headers, client("192.0.2.10"), ORDERS, PROXY_ID);

        assertThat(headers.getAll("x-forwarded-for")).containsExactly("192.0.2.10");
    }

    @Test
    void forwardedForIsAppendedToTheExistingValue() {
        HttpHeaders headers = new DefaultHttpHeaders()
                .set("host", "api.example.com")
                .set("X-Forwarded-For", "203.0.113.7, 198.51.100.2");

        ForwardedHeaders.forBackend(headers, client("192.0.2.10"), ORDERS, PROXY_ID);

        assertThat(headers.getAll("x-forwarded-for")).containsExactly("203.0.113.7, 198.51.100.2, 192.0.2.10");
    }

    @Test
    void emptyForwardedForIsReplacedNotAppendedTo() {
        HttpHeaders headers = new DefaultHttpHeaders()
                .set("host", "api.example.com")
                .set("x-forwarded-for", "");

        ForwardedHeaders.forBackend(headers, client("192.0.2.10"), ORDERS, PROXY_ID);

        assertThat(headers.getAll("x-forwarded-for")).containsExactly("192.0.2.10");
    }

    @Test
    void ipv6ClientAddressIsWrittenInTheJdksTextualForm() {
        HttpHeaders headers = new DefaultHttpHeaders().set("host", "api.example.com");

        ForwardedHeaders.forBackend(headers, client("2001:db8::7"), ORDERS, PROXY_ID);

        assertThat(headers.get("x-forwarded-for")).isEqualTo("2001:db8:0:0:0:0:0:7");
    }

    @Test
    void forwardedProtoIsHttpsAndForwardedHostIsTheHostHeaderWhateverTheClientSent() {
        HttpHeaders headers = new DefaultHttpHeaders()
                .set("Host", "api.example.com:8443")
                .set("X-Forwarded-Proto", "http")
                .set("X-Forwarded-Host", "admin.internal");

        ForwardedHeaders.forBackend(headers, client("192.0.2.10"), ORDERS, PROXY_ID);

        assertThat(headers.getAll("x-forwarded-proto")).containsExactly("https");
        assertThat(headers.getAll("x-forwarded-host")).containsExactly("api.example.com:8443");
    }

    @Test
    void forwardedHostSentByTheClientIsDroppedWhenThereIsNoHost() {
        HttpHeaders headers = new DefaultHttpHeaders().set("X-Forwarded-Host", "admin.internal");

        ForwardedHeaders.forBackend(headers, client("192.0.2.10"), ORDERS, PROXY_ID);

        assertThat(headers.contains("x-forwarded-host")).isFalse();
    }

    @Test
    void forwardedFieldsTheProxyDoesNotSetAreNotTheClientsToSet() {
        HttpHeaders headers = new DefaultHttpHeaders()
                .set("host", "api.example.com")
                .set("Forwarded", "for=10.0.0.1;host=admin.internal;proto=https")
                .set("X-Forwarded-Port", "9443")
                .set("X-Forwarded-Prefix", "/admin");

        ForwardedHeaders.forBackend(headers, client("192.0.2.10"), ORDERS, PROXY_ID);

        assertThat(headers.contains("forwarded")).isFalse();
        assertThat(headers.contains("x-forwarded-port")).isFalse();
        assertThat(headers.contains("x-forwarded-prefix")).isFalse();
    }

    /**
     * CDN and load balancer conventions for the client's address, which backends read before the peer address
     * (Rails' remote_ip takes Client-IP). The proxy sets none of them.
     */
    @Test
    void clientAddressFieldsOfOtherProxiesAreNotTheClientsToSet() {
        HttpHeaders headers = new DefaultHttpHeaders()
                .set("host", "api.example.com")
                .set("True-Client-IP", "10.0.0.1")
                .set("X-Client-IP", "10.0.0.1")
                .set("Client-IP", "10.0.0.1")
                .set("CF-Connecting-IP", "10.0.0.1")
                .set("Fastly-Client-IP", "10.0.0.1")
                .set("X-Cluster-Client-IP", "10.0.0.1");

        ForwardedHeaders.forBackend(headers, client("192.0.2.10"), ORDERS, PROXY_ID);

        assertThat(headers.names()).containsExactlyInAnyOrder("host", "x-forwarded-for", "x-forwarded-proto",
                "x-forwarded-host", "x-forwarded-client-cert");
    }

    /**
     * Symfony takes a POST's method from X-HTTP-Method-Override; older Symfony and Zend the path from X-Original-URL
     * or X-Rewrite-URL; auth services behind nginx's auth_request or Traefik's forwardAuth judge the request the
     * next three name; gunicorn takes SCRIPT_NAME, PATH_INFO and REMOTE_USER from fields of those names, and Flask's
     * ReverseProxied snippet SCRIPT_NAME from X-Script-Name.
     */
    @Test
    void fieldsThatRestateTheMethodOrTheTargetAreNotTheClientsToSet() {
        HttpHeaders headers = new DefaultHttpHeaders()
                .set("host", "api.example.com")
                .set("X-HTTP-Method-Override", "DELETE")
                .set("X-HTTP-Method", "DELETE")
                .set("X-Method-Override", "DELETE")
                .set("X-Original-URL", "/admin")
                .set("X-Rewrite-URL", "/admin")
                .set("X-Original-URI", "/admin")
                .set("X-Forwarded-Uri", "/admin")
                .set("X-Forwarded-Method", "DELETE")
                .set("SCRIPT_NAME", "/public")
                .set("PATH_INFO", "/admin")
                .set("REMOTE_USER", "admin")
                .set("X-Script-Name", "/public")
                .set("X-Real-IP", "10.0.0.1");

        ForwardedHeaders.forBackend(headers, client("192.0.2.10"), ORDERS, PROXY_ID);

        assertThat(headers.names()).containsExactlyInAnyOrder("host", "x-forwarded-for", "x-forwarded-proto",
                "x-forwarded-host", "x-forwarded-client-cert");
    }

    /**
     * httpoxy (CVE-2016-5385): CGI turns a request's Proxy field into HTTP_PROXY, which HTTP client libraries (PHP's
     * Guzzle before 6.2.1, Go's net/http before 1.6.3) took as the outbound proxy for the calls the backend makes, so
     * a client could route them through a server of its own. No HTTP standard defines the field.
     */
    @Test
    void theProxyFieldThatCgiBackendsReadAsTheirOutboundProxyIsRemoved() {
        HttpHeaders headers = new DefaultHttpHeaders()
                .set("host", "api.example.com")
                .set("Proxy", "http://attacker.example:8080");

        ForwardedHeaders.forBackend(headers, client("192.0.2.10"), ORDERS, PROXY_ID);

        assertThat(headers.names()).containsExactlyInAnyOrder("host", "x-forwarded-for", "x-forwarded-proto",
                "x-forwarded-host", "x-forwarded-client-cert");
    }

    // ---- the same names with "_" for "-" -----------------------------------------------------------------------

    static Stream<String> ownedNames() {
        return Stream.concat(IDENTITY_HEADERS_AS_STRINGS.stream(), Stream.of("x-forwarded-for", "x-forwarded-proto",
                "x-forwarded-host", "forwarded", "x-forwarded-port", "x-forwarded-prefix", "x-real-ip",
                "true-client-ip", "x-client-ip", "client-ip", "cf-connecting-ip", "fastly-client-ip",
                "x-cluster-client-ip",
                "x-original-url", "x-rewrite-url", "x-original-uri", "x-forwarded-uri", "x-forwarded-method",
                "x-http-method-override", "x-http-method", "x-method-override", "script-name", "path-info",
                "remote-user", "x-script-name", "http2-settings", "proxy"));
    }

    static final List<String> IDENTITY_HEADERS_AS_STRINGS = ForwardedHeaders.IDENTITY_HEADERS.stream()
            .map(AsciiString::toString).toList();

    @ParameterizedTest(name = "{0}")
    @MethodSource("ownedNames")
    void aNameSpelledWithUnderscoresCannotReachTheBackendInHeadersOrTrailers(String name) {
        String underscored = name.replace('-', '_');
        HttpHeaders headers = new DefaultHttpHeaders()
                .set("host", "api.example.com")
                .add(underscored, "spoofed")
                .add(underscored.toUpperCase(Locale.ROOT), "spoofed");
        HttpHeaders trailers = new DefaultHttpHeaders().add(underscored, "spoofed");

        ForwardedHeaders.forBackend(headers, client("192.0.2.10"), ORDERS, PROXY_ID);
        ForwardedHeaders.trailersForBackend(trailers);

        assertThat(headers.toString()).doesNotContain("spoofed");
        assertThat(trailers.isEmpty()).isTrue();
    }

    /**
     * The hop-by-hop and framing fields the proxy removes or sets itself, spelled with "_": a CGI-style backend reads
     * them as the variables of the real ones (HTTP_TRANSFER_ENCODING, HTTP_KEEP_ALIVE).
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"Keep_Alive", "Proxy_Connection", "Proxy_Authenticate", "Proxy_Authorization",
        "Transfer_Encoding", "Content_Length", "HTTP2_Settings", "transfer_encoding", "CONTENT_LENGTH"})
    void aHopByHopOrFramingNameSpelledWithUnderscoresCannotReachTheBackendInHeadersOrTrailers(String name) {
        HttpHeaders headers = new DefaultHttpHeaders()
                .set("host", "api.example.com")
                .add(name, "spoofed");
        HttpHeaders trailers = new DefaultHttpHeaders().add(name, "spoofed");

        ForwardedHeaders.forBackend(headers, client("192.0.2.10"), ORDERS, PROXY_ID);
        ForwardedHeaders.trailersForBackend(trailers);

        assertThat(headers.toString()).doesNotContain("spoofed");
        assertThat(trailers.isEmpty()).isTrue();
    }

    /**
     * Fields other terminators set, one property of the client certificate each: a backend moved from behind nginx,
     * HAProxy, an AWS ALB, a Google Cloud load balancer, Traefik, Azure App Service, Cloudflare or a Tomcat SSLValve
     * set-up still believes them.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"X-SSL-Client-CN", "X-SSL-Client-Verify", "X-SSL-Client-SHA1", "X-SSL-Cert",
        "X-SSL-Issuer", "X-Client-Cert-Present", "X-Client-Cert-Chain-Verified", "X-Client-Cert-Spiffe",
        "X-Client-Certificate", "X-Amzn-Mtls-Clientcert", "X-Amzn-Mtls-Clientcert-Subject",
        "X-Forwarded-Tls-Client-Cert", "X-Forwarded-Tls-Client-Cert-Info", "X-ARR-ClientCert",
        "Cf-Client-Cert-Sha256", "ssl_client_cert", "ssl_client_escaped_cert", "SSL-Client-Verify",
        "x_amzn_mtls_clientcert_leaf"})
    void fieldsOfOtherTerminatorsCertificateFamiliesCannotReachTheBackendInHeadersOrTrailers(String name) {
        HttpHeaders headers = new DefaultHttpHeaders()
                .set("host", "api.example.com")
                .add(name, "spoofed")
                .add(name.toLowerCase(Locale.ROOT), "spoofed");
        HttpHeaders trailers = new DefaultHttpHeaders().add(name, "spoofed");

        ForwardedHeaders.forBackend(headers, client("192.0.2.10"), ORDERS, PROXY_ID);
        ForwardedHeaders.trailersForBackend(trailers);

        assertThat(headers.toString()).doesNotContain("spoofed");
        assertThat(trailers.isEmpty()).isTrue();
    }

    @Test
    void namesThatOnlyBeginLikeACertificateFamilyPass() {
        HttpHeaders headers = new DefaultHttpHeaders()
                .set("host", "api.example.com")
                .set("X-Client-Id", "c-1")
                .set("X-Amzn-Trace-Id", "Root=1-abc")
                .set("CF-Ray", "8f00")
                .set("X-SSLx", "kept")
                .set("Cache-Control", "no-cache")
                .set("SSL", "kept");

        ForwardedHeaders.forBackend(headers, client("192.0.2.10"), ORDERS, PROXY_ID);

        assertThat(headers.names()).contains("X-Client-Id", "X-Amzn-Trace-Id", "CF-Ray", "X-SSLx", "Cache-Control",
                "SSL");
    }

    @Test
    void otherNamesWithUnderscoresPassUntouched() {
        HttpHeaders headers = new DefaultHttpHeaders()
                .set("host", "api.example.com")
                .set("X_Request_Id", "r-1")
                .set("x_forwarded_for_x", "kept");

        ForwardedHeaders.forBackend(headers, client("192.0.2.10"), ORDERS, PROXY_ID);

        assertThat(headers.get("x_request_id")).isEqualTo("r-1");
        assertThat(headers.get("x_forwarded_for_x")).isEqualTo("kept");
    }

    // ---- fixtures ----------------------------------------------------------------------------------------------

    static PeerIdentity peer(String spiffeId, List<String> uris, List<String> dns, String subject) {
        return new PeerIdentity(spiffeId, uris, dns, List.of(), List.of(), subject, null, List.of(), List.of(),
                "CN=test root CA", "1a2b", HASH, "", Instant.parse("2026-01-01T00:00:00Z"),
                Instant.parse("2030-01-01T00:00:00Z"), "EC", true, false, "clients");
    }

    static InetSocketAddress client(String ip) {
        try {
            // A literal: no name lookup happens.
            return new InetSocketAddress(InetAddress.getByName(ip), 51234);
        } catch (UnknownHostException e) {
            throw new IllegalArgumentException(e);
        }
    }

    private static String shouted(AsciiString name) {
        return name.toString().toUpperCase(Locale.ROOT);
    }

    /**
     * Reads XFCC the way Envoy does: elements split on unquoted ',', pairs on unquoted ';', key and value on the first
     * unquoted '='; inside quotes a backslash escapes the next character.
     */
    static List<List<Map.Entry<String, String>>> parseXfcc(String header) {
        List<List<Map.Entry<String, String>>> elements = new ArrayList<>();
        List<Map.Entry<String, String>> pairs = new ArrayList<>();
        StringBuilder key = new StringBuilder();
        StringBuilder value = new StringBuilder();
        boolean inValue = false;
        boolean quoted = false;
        for (int i = 0; i < header.length(); i++) {
            char c = header.charAt(i);
            if (quoted) {
                if (c == '\\') {
                    value.append(header.charAt(++i));
                } else if (c == '"') {
                    quoted = false;
                } else {
                    value.append(c);
                }
            } else if (c == '"' && inValue) {
                quoted = true;
            } else if (c == '=' && !inValue) {
                inValue = true;
            } else if (c == ';' || c == ',') {
                pairs.add(Map.entry(key.toString(), value.toString()));
                key.setLength(0);
                value.setLength(0);
                inValue = false;
                if (c == ',') {
                    elements.add(pairs);
                    pairs = new ArrayList<>();
                }
            } else {
                (inValue ? value : key).append(c);
            }
        }
        pairs.add(Map.entry(key.toString(), value.toString()));
        elements.add(pairs);
        return elements;
    }
}
