package dev.mtlsproxy.core.proxy;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * Generates what a hostile client sends on one connection: one to three pipelined requests that start out valid and
 * are then mutated, from the seed alone, so a seed replays its case byte for byte. Every request carries
 * {@code X-Case: <seed>-<n>} as its first field, which no mutation touches: the backend's record of a request says
 * which case and which request of it sent it, so a request the proxy made up, or lost its tag to, shows as one.
 *
 * <p>The mutations aim at the proxy's central property (see {@link HostileRequestPropertyTest}): field names and
 * values (case, whitespace, tabs, obs-fold, duplicates, control bytes), Content-Length and Transfer-Encoding and
 * their spellings together, the request line (method case, spacing, versions, absolute-, authority- and
 * asterisk-form), targets spelling a denied path next to an allowed one, chunked framing, trailers carrying identity
 * or framing fields, identity and forwarding fields in every spelling, bodies that are themselves requests, and
 * lengths that disagree with the body.
 */
final class HostileRequests {

    /** One generated case: the bytes of a connection and where to split them across writes. */
    record Case(long seed, byte[] bytes, int[] splits) {
        String tag() {
            return Long.toString(seed);
        }
    }

    static final String ALLOWED_PREFIX = "/public";
    static final String DENIED_PATH = "/public/secret";
    static final String DENIED_METHOD = "DELETE";

    private static final String[] METHODS = {"GET", "GET", "POST", "POST", "PUT", "DELETE", "HEAD", "OPTIONS",
        "PATCH"};

    private static final String[] TARGETS = {
        "/public", "/public/", "/public/x", "/public/a/b?q=1&r=%2e%2e", "/public/%7Euser", "/public/x%20y",
        "/public/caf%C3%A9", "/public/a/./b", "/public/a/../b", "/public//x", "/public/%24batch", "/public/secretive",
        "/admin", "/admin/keys", "/public/../admin", "/public/%2e%2e/admin", "/public/%2E%2E/admin",
        "/public/.%2e/admin", "/public/%2e./admin", "/public/..%2fadmin", "/public/..%2Fadmin", "/public/..%5cadmin",
        "/public/..\\admin", "/public\\..\\admin", "/public/..;/admin", "/public/..%3b/admin", "/public;/../admin",
        "/public/%252e%252e/admin", "/public/%c0%ae%c0%ae/admin", "/public/%c0%ae%c0%ae%c0%afadmin",
        "/public/%e0%80%ae%e0%80%ae/admin", "/public/%u002e%u002e/admin", "//admin", "/./admin", "/public/./../admin",
        "/public/secret", "/public/secret/", "/public//secret", "/public/./secret", "/public/secre%74",
        "/public/%73ecret", "/public/secret;x=1", "/public/secret%3bx", "/public/Secret", "/PUBLIC/secret",
        "/public/secret%00", "/public/secret%0a", "/public/secret%20", "/public/secret.", "/public/secret%2f",
        "/public/secret#x", "/public/secret?x=1", "/public/x/../secret", "/public/x/%2e%2e/secret",
        "/public/%2fsecret", "/public/\u00e9", "/public/secret\u0000", "/admin%00", "/%61dmin", "/adm%69n",
        "/public/../../admin", "/../admin", "/public/%2e%2e%2fadmin", "/public/x/..%00/secret", "/public/%2e",
        "/public/secret%09", "/public/%5csecret", "/public\\secret", "/public/x/..", "/public/secret/..;/x",
        "/public/%C0%AEsecret", "/public/s%65cret/%2e", "/public/.;/secret", "/public/x?/../admin",
        "/public/x%3f/../../admin", "/public/x%23/../../admin", "/public/%2523",
    };

    /** Spellings of the one valid transfer coding and of invalid ones. */
    private static final String[] TRANSFER_ENCODINGS = {
        "chunked", "Chunked", "CHUNKED", " chunked", "\tchunked", "chunked ", "chunked, identity", "identity, chunked",
        "chunked,", ", chunked", "chunked;q=1", "gzip, chunked", "xchunked", "chunked\u000b", "chunked, chunked",
        "\"chunked\"", "chun ked", "identity", "",
    };

    private static final String[] CONTENT_LENGTHS = {
        "+%d", "0%d", "00%d", "%d, %d", "%d,%d", " %d ", "\t%d", "0x%x", "-%d", "%d.0", "%d %d", "99999999999999999999",
        "18446744073709551616", "4294967296%d", "-1", "", "%d\u0000", "%de0", "٣",
    };

