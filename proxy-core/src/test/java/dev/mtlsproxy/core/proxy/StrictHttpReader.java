package dev.mtlsproxy.core.proxy;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * A second opinion on HTTP/1.1 request framing, written from RFC 9112 and independent of the proxy's code: it reads
 * one request from bytes, or says the bytes are incomplete, or says why they are not a request every parser would
 * read alike. It takes the strict reading wherever the RFC lets a recipient choose: a bare CR or LF, obs-fold,
 * whitespace before a colon, a control byte in the head, both Content-Length and Transfer-Encoding, a Content-Length
 * list (even "5, 5"), a transfer coding other than one final {@code chunked}, Transfer-Encoding in HTTP/1.0, and a
 * version other than HTTP/1.0 or HTTP/1.1 are all invalid. Chunk extensions are valid (the RFC grammar) and ignored.
 *
 * <p>Reading what a client sent, it takes two liberties the RFC allows and the proxy takes: it skips what comes
 * before a request-line (RFC 9112 2.2 asks servers to ignore empty lines there; Netty skips any control or
 * whitespace byte), and it splits the request-line on runs of whitespace (SP, HTAB, VT, FF, bare CR), ignoring
 * whitespace before and after (RFC 9112 3: "recipients MAY instead parse on whitespace-delimited word boundaries").
 * Neither changes the request a backend receives: the proxy forwards the request-line it read, rebuilt with single
 * spaces, and nothing before it. A third, obs-fold in a field, the RFC lets a server replace with a space before it
 * interprets or forwards the field (RFC 9112 5.2), which the proxy does. A fourth: a trailer field whose definition
 * does not allow it in trailers ({@code Content-Length}, {@code Transfer-Encoding}, {@code Host}; RFC 9110 6.5.1) is
 * discarded, as RFC 9112 7.1.2 lets a recipient that removes the chunked coding do with any trailer field, and as
 * the proxy does: the head already decided the framing and the route, so the request is the same without it. What the
 * proxy sends is read without any.
 */
final class StrictHttpReader {

    /** A request read in full: head fields in order, the body de-chunked, trailer fields of a chunked body. */
    record Request(String method, String target, String version, List<Field> fields, byte[] body,
            List<Field> trailers, boolean chunked, int start, int end) {

        List<String> values(String name) {
            List<String> values = new ArrayList<>();
            for (Field f : fields) {
                if (f.name().equalsIgnoreCase(name)) {
                    values.add(f.value());
                }
            }
            return values;
        }

        /** The value of a field that occurs exactly once, or null. */
        String single(String name) {
            List<String> values = values(name);
            return values.size() == 1 ? values.get(0) : null;
        }
    }

    record Field(String name, String value) {
    }

    /** The outcome of reading at one position: a request, more bytes needed, or invalid with the reason. */
    record Result(Request request, boolean incomplete, String invalid) {
        static final Result INCOMPLETE = new Result(null, true, null);

        static Result invalid(String reason) {
            return new Result(null, false, reason);
        }
    }

    private static final int MAX_HEAD = 64 * 1024;
    /** Whitespace of a request-line read as RFC 9112 3 allows: SP, HTAB, VT, FF, bare CR. */
    private static final java.util.regex.Pattern WHITESPACE = java.util.regex.Pattern.compile("[ \\t\\u000b\\f\\r]+");
    private static final java.util.regex.Pattern EDGE_WHITESPACE =
            java.util.regex.Pattern.compile("^[ \\t\\u000b\\f\\r]+|[ \\t\\u000b\\f\\r]+$");

    private final byte[] b;
    private final int limit;
    private int pos;

    private StrictHttpReader(byte[] bytes, int from, int limit) {
        this.b = bytes;
        this.pos = from;
        this.limit = limit;
    }

    /**
     * Reads the request starting at {@code from}; {@code fromClient} takes the liberties described above, which
     * a client's bytes may need and the proxy's never do.
     */
    static Result read(byte[] bytes, int from, int limit, boolean fromClient) {
        StrictHttpReader reader = new StrictHttpReader(bytes, from, limit);
        try {
            return reader.request(fromClient);
        } catch (Incomplete e) {
            return Result.INCOMPLETE;
        } catch (Invalid e) {
            return Result.invalid(e.getMessage());
        }
    }

