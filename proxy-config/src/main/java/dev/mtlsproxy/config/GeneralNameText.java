package dev.mtlsproxy.config;

import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import java.util.LinkedHashSet;
import java.util.Set;
import javax.security.auth.x500.X500Principal;

/**
 * GeneralNames (RFC 5280 4.2.1.6) as comparable text, for matching distribution point names: equal text is what
 * OpenSSL's GENERAL_NAME_cmp calls equal. A URI compares byte for byte, as OpenSSL does; a directory name compares
 * as RFC 5280 7.1 says (the JDK's canonical form); other kinds by their encoding.
 */
final class GeneralNameText {

    private GeneralNameText() {
    }

    /** The names of a GeneralNames sequence, or of the content of an implicitly tagged one. */
    static Set<String> all(Der.Element names) {
        Set<String> text = new LinkedHashSet<>();
        for (Der.Element name : names.children()) {
            text.add(of(name));
        }
        return Set.copyOf(text);
    }

    static String of(Der.Element name) {
        return switch (name.contextNumber()) {
            case 6 -> "URI:" + new String(name.content(), StandardCharsets.ISO_8859_1);
            case 4 -> directoryName(new X500Principal(Der.one(name.content()).encoded()));
            case 2 -> "DNS:" + new String(name.content(), StandardCharsets.ISO_8859_1);
            default -> "[" + name.contextNumber() + "]:" + HexFormat.of().formatHex(name.content());
        };
    }

    static String directoryName(X500Principal name) {
        return "DirName:" + name.getName(X500Principal.CANONICAL);
    }
}