    private static final String[] CHUNK_SIZES = {
        "ffffffffffffffff%x", "100000000%x", " %x", "%x ", "+%x", "0x%x", "-%x", "%X", "000%x", "%x\t", "%x_0",
    };

    private static final String[] CHUNK_EXTENSIONS = {
        ";a=b", "; a = b", ";a=\"q;x\"", ";a", ";", ";=", ";a=\"open", ";a=b c", " ;a=b", "\t;a", ";a=\u0000",
    };

    /** Names the proxy owns or removes, in spellings a backend may read as the same name. */
    private static final String[] SPOOFED_NAMES = {
        "X-Forwarded-Client-Cert", "x-forwarded-client-cert", "X-FORWARDED-CLIENT-CERT", "X_Forwarded_Client_Cert",
        "x_forwarded-client_cert", "X-Client-Cert", "X-SSL-Client-DN", "X_SSL_CLIENT_DN", "SSL-Client-Cert",
        "X-Forwarded-For", "X_Forwarded_For", "X-Forwarded-Proto", "X-Forwarded-Host", "x_forwarded_host",
        "Forwarded", "X-Real-IP", "X_Real_IP", "X-Original-URL", "X-Rewrite-URL", "X-HTTP-Method-Override",
        "X_HTTP_Method_Override", "X-Forwarded-Uri", "True-Client-IP", "Client_IP", "X-Forwarded-Port",
        "Proxy-Authorization", "Keep-Alive", "TE", "Trailer", "Proxy-Connection", "Proxy", "PROXY", "SCRIPT_NAME",
        "PATH_INFO", "X-Script-Name", "X-SSL-Client-CN", "X-Amzn-Mtls-Clientcert-Subject", "ssl_client_escaped_cert",
        "X-Client-Cert-Spiffe", "Keep_Alive", "Proxy_Connection", "Proxy_Authorization", "Transfer_Encoding",
        "Content_Length",
    };

    private static final String[] SPOOFED_VALUES = {
        "URI=spiffe://prod.test/ns/shop/sa/admin", "DELETE", "/admin", "10.0.0.1", "http", "evil.example",
        "for=10.0.0.1;proto=http", "trailers", "X-Forwarded-Client-Cert",
    };

    private static final String[] CONNECTIONS = {
        "close", "keep-alive", "Keep-Alive", "close, X-Forwarded-Client-Cert", "Content-Length", "Transfer-Encoding",
        "keep-alive, content-length", "host", "X-Forwarded-For", "Upgrade", "upgrade, HTTP2-Settings", "TE",
        "close,", ",,keep-alive", "Host ",
    };

    private static final String[] HOSTS = {
        "localhost", "LOCALHOST", "localhost.", "localhost:443", "127.0.0.1", "localhost:99999", "evil@localhost",
        "localhost\t", "", " ", "local host", "localhost/admin", "[::1]", "localhost:", "localhost:+443", "a,b",
    };

    private static final String[] VERSIONS = {
        "HTTP/0.9", "HTTP/1.2", "HTTP/2.0", "http/1.1", "HTTP/1.10", "HTTP/01.1", "HTTP/1.1 ", "HTTP/1", "HTTP/1.0",
        "HTTP/1.1\t", "HTTP /1.1", "",
    };

    private final Random random;
    private final long seed;

    private HostileRequests(long seed) {
        this.seed = seed;
        this.random = new Random(seed);
    }

    static Case generate(long seed) {
        return new HostileRequests(seed).generate();
    }

    /** A case of fixed bytes (a regression case), sent in one write. */
    static Case fixed(long seed, String latin1) {
        return new Case(seed, latin1.getBytes(StandardCharsets.ISO_8859_1), new int[0]);
    }

    private Case generate() {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int requests = 1 + random.nextInt(3);
        for (int n = 0; n < requests; n++) {
            out.writeBytes(request(n).getBytes(StandardCharsets.ISO_8859_1));
        }
        byte[] bytes = out.toByteArray();
        int[] splits = new int[random.nextInt(5)];
        for (int i = 0; i < splits.length; i++) {
            splits[i] = random.nextInt(bytes.length + 1);
        }
        java.util.Arrays.sort(splits);
        return new Case(seed, bytes, splits);
    }

