package dev.mtlsproxy.app.admin;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.SerializerProvider;
import com.fasterxml.jackson.databind.module.SimpleModule;
import com.fasterxml.jackson.databind.ser.std.StdSerializer;
import com.fasterxml.jackson.databind.ser.std.ToStringSerializer;
import dev.mtlsproxy.config.CpuAffinity;
import dev.mtlsproxy.config.DataSize;
import dev.mtlsproxy.config.Durations;
import dev.mtlsproxy.config.HostPort;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.core.log.LogText;
import dev.mtlsproxy.core.proxy.TlsInventory;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandler.Sharable;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.QueryStringDecoder;
import io.netty.handler.codec.http.TooLongHttpContentException;
import io.netty.util.AttributeKey;
import java.io.IOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code /metrics} (Prometheus text, or OpenMetrics when the scraper asks for it), {@code /healthz},
 * {@code /readyz}, {@code /admin/certs}, {@code /admin/config}, and {@code POST /admin/reload}. Stateless and
 * shared; a reload runs on the reloader's thread and is answered from there, so the admin loop never waits on it.
 */
@Sharable
public final class AdminEndpoints extends SimpleChannelInboundHandler<FullHttpRequest> {

    private static final Logger log = LoggerFactory.getLogger(AdminEndpoints.class);

    /** The running configuration as shown by {@code /admin/config}. */
    public record ConfigSnapshot(ProxyConfig config, long generation, String sha256) {
    }

    /** Runs a reload off the admin event loop. */
    public interface Reloader {
        CompletableFuture<ReloadOutcome> reload(String trigger);
    }

    /** The exposition formats' content types, as PrometheusMeterRegistry.scrape(String) expects them. */
    static final String PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8";
    static final String OPENMETRICS_TEXT = "application/openmetrics-text; version=1.0.0; charset=utf-8";

    private static final String RELOAD = "/admin/reload";
    /** The paths that only answer GET and HEAD. */
    private static final Set<String> READ_ONLY = Set.of("/metrics", "/healthz", "/readyz", "/admin/certs",
            "/admin/config");

    /**
     * Set once a request that ends the connection was received: what the client sent after it is neither answered
     * nor acted on (RFC 9112 9.6), so a reload pipelined after it does not run.
     */
    private static final AttributeKey<Boolean> ENDING = AttributeKey.valueOf(AdminEndpoints.class, "ending");
    /** The write of the channel's latest response, which the next one waits for. */
    private static final AttributeKey<CompletableFuture<Void>> LAST_RESPONSE =
            AttributeKey.valueOf(AdminEndpoints.class, "lastResponse");

    private final PrometheusMeterRegistry registry;
    private final BooleanSupplier ready;
    private final Supplier<ConfigSnapshot> snapshot;
    private final Supplier<TlsInventory> certificates;
    private final Reloader reloader;
    private final Clock clock;
    private final ObjectMapper json;

    /**
     * @param snapshot     the configuration serving now, read per request (a reload replaces it)
     * @param certificates the certificates and CRLs the current generation loaded, read per request (a reload
     *                     replaces them)
     * @param reloader     what {@code POST /admin/reload} runs; null answers 404
     */
    public AdminEndpoints(PrometheusMeterRegistry registry, BooleanSupplier ready, Supplier<ConfigSnapshot> snapshot,
            Supplier<TlsInventory> certificates, Reloader reloader, Clock clock) {
        this.registry = registry;
        this.ready = ready;
        this.snapshot = snapshot;
        this.certificates = certificates;
        this.reloader = reloader;
        this.clock = clock;
        // Values with units and paths are shown as written in YAML, not as Jackson's object dumps.
        SimpleModule asText = new SimpleModule()
                .addSerializer(Path.class, ToStringSerializer.instance)
                .addSerializer(Duration.class, new DurationAsWritten())
                .addSerializer(DataSize.class, ToStringSerializer.instance)
                .addSerializer(HostPort.class, ToStringSerializer.instance)
                .addSerializer(CpuAffinity.class, ToStringSerializer.instance)
                // A grant's expires: as written (2027-06-30T00:00:00Z); without it the whole answer failed to write.
                .addSerializer(Instant.class, ToStringSerializer.instance);
        this.json = new ObjectMapper().registerModule(asText).enable(SerializationFeature.INDENT_OUTPUT);
    }

