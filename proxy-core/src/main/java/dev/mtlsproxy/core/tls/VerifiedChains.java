package dev.mtlsproxy.core.tls;

import java.security.cert.Certificate;
import java.security.cert.CertificateEncodingException;
import java.util.Arrays;
import java.util.Iterator;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The client chains one TLS context has verified, by their exact DER bytes. A workload presents the same certificate
 * on every connection it opens until its certificate rotates, so path validation, signature checks and X.509 parsing
 * are done once per chain rather than once per handshake.
 *
 * <p>Why this is safe: the bytes are the key, so a hit is the very chain that passed; a new context (every reload)
 * starts empty; dates and revocation are still checked on every hit; failures are never kept. Possession of the key
 * is not the cache's business: BoringSSL checks the client's CertificateVerify signature on every handshake, so a
 * copied certificate is worth nothing without its private key.
 *
 * <p>Bounded by {@link #CAPACITY}. When full, an arbitrary entry makes room. Only chains that pass validation get in,
 * so filling it takes that many distinct certificates from a trusted CA; churn then costs what the cache saves, no
 * more.
 */
final class VerifiedChains {

    /** Distinct client chains kept per context: far above the workloads one proxy usually serves. */
    static final int CAPACITY = 1_000;

    private final ConcurrentHashMap<Key, VerifiedChain> chains = new ConcurrentHashMap<>();

    /** The key of a presented chain, or null when a certificate cannot be encoded (then it is never cached). */
    static Key keyOf(Certificate[] presented) {
        byte[][] der = new byte[presented.length][];
        try {
            for (int i = 0; i < presented.length; i++) {
                der[i] = presented[i].getEncoded();
            }
        } catch (CertificateEncodingException e) {
            return null;
        }
        return new Key(der);
    }

    VerifiedChain get(Key key) {
        return key == null ? null : chains.get(key);
    }

    void put(Key key, VerifiedChain chain) {
        if (key == null) {
            return;
        }
        if (chains.size() >= CAPACITY) {
            Iterator<Key> any = chains.keySet().iterator();
            if (any.hasNext()) {
                chains.remove(any.next());
            }
        }
        chains.put(key, chain);
    }

    int size() {
        return chains.size();
    }

    /** The DER bytes of every certificate as presented, appended roots included. */
    static final class Key {
        private final byte[][] der;
        private final int hash;

        private Key(byte[][] der) {
            this.der = der;
            this.hash = Arrays.deepHashCode(der);
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Key other && hash == other.hash && Arrays.deepEquals(der, other.der);
        }

        @Override
        public int hashCode() {
            return hash;
        }
    }
}
