package dev.mtlsproxy.core.testing;

import io.netty.pkitesting.X509Bundle;
import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.net.Socket;
import java.security.Principal;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.X509ExtendedKeyManager;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

/**
 * A deliberately low-level HTTPS client: JSSE with a real client certificate, speaking raw HTTP/1.1 bytes, so tests
 * can send exactly what an attacker would (conflicting lengths, bad chunks) and read exactly what comes back.
 * It trusts only the test root, never everything.
 */
public final class MtlsClient implements AutoCloseable {

    private final SSLSocket socket;
    private final InputStream in;
    private final OutputStream out;

    private MtlsClient(SSLSocket socket) throws IOException {
        this.socket = socket;
        this.in = new BufferedInputStream(socket.getInputStream(), 64 * 1024);
        this.out = socket.getOutputStream();
    }

    /**
     * Connects and completes the client side of the handshake.
     *
     * @param certificate the client certificate to present, or null to present none
     */
    public static MtlsClient connect(InetSocketAddress proxy, X509Bundle trustedRoot, X509Bundle certificate)
            throws Exception {
        return connect(proxy, trustedRoot, certificate, null);
    }

    /** @param protocol force one TLS version ("TLSv1.2"), or null for the default */
    public static MtlsClient connect(InetSocketAddress proxy, X509Bundle trustedRoot, X509Bundle certificate,
            String protocol) throws Exception {
        return connect(proxy, trustedRoot, certificate, protocol, null);
    }

    /** @param serverName the SNI host name to send, or null to send none */
    public static MtlsClient connect(InetSocketAddress proxy, X509Bundle trustedRoot, X509Bundle certificate,
            String protocol, String serverName) throws Exception {
        return connect(proxy, clientContext(trustedRoot, certificate), protocol, serverName);
    }

    /**
     * A client TLS context presenting {@code certificate} (or none when null). Connections made from one context
     * share its session cache, so they may resume each other's sessions.
     */
    public static SSLContext clientContext(X509Bundle trustedRoot, X509Bundle certificate) throws Exception {
        return clientContext(trustedRoot, certificate, () -> { });
    }

    /**
     * As {@link #clientContext(X509Bundle, X509Bundle)}, running {@code beforePresenting} in the handshake when the
     * server has asked for the certificate and before it is sent: a test can hold a handshake half done.
     */
    public static SSLContext clientContext(X509Bundle trustedRoot, X509Bundle certificate, Runnable beforePresenting)
            throws Exception {
        SSLContext context = SSLContext.getInstance("TLS");
        KeyManagerFactory kmf = null;
        if (certificate != null) {
            kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            KeyStore ks = certificate.toKeyStore(new char[0]);
            kmf.init(ks, new char[0]);
        }
        TrustManagerFactory tmf = trustedRoot.toTrustManagerFactory();
        KeyManager[] keyManagers = kmf == null ? null
                : new KeyManager[] {new AlwaysPresent((X509ExtendedKeyManager) kmf.getKeyManagers()[0],
                        beforePresenting)};
        context.init(keyManagers, tmf.getTrustManagers(), null);
        return context;
    }

    /**
     * A client TLS context presenting exactly {@code chain}, in its order, whatever it holds (duplicates, strangers,
     * a root): what a hostile or careless client may send. {@code key} is the private key of {@code chain[0]}.
     */
    public static SSLContext clientContext(X509Bundle trustedRoot, PrivateKey key, X509Certificate... chain)
            throws Exception {
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(new KeyManager[] {new PresentsChain(key, chain.clone())},
                trustedRoot.toTrustManagerFactory().getTrustManagers(), null);
        return context;
    }

    /** Connects with a given client context (see {@link #clientContext}). */
    public static MtlsClient connect(InetSocketAddress proxy, SSLContext context, String protocol, String serverName)
            throws Exception {
        SSLSocket socket = (SSLSocket) context.getSocketFactory()
                .createSocket(proxy.getAddress(), proxy.getPort());
        return handshake(socket, protocol, serverName);
    }

