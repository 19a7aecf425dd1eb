package dev.mtlsproxy.core.testing;

import java.io.IOException;
import java.io.OutputStream;
import java.util.Arrays;

/**
 * Checks a body against the pattern the test backend made it from ({@link TestBackend.IntegrityBody#pattern},
 * {@link TestBackend.PatternStream#PATTERN}) byte by byte as it streams in, keeping none of it, so that a body far
 * larger than the heap can be checked: a test asserts {@link #count()} and {@link #firstMismatch()}. A test that
 * does more with each piece (pauses, hangs up, passes it on) overrides {@link #passed}.
 */
public class BodyPatternCheck extends OutputStream {

    /**
     * What a body's bytes should be, a piece at a time: a call per byte, to patterns that differ from one test to the
     * next in the same JVM, is one the JIT stops inlining, and made checking a 1 GiB body two to four times slower.
     */
    @FunctionalInterface
    public interface Pattern {
        /** Writes bytes {@code from} to {@code from + length - 1} of the body into {@code into}, from its start. */
        void fill(long from, byte[] into, int length);
    }

    private final Pattern pattern;
    private long count;
    private long firstMismatch = -1;
    private byte[] expected = new byte[0];

    public BodyPatternCheck(Pattern pattern) {
        this.pattern = pattern;
    }

    /** Bytes written so far (since {@link #reset()}). */
    public long count() {
        return count;
    }

    /** Offset of the first byte that differs from the pattern, or -1 while none has. */
    public long firstMismatch() {
        return firstMismatch;
    }

    /** Checks the next body from its first byte: a second answer read through the same check. */
    public void reset() {
        count = 0;
        firstMismatch = -1;
    }

    @Override
    public final void write(int b) throws IOException {
        write(new byte[] {(byte) b}, 0, 1);
    }

    @Override
    public final void write(byte[] b, int off, int len) throws IOException {
        long offset = count;
        if (firstMismatch < 0) { // past the first, there is nothing more to learn
            if (expected.length < len) {
                expected = new byte[len];
            }
            pattern.fill(offset, expected, len);
            int differs = Arrays.mismatch(b, off, off + len, expected, 0, len);
            if (differs >= 0) {
                firstMismatch = offset + differs;
            }
        }
        count += len;
        passed(offset, b, off, len);
    }

    /**
     * Called with each piece once it has been checked and counted; does nothing here.
     *
     * @param offset where the piece starts in the body
     */
    protected void passed(long offset, byte[] b, int off, int len) throws IOException {
    }
}
