package dev.mtlsproxy.config;

/**
 * Parser limits for requests arriving on a listener.
 *
 * @param maxInitialLineLength longest request line
 * @param maxHeaderSize        total size of all request headers
 */
public record HttpLimits(DataSize maxInitialLineLength, DataSize maxHeaderSize) {

    public static final HttpLimits DEFAULT = new HttpLimits(DataSize.ofKibibytes(8), DataSize.ofKibibytes(16));

    public HttpLimits {
        maxInitialLineLength = maxInitialLineLength == null ? DataSize.ofKibibytes(8) : maxInitialLineLength;
        maxHeaderSize = maxHeaderSize == null ? DataSize.ofKibibytes(16) : maxHeaderSize;
    }
}
