package dev.mtlsproxy.config;

import java.security.PublicKey;
import java.security.cert.X509CRL;
import java.security.cert.X509Certificate;
import java.security.interfaces.DSAKey;
import java.security.interfaces.ECKey;
import java.security.interfaces.RSAKey;
import java.util.Set;

/**
 * The signature algorithms and key sizes a client certificate path may use: what OpenSSL refuses at security level
 * 2 (112-bit security; Debian's and so nginx's default), and Go refuses too. The JDK's defaults, which PKIX applies
 * on its own, still pass SHA-1 signatures and 1024-bit RSA keys: a chosen-prefix collision on SHA-1 costs a
 * well-funded attacker little (SHAttered, 2017; Shambles, 2020), and NIST disallowed both for signatures in 2013.
 *
 * <p>Checked on the path the client's chain stands for, leaf included, not on the trusted CA: that certificate is
 * the operator's choice, and its self-signature proves nothing. Checked on every CRL that revocation relies on, and
 * at load on the chain a listener serves, which clients hold to the same rule.
 */
public final class AlgorithmStrength {

    /** md2, md5 and sha1 with RSA, sha1 with RSA (OIW), DSA with SHA-1, ECDSA with SHA-1. */
    private static final Set<String> WEAK_SIGNATURES = Set.of("1.2.840.113549.1.1.2", "1.2.840.113549.1.1.4",
            "1.2.840.113549.1.1.5", "1.3.14.3.2.29", "1.2.840.10040.4.3", "1.2.840.10045.4.1");
    public static final int MIN_RSA_DSA_BITS = 2048;
    public static final int MIN_EC_BITS = 224;

    private AlgorithmStrength() {
    }

    /** What is too weak about {@code certificate}, or null when nothing is. */
    public static String weakness(X509Certificate certificate) {
        if (WEAK_SIGNATURES.contains(certificate.getSigAlgOID())) {
            return "signature algorithm " + certificate.getSigAlgName();
        }
        return weakness(certificate.getPublicKey());
    }

    /**
     * What is too weak about {@code crl} signed by {@code signer}, or null when nothing is: the rule for certificates,
     * for a CRL forged by a SHA-1 collision would say a revoked certificate is good. Unlike a trusted CA's certificate,
     * a CRL signed with that CA's key is held to it too: the CRL is a statement made now, not the operator's choice.
     */
    public static String weakness(X509CRL crl, PublicKey signer) {
        if (WEAK_SIGNATURES.contains(crl.getSigAlgOID())) {
            return "signature algorithm " + crl.getSigAlgName();
        }
        return weakness(signer);
    }

    private static String weakness(PublicKey key) {
        if (key instanceof RSAKey rsa && rsa.getModulus().bitLength() < MIN_RSA_DSA_BITS) {
            return "RSA key of " + rsa.getModulus().bitLength() + " bits";
        }
        if (key instanceof DSAKey dsa && dsa.getParams() != null
                && dsa.getParams().getP().bitLength() < MIN_RSA_DSA_BITS) {
            return "DSA key of " + dsa.getParams().getP().bitLength() + " bits";
        }
        if (key instanceof ECKey ec && ec.getParams().getOrder().bitLength() < MIN_EC_BITS) {
            return "EC key of " + ec.getParams().getOrder().bitLength() + " bits";
        }
        return null;
    }
}
