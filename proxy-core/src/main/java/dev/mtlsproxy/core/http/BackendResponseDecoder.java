package dev.mtlsproxy.core.http;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.ByteToMessageDecoder;
import io.netty.handler.codec.DecoderResult;
import io.netty.handler.codec.http.DefaultHttpContent;
import io.netty.handler.codec.http.DefaultHttpHeaders;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.DefaultLastHttpContent;
import io.netty.handler.codec.http.EmptyHttpHeaders;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.handler.ssl.SslCloseCompletionEvent;
import io.netty.handler.ssl.SslHandler;
import io.netty.util.AsciiString;
import io.netty.util.ReferenceCountUtil;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Queue;
import java.util.Set;
import java.util.stream.Stream;

/**
 * Decodes a backend's HTTP/1.1 responses into the objects the proxy relays ({@code HttpResponse}, then
 * {@code HttpContent} up to a {@code LastHttpContent}), strictly: anything a client or another proxy could frame
 * differently from us fails the response instead of being repaired, and the proxy answers 502.
 *
 * <p>Unlike Netty's {@code HttpResponseDecoder}, it does not turn every field into objects: the fields the proxy
 * acts on are parsed into {@link RelayedHeaders}, the others are validated and kept as bytes (issue #8: decoding and
 * re-encoding the response head was the largest part of the proxy's own CPU per request).
 *
 * <p>Refused, each with the reason in the failure: a status line other than {@code HTTP/1.0} or {@code HTTP/1.1},
 * three digits and an optional reason phrase; a line ending in a bare LF or containing a bare CR; a field line
 * folded onto the previous one (obs-fold), with whitespace before its colon, an empty or invalid name, or a control
 * character in its value; more than one Content-Length, or one that is not a decimal number; Transfer-Encoding other
 * than exactly {@code chunked} (nginx refuses the same: a coding the proxy would have to undo to re-chunk), or any in
 * an HTTP/1.0 response (RFC 9112 6.1); both Content-Length and Transfer-Encoding; a head over 64 KiB; a malformed
 * chunk size or chunk end, a chunk size of more than 15 significant hex digits or a chunk line over 4 KiB (limits RFC 9112 does
 * not set); any byte when no request is waiting for a response (the rest of a body longer than it
 * announced, say). Empty lines before a status line are skipped, as Netty's decoder and browsers do. A response
 * that fails in the same read as its head is passed on as the failure alone, so the proxy can still answer 502; one
 * whose head was passed on in an earlier read fails after the parts already passed on.
 *
 * <p>Framing follows RFC 9112 section 6.3: no body after a 1xx, 204 or 304 or in answer to HEAD; chunked; a
 * Content-Length; otherwise the body runs until the backend closes (over TLS, with its close_notify: a close
 * without one cuts the body). After a 101 nothing more is decoded: the bytes
 * stay here until the proxy removes the codec and they go to the tunnel as they are.
 */
final class BackendResponseDecoder extends ByteToMessageDecoder {

    private static final int MAX_HEAD_BYTES = 64 * 1024;
    private static final int MAX_CHUNK_LINE_BYTES = 4 * 1024;
    /** A scratch array this size or smaller is kept for the next head. */
    private static final int KEPT_SCRATCH_BYTES = 4 * 1024;
    private static final byte CR = '\r';
    private static final byte LF = '\n';
    /** Ints per field line in {@link #lines}. */
    private static final int LINE = 4;

    /** Field names the proxy acts on (RFC 9110 7.6.1, and the framing fields), so never relayed as bytes. */
    private static final AsciiString[] PARSED_NAMES = {
        HttpHeaderNames.CONTENT_LENGTH, HttpHeaderNames.TRANSFER_ENCODING, HttpHeaderNames.CONNECTION,
        AsciiString.cached("keep-alive"), AsciiString.cached("proxy-connection"), HttpHeaderNames.PROXY_AUTHENTICATE,
        HttpHeaderNames.PROXY_AUTHORIZATION, HttpHeaderNames.TE, HttpHeaderNames.TRAILER, HttpHeaderNames.UPGRADE};
    /** PARSED_NAMES by length, each with its canonical spelling: [length][k] = {lower case, Canonical-Case}. */
    private static final AsciiString[][][] PARSED_BY_LENGTH = byLength(PARSED_NAMES);
    /** Parsed values so common that they too are shared. */
    private static final AsciiString[] VALUES = {
        HttpHeaderValues.KEEP_ALIVE, HttpHeaderValues.CLOSE, HttpHeaderValues.CHUNKED, AsciiString.cached("Keep-Alive"),
        AsciiString.cached("Close")};
    /** Fields that must not appear in a trailer section; dropped there, as Netty's decoder does. */
    private static final AsciiString[] NOT_IN_TRAILERS = {
        HttpHeaderNames.CONTENT_LENGTH, HttpHeaderNames.TRANSFER_ENCODING, HttpHeaderNames.TRAILER};
    /** tchar of RFC 9110 5.6.2. */
    private static final boolean[] TCHAR = new boolean[256];