    /**
     * Completes a handshake over a TCP connection the caller opened and keeps a hold of: it can watch the connection
     * underneath while the handshake is held (see {@link StalledHandshake}). Closing the client closes it too.
     */
    public static MtlsClient connect(Socket tcp, SSLContext context) throws Exception {
        SSLSocket socket = (SSLSocket) context.getSocketFactory()
                .createSocket(tcp, tcp.getInetAddress().getHostAddress(), tcp.getPort(), true);
        return handshake(socket, null, null);
    }

    private static MtlsClient handshake(SSLSocket socket, String protocol, String serverName) throws IOException {
        socket.setSoTimeout(20_000);
        if (protocol != null) {
            socket.setEnabledProtocols(new String[] {protocol});
        }
        var params = socket.getSSLParameters();
        params.setEndpointIdentificationAlgorithm("HTTPS");
        if (serverName != null) {
            params.setServerNames(List.of(new SNIHostName(serverName)));
        }
        socket.setSSLParameters(params);
        socket.startHandshake();
        return new MtlsClient(socket);
    }

    public MtlsClient send(String raw) throws IOException {
        out.write(raw.getBytes(StandardCharsets.ISO_8859_1));
        out.flush();
        return this;
    }

    /** The TLS session of this connection; a resumed one keeps the creation time of the session it resumed. */
    /** The client's end of the connection, as the proxy sees it as the remote address. */
    public java.net.InetSocketAddress localAddress() {
        return (java.net.InetSocketAddress) socket.getLocalSocketAddress();
    }

    public javax.net.ssl.SSLSession session() {
        return socket.getSession();
    }

    /**
     * Starts another handshake on this connection: a TLS 1.2 renegotiation (a client changing its certificate
     * mid-connection), or a key update under TLS 1.3.
     */
    public void renegotiate() throws IOException {
        socket.startHandshake();
    }

    /** The certificate the proxy presented in this connection's handshake. */
    public X509Certificate serverCertificate() throws IOException {
        return (X509Certificate) socket.getSession().getPeerCertificates()[0];
    }

    public OutputStream output() {
        return out;
    }

    public InputStream input() {
        return in;
    }

    /** Sends a simple request with {@code Host: localhost}. */
    public Response get(String path, String... extraHeaders) throws IOException {
        StringBuilder b = new StringBuilder("GET ").append(path).append(" HTTP/1.1\r\nHost: localhost\r\n");
        for (String h : extraHeaders) {
            b.append(h).append("\r\n");
        }
        send(b.append("\r\n").toString());
        return readResponse();
    }

    /** Reads one response, body included (Content-Length, chunked, or until close). */
    public Response readResponse() throws IOException {
        return readResponse(true);
    }

    /** Reads the response to a HEAD request: its head only, whatever length it announces. */
    public Response readHeadResponse() throws IOException {
        return readResponse(false);
    }

    private Response readResponse(boolean withBody) throws IOException {
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        Response response = readResponse(body, withBody);
        return new Response(response.status(), response.headers(), body.toByteArray(), response.trailers());
    }

    /**
     * Reads one response, streaming its body into {@code sink} rather than keeping it: the response returned has an
     * empty body. Without {@code withBody} (the answer to a HEAD) only the head is read, whatever length it announces.
     */
    public Response readResponse(OutputStream sink, boolean withBody) throws IOException {
        String statusLine = readLine();
        if (statusLine == null) {
            throw new java.io.EOFException("connection closed before a response");
        }
        Map<String, List<String>> headers = readFields();
        int status = Integer.parseInt(statusLine.split(" ")[1]);
        String te = first(headers, "transfer-encoding");
        String cl = first(headers, "content-length");
        if (!withBody || status < 200 || status == 204 || status == 304) {
            // RFC 9112 6.3: none of these has a body, whatever length a 304 (or a HEAD's answer) announces.
            return new Response(status, headers, new byte[0], Map.of());
        }
        Map<String, List<String>> trailers = Map.of();
        if (te != null && te.equalsIgnoreCase("chunked")) {
            trailers = readChunked(sink);
        } else if (cl != null) {
            copy(sink, Long.parseLong(cl));
        } else if (status >= 200 && status != 204 && status != 304) {
            in.transferTo(sink);
        }
        return new Response(status, headers, new byte[0], trailers);
    }

