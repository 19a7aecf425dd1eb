package dev.mtlsproxy.config;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.regex.Pattern;

/**
 * An IP address or CIDR block, parsed from literals only: text that is not an address is rejected without ever being
 * looked up in DNS (which {@link InetAddress#getByName} would do for anything that is not a literal).
 *
 * @param network    the address bytes (4 or 16), host bits cleared
 * @param prefixBits leading bits that must be equal
 */
public record IpRange(byte[] network, int prefixBits) {

    private static final Pattern IPV4 = Pattern.compile(
            "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}");

    public IpRange {
        network = network.clone();
    }

    /** @throws IllegalArgumentException when the text is not an IPv4/IPv6 literal, optionally with /bits */
    public static IpRange parse(String text) {
        String t = text.trim();
        int slash = t.indexOf('/');
        byte[] address = literal(slash < 0 ? t : t.substring(0, slash));
        int bits = address.length * 8;
        if (slash >= 0) {
            String b = t.substring(slash + 1);
            if (!b.matches("[0-9]{1,3}") || Integer.parseInt(b) > bits) {
                throw new IllegalArgumentException("prefix length out of range");
            }
            bits = Integer.parseInt(b);
        }
        byte[] network = address.clone();
        for (int i = 0; i < network.length; i++) {
            int keep = Math.max(0, Math.min(8, bits - i * 8));
            network[i] &= (byte) (0xff << (8 - keep));
        }
        return new IpRange(network, bits);
    }

    /** The bytes of an IPv4 or IPv6 literal. */
    public static byte[] literal(String text) {
        if (IPV4.matcher(text).matches()) {
            return resolveLiteral(text);
        }
        // With a colon the JDK parses an IPv6 literal and never falls back to DNS. It folds an IPv4-mapped one
        // (::ffff:10.1.2.3) into the IPv4 address; kept as the IPv6 address it is written as, it stays outside IPv4
        // ranges, as name constraints judge it (a CA excluded from 10.0.0.0/8 may issue ::ffff:10.1.2.3).
        if (text.indexOf(':') >= 0 && text.matches("[0-9A-Fa-f:.]+")) {
            byte[] address = resolveLiteral(text);
            return address.length == 4 ? mapped(address) : address;
        }
        throw new IllegalArgumentException("not an IP address");
    }

    private static byte[] mapped(byte[] ipv4) {
        byte[] ipv6 = new byte[16];
        ipv6[10] = (byte) 0xff;
        ipv6[11] = (byte) 0xff;
        System.arraycopy(ipv4, 0, ipv6, 12, 4);
        return ipv6;
    }

    private static byte[] resolveLiteral(String text) {
        try {
            return InetAddress.getByName(text).getAddress();
        } catch (UnknownHostException e) {
            throw new IllegalArgumentException("not an IP address", e);
        }
    }

    public boolean contains(byte[] address) {
        if (address.length != network.length) {
            return false;
        }
        for (int bit = 0; bit < prefixBits; bit += 8) {
            int keep = Math.min(8, prefixBits - bit);
            int mask = (0xff << (8 - keep)) & 0xff;
            if ((address[bit / 8] & mask) != (network[bit / 8] & 0xff & mask)) {
                return false;
            }
        }
        return true;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof IpRange r && r.prefixBits == prefixBits && java.util.Arrays.equals(r.network, network);
    }

    @Override
    public int hashCode() {
        return 31 * java.util.Arrays.hashCode(network) + prefixBits;
    }

    @Override
    public String toString() {
        return resolveLiteralText() + "/" + prefixBits;
    }

    private String resolveLiteralText() {
        try {
            return InetAddress.getByAddress(network).getHostAddress();
        } catch (UnknownHostException e) {
            throw new IllegalStateException(e);
        }
    }
}
