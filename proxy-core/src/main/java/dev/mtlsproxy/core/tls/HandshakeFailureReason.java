package dev.mtlsproxy.core.tls;

import java.util.Locale;

/**
 * Why a client was refused at the TLS handshake. A closed set: it is the metric label and what tests assert, so a
 * new reason is a deliberate change, never a free-form string.
 */
public enum HandshakeFailureReason {
    NO_CERTIFICATE,
    UNKNOWN_CA,
    EXPIRED,
    NOT_YET_VALID,
    REVOKED,
    BAD_EKU,
    /** The client's handshake signature does not verify with its certificate's key: it lacks the private key. */
    BAD_SIGNATURE,
    CHAIN_TOO_LONG,
    /**
     * A CA of the path has name constraints that do not permit a name of the client's certificate, or two CAs of
     * the path permit disjoint names of one type, which leaves none of that type permitted (see UnjudgedPathException).
     * A client outside the part of the namespace its CA was delegated, or a CA hierarchy set up that way.
     */
    NAME_CONSTRAINTS,
    /** A certificate of the path is signed with SHA-1 (or weaker) or holds a key too short: see AlgorithmStrength. */
    WEAK_ALGORITHM,
    PROTOCOL_VERSION,
    HANDSHAKE_TIMEOUT,
    /**
     * The client closed the connection before the handshake was done: mostly TCP health checks and port scans
     * that connect and hang up without a byte, or a client that gave up. Not a certificate problem.
     */
    CLIENT_CLOSED,
    OTHER;

    /** Lower-case form used in logs and metric labels, e.g. {@code unknown_ca}. */
    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }
}