    static {
        for (int c = '0'; c <= '9'; c++) {
            TCHAR[c] = true;
        }
        for (int c = 'a'; c <= 'z'; c++) {
            TCHAR[c] = true;
            TCHAR[c - 'a' + 'A'] = true;
        }
        for (char c : "!#$%&'*+-.^_`|~".toCharArray()) {
            TCHAR[c] = true;
        }
    }

    private enum State { HEAD, FIXED_BODY, CHUNK_SIZE, CHUNK_DATA, CHUNK_END, TRAILERS, UNTIL_CLOSE, UPGRADED, FAILED }

    /** The backend's TLS close_notify arrived: over TLS, only that ends a body delimited by the close. */
    private boolean closureReceived;
    /** Methods of the requests sent whose final response is not decoded yet, shared with the request encoder. */
    private final Queue<HttpMethod> methods;
    private State state = State.HEAD;
    /** Body bytes left in a Content-Length body or the current chunk. */
    private long remaining;
    /**
     * Bytes of the head or trailer section being read already copied into {@link #scratch} and searched for the
     * section's end. The section is consumed only once complete, so these stay valid as more bytes arrive.
     */
    private int copied;
    /** The head being parsed, copied out of the buffer once. */
    private byte[] scratch = new byte[512];
    /** Per field line of the head being parsed: line start, colon, line end (its CR), 1 if parsed. */
    private int[] lines = new int[LINE * 16];
    /** Per field line: which of {@link #PARSED_NAMES} its name is, or null. */
    private AsciiString[] known = new AsciiString[16];

    BackendResponseDecoder(Queue<HttpMethod> methods) {
        this.methods = methods;
    }

