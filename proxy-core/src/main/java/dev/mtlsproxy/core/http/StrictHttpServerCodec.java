package dev.mtlsproxy.core.http;

import dev.mtlsproxy.config.HttpLimits;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import io.netty.channel.CombinedChannelDuplexHandler;
import io.netty.handler.codec.DecoderResult;
import io.netty.handler.codec.DefaultHeaders.NameValidator;
import io.netty.handler.codec.DefaultHeaders.ValueValidator;
import io.netty.handler.codec.http.DefaultFullHttpRequest;
import io.netty.handler.codec.http.DefaultHttpHeaders;
import io.netty.handler.codec.http.DefaultHttpRequest;
import io.netty.handler.codec.http.DefaultHttpHeadersFactory;
import io.netty.handler.codec.http.EmptyHttpHeaders;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.HttpContent;
import io.netty.handler.codec.http.HttpDecoderConfig;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpHeadersFactory;
import io.netty.handler.codec.http.HttpMessage;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpRequestDecoder;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseEncoder;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpStatusClass;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.handler.codec.http.TooLongHttpHeaderException;
import io.netty.handler.codec.http.TooLongHttpLineException;
import io.netty.util.concurrent.ScheduledFuture;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * HTTP/1.1 server codec that refuses ambiguous framing instead of repairing it.
 *
 * <p>Netty's {@code HttpServerCodec} silently drops Content-Length when Transfer-Encoding is also present (RFC 7230
 * allows that); a proxy must not, because the backend may frame the same bytes differently (request smuggling). Here
 * that case, differing duplicate Content-Length, bad chunk sizes, bare-LF lines and oversized heads all produce a
 * failed {@code DecoderResult}, which the proxy's request guard turns into an error response (400, or the status
 * {@link #statusForFailedHead} gives an oversized head) and a closed connection.
 *
 * <p>Like HttpServerCodec, the encoder remembers each request's method so that a response to HEAD is encoded
 * without a body even when it announces one.
 */
public final class StrictHttpServerCodec
        extends CombinedChannelDuplexHandler<HttpRequestDecoder, HttpResponseEncoder> {

    /** Methods of decoded requests whose final response is not yet encoded. Event-loop confined. */
    private final ArrayDeque<HttpMethod> methods = new ArrayDeque<>();
    private final Decoder decoder;

    /** 414 by its RFC 9110 name; Netty's constant keeps RFC 2616's "Request-URI Too Long". */
    private static final HttpResponseStatus URI_TOO_LONG = new HttpResponseStatus(414, "URI Too Long");

    /**
     * The status to answer a request head this codec could not decode with: 414 URI Too Long for a request line over
     * {@code maxInitialLineLength} (RFC 9110, 15.5.15; it is the target that makes a line long, as nginx answers),
     * 431 Request Header Fields Too Large for a header block over {@code maxHeaderSize} (RFC 6585, section 5; Envoy
     * and Go answer the same), 408 for a head not complete in time ({@link RequestHeadTimeoutException}), 400 for
     * anything else. Only for the head: a chunk-size line or trailers over a limit
     * fail the body's framing, which is a 400.
     */
    public static HttpResponseStatus statusForFailedHead(Throwable cause) {
        if (cause instanceof RequestHeadTimeoutException) {
            return HttpResponseStatus.REQUEST_TIMEOUT;
        }
        if (cause instanceof TooLongHttpLineException) {
            return URI_TOO_LONG;
        }
        if (cause instanceof TooLongHttpHeaderException) {
            return HttpResponseStatus.REQUEST_HEADER_FIELDS_TOO_LARGE;
        }
        return HttpResponseStatus.BAD_REQUEST;
    }

    /** With no request header timeout: for tests of decoding alone and the JMH benchmarks. */
    public StrictHttpServerCodec(HttpLimits limits) {
        this(limits, null);
    }

    /**
     * @param headerTimeout how long a request head may take from its first bytes read to its end, or null for no
     *                      limit; see {@link Decoder#checkHead}
     */
    public StrictHttpServerCodec(HttpLimits limits, Duration headerTimeout) {
        HttpDecoderConfig config = new HttpDecoderConfig()
                .setMaxInitialLineLength(limits.maxInitialLineLength().toIntBytes())
                .setMaxHeaderSize(limits.maxHeaderSize().toIntBytes())
                .setMaxChunkSize(64 * 1024)
                .setAllowDuplicateContentLengths(false)
                .setStrictLineParsing(true)
                .setUseRfc9112TransferEncoding(true)
                .setValidateHeaders(true);
        decoder = new Decoder(config, headerTimeout);
        init(decoder, new Encoder());
    }

    /**
     * Whether bytes of a request have been read that the decoder has not yet turned into that request's end: a head
     * partly arrived, or a body still coming. False on a connection that has read nothing yet, or nothing since the
     * end of its last request. A drain closes a keep-alive connection at once only when this is false (nginx closes
     * a keep-alive connection on shutdown only while no byte of a next request has arrived), since a request whose
     * bytes are on their way is one the client may not retry. Event-loop confined.
     */
    public boolean hasUnfinishedRequest() {
        return decoder.unfinished;
    }

    /**
     * Decodes requests, and stops after a WebSocket upgrade request: whatever the client sends after it stays
     * undecoded until the answer is known. On 101 the codec is removed and those bytes go to the tunnel as they
     * are; on any other answer decoding resumes, and they are read as the next request.
     */
    private final class Decoder extends HttpRequestDecoder {
        private boolean upgradeRequested;
        private boolean paused;
        private ChannelHandlerContext ctx;
        /** See {@link #hasUnfinishedRequest()}: set by any bytes read, cleared by a request's end with none left. */
        private boolean unfinished;
        /** A request's head has been decoded and its end has not: bytes read now are its body. */
        private boolean inBody;
        /** Heads decoded so far, to tell the head a timer was set for from a later one. */
        private int heads;
        private final Duration headerTimeout;
        private ScheduledFuture<?> headCheck;
        private int headCheckFor;

        Decoder(HttpDecoderConfig config, Duration headerTimeout) {
            super(config);
            this.headerTimeout = headerTimeout;
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) throws Exception {
            // A field store per read, not per request: the decoder keeps a head's lines as it reads them, so what
            // is left undecoded in its buffer cannot tell whether part of a request has arrived.
            if (msg instanceof ByteBuf bytes && bytes.isReadable()) {
                unfinished = true;
            }
            super.channelRead(ctx, msg);
            // A timer only for a head that spans reads: one that arrives whole, the usual case, costs no task.
            if (headerTimeout != null && headCheck == null && headInProgress()) {
                scheduleHeadCheck(ctx);
            }
        }

        private boolean headInProgress() {
            return unfinished && !inBody && !paused;
        }

        private void scheduleHeadCheck(ChannelHandlerContext ctx) {
            headCheckFor = heads;
            headCheck = ctx.executor().schedule(() -> checkHead(ctx), headerTimeout.toNanos(), TimeUnit.NANOSECONDS);
        }

        /**
         * A head still in progress one timeout after the read that left it unfinished is refused with a failed
         * request, which the request guard answers 408 before closing (nginx's {@code client_header_timeout},
         * HAProxy's {@code timeout http-request}). The time counts only while the proxy is reading the head: one
         * behind a response still pending (pipelined) is not read until that response is written, when the check
         * starts again ({@link #restartHeadCheck}), and one that began after the head the timer was set for may have
         * just started, so it gets a whole timeout from now. A head may so take up to twice the timeout once read;
         * never less than it.
         */
        private void checkHead(ChannelHandlerContext ctx) {
            headCheck = null;
            if (ctx.isRemoved() || !headInProgress()) {
                return;
            }
            if (heads != headCheckFor || !methods.isEmpty()) {
                scheduleHeadCheck(ctx);
                return;
            }
            paused = true; // nothing after it is decoded: the connection closes once the 408 is written
            DefaultFullHttpRequest timedOut = new DefaultFullHttpRequest(HttpVersion.HTTP_1_1, HttpMethod.GET,
                    "/bad-request", Unpooled.EMPTY_BUFFER);
            timedOut.setDecoderResult(DecoderResult.failure(new RequestHeadTimeoutException(headerTimeout)));
            ctx.fireChannelRead(timedOut);
            ctx.fireChannelReadComplete();
        }

        /**
         * The response a head was waiting behind has just been written: from now on the proxy reads that head, so it
         * gets a whole timeout from here. Without this, a check due right after the response would find the rest
         * of the head not yet sent, though the client could only send it once it had the response.
         */
        void restartHeadCheck() {
            if (headCheck != null && ctx != null) {
                headCheck.cancel(false);
                scheduleHeadCheck(ctx);
            }
        }

        @Override
        protected void handlerRemoved0(ChannelHandlerContext ctx) throws Exception {
            if (headCheck != null) {
                headCheck.cancel(false);
                headCheck = null;
            }
            super.handlerRemoved0(ctx);
        }

        @Override
        protected void decode(ChannelHandlerContext ctx, io.netty.buffer.ByteBuf buffer, List<Object> out)
                throws Exception {
            this.ctx = ctx;
            if (paused) {
                return;
            }
            int before = out.size();
            super.decode(ctx, buffer, out);
            joinBodilessRequests(out, before);
            for (int i = before; i < out.size(); i++) {
                Object decoded = out.get(i);
                if (decoded instanceof HttpRequest request) {
                    if (request.headers() instanceof RequestHeaders headers && headers.contentLengthsMerged
                            && request.decoderResult().isSuccess()) {
                        // Netty refuses this only in HTTP/1.1; in 1.0 it frames the body by the first value. The
                        // request guard answers 400 and drops whatever is decoded after it while the connection closes.
                        request.setDecoderResult(DecoderResult.failure(new IllegalArgumentException(
                                "Multiple Content-Length values found")));
                    }
                    methods.add(request.method());
                    upgradeRequested = Upgrades.isWebSocketRequest(request);
                    heads++;
                    inBody = true;
                }
                if (decoded instanceof LastHttpContent) {
                    // The decoder returns after a request's end: what is left in the buffer is the next one's.
                    unfinished = buffer.isReadable();
                    inBody = false;
                    if (upgradeRequested) {
                        upgradeRequested = false;
                        paused = true;
                    }
                }
            }
        }

        /**
         * A request without a body decodes as its head followed by an empty end marker; they become one
         * {@link FullHttpRequest}. Every handler after the codec, and the backend's encoder, then deals with one
         * message instead of two, on the most common kind of request (issue #8). Only a head that decoded cleanly
         * is joined: a failed one stays as the decoder made it, for {@link RequestGuard} to refuse.
         */
        private void joinBodilessRequests(List<Object> out, int from) {
            for (int i = from; i + 1 < out.size(); i++) {
                if (out.get(i + 1) == LastHttpContent.EMPTY_LAST_CONTENT
                        && out.get(i) instanceof HttpRequest head && !(head instanceof HttpContent)
                        && head.decoderResult().isSuccess()) {
                    out.set(i, new DefaultFullHttpRequest(head.protocolVersion(), head.method(), head.uri(),
                            Unpooled.EMPTY_BUFFER, head.headers(), EmptyHttpHeaders.INSTANCE));
                    out.remove(i + 1);
                }
            }
        }

        /** The upgrade was declined or refused: decode what the client sent meanwhile, if anything. */
        void resume() {
            if (!paused) {
                return;
            }
            paused = false;
            ChannelHandlerContext decoderCtx = ctx;
            if (decoderCtx != null && internalBuffer().isReadable()) {
                // Deferred: this runs inside a write; decoding fires reads through the pipeline.
                decoderCtx.executor().execute(() -> {
                    if (!decoderCtx.isRemoved() && !paused) {
                        try {
                            channelRead(decoderCtx, io.netty.buffer.Unpooled.EMPTY_BUFFER);
                            channelReadComplete(decoderCtx);
                        } catch (Exception e) {
                            decoderCtx.fireExceptionCaught(e);
                        }
                    }
                });
            }
        }

        /**
         * An HTTP/1.0 request gets headers that note a merge of Content-Length values ({@link RequestHeaders}); an
         * HTTP/1.1 one, whose repeated values Netty refuses itself, keeps Netty's own, so that the header code on
         * the busiest path sees the one class it always has (issue #8).
         */
        @Override
        protected HttpMessage createMessage(String[] initialLine) throws Exception {
            HttpMessage message = super.createMessage(initialLine);
            if (message.protocolVersion() == HttpVersion.HTTP_1_0 && message instanceof HttpRequest request) {
                return new DefaultHttpRequest(HttpVersion.HTTP_1_0, request.method(), request.uri(),
                        RequestHeaders.FACTORY);
            }
            return message;
        }

        @Override
        protected void handleTransferEncodingChunkedWithContentLength(HttpMessage message) {
            throw new IllegalArgumentException("both Content-Length and Transfer-Encoding");
        }
    }

    /**
     * An HTTP/1.0 request's headers as the decoder fills them, noting when it merges several Content-Length values
     * into one. The decoder does that before any handler sees the request: in HTTP/1.1 only equal values, which
     * {@code setAllowDuplicateContentLengths(false)} already refuses, but in HTTP/1.0 any values at all, keeping the
     * first ({@code Content-Length: 0} then {@code Content-Length: 4} became {@code 0}). RFC 9112, 6.3 says to refuse
     * a message whose lengths differ; a reader in front of the proxy may have framed it by another one.
     */
    private static final class RequestHeaders extends DefaultHttpHeaders {
        static final HttpHeadersFactory FACTORY = new HttpHeadersFactory() {
            private final DefaultHttpHeadersFactory validating = DefaultHttpHeadersFactory.headersFactory();

            @Override
            public HttpHeaders newHeaders() {
                return new RequestHeaders(validating.getNameValidator(), validating.getValueValidator());
            }

            @Override
            public HttpHeaders newEmptyHeaders() {
                return validating.newEmptyHeaders();
            }
        };

        /** Read once, right after the head is decoded and before any handler could set Content-Length itself. */
        boolean contentLengthsMerged;

        private RequestHeaders(NameValidator<CharSequence> names, ValueValidator<CharSequence> values) {
            super(names, values);
        }

        @Override
        public HttpHeaders set(CharSequence name, Object value) {
            // The decoder sets Content-Length only to replace what the client sent with the length it framed by;
            // a single value it merely reformatted ("04") is not a merge. Rare, so the list is built only here.
            if (!contentLengthsMerged && HttpHeaderNames.CONTENT_LENGTH.contentEqualsIgnoreCase(name)) {
                List<String> sent = getAll(HttpHeaderNames.CONTENT_LENGTH);
                contentLengthsMerged = sent.size() > 1 || (sent.size() == 1 && sent.get(0).indexOf(',') >= 0);
            }
            return super.set(name, value);
        }
    }

    private final class Encoder extends HttpResponseEncoder {
        private HttpMethod current;

        @Override
        public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) throws Exception {
            if (msg instanceof HttpResponse response
                    && response.status().codeClass() != HttpStatusClass.INFORMATIONAL) {
                current = methods.poll();
                if (methods.isEmpty()) {
                    // the answer to the last request decoded: if that asked for an upgrade, it was not 101
                    decoder.resume();
                    decoder.restartHeadCheck();
                }
            }
            super.write(ctx, msg, promise);
        }

        @Override
        protected void encodeHeaders(HttpHeaders headers, ByteBuf buf) {
            if (headers instanceof RelayedHeaders relayed) {
                relayed.writeVerbatim(buf);
            }
            super.encodeHeaders(headers, buf);
        }

        @Override
        protected boolean isContentAlwaysEmpty(HttpResponse msg) {
            return HttpMethod.HEAD.equals(current) || super.isContentAlwaysEmpty(msg);
        }
    }
}