    /** Header (or trailer) fields up to the empty line; names lower-cased. */
    private Map<String, List<String>> readFields() throws IOException {
        Map<String, List<String>> fields = new LinkedHashMap<>();
        String line;
        while ((line = readLine()) != null && !line.isEmpty()) {
            int colon = line.indexOf(':');
            fields.computeIfAbsent(line.substring(0, colon).trim().toLowerCase(Locale.ROOT),
                    k -> new java.util.ArrayList<>()).add(line.substring(colon + 1).trim());
        }
        return fields;
    }

    /** Reads a response head, then streams a chunked or sized body into {@code sink}; returns the body length. */
    public long readResponseDiscardingBody(OutputStream sink) throws IOException {
        String statusLine = readLine();
        if (statusLine == null) {
            throw new java.io.EOFException("connection closed before a response");
        }
        long length = -1;
        boolean chunked = false;
        String line;
        while ((line = readLine()) != null && !line.isEmpty()) {
            String lower = line.toLowerCase(Locale.ROOT);
            if (lower.startsWith("content-length:")) {
                length = Long.parseLong(line.substring(15).trim());
            } else if (lower.startsWith("transfer-encoding:") && lower.contains("chunked")) {
                chunked = true;
            }
        }
        CountingSink counter = new CountingSink(sink);
        if (chunked) {
            readChunked(counter);
        } else {
            copy(counter, length);
        }
        return counter.count;
    }

    /** Reads a chunked body into {@code body}; returns its trailer fields. */
    private Map<String, List<String>> readChunked(OutputStream body) throws IOException {
        while (true) {
            String sizeLine = readLine();
            if (sizeLine == null) {
                throw new java.io.EOFException("chunked body truncated");
            }
            int semi = sizeLine.indexOf(';');
            long size = Long.parseLong((semi >= 0 ? sizeLine.substring(0, semi) : sizeLine).trim(), 16);
            if (size == 0) {
                return readFields();
            }
            copy(body, size);
            readLine();
        }
    }

    private void copy(OutputStream to, long length) throws IOException {
        byte[] buffer = new byte[64 * 1024];
        long left = length;
        while (left > 0) {
            int n = in.read(buffer, 0, (int) Math.min(buffer.length, left));
            if (n < 0) {
                throw new java.io.EOFException("body truncated with " + left + " bytes missing");
            }
            to.write(buffer, 0, n);
            left -= n;
        }
    }

    private String readLine() throws IOException {
        return readLine(in);
    }

    /** One line of an HTTP head, without its CRLF (or bare LF); null at the end of the stream. */
    public static String readLine(InputStream in) throws IOException {
        StringBuilder b = new StringBuilder();
        int c;
        while ((c = in.read()) >= 0) {
            if (c == '\n') {
                int len = b.length();
                return len > 0 && b.charAt(len - 1) == '\r' ? b.substring(0, len - 1) : b.toString();
            }
            b.append((char) c);
        }
        return b.length() == 0 ? null : b.toString();
    }

    /**
     * True when the proxy closes the connection (EOF or reset) within {@code millis}; false when the time passes
     * with the connection still open: a timeout is never taken for a close.
     */
    public boolean closedWithin(int millis) throws IOException {
        int previous = socket.getSoTimeout();
        socket.setSoTimeout(millis);
        try {
            return in.read() < 0;
        } catch (java.net.SocketTimeoutException e) {
            return false;
        } catch (IOException e) {
            return true;
        } finally {
            if (!socket.isClosed()) {
                socket.setSoTimeout(previous);
            }
        }
    }

    private static String first(Map<String, List<String>> headers, String name) {
        List<String> values = headers.get(name);
        return values == null ? null : values.get(0);
    }