    @Override
    protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
        try {
            decodeAvailable(in, out);
        } catch (InvalidResponseException e) {
            in.skipBytes(in.readableBytes());
            fail(e, out);
        }
    }

    private void fail(InvalidResponseException e, List<Object> out) {
        state = State.FAILED;
        takeBackUnfinishedResponse(out);
        LastHttpContent failed = new DefaultLastHttpContent(Unpooled.EMPTY_BUFFER, EmptyHttpHeaders.INSTANCE);
        failed.setDecoderResult(DecoderResult.failure(e));
        out.add(failed);
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) throws Exception {
        if (evt instanceof SslCloseCompletionEvent closure && closure.isSuccess()) {
            closureReceived = true;
        }
        super.userEventTriggered(ctx, evt);
    }

    /**
     * Drops the head and body parts of the response the failure cut short, when they were decoded from this same
     * read: one call of {@code decode} decodes all that a read brought, and what it adds to {@code out} is passed on
     * only after it returns, so nothing of that response has reached the proxy yet, and the failure alone has it
     * answer 502 (as for a bad head) instead of relaying a head it would then have to cut off. A response completed
     * earlier in the read stands. Only this failure path pays for it: valid responses pass exactly as before.
     */
    private static void takeBackUnfinishedResponse(List<Object> out) {
        for (int i = out.size() - 1; i >= 0; i--) {
            Object decoded = out.get(i);
            if (decoded instanceof LastHttpContent) {
                return; // the failure came after a whole response (or an interim 1xx), which stands
            }
            if (decoded instanceof HttpResponse) {
                for (int j = out.size() - 1; j >= i; j--) {
                    ReferenceCountUtil.release(out.remove(j));
                }
                return;
            }
        }
    }

    private void decodeAvailable(ByteBuf in, List<Object> out) {
        while (in.isReadable()) {
            switch (state) {
                case HEAD -> {
                    if (!readHead(in, out)) {
                        return;
                    }
                }
                case FIXED_BODY, CHUNK_DATA -> {
                    int n = (int) Math.min(remaining, in.readableBytes());
                    remaining -= n;
                    ByteBuf piece = in.readRetainedSlice(n);
                    if (remaining > 0) {
                        out.add(new DefaultHttpContent(piece));
                    } else if (state == State.FIXED_BODY) {
                        out.add(new DefaultLastHttpContent(piece, EmptyHttpHeaders.INSTANCE));
                        state = State.HEAD;
                    } else {
                        out.add(new DefaultHttpContent(piece));
                        state = State.CHUNK_END;
                    }
                }
                case CHUNK_SIZE -> {
                    if (!readChunkSize(in)) {
                        return;
                    }
                }
                case CHUNK_END -> {
                    if (in.readableBytes() < 2) {
                        return;
                    }
                    if (in.getByte(in.readerIndex()) != CR || in.getByte(in.readerIndex() + 1) != LF) {
                        throw new InvalidResponseException("chunk data not followed by CRLF");
                    }
                    in.skipBytes(2);
                    state = State.CHUNK_SIZE;
                }
                case TRAILERS -> {
                    if (!readTrailers(in, out)) {
                        return;
                    }
                }
                case UNTIL_CLOSE -> out.add(new DefaultHttpContent(in.readRetainedSlice(in.readableBytes())));
                case UPGRADED -> {
                    return; // left for the tunnel
                }
                case FAILED -> in.skipBytes(in.readableBytes());
                default -> throw new IllegalStateException(state.name());
            }
        }
    }

    @Override
    protected void decodeLast(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) throws Exception {
        super.decodeLast(ctx, in, out);
        if (state == State.UNTIL_CLOSE) {
            if (!closureReceived && ctx.pipeline().get(SslHandler.class) != null) {
                // Over TLS the end of such a body is the backend's close_notify (RFC 9112 9.8): a connection that
                // just ends is a backend that died mid-body, or a cut by someone on the path, and the part that
                // came must not reach the client as the whole. Failing it has the proxy cut the client's response.
                fail(new InvalidResponseException("body cut: the connection ended without TLS close_notify"), out);
                return;
            }
            // The close is the end of this body. A head or a sized body cut short gets nothing: the connection's
            // end, without a last piece, is what tells the proxy the response was truncated.
            out.add(LastHttpContent.EMPTY_LAST_CONTENT);
            state = State.HEAD;
        }
    }

    // ---- the head -----------------------------------------------------------------------------------------------

    private boolean readHead(ByteBuf in, List<Object> out) {
        if (copied == 0) {
            while (in.isReadable() && (in.getByte(in.readerIndex()) == CR || in.getByte(in.readerIndex()) == LF)) {
                in.skipBytes(1); // empty lines before the status line
            }
            if (in.isReadable() && methods.isEmpty()) {
                // Past the end of the last response with no request outstanding (a body longer than its
                // Content-Length, one sent after a HEAD or 204): left unread, these bytes would be taken for the
                // start of the next request's response. Failing closes the connection instead of pooling it.
                throw new InvalidResponseException("data after the response, with no request outstanding");
            }
        }
        int length = readSection(in, "response head");
        if (length < 0) {
            return false;
        }
        parseHead(scratch, length, out);
        shrinkAfterLargeSection();
        return true;
    }

    /** A pooled connection keeps its decoder: one huge head must not keep its memory for good. */
    private void shrinkAfterLargeSection() {
        if (scratch.length > KEPT_SCRATCH_BYTES) {
            scratch = new byte[512];
            lines = new int[LINE * 16];
            known = new AsciiString[16];
        }
    }

    /**
     * Copies the header section at the reader index into {@link #scratch} and consumes it, once its CRLF CRLF has
     * arrived; returns its length then, or -1 while it is incomplete. It is copied in growing steps, each searched
     * as it is copied, so a body that came in the same read is not copied too, and nothing is searched twice.
     */
    private int readSection(ByteBuf in, String what) {
        int available = Math.min(in.readableBytes(), MAX_HEAD_BYTES);
        while (copied < available) {
            int step = Math.min(available - copied, Math.max(256, copied));
            if (scratch.length < copied + step) {
                scratch = Arrays.copyOf(scratch, Math.max(copied + step, scratch.length * 2));
            }
            byte[] h = scratch;
            in.getBytes(in.readerIndex() + copied, h, copied, step);
            for (int i = Math.max(3, copied), end = copied + step; i < end; i++) {
                if (h[i] == LF && h[i - 1] == CR && h[i - 2] == LF && h[i - 3] == CR) {
                    copied = 0;
                    in.skipBytes(i + 1);
                    return i + 1;
                }
            }
            copied += step;
        }
        if (copied >= MAX_HEAD_BYTES) {
            throw new InvalidResponseException(what + " larger than " + MAX_HEAD_BYTES / 1024 + " KiB");
        }
        return -1;
    }

    private void parseHead(byte[] h, int length, List<Object> out) {
        int statusEnd = lineEnd(h, 0, length);
        if (statusEnd < 12 || h[0] != 'H' || h[1] != 'T' || h[2] != 'T' || h[3] != 'P' || h[4] != '/'
                || h[5] != '1' || h[6] != '.' || (h[7] != '0' && h[7] != '1') || h[8] != ' '
                || !digit(h[9]) || !digit(h[10]) || !digit(h[11]) || h[9] == '0'
                || (statusEnd > 12 && h[12] != ' ')) {
            throw new InvalidResponseException("invalid status line");
        }
        HttpVersion version = h[7] == '1' ? HttpVersion.HTTP_1_1 : HttpVersion.HTTP_1_0;
        int code = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
        int reasonStart = Math.min(13, statusEnd);
        for (int i = reasonStart; i < statusEnd; i++) {
            if (!fieldValueByte(h[i])) {
                throw new InvalidResponseException("invalid status line");
            }
        }
        HttpResponseStatus status = status(code, h, reasonStart, statusEnd - reasonStart);

        int fields = parseFieldLines(h, statusEnd + 2, length - 2);
        // An interim response is dropped or, for 101, checked field by field: all of it is parsed.
        boolean interim = code < 200;
        Set<AsciiString> options = interim ? null : connectionOptions(h, fields);
        int lengthField = -1;
        int codingField = -1;
        int verbatimLength = 0;
        for (int f = 0; f < fields; f++) {
            int start = lines[LINE * f];
            int nameLength = lines[LINE * f + 1] - start;
            AsciiString name = known[f];
            if (name == HttpHeaderNames.CONTENT_LENGTH) {
                if (lengthField >= 0) {
                    throw new InvalidResponseException("more than one Content-Length");
                }
                lengthField = f;
            } else if (name == HttpHeaderNames.TRANSFER_ENCODING) {
                if (codingField >= 0) {
                    throw new InvalidResponseException("more than one Transfer-Encoding");
                }
                codingField = f;
            }
            boolean parsed = interim || name != null
                    || (options != null && options.contains(new AsciiString(h, start, nameLength, true).toLowerCase()));
            lines[LINE * f + 3] = parsed ? 1 : 0;
            if (!parsed) {
                verbatimLength += lines[LINE * f + 2] + 2 - start;
            }
        }
        long contentLength = lengthField < 0 ? -1 : contentLength(h, lengthField);
        if (codingField >= 0) {
            if (contentLength >= 0) {
                throw new InvalidResponseException("both Content-Length and Transfer-Encoding");
            }
            if (version == HttpVersion.HTTP_1_0) {
                // RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding must be treated as badly framed.
                throw new InvalidResponseException("Transfer-Encoding in an HTTP/1.0 response");
            }
            if (!AsciiString.contentEqualsIgnoreCase(HttpHeaderValues.CHUNKED, value(h, codingField))) {
                throw new InvalidResponseException("Transfer-Encoding other than chunked");
            }
        }

        byte[] verbatim = new byte[verbatimLength];
        RelayedHeaders headers = new RelayedHeaders(verbatim);
        int at = 0;
        for (int f = 0; f < fields; f++) {
            int start = lines[LINE * f];
            if (lines[LINE * f + 3] == 0) {
                int lineLength = lines[LINE * f + 2] + 2 - start;
                System.arraycopy(h, start, verbatim, at, lineLength);
                at += lineLength;
            } else {
                headers.add(name(h, start, lines[LINE * f + 1]), value(h, f));
            }
        }
        out.add(new DefaultHttpResponse(version, status, headers));
        afterHead(code, codingField >= 0, contentLength, out);
    }

    /** Validates the field lines in [from, end) and records them in {@link #lines}; returns how many there are. */
    private int parseFieldLines(byte[] h, int from, int end) {
        int count = 0;
        for (int start = from; start < end; count++) {
            if (!TCHAR[h[start] & 0xff]) {
                throw new InvalidResponseException(h[start] == ' ' || h[start] == '\t'
                        ? "folded field line (obs-fold)" : "invalid field name");
            }
            int colon = start + 1;
            while (TCHAR[h[colon] & 0xff]) {
                colon++;
            }
            if (h[colon] != ':') {
                throw new InvalidResponseException(h[colon] == ' ' || h[colon] == '\t'
                        ? "whitespace between a field name and its colon" : "invalid field name");
            }
            // The section ends in CRLF CRLF, so this stops at the latest on its last CR.
            int lineEnd = colon + 1;
            while (fieldValueByte(h[lineEnd])) {
                lineEnd++;
            }
            if (h[lineEnd] != CR || h[lineEnd + 1] != LF) {
                throw new InvalidResponseException(h[lineEnd] == LF ? "line ending in a bare LF"
                        : h[lineEnd] == CR ? "bare CR in the response head"
                        : "control character in the value of a field");
            }
            if (lines.length < LINE * (count + 1)) {
                lines = Arrays.copyOf(lines, lines.length * 2);
                known = Arrays.copyOf(known, known.length * 2);
            }
            lines[LINE * count] = start;
            lines[LINE * count + 1] = colon;
            lines[LINE * count + 2] = lineEnd;
            known[count] = parsedName(h, start, colon - start);
            start = lineEnd + 2;
        }
        return count;
    }

    /** The index of the CR of the line starting at {@code from}; a bare CR or LF before it is refused. */
    private static int lineEnd(byte[] h, int from, int limit) {
        for (int i = from; i < limit; i++) {
            if (h[i] == CR) {
                if (i + 1 >= limit || h[i + 1] != LF) {
                    throw new InvalidResponseException("bare CR in the response head");
                }
                return i;
            }
            if (h[i] == LF) {
                throw new InvalidResponseException("line ending in a bare LF");
            }
        }
        throw new InvalidResponseException("line without CRLF");
    }

    /**
     * Field names, lower case, that this head's Connection fields list besides the ones always parsed (RFC 9110
     * 7.6.1: they are hop-by-hop, and ForwardedHeaders removes them); null when there are none, the common case.
     */
    private Set<AsciiString> connectionOptions(byte[] h, int fields) {
        Set<AsciiString> options = null;
        for (int f = 0; f < fields; f++) {
            if (known[f] != HttpHeaderNames.CONNECTION) {
                continue;
            }
            int end = lines[LINE * f + 2];
            for (int i = lines[LINE * f + 1] + 1; i < end; ) {
                while (i < end && (h[i] == ' ' || h[i] == '\t' || h[i] == ',')) {
                    i++;
                }
                int tokenStart = i;
                while (i < end && h[i] != ',') {
                    i++;
                }
                int tokenEnd = i;
                while (tokenEnd > tokenStart && (h[tokenEnd - 1] == ' ' || h[tokenEnd - 1] == '\t')) {
                    tokenEnd--;
                }
                int length = tokenEnd - tokenStart;
                if (length > 0 && parsedName(h, tokenStart, length) == null
                        && !sameName(HttpHeaderValues.CLOSE, h, tokenStart, length)) {
                    if (options == null) {
                        options = new HashSet<>();
                    }
                    options.add(new AsciiString(h, tokenStart, length, true).toLowerCase());
                }
            }
        }
        return options;
    }

    /** Emits what follows the head at once, and sets how the body, if any, is read (RFC 9112 6.3). */
    private void afterHead(int code, boolean chunked, long contentLength, List<Object> out) {
        if (code == HttpResponseStatus.SWITCHING_PROTOCOLS.code()) {
            out.add(LastHttpContent.EMPTY_LAST_CONTENT);
            state = State.UPGRADED;
            return;
        }
        if (code < 200) {
            // Interim: the final response to the same request follows, so this does not use up its method.
            out.add(LastHttpContent.EMPTY_LAST_CONTENT);
            return;
        }
        HttpMethod method = methods.poll();
        if (HttpMethod.HEAD.equals(method) || code == 204 || code == 304 || contentLength == 0) {
            out.add(LastHttpContent.EMPTY_LAST_CONTENT);
        } else if (chunked) {
            state = State.CHUNK_SIZE;
        } else if (contentLength > 0) {
            remaining = contentLength;
            state = State.FIXED_BODY;
        } else {
            state = State.UNTIL_CLOSE;
        }
    }

    private long contentLength(byte[] h, int f) {
        int from = valueFrom(h, f);
        int to = valueTo(h, f, from);
        if (from == to || to - from > 18) {
            throw new InvalidResponseException("invalid Content-Length");
        }
        long length = 0;
        for (int i = from; i < to; i++) {
            if (!digit(h[i])) {
                throw new InvalidResponseException("invalid Content-Length");
            }
            length = length * 10 + (h[i] - '0');
        }
        return length;
    }

    // ---- chunks -------------------------------------------------------------------------------------------------

    /** chunk-size [ chunk-ext ] CRLF (RFC 9112 7.1); extensions are validated and dropped, as Netty does. */
    private boolean readChunkSize(ByteBuf in) {
        int start = in.readerIndex();
        int lf = in.indexOf(start, start + Math.min(in.readableBytes(), MAX_CHUNK_LINE_BYTES), LF);
        if (lf < 0) {
            if (in.readableBytes() >= MAX_CHUNK_LINE_BYTES) {
                throw new InvalidResponseException("chunk size line too long");
            }
            return false;
        }
        int end = lf - 1;
        if (end < start || in.getByte(end) != CR) {
            throw new InvalidResponseException("chunk size line ending in a bare LF");
        }
        long size = 0;
        int i = start;
        for (; i < end; i++) {
            int digit = Character.digit(in.getByte(i), 16);
            if (digit < 0) {
                break;
            }
            // Fifteen significant hex digits are more than any body; leading zeros, which RFC 9112 allows any
            // number of (bounded here by the chunk line), are not counted, as nginx does not count them.
            if (size >= 1L << 56) {
                throw new InvalidResponseException("chunk size too large");
            }
            size = size * 16 + digit;
        }
        if (i == start) {
            throw new InvalidResponseException("invalid chunk size");
        }
        while (i < end && (in.getByte(i) == ' ' || in.getByte(i) == '\t')) {
            i++;
        }
        if (i < end && in.getByte(i) != ';') {
            throw new InvalidResponseException("invalid chunk size");
        }
        for (; i < end; i++) {
            if (!fieldValueByte(in.getByte(i))) {
                throw new InvalidResponseException("control character in a chunk extension");
            }
        }
        in.readerIndex(lf + 1);
        if (size == 0) {
            state = State.TRAILERS;
        } else {
            remaining = size;
            state = State.CHUNK_DATA;
        }
        return true;
    }

    private boolean readTrailers(ByteBuf in, List<Object> out) {
        if (in.readableBytes() < 2) {
            return false;
        }
        if (in.getByte(in.readerIndex()) == CR && in.getByte(in.readerIndex() + 1) == LF) {
            in.skipBytes(2);
            out.add(LastHttpContent.EMPTY_LAST_CONTENT);
            state = State.HEAD;
            return true;
        }
        int length = readSection(in, "trailer section");
        if (length < 0) {
            return false;
        }
        byte[] h = scratch;
        int fields = parseFieldLines(h, 0, length - 2);
        HttpHeaders trailers = new DefaultHttpHeaders();
        for (int f = 0; f < fields; f++) {
            int start = lines[LINE * f];
            int colon = lines[LINE * f + 1];
            if (!isAny(NOT_IN_TRAILERS, h, start, colon - start)) {
                trailers.add(name(h, start, colon), value(h, f));
            }
        }
        shrinkAfterLargeSection();
        out.add(new DefaultLastHttpContent(Unpooled.EMPTY_BUFFER, trailers));
        state = State.HEAD;
        return true;
    }

    // ---- bytes --------------------------------------------------------------------------------------------------

    /** Netty's constant when the reason phrase is the usual one, so the common statuses allocate nothing. */
    private static HttpResponseStatus status(int code, byte[] h, int reasonStart, int reasonLength) {
        HttpResponseStatus known = HttpResponseStatus.valueOf(code);
        String phrase = known.reasonPhrase();
        if (phrase.length() == reasonLength) {
            int i = 0;
            while (i < reasonLength && phrase.charAt(i) == h[reasonStart + i]) {
                i++;
            }
            if (i == reasonLength) {
                return known;
            }
        }
        return new HttpResponseStatus(code, new String(h, reasonStart, reasonLength, StandardCharsets.ISO_8859_1));
    }

    /** The name as the backend spelled it; the usual spellings of the parsed names are shared instances. */
    private static AsciiString name(byte[] h, int start, int colon) {
        int length = colon - start;
        if (length < PARSED_BY_LENGTH.length) {
            for (AsciiString[] spellings : PARSED_BY_LENGTH[length]) {
                for (AsciiString spelling : spellings) {
                    if (exact(spelling, h, start)) {
                        return spelling;
                    }
                }
            }
        }
        return new AsciiString(h, start, length, true);
    }

    /** The lower-case constant of PARSED_NAMES this name is, ignoring case, or null. */
    private static AsciiString parsedName(byte[] h, int start, int length) {
        if (length < PARSED_BY_LENGTH.length) {
            for (AsciiString[] spellings : PARSED_BY_LENGTH[length]) {
                if (sameName(spellings[0], h, start, length)) {
                    return spellings[0];
                }
            }
        }
        return null;
    }

    private static AsciiString[][][] byLength(AsciiString[] names) {
        int longest = Stream.of(names).mapToInt(AsciiString::length).max().orElse(0);
        AsciiString[][][] table = new AsciiString[longest + 1][][];
        for (int length = 0; length <= longest; length++) {
            int l = length;
            table[length] = Stream.of(names).filter(n -> n.length() == l)
                    .map(n -> new AsciiString[] {n, AsciiString.cached(canonical(n.toString()))})
                    .toArray(AsciiString[][]::new);
        }
        return table;
    }

    /** Where the value of field {@code f} starts, after the optional whitespace. */
    private int valueFrom(byte[] h, int f) {
        int from = lines[LINE * f + 1] + 1;
        while (from < lines[LINE * f + 2] && (h[from] == ' ' || h[from] == '\t')) {
            from++;
        }
        return from;
    }

    /** Where the value of field {@code f} ends, before the optional whitespace. */
    private int valueTo(byte[] h, int f, int from) {
        int to = lines[LINE * f + 2];
        while (to > from && (h[to - 1] == ' ' || h[to - 1] == '\t')) {
            to--;
        }
        return to;
    }

    /** The value of field {@code f} without the optional whitespace at either end. */
    private CharSequence value(byte[] h, int f) {
        int from = valueFrom(h, f);
        int to = valueTo(h, f, from);
        for (AsciiString known : VALUES) {
            if (known.length() == to - from && exact(known, h, from)) {
                return known;
            }
        }
        return new String(h, from, to - from, StandardCharsets.ISO_8859_1);
    }

    private static boolean exact(AsciiString s, byte[] h, int start) {
        for (int i = 0; i < s.length(); i++) {
            if (s.byteAt(i) != h[start + i]) {
                return false;
            }
        }
        return true;
    }

    private static boolean isAny(AsciiString[] names, byte[] h, int start, int length) {
        for (AsciiString name : names) {
            if (sameName(name, h, start, length)) {
                return true;
            }
        }
        return false;
    }

    private static boolean sameName(AsciiString name, byte[] h, int start, int length) {
        if (name.length() != length) {
            return false;
        }
        for (int i = 0; i < length; i++) {
            if (lower(name.byteAt(i)) != lower(h[start + i])) {
                return false;
            }
        }
        return true;
    }


    /** field-vchar, SP or HTAB (RFC 9110 5.5): anything but a control character; obs-text is allowed. */
    private static boolean fieldValueByte(byte b) {
        return b == '\t' || (b >= 0x20 && b != 0x7f) || b < 0;
    }

    private static String canonical(String lowerCase) {
        StringBuilder b = new StringBuilder(lowerCase);
        for (int i = 0; i < b.length(); i++) {
            if (i == 0 || b.charAt(i - 1) == '-') {
                b.setCharAt(i, Character.toUpperCase(b.charAt(i)));
            }
        }
        return b.toString();
    }

    private static int lower(byte b) {
        return b >= 'A' && b <= 'Z' ? b + ('a' - 'A') : b;
    }

    private static boolean digit(byte b) {
        return b >= '0' && b <= '9';
    }
}
