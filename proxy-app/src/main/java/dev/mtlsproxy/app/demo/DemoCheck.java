package dev.mtlsproxy.app.demo;

import dev.mtlsproxy.config.Pem;
import dev.mtlsproxy.config.PemException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

/**
 * The demo's three curl commands, made from inside the JVM: the allowed client gets 200, the denied one 403, and a
 * client without a certificate no HTTP response at all. {@code mtls-proxy demo --check} runs them to prove an
 * installation works end to end; the container image build runs it to record which classes a real start-up and a
 * first request load (its class-data sharing archive).
 *
 * <p>Like curl, each request checks the proxy's certificate: issued by the demo CA, and for {@value #HOST}, the
 * name in the curl commands' URLs. A client that trusts the CA but not the name is one the curl commands would
 * fail with; a check that skipped the name would pass where they fail.
 */
public final class DemoCheck {

    /** The name the demo's curl commands connect to, and the proxy's certificate must be for. */
    public static final String HOST = "localhost";

    private static final int TIMEOUT_MILLIS = 10_000;

    private DemoCheck() {
    }

    /** One line per request, saying what happened; empty {@code failures} means all three behaved. */
    public record Result(List<String> lines, List<String> failures) {
        public boolean passed() {
            return failures.isEmpty();
        }
    }

    public static Result run(DemoPki pki, InetSocketAddress proxy) throws GeneralSecurityException, IOException {
        List<String> lines = new ArrayList<>();
        List<String> failures = new ArrayList<>();
        expect("allowed client", status(pki, proxy, pki.allowedClientCertificate(), pki.allowedClientKey()), "200",
                lines, failures);
        expect("denied client", status(pki, proxy, pki.deniedClientCertificate(), pki.deniedClientKey()), "403",
                lines, failures);
        expect("no client certificate", status(pki, proxy, null, null), "refused", lines, failures);
        return new Result(List.copyOf(lines), List.copyOf(failures));
    }

    private static void expect(String who, String got, String expected, List<String> lines, List<String> failures) {
        String line = who + ": " + got + (got.equals(expected) ? "" : " (expected " + expected + ")");
        lines.add(line);
        if (!got.equals(expected)) {
            failures.add(line);
        }
    }

    /**
     * The status code of {@code GET /hello}; "refused" when the proxy refused the handshake or the connection;
     * "proxy certificate rejected" when this client did (not from the demo CA, or not for {@value #HOST}).
     */
    private static String status(DemoPki pki, InetSocketAddress proxy, Path certificate, Path key)
            throws GeneralSecurityException, IOException {
        SSLContext tls = context(pki.caCertificate(), certificate, key);
        try (SSLSocket socket = connect(tls, proxy)) {
            OutputStream out = socket.getOutputStream();
            out.write(("GET /hello HTTP/1.1\r\nHost: " + HOST + "\r\nConnection: close\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));
            out.flush();
            String statusLine = firstLine(socket.getInputStream());
            if (statusLine.isEmpty()) {
                return "refused";
            }
            String[] parts = statusLine.split(" ");
            return parts.length > 1 ? parts[1] : statusLine;
        } catch (SSLException e) {
            // Our trust manager's verdict on the proxy's certificate is a CertificateException (a wrong name, an
            // unknown CA); the proxy's refusal is an alert, which carries none. TLS 1.3: the refusal of a missing
            // certificate arrives after the client's handshake finished, as an alert on the first read.
            return rejectedByUs(e) ? "proxy certificate rejected" : "refused";
        } catch (java.net.SocketException e) {
            return "refused";
        }
    }

    /**
     * A TLS connection to {@code proxy} that checks the proxy's certificate is for {@value #HOST}, as curl does
     * with {@code https://localhost:...}: connected to the listener's address, with {@value #HOST} as the name the
     * certificate is checked against (and sent as SNI). The handshake runs on the first write.
     */
    private static SSLSocket connect(SSLContext tls, InetSocketAddress proxy) throws IOException {
        Socket tcp = new Socket();
        try {
            tcp.connect(proxy, TIMEOUT_MILLIS);
            tcp.setSoTimeout(TIMEOUT_MILLIS);
            SSLSocket socket = (SSLSocket) tls.getSocketFactory().createSocket(tcp, HOST, proxy.getPort(), true);
            SSLParameters parameters = socket.getSSLParameters();
            parameters.setEndpointIdentificationAlgorithm("HTTPS"); // off by default for a JSSE socket
            socket.setSSLParameters(parameters);
            return socket;
        } catch (IOException | RuntimeException e) {
            tcp.close();
            throw e;
        }
    }

    private static boolean rejectedByUs(Throwable e) {
        for (Throwable cause = e; cause != null; cause = cause.getCause()) {
            if (cause instanceof CertificateException) {
                return true;
            }
        }
        return false;
    }

    private static String firstLine(InputStream in) throws IOException {
        StringBuilder line = new StringBuilder();
        int b;
        while ((b = in.read()) != -1 && b != '\n') {
            if (b != '\r') {
                line.append((char) b);
            }
        }
        return line.toString();
    }

    private static SSLContext context(Path ca, Path certificate, Path key) throws GeneralSecurityException,
            IOException {
        // The demo CA and nothing else: the check proves the proxy serves the demo's certificate. An empty store
        // filled here, never init(null), which would trust the JVM's default store (javax.net.ssl.trustStore).
        KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
        trust.load(null, null);
        int i = 0;
        for (X509Certificate c : read(ca)) {
            trust.setCertificateEntry("ca-" + i++, c);
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        KeyManagerFactory kmf = null;
        if (certificate != null) {
            KeyStore identity = KeyStore.getInstance("PKCS12");
            identity.load(null, null);
            try {
                identity.setKeyEntry("client", Pem.readPrivateKey(key), new char[0],
                        read(certificate).toArray(new X509Certificate[0]));
            } catch (PemException e) {
                throw new IOException(e.getMessage(), e);
            }
            kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            kmf.init(identity, new char[0]);
        }
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(kmf == null ? null : kmf.getKeyManagers(), tmf.getTrustManagers(), null);
        return context;
    }

    private static List<X509Certificate> read(Path pem) throws IOException {
        try {
            return Pem.readCertificates(pem);
        } catch (PemException e) {
            throw new IOException(e.getMessage(), e);
        }
    }
}