    /** Every request of a byte stream in order, and how the stream ended after them. */
    record Stream(List<Request> requests, boolean incomplete, String invalid) {
    }

    static Stream readAll(byte[] bytes, boolean fromClient) {
        List<Request> requests = new ArrayList<>();
        int at = 0;
        while (at < bytes.length) {
            Result r = read(bytes, at, bytes.length, fromClient);
            if (r.request() == null) {
                return new Stream(requests, r.incomplete(), r.invalid());
            }
            requests.add(r.request());
            at = r.request().end();
        }
        return new Stream(requests, false, null);
    }

    private Result request(boolean fromClient) {
        if (fromClient) {
            while (pos < limit && isSkippedBeforeRequestLine(b[pos] & 0xff)) {
                pos++;
            }
        }
        int start = pos;
        String line = fromClient ? requestLineOfClient() : line();
        String[] parts = fromClient ? WHITESPACE.split(EDGE_WHITESPACE.matcher(line).replaceAll(""), -1)
                : line.split(" ", -1);
        if (parts.length != 3) {
            throw new Invalid("request-line is not three words: " + line);
        }
        String method = parts[0];
        String target = parts[1];
        String version = parts[2];
        if (method.isEmpty() || !isToken(method)) {
            throw new Invalid("method is not a token");
        }
        if (target.isEmpty()) {
            throw new Invalid("empty request-target");
        }
        for (int i = 0; i < target.length(); i++) {
            char c = target.charAt(i);
            if (c <= 0x20 || c >= 0x7f) {
                throw new Invalid("request-target byte 0x" + Integer.toHexString(c));
            }
        }
        if (!version.equals("HTTP/1.1") && !version.equals("HTTP/1.0")) {
            throw new Invalid("version " + version);
        }
        List<Field> fields = fields(fromClient);
        if (pos - start > MAX_HEAD) {
            throw new Invalid("head over 64 KiB");
        }
        List<String> te = new ArrayList<>();
        List<String> cl = new ArrayList<>();
        int hosts = 0;
        for (Field f : fields) {
            String name = f.name().toLowerCase(Locale.ROOT);
            switch (name) {
                case "transfer-encoding" -> te.add(f.value());
                case "content-length" -> cl.add(f.value());
                case "host" -> hosts++;
                default -> { }
            }
        }
        if (hosts > 1 || (hosts == 0 && version.equals("HTTP/1.1"))) {
            throw new Invalid(hosts + " Host fields");
        }
        if (!te.isEmpty() && !cl.isEmpty()) {
            throw new Invalid("both Content-Length and Transfer-Encoding");
        }
        byte[] body;
        List<Field> trailers = List.of();
        boolean chunked = !te.isEmpty();
        if (chunked) {
            if (version.equals("HTTP/1.0")) {
                throw new Invalid("Transfer-Encoding in HTTP/1.0");
            }
            if (te.size() != 1 || !te.get(0).equalsIgnoreCase("chunked")) {
                throw new Invalid("transfer coding other than one chunked: " + te);
            }
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            trailers = chunkedBody(out, fromClient);
            body = out.toByteArray();
        } else if (!cl.isEmpty()) {
            if (cl.size() != 1 || !cl.get(0).matches("[0-9]{1,15}")) {
                throw new Invalid("Content-Length " + cl);
            }
            long announced = Long.parseLong(cl.get(0));
            if (announced > limit - pos) {
                throw new Incomplete();
            }
            int length = (int) announced;
            body = java.util.Arrays.copyOfRange(b, pos, pos + length);
            pos += length;
        } else {
            body = new byte[0];
        }
        return new Result(new Request(method, target, version, fields, body, trailers, chunked, start, pos), false,
                null);
    }

