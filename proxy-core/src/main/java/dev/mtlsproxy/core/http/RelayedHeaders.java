package dev.mtlsproxy.core.http;

import io.netty.buffer.ByteBuf;
import io.netty.handler.codec.http.DefaultHttpHeaders;
import java.nio.charset.StandardCharsets;
import java.util.Objects;

/**
 * The header section of a backend's response as the proxy relays it: the fields the proxy acts on (framing,
 * hop-by-hop, anything the backend names in Connection) parsed into this map, where the code that forwards
 * responses reads, removes and sets them as on any {@code HttpHeaders}; every other field kept as the exact bytes
 * the backend sent, already validated by {@link BackendResponseDecoder}, and written to the client as they are.
 *
 * <p>Decoding every field into objects and encoding it again was most of the proxy's own work per relayed response
 * (issue #8). Iterating this map shows only the parsed fields; the rest are in {@link #verbatim()}. A field name is
 * always entirely on one side, so fields of the same name keep their order.
 */
final class RelayedHeaders extends DefaultHttpHeaders {

    private static final byte[] NONE = new byte[0];

    /** Whole field lines, each ending in CRLF. */
    private final byte[] verbatim;

    RelayedHeaders(byte[] verbatim) {
        // BackendResponseDecoder validated every field, and what the proxy sets later are constants. Four hash
        // buckets, not sixteen: only a few fields are ever parsed.
        super(name -> Objects.requireNonNull(name, "name"), value -> { }, 4);
        this.verbatim = verbatim.length == 0 ? NONE : verbatim;
    }

    /** Writes the relayed field lines; the encoder writes the parsed ones after them. */
    void writeVerbatim(ByteBuf out) {
        out.writeBytes(verbatim);
    }

    /** The relayed field lines as text, for tests and debugging. */
    String verbatim() {
        return new String(verbatim, StandardCharsets.ISO_8859_1);
    }
}