    /**
     * Ends what the client sends (a TLS close_notify) and keeps reading. A client that closes its socket instead,
     * with anything of the proxy's unread, resets the connection, and its kernel drops what it had not sent yet.
     */
    public void endOutput() throws IOException {
        socket.shutdownOutput();
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }

    /** A response as received. Header and trailer names lower-cased. */
    public record Response(int status, Map<String, List<String>> headers, byte[] body,
            Map<String, List<String>> trailers) {
        public String header(String name) {
            List<String> values = headers.get(name.toLowerCase(Locale.ROOT));
            return values == null ? null : values.get(0);
        }

        public String trailer(String name) {
            List<String> values = trailers.get(name.toLowerCase(Locale.ROOT));
            return values == null ? null : values.get(0);
        }

        public String bodyText() {
            return new String(body, StandardCharsets.UTF_8);
        }
    }

    /**
     * JSSE normally sends no certificate when its issuer is not among the CAs the server asks for; attackers and
     * curl present theirs anyway, so this client does too and the proxy's own verification is what gets tested.
     */
    private static final class AlwaysPresent extends X509ExtendedKeyManager {
        private final X509ExtendedKeyManager delegate;
        private final String alias;
        private final Runnable beforePresenting;

        AlwaysPresent(X509ExtendedKeyManager delegate, Runnable beforePresenting) {
            this.delegate = delegate;
            this.beforePresenting = beforePresenting;
            String[] aliases = delegate.getClientAliases("EC", null);
            this.alias = aliases == null ? delegate.getClientAliases("RSA", null)[0] : aliases[0];
        }

        @Override
        public String[] getClientAliases(String keyType, Principal[] issuers) {
            return new String[] {alias};
        }

        @Override
        public String chooseClientAlias(String[] keyType, Principal[] issuers, Socket socket) {
            beforePresenting.run();
            return alias;
        }

        @Override
        public String chooseEngineClientAlias(String[] keyType, Principal[] issuers, SSLEngine engine) {
            return alias;
        }

        @Override
        public String[] getServerAliases(String keyType, Principal[] issuers) {
            return null;
        }

        @Override
        public String chooseServerAlias(String keyType, Principal[] issuers, Socket socket) {
            return null;
        }

        @Override
        public X509Certificate[] getCertificateChain(String a) {
            return delegate.getCertificateChain(a);
        }

        @Override
        public PrivateKey getPrivateKey(String a) {
            return delegate.getPrivateKey(a);
        }
    }

    /** One fixed chain and key, offered for any key type the server asks for. */
    private static final class PresentsChain extends X509ExtendedKeyManager {
        private static final String ALIAS = "chain";
        private final PrivateKey key;
        private final X509Certificate[] chain;

        PresentsChain(PrivateKey key, X509Certificate[] chain) {
            this.key = key;
            this.chain = chain;
        }

        @Override
        public String[] getClientAliases(String keyType, Principal[] issuers) {
            return new String[] {ALIAS};
        }

        @Override
        public String chooseClientAlias(String[] keyType, Principal[] issuers, Socket socket) {
            return ALIAS;
        }

        @Override
        public String chooseEngineClientAlias(String[] keyType, Principal[] issuers, SSLEngine engine) {
            return ALIAS;
        }

        @Override
        public String[] getServerAliases(String keyType, Principal[] issuers) {
            return null;
        }

        @Override
        public String chooseServerAlias(String keyType, Principal[] issuers, Socket socket) {
            return null;
        }

        @Override
        public X509Certificate[] getCertificateChain(String alias) {
            return chain.clone();
        }

        @Override
        public PrivateKey getPrivateKey(String alias) {
            return key;
        }
    }

    private static final class CountingSink extends OutputStream {
        private final OutputStream next;
        long count;

        CountingSink(OutputStream next) {
            this.next = next;
        }

        @Override
        public void write(int b) throws IOException {
            count++;
            next.write(b);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            count += len;
            next.write(b, off, len);
        }
    }
}