    private List<Field> fields(boolean fromClient) {
        List<Field> fields = new ArrayList<>();
        while (true) {
            if (pos < limit && (b[pos] == ' ' || b[pos] == '\t')) {
                if (fields.isEmpty() || !fromClient) {
                    throw new Invalid(fields.isEmpty() ? "whitespace before the first field" : "obs-fold");
                }
                // RFC 9112 5.2: a server either refuses obs-fold or replaces it with SP before it interprets or
                // forwards the field; the proxy does the latter.
                Field folded = fields.remove(fields.size() - 1);
                String rest = trimOws(line());
                fields.add(new Field(folded.name(), folded.value().isEmpty() ? rest : folded.value() + " " + rest));
                continue;
            }
            String line = line();
            if (line.isEmpty()) {
                return fields;
            }
            int colon = line.indexOf(':');
            if (colon <= 0) {
                throw new Invalid("field line without a name and colon: " + line);
            }
            String name = line.substring(0, colon);
            if (!isToken(name)) {
                throw new Invalid("field name is not a token (whitespace before colon?): " + name);
            }
            String value = line.substring(colon + 1);
            for (int i = 0; i < value.length(); i++) {
                char c = value.charAt(i);
                if ((c < 0x20 && c != '\t') || c == 0x7f) {
                    throw new Invalid("control byte 0x" + Integer.toHexString(c) + " in field " + name);
                }
            }
            fields.add(new Field(name, trimOws(value)));
            if (fields.size() > 500) {
                throw new Invalid("too many fields");
            }
        }
    }

    private List<Field> chunkedBody(ByteArrayOutputStream out, boolean fromClient) {
        while (true) {
            String line = line();
            int i = 0;
            while (i < line.length() && hexValue(line.charAt(i)) >= 0) {
                i++;
            }
            if (i == 0) {
                throw new Invalid("chunk size is not hex: " + line);
            }
            String digits = line.substring(0, i).replaceFirst("^0+(?=.)", "");
            if (digits.length() > 7) {
                throw new Invalid("chunk size too large: " + line);
            }
            int size = Integer.parseInt(digits, 16);
            chunkExtensions(line.substring(i));
            if (size == 0) {
                List<Field> trailers = new ArrayList<>();
                for (Field t : fields(fromClient)) {
                    // RFC 9110 6.5.1: framing and routing fields are not allowed in trailers. A client's are
                    // discarded (RFC 9112 7.1.2), which the proxy does; any in what the proxy sends is invalid.
                    String name = t.name().toLowerCase(Locale.ROOT);
                    if (name.equals("content-length") || name.equals("transfer-encoding") || name.equals("host")) {
                        if (!fromClient) {
                            throw new Invalid("trailer field " + t.name());
                        }
                        continue;
                    }
                    trailers.add(t);
                }
                return trailers;
            }
            need(size + 2);
            out.write(b, pos, size);
            pos += size;
            if (b[pos] != '\r' || b[pos + 1] != '\n') {
                throw new Invalid("chunk data not followed by CRLF");
            }
            pos += 2;
        }
    }