    @Override
    protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest request) throws Exception {
        // After a malformed request the codec discards everything that follows, and the rest of a body over the cap
        // may still be coming: either way the connection is of no more use.
        boolean keepAlive = HttpUtil.isKeepAlive(request) && request.decoderResult().isSuccess()
                && refusal(request) == null;
        if (ctx.channel().hasAttr(ENDING)) {
            return;
        }
        if (!keepAlive) {
            ctx.channel().attr(ENDING).set(true);
        }
        // HTTP/1.0 keeps the connection only when the response says so (RFC 9112 9.3), as nginx answers it.
        boolean sayKeepAlive = keepAlive && HttpVersion.HTTP_1_0.equals(request.protocolVersion());
        // The body is never read by an endpoint: only the head waits for its turn, released of the body now.
        FullHttpRequest head = request.replace(Unpooled.EMPTY_BUFFER);
        // Responses leave in request order (RFC 9112 9.3.2): a pipelined GET must not overtake a reload still
        // running, and the codec pairs each response with the method of the request at the head of its queue.
        // Each is made only once the one before it has been written to the socket, as nginx takes pipelined
        // requests: a client that sends requests and never reads the answers then holds at most one answer in
        // memory, and its unanswered requests reach the codec's cap, which closes the connection. Made as they were
        // read, every /metrics page (tens of KiB each, written at once to a socket nobody reads) piled up in direct
        // memory until the process could allocate none, for its mTLS traffic too.
        CompletableFuture<Void> previous = ctx.channel().attr(LAST_RESPONSE).get();
        CompletableFuture<Void> turn = previous == null ? CompletableFuture.completedFuture(null) : previous;
        CompletableFuture<Void> next = turn
                .thenCompose(written -> answerInTurn(ctx, head))
                .thenComposeAsync(r -> respond(ctx, keepAlive, sayKeepAlive, r), ctx.executor());
        ctx.channel().attr(LAST_RESPONSE).set(next);
    }

    /**
     * {@link #answer}, where a failure nobody foresaw is answered 500 and logged with its stack trace. It used to
     * close the connection without a word: {@code /admin/config} of any config with a time-boxed grant answered
     * nothing for releases, and nothing said why.
     */
    private CompletableFuture<FullHttpResponse> answerInTurn(ChannelHandlerContext ctx, FullHttpRequest request) {
        try {
            return answer(request);
        } catch (Exception e) {
            log.warn("event=admin_failed path=\"{}\" cause=\"{}\"", LogText.quoted(path(request.uri())),
                    LogText.quoted(e.toString()), e);
            return done(text(HttpResponseStatus.INTERNAL_SERVER_ERROR, "internal error: the proxy's log says more\n"));
        }
    }

    /**
     * The path decides first (an unknown one is 404 whatever the method), then the method: 405 with the methods the
     * path takes in {@code Allow}, as RFC 9110 requires.
     */
    private CompletableFuture<FullHttpResponse> answer(FullHttpRequest request) throws JsonProcessingException {
        if (request.decoderResult().cause() instanceof TooLongHttpContentException) {
            return done(text(HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE, "request body too large\n"));
        }
        if (!request.decoderResult().isSuccess()) {
            return done(text(HttpResponseStatus.BAD_REQUEST, "bad request\n"));
        }
        HttpResponseStatus refused = refusal(request);
        if (refused != null) {
            return done(text(refused, refused == HttpResponseStatus.BAD_REQUEST ? "bad request\n"
                    : "HTTP version not supported\n"));
        }
        String path = path(request.uri());
        if (RELOAD.equals(path) && reloader != null) {
            if (!HttpMethod.POST.equals(request.method())) {
                return done(methodNotAllowed("POST"));
            }
            if (fromAWebPage(request)) {
                return done(text(HttpResponseStatus.FORBIDDEN, "requests from web pages are refused\n"));
            }
            // Completed on the reload thread when the reload is done; the write is handed to our loop.
            return reloader.reload("admin").handle(this::reloadResponse);
        }
        if (!READ_ONLY.contains(path)) {
            return done(text(HttpResponseStatus.NOT_FOUND, "not found\n"));
        }
        if (!HttpMethod.GET.equals(request.method()) && !HttpMethod.HEAD.equals(request.method())) {
            return done(methodNotAllowed("GET, HEAD"));
        }
        if (fromThisOrigin(request)) {
            return done(text(HttpResponseStatus.FORBIDDEN, "requests from web pages are refused\n"));
        }
        return done(route(path, request));
    }

    /**
     * What nginx refuses and Netty's decoder lets through, or null: a version other than HTTP/1.x (505; the listener
     * speaks HTTP/1.1, whatever {@code HTTP/2.0} a request line claims) and a control character in the target (400:
     * {@code /heal\0thz} is not {@code /healthz}, and not a path to answer 404 about either). The connection is
     * closed after either.
     */
    private static HttpResponseStatus refusal(FullHttpRequest request) {
        if (request.protocolVersion().majorVersion() != 1) {
            return HttpResponseStatus.HTTP_VERSION_NOT_SUPPORTED;
        }
        String target = request.uri();
        for (int i = 0; i < target.length(); i++) {
            char c = target.charAt(i);
            if (c < 0x20 || c == 0x7f) {
                return HttpResponseStatus.BAD_REQUEST;
            }
        }
        return null;
    }

    /**
     * The path of an origin-form target ({@code /metrics?x}), or of an absolute-form one
     * ({@code http://host/metrics}), which RFC 9112 3.2.2 requires a server to accept; anything else matches nothing.
     */
    private static String path(String target) {
        if (target.startsWith("/")) {
            return new QueryStringDecoder(target).path();
        }
        try {
            URI uri = new URI(target);
            return uri.isAbsolute() && uri.getRawPath() != null ? new QueryStringDecoder(uri.getRawPath()).path()
                    : "";
        } catch (URISyntaxException e) {
            return "";
        }
    }

    /**
     * A browser marks every request a page makes with {@code Sec-Fetch-Site} (other than {@code none}, which is
     * the user's own navigation) and every POST with {@code Origin}, whichever site the page came from. A reload is
     * only ever asked for by an operator or a script, never by a page: refusing these keeps any site the operator
     * visits (or one that rebinds its DNS name to 127.0.0.1) from triggering reloads with a plain HTML form.
     */
    private static boolean fromAWebPage(FullHttpRequest request) {
        String site = request.headers().get("Sec-Fetch-Site");
        return request.headers().contains(HttpHeaderNames.ORIGIN) || (site != null && !site.equals("none"));
    }

    /**
     * A page can read an answer only from its own origin, and the admin listener serves no page: a request a page
     * made to this origin ({@code Sec-Fetch-Site: same-origin}) comes from a site that rebound its DNS name to the
     * listener's address, to read {@code /admin/config}, {@code /admin/certs} or {@code /metrics} through the
     * operator's browser. A link followed from another site (Grafana, Prometheus: {@code cross-site} or
     * {@code same-site}), an address typed in ({@code none}) and every tool that sends no fetch metadata are served.
     */
    private static boolean fromThisOrigin(FullHttpRequest request) {
        return "same-origin".equals(request.headers().get("Sec-Fetch-Site"));
    }

    private static FullHttpResponse methodNotAllowed(String allow) {
        FullHttpResponse response = text(HttpResponseStatus.METHOD_NOT_ALLOWED, "method not allowed\n");
        response.headers().set(HttpHeaderNames.ALLOW, allow);
        return response;
    }

    private static CompletableFuture<FullHttpResponse> done(FullHttpResponse response) {
        return CompletableFuture.completedFuture(response);
    }

    /** Writes the response; the future completes when it has left for the socket, and fails when it cannot. */
    private static CompletableFuture<Void> respond(ChannelHandlerContext ctx, boolean keepAlive,
            boolean sayKeepAlive, FullHttpResponse response) {
        HttpUtil.setKeepAlive(response, keepAlive);
        if (sayKeepAlive) {
            response.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.KEEP_ALIVE);
        }
        CompletableFuture<Void> done = new CompletableFuture<>();
        var written = ctx.writeAndFlush(response);
        if (!keepAlive) {
            written.addListener(ChannelFutureListener.CLOSE);
        }
        written.addListener(w -> {
            if (w.isSuccess()) {
                done.complete(null);
            } else {
                done.completeExceptionally(w.cause());
            }
        });
        return done;
    }

    /**
     * 200 with the new generation and the changed settings it did not apply (read at start only), or 422 with the
     * reason and every problem (the old generation still serves).
     */
    private FullHttpResponse reloadResponse(ReloadOutcome outcome, Throwable failure) {
        Map<String, Object> out = new LinkedHashMap<>();
        if (failure != null || outcome == null) {
            out.put("result", "failure");
            out.put("reason", "other");
            out.put("problems", List.of(String.valueOf(failure)));
        } else {
            out.put("result", outcome.success() ? "success" : "failure");
            out.put("generation", outcome.generation());
            if (outcome.success()) {
                out.put("restartNeeded", outcome.restartNeeded());
            } else {
                out.put("reason", outcome.reason());
                out.put("problems", outcome.problems());
            }
        }
        boolean ok = outcome != null && outcome.success();
        try {
            return body(ok ? HttpResponseStatus.OK : HttpResponseStatus.UNPROCESSABLE_ENTITY, "application/json",
                    json.writeValueAsString(out) + "\n");
        } catch (JsonProcessingException e) {
            return text(HttpResponseStatus.INTERNAL_SERVER_ERROR, "reload outcome unavailable\n");
        }
    }

    private FullHttpResponse route(String path, FullHttpRequest request) throws JsonProcessingException {
        return switch (path) {
            case "/metrics" -> metrics(request.headers().get(HttpHeaderNames.ACCEPT));
            case "/healthz" -> text(HttpResponseStatus.OK, "ok\n");
            case "/readyz" -> ready.getAsBoolean()
                    ? text(HttpResponseStatus.OK, "ready\n")
                    : text(HttpResponseStatus.SERVICE_UNAVAILABLE, "not ready\n");
            case "/admin/certs" -> json(CertificateInventory.describe(certificates.get(), clock.instant()));
            case "/admin/config" -> json(config());
            default -> text(HttpResponseStatus.NOT_FOUND, "not found\n");
        };
    }

    private FullHttpResponse metrics(String accept) {
        boolean openMetrics = accept != null && accept.contains("application/openmetrics-text");
        String contentType = openMetrics ? OPENMETRICS_TEXT : PROMETHEUS_TEXT;
        return body(HttpResponseStatus.OK, contentType, registry.scrape(contentType));
    }

    private Map<String, Object> config() {
        ConfigSnapshot current = snapshot.get();
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("generation", current.generation());
        out.put("sha256", current.sha256());
        // Nothing secret is inlined in the configuration (keys are file paths), so the config is shown whole.
        out.put("config", current.config());
        return out;
    }

    private FullHttpResponse json(Object value) throws JsonProcessingException {
        return body(HttpResponseStatus.OK, "application/json", json.writeValueAsString(value) + "\n");
    }

    private static FullHttpResponse text(HttpResponseStatus status, String body) {
        return body(status, "text/plain; charset=utf-8", body);
    }

    private static FullHttpResponse body(HttpResponseStatus status, String contentType, String body) {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        FullHttpResponse response = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, status,
                Unpooled.wrappedBuffer(bytes));
        response.headers().set(HttpHeaderNames.CONTENT_TYPE, contentType)
                .setInt(HttpHeaderNames.CONTENT_LENGTH, bytes.length);
        return response;
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        ctx.close();
    }

    /** "1m", "500us": a duration as the YAML takes it, not Java's ISO form ("PT1M", "PT0.0005S"). */
    private static final class DurationAsWritten extends StdSerializer<Duration> {
        private static final long serialVersionUID = 1L;

        DurationAsWritten() {
            super(Duration.class);
        }

        @Override
        public void serialize(Duration value, JsonGenerator out, SerializerProvider provider) throws IOException {
            out.writeString(Durations.format(value));
        }
    }
}