    /** A mutable request being built; rendered to bytes once every mutation is applied. */
    private final class Draft {
        String method = pick(METHODS);
        String sp1 = " ";
        String target = random.nextInt(3) == 0 ? pick(TARGETS) : pick(TARGETS, 12);
        String sp2 = " ";
        String version = random.nextInt(8) == 0 ? "HTTP/1.0" : "HTTP/1.1";
        String lead = "";
        final String tagLine;
        final List<String> fields = new ArrayList<>();
        String body = "";
        String afterHead = "";

        Draft(int n) {
            tagLine = "X-Case: " + seed + "-" + n;
        }

        String render() {
            StringBuilder b = new StringBuilder(lead).append(method).append(sp1).append(target).append(sp2)
                    .append(version).append("\r\n").append(tagLine).append("\r\n");
            for (String f : fields) {
                b.append(f).append("\r\n");
            }
            return b.append("\r\n").append(afterHead).append(body).toString();
        }
    }

    private String request(int n) {
        Draft d = new Draft(n);
        if (!d.version.equals("HTTP/1.0") || random.nextBoolean()) {
            d.fields.add("Host: localhost");
        }
        if (random.nextInt(3) == 0) {
            d.fields.add("Accept: */*");
        }
        String payload = payload(n);
        int framing = random.nextInt(3);
        if (framing == 1) {
            d.fields.add("Content-Length: " + payload.length());
            d.body = payload;
        } else if (framing == 2 && !payload.isEmpty()) {
            d.fields.add("Transfer-Encoding: chunked");
            d.body = chunked(payload, random.nextInt(4) == 0);
        }
        int mutations = random.nextInt(5) == 0 ? 0 : 1 + random.nextInt(3);
        for (int i = 0; i < mutations; i++) {
            mutate(d, payload);
        }
        String rendered = d.render();
        if (random.nextInt(10) == 0) {
            rendered = byteLevel(rendered, d.tagLine);
        }
        return rendered;
    }

    /** A body: text, binary, CRLFs, or a request of its own (tagged, so it is recognised if forwarded). */
    private String payload(int n) {
        return switch (random.nextInt(5)) {
            case 0 -> "";
            case 1 -> "hello world";
            case 2 -> {
                StringBuilder b = new StringBuilder();
                int length = 1 + random.nextInt(300);
                for (int i = 0; i < length; i++) {
                    b.append((char) random.nextInt(256));
                }
                yield b.toString();
            }
            case 3 -> "0\r\n\r\n";
            default -> pick("GET", "DELETE", "POST") + " " + pick(TARGETS) + " HTTP/1.1\r\nX-Case: " + seed + "-"
                    + (n + 50) + "\r\nHost: localhost\r\nX-Forwarded-Client-Cert: URI=spiffe://evil\r\n\r\n";
        };
    }

    private String chunked(String payload, boolean trailers) {
        StringBuilder b = new StringBuilder();
        int at = 0;
        while (at < payload.length()) {
            int size = Math.min(payload.length() - at, 1 + random.nextInt(64));
            b.append(Integer.toHexString(size));
            if (random.nextInt(8) == 0) {
                b.append(";ext=").append(random.nextInt(100));
            }
            b.append("\r\n").append(payload, at, at + size).append("\r\n");
            at += size;
        }
        b.append("0\r\n");
        if (trailers) {
            b.append(pick("X-Trailer: ok", "X-Forwarded-Client-Cert: URI=spiffe://evil", "Content-Length: 5",
                    "Host: evil.example", "Transfer-Encoding: chunked", "X_Forwarded_Client_Cert: URI=x",
                    "X-SSL-Client-DN: CN=admin", "X-Forwarded-For: 10.0.0.1", "Trailer : x", "X-Folded: a\r\n b",
                    "X-Bad: a\u0000b", "X-HTTP-Method-Override: DELETE", "content-length: 0", "HOST: localhost:8443",
                    "Transfer-Encoding: gzip, chunked", "Content-Length: 5\r\nHost: evil.example")).append("\r\n");
        }
        return b.append("\r\n").toString();
    }

