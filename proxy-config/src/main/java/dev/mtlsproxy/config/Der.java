package dev.mtlsproxy.config;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Just enough DER to read the distribution-point extensions of certificates and CRLs, which the JDK parses only in
 * its internal packages: one tag-length-value at a time, single-byte tags, definite lengths. Anything else is
 * malformed for our purposes and throws {@link IllegalArgumentException}.
 */
final class Der {

    static final int SEQUENCE = 0x30;
    static final int OCTET_STRING = 0x04;
    static final int BOOLEAN = 0x01;

    /** One element: its tag byte and its content. */
    record Element(int tag, byte[] content) {

        /** Context-specific tag number, for [n] fields; -1 for universal tags. */
        int contextNumber() {
            return (tag & 0xc0) == 0x80 ? tag & 0x1f : -1;
        }

        /** The elements inside a constructed one. */
        List<Element> children() {
            if ((tag & 0x20) == 0) {
                throw new IllegalArgumentException("primitive element has no children");
            }
            return all(content);
        }

        /** The element's content read as a BOOLEAN (DER: 0x00 or 0xff). */
        boolean bool() {
            if (content.length != 1 || (content[0] != 0 && content[0] != (byte) 0xff)) {
                throw new IllegalArgumentException("not a DER BOOLEAN");
            }
            return content[0] != 0;
        }

        /** The element again, encoded: tag, length and content. */
        byte[] encoded() {
            byte[] length = length(content.length);
            byte[] out = new byte[1 + length.length + content.length];
            out[0] = (byte) tag;
            System.arraycopy(length, 0, out, 1, length.length);
            System.arraycopy(content, 0, out, 1 + length.length, content.length);
            return out;
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Element e && e.tag == tag && Arrays.equals(e.content, content);
        }

        @Override
        public int hashCode() {
            return tag * 31 + Arrays.hashCode(content);
        }

        @Override
        public String toString() {
            return "Element[tag=" + tag + ", " + content.length + " bytes]";
        }
    }

    private Der() {
    }

    /** The single element {@code der} holds, with nothing after it. */
    static Element one(byte[] der) {
        List<Element> elements = all(der);
        if (elements.size() != 1) {
            throw new IllegalArgumentException("expected one DER element, found " + elements.size());
        }
        return elements.get(0);
    }

    /**
     * The DER inside an extension value as {@code getExtensionValue} returns it (wrapped in an OCTET STRING), or null
     * when the value is null.
     */
    static Element extension(byte[] value) {
        if (value == null) {
            return null;
        }
        Element octets = one(value);
        if (octets.tag() != OCTET_STRING) {
            throw new IllegalArgumentException("extension value is not an OCTET STRING");
        }
        return one(octets.content());
    }

    static List<Element> all(byte[] der) {
        List<Element> elements = new ArrayList<>();
        int at = 0;
        while (at < der.length) {
            int tag = der[at++] & 0xff;
            if ((tag & 0x1f) == 0x1f) {
                throw new IllegalArgumentException("multi-byte DER tag");
            }
            if (at >= der.length) {
                throw new IllegalArgumentException("truncated DER length");
            }
            int first = der[at++] & 0xff;
            int length;
            if (first < 0x80) {
                length = first;
            } else {
                int bytes = first & 0x7f;
                if (bytes == 0 || bytes > 3 || at + bytes > der.length) {
                    throw new IllegalArgumentException("unsupported DER length");
                }
                length = 0;
                for (int i = 0; i < bytes; i++) {
                    length = (length << 8) | (der[at++] & 0xff);
                }
            }
            if (length > der.length - at) {
                throw new IllegalArgumentException("truncated DER content");
            }
            elements.add(new Element(tag, Arrays.copyOfRange(der, at, at + length)));
            at += length;
        }
        return elements;
    }

    private static byte[] length(int length) {
        if (length < 0x80) {
            return new byte[] {(byte) length};
        }
        if (length < 0x100) {
            return new byte[] {(byte) 0x81, (byte) length};
        }
        if (length < 0x10000) {
            return new byte[] {(byte) 0x82, (byte) (length >> 8), (byte) length};
        }
        return new byte[] {(byte) 0x83, (byte) (length >> 16), (byte) (length >> 8), (byte) length};
    }
}
