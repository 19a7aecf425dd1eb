package dev.mtlsproxy.config;

/**
 * Parser limits for requests arriving on a listener.
 *
 * @param maxInitialLineLength longest request line
 * @param maxHeaderSize        total size of all request headers
 */
public record HttpLimits(DataSize maxInitialLineLength, DataSize maxHeaderSize) {

    public static final HttpLimits DEFAULT = new HttpLimits(DataSize.ofKibibytes(8), DataSize.ofKibibytes(16));
    /**
     * The most either limit may be: Envoy's bound on {@code max_request_headers_kb}, refused above it at load as
     * Envoy refuses it. A request head is held in memory until it is whole, and Netty's limits are ints: 3GiB was
     * accepted and silently capped at 2GiB.
     */
    public static final DataSize MOST = DataSize.ofMebibytes(8);

    public HttpLimits {
        maxInitialLineLength = maxInitialLineLength == null ? DataSize.ofKibibytes(8) : maxInitialLineLength;
        maxHeaderSize = maxHeaderSize == null ? DataSize.ofKibibytes(16) : maxHeaderSize;
    }
}