    private void mutate(Draft d, String payload) {
        switch (random.nextInt(22)) {
            case 0 -> caseOfAName(d);
            case 1 -> whitespaceBeforeColon(d);
            case 2 -> whitespaceAroundValue(d);
            case 3 -> obsFold(d);
            case 4 -> duplicate(d);
            case 5 -> d.fields.add(random.nextInt(3) == 0 ? "Transfer-Encoding:" + pick(TRANSFER_ENCODINGS)
                    : "Transfer-Encoding: " + pick(TRANSFER_ENCODINGS));
            case 6 -> contentLength(d, payload);
            case 7 -> d.fields.add(pick(SPOOFED_NAMES) + ": " + pick(SPOOFED_VALUES));
            case 8 -> d.fields.add("Connection: " + pick(CONNECTIONS));
            case 9 -> host(d);
            case 10 -> controlByte(d);
            case 11 -> d.fields.add(pick("Expect: 100-continue", "Expect: 100-Continue", "Expect: nope",
                    "Upgrade: h2c", "Upgrade: websocket", "HTTP2-Settings: AAMAAABkAAQAAP__"));
            case 12 -> d.method = pick(d.method.toLowerCase(Locale.ROOT), randomCase(d.method), "DELETE", "Delete",
                    "CONNECT", "TRACE", "GET\u0000", "G\"T", "PRI", "DELETE ", "");
            case 13 -> {
                d.sp1 = pick(" ", "  ", "\t", " \t");
                d.sp2 = pick(" ", "  ", "\t", " \t", "");
            }
            case 14 -> d.version = pick(VERSIONS);
            case 15 -> d.target = pick("http://localhost" + d.target, "https://LOCALHOST:443" + d.target,
                    "http://evil.example" + d.target, "http://localhost", "localhost:443", "*", "public/x",
                    "http://localhost?x=/admin", "http://user@localhost" + d.target, "HTTP://localhost" + d.target,
                    "http:///admin", "//localhost/admin");
            case 16 -> d.target = pick(TARGETS);
            case 17 -> chunkFraming(d, payload);
            case 18 -> d.body = payload + pick("", "x", "\r\n", "GET /admin HTTP/1.1\r\nHost: localhost\r\n\r\n");
            case 19 -> d.lead = pick("\r\n", "\r\n\r\n", "\n", " ", "\u0000");
            case 20 -> d.afterHead = pick("\r\n", "\n", " ");
            default -> d.fields.add(pick("X-Forwarded-Client-Cert", "X_Forwarded_Client_Cert", "Forwarded")
                    + pick(":", " :", ":\t", ": x\r\n ", "\u0000:") + " URI=spiffe://prod.test/ns/shop/sa/admin");
        }
    }

    private void caseOfAName(Draft d) {
        if (!d.fields.isEmpty()) {
            int i = random.nextInt(d.fields.size());
            String f = d.fields.get(i);
            int colon = f.indexOf(':');
            if (colon > 0) {
                d.fields.set(i, randomCase(f.substring(0, colon)) + f.substring(colon));
            }
        }
    }

    private void whitespaceBeforeColon(Draft d) {
        if (!d.fields.isEmpty()) {
            int i = random.nextInt(d.fields.size());
            d.fields.set(i, d.fields.get(i).replaceFirst(":", pick(" :", "\t:", "  :")));
        }
    }

    private void whitespaceAroundValue(Draft d) {
        if (!d.fields.isEmpty()) {
            int i = random.nextInt(d.fields.size());
            String f = d.fields.get(i);
            int colon = f.indexOf(':');
            if (colon > 0) {
                d.fields.set(i, f.substring(0, colon + 1) + pick("\t", "  ", "", " \t ")
                        + f.substring(colon + 1).trim() + pick("", " ", "\t", " \t"));
            }
        }
    }

    private void obsFold(Draft d) {
        if (!d.fields.isEmpty()) {
            int i = random.nextInt(d.fields.size());
            String f = d.fields.get(i);
            int colon = f.indexOf(':');
            if (colon > 0) {
                d.fields.set(i, f.substring(0, colon + 1) + pick("\r\n ", "\r\n\t", " \r\n ")
                        + f.substring(colon + 1).trim());
            }
        }
    }

    private void duplicate(Draft d) {
        if (!d.fields.isEmpty()) {
            String f = d.fields.get(random.nextInt(d.fields.size()));
            if (random.nextBoolean()) {
                d.fields.add(f);
            } else {
                d.fields.add(random.nextInt(d.fields.size() + 1), f.replaceFirst(":.*", ": 1"));
            }
        }
    }

    private void contentLength(Draft d, String payload) {
        d.fields.removeIf(f -> f.toLowerCase(Locale.ROOT).startsWith("content-length:") && random.nextBoolean());
        int length = random.nextBoolean() ? payload.length() : random.nextInt(payload.length() + 10);
        String format = random.nextInt(3) == 0 ? "%d" : pick(CONTENT_LENGTHS);
        d.fields.add("Content-Length: " + String.format(format.replace("%x", "%<x").replace("%d", "%<d")
                .replaceFirst("%<", "%"), length));
        if (d.body.isEmpty()) {
            d.body = payload;
        }
    }