    /** chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ), ext-val a token or a quoted-string. */
    private static void chunkExtensions(String s) {
        int i = 0;
        while (i < s.length()) {
            i = skipBws(s, i);
            if (i >= s.length() || s.charAt(i) != ';') {
                throw new Invalid("chunk extension: " + s);
            }
            i = skipBws(s, i + 1);
            int nameStart = i;
            while (i < s.length() && isTchar(s.charAt(i))) {
                i++;
            }
            if (i == nameStart) {
                throw new Invalid("chunk extension without a name: " + s);
            }
            int afterName = i;
            i = skipBws(s, i);
            if (i < s.length() && s.charAt(i) == '=') {
                i = skipBws(s, i + 1);
                if (i < s.length() && s.charAt(i) == '"') {
                    i++;
                    while (i < s.length() && s.charAt(i) != '"') {
                        char c = s.charAt(i);
                        if (c == '\\') {
                            i++;
                        } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
                            throw new Invalid("control byte in chunk extension");
                        }
                        i++;
                    }
                    if (i >= s.length()) {
                        throw new Invalid("unterminated quoted chunk extension");
                    }
                    i++;
                } else {
                    int valueStart = i;
                    while (i < s.length() && isTchar(s.charAt(i))) {
                        i++;
                    }
                    if (i == valueStart) {
                        throw new Invalid("chunk extension without a value after =");
                    }
                }
            } else {
                i = afterName;
            }
        }
    }

    private static int skipBws(String s, int i) {
        while (i < s.length() && (s.charAt(i) == ' ' || s.charAt(i) == '\t')) {
            i++;
        }
        return i;
    }

    /** What Netty skips before a request-line: ISO control characters and whitespace. */
    private static boolean isSkippedBeforeRequestLine(int c) {
        return c <= 0x20 || (c >= 0x7f && c <= 0x9f);
    }

    /** A request-line up to CRLF, in which a bare CR counts as whitespace (RFC 9112 3). */
    private String requestLineOfClient() {
        StringBuilder line = new StringBuilder();
        while (true) {
            need(1);
            byte c = b[pos];
            if (c == '\n') {
                if (line.length() == 0 || line.charAt(line.length() - 1) != '\r') {
                    throw new Invalid("bare LF");
                }
                pos++;
                return line.substring(0, line.length() - 1);
            }
            if (c == 0) {
                throw new Invalid("NUL byte in head");
            }
            line.append((char) (c & 0xff));
            pos++;
            if (line.length() > MAX_HEAD) {
                throw new Invalid("line over 64 KiB");
            }
        }
    }

    /** A line up to CRLF, without it. A CR not followed by LF, or an LF without CR before it, is invalid. */
    private String line() {
        StringBuilder line = new StringBuilder();
        while (true) {
            need(1);
            byte c = b[pos];
            if (c == '\n') {
                throw new Invalid("bare LF");
            }
            if (c == '\r') {
                need(2);
                if (b[pos + 1] != '\n') {
                    throw new Invalid("bare CR");
                }
                pos += 2;
                return line.toString();
            }
            if (c == 0) {
                throw new Invalid("NUL byte in head");
            }
            line.append((char) (c & 0xff));
            pos++;
            if (line.length() > MAX_HEAD) {
                throw new Invalid("line over 64 KiB");
            }
        }
    }

    private void need(int n) {
        if (limit - pos < n) {
            throw new Incomplete();
        }
    }

    private static String trimOws(String s) {
        int from = 0;
        int to = s.length();
        while (from < to && (s.charAt(from) == ' ' || s.charAt(from) == '\t')) {
            from++;
        }
        while (to > from && (s.charAt(to - 1) == ' ' || s.charAt(to - 1) == '\t')) {
            to--;
        }
        return s.substring(from, to);
    }

    static boolean isToken(String s) {
        for (int i = 0; i < s.length(); i++) {
            if (!isTchar(s.charAt(i))) {
                return false;
            }
        }
        return !s.isEmpty();
    }

    private static boolean isTchar(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                || "!#$%&'*+-.^_`|~".indexOf(c) >= 0;
    }

    private static int hexValue(char c) {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        if (c >= 'A' && c <= 'F') {
            return c - 'A' + 10;
        }
        return -1;
    }

    /** Prints bytes for a failure message so they can be pasted back into a Java string. */
    static String escape(byte[] bytes, int from, int to) {
        StringBuilder s = new StringBuilder();
        for (int i = from; i < to; i++) {
            int c = bytes[i] & 0xff;
            switch (c) {
                case '\r' -> s.append("\\r");
                case '\n' -> s.append("\\n");
                case '\t' -> s.append("\\t");
                case '"' -> s.append("\\\"");
                case '\\' -> s.append("\\\\");
                default -> {
                    if (c < 0x20 || c >= 0x7f) {
                        s.append(String.format("\\u%04x", c));
                    } else {
                        s.append((char) c);
                    }
                }
            }
        }
        return s.toString();
    }

    static String escape(byte[] bytes) {
        return escape(bytes, 0, bytes.length);
    }

    static byte[] bytes(String latin1) {
        return latin1.getBytes(StandardCharsets.ISO_8859_1);
    }

    private static final class Incomplete extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Incomplete() {
            super(null, null, false, false);
        }
    }

    private static final class Invalid extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Invalid(String reason) {
            super(reason, null, false, false);
        }
    }
}