    private void host(Draft d) {
        switch (random.nextInt(3)) {
            case 0 -> d.fields.removeIf(f -> f.startsWith("Host:"));
            case 1 -> d.fields.add("Host: " + pick(HOSTS));
            default -> {
                d.fields.removeIf(f -> f.startsWith("Host:"));
                d.fields.add(random.nextInt(d.fields.size() + 1), pick("Host", "host", "HOST", "Host ") + ":"
                        + pick(" ", "", "\t") + pick(HOSTS));
            }
        }
    }

    private void controlByte(Draft d) {
        if (!d.fields.isEmpty()) {
            int i = random.nextInt(d.fields.size());
            String f = d.fields.get(i);
            int at = random.nextInt(f.length() + 1);
            d.fields.set(i, f.substring(0, at) + pick("\u0000", "\r", "\n", "\u000b", "\u007f", "\u0085", "\u00ff",
                    "\u001b", "\f") + f.substring(at));
        }
    }

    private void chunkFraming(Draft d, String payload) {
        String data = payload.isEmpty() ? "hello" : payload;
        if (d.fields.stream().noneMatch(f -> f.toLowerCase(Locale.ROOT).startsWith("transfer-encoding"))) {
            d.fields.add("Transfer-Encoding: chunked");
        }
        int size = data.length();
        String hex = Integer.toHexString(size);
        d.body = switch (random.nextInt(9)) {
            case 0 -> String.format(pick(CHUNK_SIZES).replace("%X", "%<X").replace("%x", "%<x")
                    .replaceFirst("%<", "%"), size) + "\r\n" + data + "\r\n0\r\n\r\n";
            case 1 -> hex + pick(CHUNK_EXTENSIONS) + "\r\n" + data + "\r\n0\r\n\r\n";
            case 2 -> hex + "\r\n" + data + pick("", "\n", "\r", "XX") + "0\r\n\r\n";
            case 3 -> hex + pick("\n", "\r") + data + "\r\n0\r\n\r\n";
            case 4 -> Integer.toHexString(Math.max(0, size - 1 - random.nextInt(2))) + "\r\n" + data
                    + "\r\n0\r\n\r\n";
            case 5 -> hex + "\r\n" + data + "\r\n0\r\n" + pick("X-Forwarded-Client-Cert: URI=x",
                    "Content-Length: 40", "Transfer-Encoding: chunked", "Host: evil", "X_SSL_Client_DN: CN=x",
                    " folded", "Bad Name: x", "X-A:\u0000") + "\r\n\r\n";
            case 6 -> hex + "\r\n" + data + "\r\n0\r\n";
            case 7 -> hex + "\r\n" + data + "\r\n" + pick("0", "00", "0;x=y", "0 ") + "\r\n\r\n"
                    + "GET /admin HTTP/1.1\r\nHost: localhost\r\n\r\n";
            default -> hex + "\r\n" + data + "\r\n0\r\n\r\n";
        };
    }

    /** One edit at a random position outside the request line's tag field: a line ending changed, a byte added. */
    private String byteLevel(String rendered, String tagLine) {
        int tagStart = rendered.indexOf(tagLine);
        int tagEnd = tagStart + tagLine.length() + 2;
        int at = random.nextInt(rendered.length() + 1);
        if (at > tagStart && at < tagEnd) {
            at = tagEnd;
        }
        if (random.nextBoolean()) {
            int crlf = rendered.indexOf("\r\n", at);
            if (crlf >= 0 && (crlf < tagStart || crlf >= tagEnd)) {
                return rendered.substring(0, crlf) + pick("\n", "\r", "\r\r\n", "\n\r") + rendered.substring(crlf + 2);
            }
        }
        return rendered.substring(0, at) + pick("\u0000", "\r", "\n", " ", "\t", "\r\n", "\u00ff")
                + rendered.substring(at);
    }

    private String randomCase(String s) {
        StringBuilder b = new StringBuilder(s.length());
        for (char c : s.toCharArray()) {
            b.append(random.nextBoolean() ? Character.toUpperCase(c) : Character.toLowerCase(c));
        }
        return b.toString();
    }

    @SafeVarargs
    private <T> T pick(T... options) {
        return options[random.nextInt(options.length)];
    }

    /** One of the first {@code n} options: the usual targets, before the hostile ones. */
    private String pick(String[] options, int n) {
        return options[random.nextInt(Math.min(n, options.length))];
    }
}
