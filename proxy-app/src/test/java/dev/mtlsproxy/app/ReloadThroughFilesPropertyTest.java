package dev.mtlsproxy.app;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.mtlsproxy.core.testing.BufferLeaks;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.TestBackend;
import dev.mtlsproxy.core.testing.TestPki;
import io.netty.pkitesting.X509Bundle;
import io.netty.util.ResourceLeakDetector;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Reloads through the application as an operator makes them, as a generated sequence: the proxy started as
 * {@code run} starts it (config file on disk, admin listener, file watcher on), its config, certificates and CA
 * bundles in three folders mounted as kubelet mounts them, three real backends, and real mTLS clients. 20 to 40 edits
 * follow, each written in one of three ways (rewritten in place, a temporary file renamed over the old one, or a
 * {@code ..data} symlink swap of the folder) and picked up by the watcher, by {@code POST /admin/reload}, or by the
 * watcher and then the request, as when the request comes after the quiet period (every third admin step):
 * grants changed, routes added and removed, a backend added or removed, the server certificate rotated, a client CA
 * rotated (the new one added, then the old one dropped), and as many bad edits: a YAML syntax error, several
 * validation problems at once, a file that is not there, a directory where a key should be, a key that is not the
 * certificate's, a moved listener, and a file written in two steps whose first half must fail and change nothing
 * while the whole must apply.
 *
 * <p>After each edit, judged by a model that shares no code with the proxy and is never told what the proxy loaded
 * (it knows what it wrote and whether that was good): the answer of {@code /admin/reload} (status, generation,
 * reason, every problem with its YAML path and place in the file), and for the watcher the problems it logged
 * (its log also tells whether it reached an admin step's edit before the request did: each reload is judged);
 * {@code mtls_proxy_config_generation} and every {@code mtls_proxy_config_reloads_total} series, exactly; the
 * certificate a new handshake gets; and, over a new and a kept-alive connection per client, 200 from the backend the
 * route names, 403, 404 or a refused certificate (a kept-alive connection whose CA was dropped is closed by the
 * reload). Meanwhile three clients keep calling a route no edit touches: every request of theirs is answered 200.
 *
 * <p>The sequence comes from one seed, printed with every failure; {@code -Dmtlsproxy.test.seed=N} runs it again and
 * {@code -Dmtlsproxy.test.seed=random} a new one. Failures name the step and the edit.
 */
class ReloadThroughFilesPropertyTest {

    static final long SEED = seedOf(System.getProperty("mtlsproxy.test.seed", "1"));
    /**
     * The watcher's quiet period. An admin-triggered step posts right after writing, so the watcher's check, due this
     * long after the last write, usually finds the files as the admin reload recorded them and does nothing; on a
     * slow machine it may run first, which the model allows as README does (see {@link #reload}). Long enough that
     * the request mostly comes first, short enough for 20 to 40 steps.
     */
    static final Duration DEBOUNCE = Duration.ofMillis(750);
    static final Duration WATCHER_DEADLINE = Duration.ofSeconds(15);

    static final String PARTNER_SPIFFE_ID = "spiffe://partner.test/sa/acme";
    /** Identity names and the SPIFFE IDs of their certificates; {@code partner} is the partners anchor's. */
    static final Map<String, String> MESH = Map.of(
            "orders", "spiffe://mesh.test/ns/shop/sa/orders",
            "billing", "spiffe://mesh.test/ns/shop/sa/billing",
            "ops", "spiffe://mesh.test/ns/ops/sa/oncall");
    static final List<String> IDENTITIES = List.of("billing", "ops", "orders", "partner");
    static final List<String> BACKENDS = List.of("core", "extra1", "extra2");
    /** The route the background clients call: no edit changes it. */
    static final Route STABLE = new Route("stable", "/stable", "core", List.of("orders", "billing", "ops"));
    static final List<String> FAILURE_REASONS = List.of("invalid_config", "tls_material", "restart_required",
            "internal_error", "other");
    /** A problem's place in the file, as ConfigProblem prints it. */
    static final Pattern LOCATION = Pattern.compile(" at line (\\d+), column (\\d+)$");
    /** The value a problem shows as written: what follows its path, up to what was expected or needs a restart. */
    static final Pattern WRITTEN_VALUE = Pattern.compile(": (.*?) (\\(expected|needs a restart)");
    /** A problem the watcher logged, or the proxy's detail of a reload it refused. */
    static final Pattern LOGGED_PROBLEM = Pattern.compile("^event=reload_failed .*(?:problem|detail)=\"(.*)\"$");
    /** What the parser says of YAML it cannot read is its own; the test knows only how it starts. */
    static final List<String> SYNTAX_ERROR = List.of("not valid YAML - ");

    enum Edit {
        GRANTS, ROUTES, BACKENDS, SERVER_CERTIFICATE, CLIENT_CA,
        YAML_SYNTAX, VALIDATION, MISSING_FILE, DIRECTORY_FOR_FILE, KEY_MISMATCH, MOVED_LISTENER, HALF_WRITTEN;

        static final List<Edit> GOOD = List.of(GRANTS, ROUTES, BACKENDS, SERVER_CERTIFICATE, CLIENT_CA);
    }

    enum Trigger {
        WATCHER("the watcher"), ADMIN("admin"),
        /** {@code POST /admin/reload} once the watcher has loaded the edit: what a stall before the post does. */
        WATCHER_THEN_ADMIN("the watcher, then admin");

        final String label;

        Trigger(String label) {
            this.label = label;
        }
    }

    enum Writing { IN_PLACE, TEMP_AND_RENAME, SYMLINK_SWAP }

    record Route(String name, String prefix, String backend, List<String> allow) {
    }

    /** What a good configuration says, in the test's own terms. */
    record World(List<Route> routes, List<String> backends, int serverCertificate, List<Integer> partnerCas) {

        /** The status for {@code client} at {@code prefix}; null when its certificate is refused in the handshake. */
        Integer status(Client client, String prefix) {
            if (client.partnerCa() >= 0 && !partnerCas.contains(client.partnerCa())) {
                return null;
            }
            for (Route r : routes) {
                if (r.prefix().equals(prefix)) {
                    return r.allow().contains(client.identity()) ? 200 : 403;
                }
            }
            return 404;
        }

        String backendOf(String prefix) {
            return routes.stream().filter(r -> r.prefix().equals(prefix)).findFirst().orElseThrow().backend();
        }

        String describe() {
            StringBuilder b = new StringBuilder();
            routes.forEach(r -> b.append("\n  route ").append(r.name()).append(' ').append(r.prefix()).append(" -> ")
                    .append(r.backend()).append(" allow ").append(r.allow()));
            return b.append("\n  backends ").append(backends).append(", server certificate ").append(serverCertificate)
                    .append(", partner CAs ").append(partnerCas).toString();
        }
    }

    record Client(String name, String identity, X509Bundle certificate, int partnerCa) {
    }

    /** What one edit leaves on disk and what a reload of it must do. */
    record Target(Map<String, String> conf, Map<String, String> tls, Map<String, String> cas, World world,
            String reason, List<String> problems) {

        boolean good() {
            return reason == null;
        }
    }

    @TempDir
    Path workspace;

    private final Random random = new Random(SEED);
    private final HttpClient http = HttpClient.newHttpClient();
    private final ObjectMapper json = new ObjectMapper();
    private final List<TestBackend> backends = new ArrayList<>();
    private final List<X509Bundle> serverCertificates = new ArrayList<>();
    private final List<X509Bundle> partnerRoots = new ArrayList<>();
    private final List<Client> clients = new ArrayList<>();
    private final Map<String, MtlsClient> keptAlive = new HashMap<>();
    private final Map<String, Integer> arrivals = new HashMap<>();
    private final Map<String, Integer> outcomes = new HashMap<>();
    private final Map<String, Integer> reloads = new LinkedHashMap<>();
    private final Map<Edit, Integer> edits = new EnumMap<>(Edit.class);
    private final List<String> prefixesSeen = new ArrayList<>();
    private final List<String> history = new ArrayList<>();
    private final ConcurrentLinkedQueue<String> backgroundFailures = new ConcurrentLinkedQueue<>();
    private final AtomicInteger backgroundAnswered = new AtomicInteger();
    private final AtomicBoolean running = new AtomicBoolean(true);
    private TestPki pki;
    private MountedFolder conf;
    private MountedFolder tls;
    private MountedFolder cas;
    private RunCommand.Running proxy;
    private World world;
    private long generation = 1;
    private int routeNames;
    private int adminSteps;
    private String step = "start";
    private int requests;
    /** When the test last wrote a file (or started the proxy, whose watch compares the files once). */
    private long lastWrite;

    @Test
    @Timeout(180)
    void everyEditIsJudgedByTheLastGoodConfigurationWhicheverWayItIsWrittenAndPickedUp() throws Exception {
        System.out.println(seed("ReloadThroughFilesPropertyTest"));
        pki = TestPki.create(Files.createDirectories(workspace.resolve("pki")));
        for (int i = 0; i < BACKENDS.size(); i++) {
            backends.add(TestBackend.start());
        }
        MESH.forEach((identity, id) -> clients.add(new Client(identity, identity, pki.client(id), -1)));
        serverCertificates.add(pki.newServerCertificate());
        newPartnerCa();
        routeNames = 2;
        prefixesSeen.addAll(List.of("/r1", "/r2"));
        world = new World(List.of(STABLE, new Route("r1", "/r1", "core", List.of("orders", "partner")),
                new Route("r2", "/r2", random.nextBoolean() ? "core" : "extra1", List.of("billing"))),
                List.of("core", "extra1"), 0, List.of(0));
        conf = MountedFolder.create(workspace.resolve("conf"), Map.of("proxy.yaml", yaml(world, Map.of())));
        tls = MountedFolder.create(workspace.resolve("tls"), serverFiles(serverCertificates.get(0)));
        cas = MountedFolder.create(workspace.resolve("cas"), Map.of("mesh.pem", pki.root().getCertificatePEM(),
                "partners.pem", partnerBundle(world.partnerCas())));
        for (String reason : FAILURE_REASONS) {
            reloads.put(reason, 0);
        }

        List<Thread> load = new ArrayList<>();
        try (LogCapture log = LogCapture.quietly(ConfigReloader.class);
                LogCapture audit = LogCapture.quietly("dev.mtlsproxy.audit");
                LogCapture leaks = LogCapture.of(ResourceLeakDetector.class)) {
            Path config = conf.file("proxy.yaml");
            PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
            proxy = RunCommand.start(config, ValidateCommand.load(config, quiet), quiet);
            lastWrite = System.nanoTime();
            for (int i = 0; i < MESH.size(); i++) {
                Client c = clients.get(i);
                Thread t = new Thread(() -> keepCalling(c), "background-" + c.name());
                t.start();
                load.add(t);
            }
            try {
                check();
                List<Edit> sequence = sequence(20 + random.nextInt(21));
                List<Trigger> triggers = new ArrayList<>();
                List<Writing> writings = new ArrayList<>();
                for (Trigger t : List.of(Trigger.WATCHER, Trigger.ADMIN)) {
                    for (Writing w : Writing.values()) {
                        triggers.add(t);
                        writings.add(w);
                    }
                }
                // Every way of writing under each trigger once, in a random order, then any.
                List<Integer> order = new ArrayList<>(List.of(0, 1, 2, 3, 4, 5));
                Collections.shuffle(order, random);
                for (int n = 0; n < sequence.size(); n++) {
                    int combo = n < order.size() ? order.get(n) : random.nextInt(order.size());
                    Edit edit = sequence.get(n);
                    Writing writing = edit == Edit.HALF_WRITTEN ? Writing.IN_PLACE : writings.get(combo);
                    Trigger trigger = triggers.get(combo);
                    // Not drawn from the seed's sequence, so that a seed still makes the edits it always made.
                    if (trigger == Trigger.ADMIN && ++adminSteps % 3 == 0) {
                        trigger = Trigger.WATCHER_THEN_ADMIN;
                    }
                    step = "step " + (n + 1) + " of " + sequence.size() + " (" + edit + ", written "
                            + writing.name().toLowerCase(Locale.ROOT) + ", picked up by " + trigger.label + ")";
                    history.add(step);
                    apply(edit, writing, trigger, log);
                    edits.merge(edit, 1, Integer::sum);
                    check();
                }
                step = "after the last step";
                // No late or second reload of anything written: two quiet periods on, all is as it was.
                Thread.sleep(DEBOUNCE.multipliedBy(2).toMillis());
                assertMetrics();
            } catch (Exception | AssertionError e) {
                throw new AssertionError(seed(step + " failed; the configuration in force:" + world.describe()
                        + "\nthe steps up to it:\n  " + String.join("\n  ", history)), e);
            } finally {
                running.set(false);
                for (Thread t : load) {
                    t.join(30_000);
                }
            }
            assertThat(backgroundFailures).as(seed("background requests not answered 200")).isEmpty();
            assertThat(backgroundAnswered.get()).as("the background clients kept calling").isGreaterThan(100);
            assertThat(edits.keySet()).as(seed("edits made")).containsExactlyInAnyOrder(Edit.values());
            assertThat(outcomes).as(seed("outcomes seen " + outcomes)).containsKeys("200", "403", "404",
                    "refused", "closed by the reload");
            assertThat(audit.lines()).as(seed("every 403 is one audit line")).filteredOn(
                    l -> l.contains("\"event\":\"denied\"")).hasSize(outcomes.get("403"));
            BufferLeaks.assertNoneReported(leaks, seed("buffer leaks"));
        } finally {
            running.set(false);
            for (Thread t : load) {
                t.interrupt();
            }
            for (MtlsClient c : keptAlive.values()) {
                c.close();
            }
            if (proxy != null) {
                proxy.close();
            }
            backends.forEach(TestBackend::close);
        }
    }

    /** Every kind of edit at least once, in a random order, then random ones; the CA rotation twice (add, drop). */
    private List<Edit> sequence(int steps) {
        List<Edit> all = new ArrayList<>(List.of(Edit.values()));
        all.add(Edit.CLIENT_CA);
        Collections.shuffle(all, random);
        while (all.size() < steps) {
            all.add(random.nextInt(2) == 0 ? Edit.GOOD.get(random.nextInt(Edit.GOOD.size()))
                    : Edit.values()[Edit.GOOD.size() + random.nextInt(Edit.values().length - Edit.GOOD.size())]);
        }
        return all;
    }

    // ---- one edit ----------------------------------------------------------------------------------------------

    private void apply(Edit edit, Writing writing, Trigger trigger, LogCapture log) throws Exception {
        if (edit == Edit.HALF_WRITTEN) {
            halfWritten(trigger, log);
            return;
        }
        Target target = target(edit);
        write(target, writing);
        reload(trigger, target, log);
    }

    /**
     * The config file written in two steps, in place: first up to a point inside its routes (a route without its
     * backend, or routes naming backends the file does not have yet, or YAML cut mid-line), which must fail and
     * change nothing; then the rest appended, which must apply. The other files are put right first, should the
     * last edit have broken one.
     */
    private void halfWritten(Trigger trigger, LogCapture log) throws Exception {
        World next = mutateGood(Edit.values()[random.nextInt(3)]);
        awaitQuietPeriod();
        write(tls, serverFiles(serverCertificates.get(next.serverCertificate())), Writing.IN_PLACE);
        write(cas, Map.of("mesh.pem", pki.root().getCertificatePEM(), "partners.pem",
                partnerBundle(next.partnerCas())), Writing.IN_PLACE);
        String whole = yaml(next, Map.of());
        int from = whole.indexOf("    pathPrefix: /stable");
        int cut = from + random.nextInt(whole.indexOf("\nbackends:") - from);
        Target first = new Target(Map.of("proxy.yaml", whole.substring(0, cut)), tls.contents(), cas.contents(),
                world, "invalid_config", null);
        conf.writeInPlace("proxy.yaml", whole.substring(0, cut));
        lastWrite = System.nanoTime();
        String label = step;
        step = label + ", its first half";
        reload(trigger, first, log);
        check();
        step = label;
        Target rest = new Target(Map.of("proxy.yaml", whole), tls.contents(), cas.contents(), next, null, null);
        awaitQuietPeriod();
        conf.appendInPlace("proxy.yaml", whole.substring(cut));
        lastWrite = System.nanoTime();
        reload(trigger, rest, log);
    }

    /** What an edit of this kind writes, from the configuration in force. */
    private Target target(Edit edit) {
        Map<String, String> serverFiles = serverFiles(serverCertificates.get(world.serverCertificate()));
        Map<String, String> caFiles = Map.of("mesh.pem", pki.root().getCertificatePEM(), "partners.pem",
                partnerBundle(world.partnerCas()));
        String key = tls.file("server.key").toString();
        switch (edit) {
            case GRANTS, ROUTES, BACKENDS, SERVER_CERTIFICATE, CLIENT_CA -> {
                World next = mutateGood(edit);
                return new Target(Map.of("proxy.yaml", yaml(next, Map.of())),
                        serverFiles(serverCertificates.get(next.serverCertificate())),
                        Map.of("mesh.pem", pki.root().getCertificatePEM(), "partners.pem",
                                partnerBundle(next.partnerCas())), next, null, null);
            }
            case YAML_SYNTAX -> {
                // A flow list left open: the parser stops at the line after it. The note at the end tells this edit
                // from one just like it the step before (the same route, nothing good in between): written over the
                // same bytes, an edit is no change, and the watcher rightly reloads nothing.
                int i = 1 + random.nextInt(world.routes().size() - 1);
                Map<String, String> slot = Map.of("routes[" + i + "].allow",
                        "[" + String.join(", ", world.routes().get(i).allow()));
                return new Target(Map.of("proxy.yaml", yaml(world, slot) + "# left open at edit " + history.size()
                        + "\n"), serverFiles, caFiles, world, "invalid_config", SYNTAX_ERROR);
            }
            case VALIDATION -> {
                Map<String, String> slots = new LinkedHashMap<>();
                List<String> problems = new ArrayList<>();
                List<Integer> routes = new ArrayList<>();
                for (int i = 1; i < world.routes().size(); i++) {
                    routes.add(i);
                }
                Collections.shuffle(routes, random);
                String unknownIdentity = "nobody" + random.nextInt(1000);
                int allowing = routes.get(0);
                List<String> allow = new ArrayList<>(world.routes().get(allowing).allow());
                allow.add(unknownIdentity);
                slots.put("routes[" + allowing + "].allow", "[" + String.join(", ", allow) + "]");
                problems.add("routes[" + allowing + "].allow[" + (allow.size() - 1) + "]: \"" + unknownIdentity
                        + "\" (expected: a name under identities:, known: " + String.join(", ", IDENTITIES) + ")");
                String backend = world.backends().get(random.nextInt(world.backends().size()));
                String url = "ftp://127.0.0.1:" + backends.get(BACKENDS.indexOf(backend)).port();
                slots.put("backends." + backend + ".url", url);
                problems.add("backends." + backend + ".url: \"" + url
                        + "\" (expected: http://host:port or https://host:port)");
                if (routes.size() > 1 && random.nextBoolean()) {
                    int pointing = routes.get(1);
                    slots.put("routes[" + pointing + "].backend", "nowhere");
                    problems.add("routes[" + pointing + "].backend: \"nowhere\" (expected: a name under backends:,"
                            + " known: " + String.join(", ", new TreeSet<>(world.backends())) + ")");
                }
                return bad(slots, serverFiles, caFiles, problems);
            }
            case MISSING_FILE -> {
                boolean ca = random.nextBoolean();
                Path missing = (ca ? cas : tls).path().resolve("missing-" + random.nextInt(1_000_000) + ".pem");
                return bad(Map.of(ca ? "trustAnchors.partners.caBundle" : "listeners[0].tls.certificate",
                        missing.toString()), serverFiles, caFiles, List.of((ca ? "trustAnchors.partners.caBundle: "
                        : "listeners[0].tls.certificate: ") + missing + " (expected: a readable PEM file) - no such"
                        + " file"));
            }
            case DIRECTORY_FOR_FILE -> {
                Path directory = workspace.resolve("not-a-key-" + random.nextInt(1_000_000));
                try {
                    Files.createDirectories(directory);
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
                return bad(Map.of("listeners[0].tls.privateKey", directory.toString()), serverFiles, caFiles,
                        List.of("listeners[0].tls.privateKey: " + directory
                                + " (expected: a readable PEM file) - is a directory"));
            }
            case KEY_MISMATCH -> {
                Map<String, String> mismatched = new LinkedHashMap<>(serverFiles);
                mismatched.put("server.key", pki.newServerCertificate().getPrivateKeyPEM());
                return new Target(Map.of("proxy.yaml", yaml(world, Map.of())), mismatched, caFiles, world,
                        "invalid_config", List.of("listeners[0].tls.privateKey: " + key + " (expected: the private"
                                + " key of listeners[0].tls.certificate) - it belongs to another certificate"));
            }
            case MOVED_LISTENER -> {
                String address = "127.0.0.1:" + (20_000 + random.nextInt(20_000));
                return new Target(Map.of("proxy.yaml", yaml(world, Map.of("listeners[0].address", address))),
                        serverFiles, caFiles, world, "restart_required", List.of("listeners[0].address: " + address
                                + " needs a restart to change (running: 127.0.0.1:0)"));
            }
            default -> throw new IllegalArgumentException(edit + " has two steps: halfWritten");
        }
    }

    private Target bad(Map<String, String> slots, Map<String, String> serverFiles, Map<String, String> caFiles,
            List<String> problems) {
        return new Target(Map.of("proxy.yaml", yaml(world, slots)), serverFiles, caFiles, world, "invalid_config",
                problems);
    }

    /** The configuration in force changed by one good edit of this kind. */
    private World mutateGood(Edit edit) {
        List<Route> routes = new ArrayList<>(world.routes());
        List<String> present = new ArrayList<>(world.backends());
        int server = world.serverCertificate();
        List<Integer> partners = new ArrayList<>(world.partnerCas());
        switch (edit) {
            case GRANTS -> {
                int i = 1 + random.nextInt(routes.size() - 1);
                Route r = routes.get(i);
                List<String> allow;
                do {
                    allow = grants();
                } while (allow.equals(r.allow()));
                routes.set(i, new Route(r.name(), r.prefix(), r.backend(), allow));
            }
            case ROUTES -> {
                if (routes.size() <= 2 || routes.size() < 6 && random.nextBoolean()) {
                    routes.add(newRoute(present.get(random.nextInt(present.size()))));
                } else {
                    routes.remove(1 + random.nextInt(routes.size() - 1));
                }
            }
            case BACKENDS -> {
                List<String> absent = BACKENDS.stream().filter(b -> !present.contains(b)).toList();
                if (!absent.isEmpty() && (present.size() == 1 || random.nextBoolean())) {
                    String added = absent.get(random.nextInt(absent.size()));
                    present.add(added);
                    routes.add(newRoute(added));
                } else {
                    String removed = present.remove(1 + random.nextInt(present.size() - 1));
                    // Its routes go to the backend that is always there.
                    routes.replaceAll(r -> r.backend().equals(removed)
                            ? new Route(r.name(), r.prefix(), "core", r.allow()) : r);
                }
            }
            case SERVER_CERTIFICATE -> {
                serverCertificates.add(pki.newServerCertificate());
                server = serverCertificates.size() - 1;
            }
            case CLIENT_CA -> {
                if (partners.size() == 1) {
                    partners.add(newPartnerCa()); // the new CA next to the old one
                } else {
                    partners.remove(0); // then the old one goes
                }
            }
            default -> throw new IllegalArgumentException(edit + " is not a good edit");
        }
        return new World(List.copyOf(routes), List.copyOf(present), server, List.copyOf(partners));
    }

    private Route newRoute(String backend) {
        routeNames++;
        prefixesSeen.add("/r" + routeNames);
        return new Route("r" + routeNames, "/r" + routeNames, backend, grants());
    }

    /** A random non-empty set of identities, in a fixed order. */
    private List<String> grants() {
        List<String> allow = new ArrayList<>();
        while (allow.isEmpty()) {
            for (String identity : IDENTITIES) {
                if (random.nextInt(3) == 0) {
                    allow.add(identity);
                }
            }
        }
        return List.copyOf(allow);
    }

    /** A new partner CA and a client certificate from it; its index. */
    private int newPartnerCa() {
        X509Bundle root = TestPki.newRoot("partner root " + partnerRoots.size());
        partnerRoots.add(root);
        clients.add(new Client("partner-" + (partnerRoots.size() - 1), "partner",
                TestPki.clientOf(root, PARTNER_SPIFFE_ID), partnerRoots.size() - 1));
        return partnerRoots.size() - 1;
    }

    // ---- writing and reloading -----------------------------------------------------------------------------------

    /** Writes the files of {@code target} that differ from what is on disk, each folder in the one way. */
    private void write(Target target, Writing writing) throws Exception {
        awaitQuietPeriod();
        write(tls, target.tls(), writing);
        write(cas, target.cas(), writing);
        write(conf, target.conf(), writing);
        lastWrite = System.nanoTime();
    }

    /**
     * Waits out the watcher's quiet period after the last write, so that a check it scheduled then has run (and,
     * after a reload that recorded those files, found nothing to do) before the next edit starts. Otherwise that
     * check could fall between two files of one edit and load a state the test never meant as an edit: the proxy
     * right, the test's bookkeeping wrong. (One that falls after the last file and before the
     * {@code POST /admin/reload} loads the whole edit, which the model allows.)
     */
    private void awaitQuietPeriod() throws InterruptedException {
        long wait = lastWrite + DEBOUNCE.toNanos() + TimeUnit.MILLISECONDS.toNanos(150) - System.nanoTime();
        if (wait > 0) {
            TimeUnit.NANOSECONDS.sleep(wait);
        }
    }

    private static void write(MountedFolder folder, Map<String, String> files, Writing writing) throws IOException {
        Map<String, String> changed = new LinkedHashMap<>();
        // The key before the certificate, as a rotation tool writes them.
        List<String> names = new ArrayList<>(files.keySet());
        names.sort((a, b) -> a.endsWith(".key") == b.endsWith(".key") ? a.compareTo(b) : a.endsWith(".key") ? -1 : 1);
        for (String name : names) {
            if (!files.get(name).equals(folder.content(name))) {
                changed.put(name, files.get(name));
            }
        }
        if (changed.isEmpty()) {
            return;
        }
        switch (writing) {
            case IN_PLACE -> {
                for (Map.Entry<String, String> f : changed.entrySet()) {
                    folder.writeInPlace(f.getKey(), f.getValue());
                }
            }
            case TEMP_AND_RENAME -> {
                for (Map.Entry<String, String> f : changed.entrySet()) {
                    folder.writeAndRename(f.getKey(), f.getValue());
                }
            }
            case SYMLINK_SWAP -> folder.swap(changed);
        }
    }

    /**
     * Has the proxy reload what was written and checks what the reload said: the admin endpoint's answer, or for the
     * watcher the lines it logged. Returns once the reload is complete (a successful one logs its success after the
     * open connections were judged again).
     *
     * <p>An admin reload does not hold the watch back (README, "Reload and shutdown"): when the quiet period after
     * the last write ends before the request reaches the reload thread (the test thread or the admin listener
     * stalled that long on a loaded machine, or on purpose for {@link Trigger#WATCHER_THEN_ADMIN}), the watcher
     * loads the edit first and the admin reload loads it again: two generations for a good edit, the answer the
     * second; two failures, both counted, for a bad one. Either reload is judged as the edit's reload.
     */
    private void reload(Trigger trigger, Target target, LogCapture log) throws Exception {
        int linesBefore = log.lines().size();
        expect(target);
        List<String> problems;
        if (trigger == Trigger.WATCHER) {
            problems = awaitWatcher(target, log, linesBefore);
            List<String> lines = since(log, linesBefore);
            assertThat(reloadsBy(lines, "file_change")).as(step + ": every reload was the watcher's")
                    .isEqualTo(lines.stream().filter(l -> l.startsWith("event=reload_")).toList());
            assertThat(lines).as(step + ": the watcher reloaded once").filteredOn(
                    l -> l.startsWith("event=reload_succeeded")).hasSize(target.good() ? 1 : 0);
        } else {
            if (trigger == Trigger.WATCHER_THEN_ADMIN) {
                awaitWatcher(target, log, linesBefore);
            }
            HttpResponse<String> response = admin("POST", "/admin/reload");
            List<String> lines = since(log, linesBefore);
            List<String> watcherFirst = reloadsBy(lines, "file_change");
            List<String> byAdmin = reloadsBy(lines, "admin");
            // One reload at a time on one thread: the watcher's lines, if any, all come before the admin reload's.
            assertThat(lines.stream().filter(l -> l.startsWith("event=reload_")).toList())
                    .as(step + ": the reloads made, by trigger").isEqualTo(Stream.concat(watcherFirst.stream(),
                            byAdmin.stream()).toList());
            if (!watcherFirst.isEmpty()) {
                assertThat(watcherFirst).as(step + ": the watcher's reload before the admin's, once").filteredOn(
                        l -> l.startsWith("event=reload_succeeded")).hasSize(target.good() ? 1 : 0);
                if (!target.good()) {
                    checkProblems(target, loggedProblems(watcherFirst));
                }
                expect(target);
            }
            assertThat(byAdmin).as(step + ": the admin reload, once").filteredOn(
                    l -> l.startsWith("event=reload_succeeded")).hasSize(target.good() ? 1 : 0);
            JsonNode body = json.readTree(response.body());
            assertThat(response.statusCode()).as(step + ": the status of POST /admin/reload, answering "
                    + response.body()).isEqualTo(target.good() ? 200 : 422);
            assertThat(body.path("result").asText()).as(step + ": result").isEqualTo(target.good() ? "success"
                    : "failure");
            assertThat(body.path("generation").asLong()).as(step + ": the generation answered; the reloads logged: "
                    + lines).isEqualTo(generation);
            assertThat(body.path("reason").asText(null)).as(step + ": reason").isEqualTo(target.reason());
            problems = new ArrayList<>();
            body.path("problems").forEach(p -> problems.add(p.asText()));
        }
        if (target.good()) {
            assertThat(problems).as(step + ": problems of a good edit").isEmpty();
            world = target.world();
        } else {
            checkProblems(target, problems);
        }
    }

    /** A reload of {@code target} is one more generation, or one more failure counted with its reason. */
    private void expect(Target target) {
        if (target.good()) {
            generation++;
        } else {
            reloads.merge(target.reason(), 1, Integer::sum);
        }
    }

    /** The lines of the reloads made by {@code trigger} among {@code lines}. */
    private static List<String> reloadsBy(List<String> lines, String trigger) {
        return lines.stream().filter(l -> l.startsWith("event=reload_") && l.contains("trigger=" + trigger + " "))
                .toList();
    }

    private static List<String> loggedProblems(List<String> lines) {
        List<String> problems = new ArrayList<>();
        for (String line : lines) {
            Matcher m = LOGGED_PROBLEM.matcher(line);
            if (m.find()) {
                problems.add(m.group(1));
            }
        }
        return problems;
    }

    /**
     * Waits for the watcher's reload: for a good edit its success line (written once the new generation is in
     * force and open connections were judged again), for a bad one the failure count (incremented after every
     * problem was logged). Returns the problems it logged.
     */
    private List<String> awaitWatcher(Target target, LogCapture log, int linesBefore) throws Exception {
        long deadline = System.nanoTime() + WATCHER_DEADLINE.toNanos();
        String failures = "mtls_proxy_config_reloads_total{reason=\"" + target.reason() + "\",result=\"failure\"}";
        while (true) {
            List<String> lines = since(log, linesBefore);
            boolean done = target.good()
                    ? lines.stream().anyMatch(l -> l.startsWith("event=reload_succeeded"))
                    : metrics().getOrDefault(failures, 0.0) >= reloads.get(target.reason());
            if (done) {
                return loggedProblems(since(log, linesBefore));
            }
            assertThat(System.nanoTime()).as(step + ": the watcher reloaded within " + WATCHER_DEADLINE
                    + "; it logged " + lines).isLessThan(deadline);
            Thread.sleep(20);
        }
    }

    /**
     * Every problem of a bad edit with its YAML path, at the line where the test wrote the bad value. Logged
     * problems have their double quotes turned into single ones (a log field is quoted).
     */
    private void checkProblems(Target target, List<String> problems) {
        String yaml = target.conf().get("proxy.yaml");
        if (target.problems() == null) {
            // Half a file: what is wrong depends on where it was cut, but each is a YAML path or a syntax error.
            assertThat(problems).as(step + ": problems of the first half").isNotEmpty().allSatisfy(p -> assertThat(p)
                    .matches("(not valid YAML - .*|[a-zA-Z]+(\\[\\d+]|\\.[a-zA-Z0-9_-]+)*: .*)"));
            return;
        }
        List<String> shown = problems.stream().map(p -> p.replace('\'', '"')).toList();
        if (target.problems() == SYNTAX_ERROR) {
            assertThat(shown).as(step + ": the syntax error").singleElement().satisfies(p -> assertThat(p)
                    .startsWith("not valid YAML - ").containsPattern(LOCATION));
            return;
        }
        List<String> withoutPlace = shown.stream().map(p -> LOCATION.matcher(p).replaceFirst("")).toList();
        assertThat(withoutPlace).as(step + ": every problem, each with its YAML path")
                .containsExactlyInAnyOrderElementsOf(target.problems());
        if (!target.reason().equals("invalid_config") && !target.reason().equals("restart_required")) {
            return; // found by the proxy in the files the configuration names, not in the configuration's lines
        }
        for (String p : shown) {
            Matcher at = LOCATION.matcher(p);
            assertThat(at.find()).as(step + ": " + p + " names its place in the file").isTrue();
            String line = yaml.lines().skip(Integer.parseInt(at.group(1)) - 1).findFirst().orElse("");
            Matcher written = WRITTEN_VALUE.matcher(p);
            assertThat(written.find()).as(step + ": " + p + " shows the value written").isTrue();
            String value = written.group(1).replace("\"", "");
            assertThat(line.substring(Math.min(line.length(), Integer.parseInt(at.group(2)) - 1)))
                    .as(step + ": " + p + " points at the value in line " + at.group(1) + ", which reads: " + line)
                    .startsWith(value);
        }
    }

    // ---- what the proxy does now --------------------------------------------------------------------------------

    /**
     * Metrics exactly as the model counts, then every client at every prefix: one mesh client, and each other mesh
     * client now and then, on a new connection (whose handshake must show the server certificate in force), the
     * others on the connection kept alive since their last check. A partner client keeps its connection as long as
     * it lasts, so that the reload dropping its CA finds it open.
     */
    private void check() throws Exception {
        assertMetrics();
        Client fresh = clients.get(random.nextInt(MESH.size()));
        for (Client client : probedClients()) {
            probe(client, client == fresh || client.partnerCa() < 0 && random.nextInt(3) == 0);
        }
    }

    private void assertMetrics() throws Exception {
        Map<String, Double> m = metrics();
        assertThat(m.get("mtls_proxy_config_generation")).as(step + ": config_generation").isEqualTo(
                (double) generation);
        assertThat(m.get("mtls_proxy_config_reloads_total{reason=\"none\",result=\"success\"}"))
                .as(step + ": successful reloads").isEqualTo((double) generation - 1);
        for (String reason : FAILURE_REASONS) {
            assertThat(m.get("mtls_proxy_config_reloads_total{reason=\"" + reason + "\",result=\"failure\"}"))
                    .as(step + ": failed reloads, " + reason).isEqualTo((double) reloads.get(reason));
        }
    }

    /** The mesh clients and the partner clients of the last three partner CAs (the older ones stay refused). */
    private List<Client> probedClients() {
        List<Client> probed = new ArrayList<>();
        for (Client c : clients) {
            if (c.partnerCa() < 0 || c.partnerCa() >= partnerRoots.size() - 3) {
                probed.add(c);
            }
        }
        return probed;
    }

    /**
     * Every route's prefix, the last two that are no route (any more) and one that never was, in one connection: a
     * refused certificate ends it, at the handshake or (TLS 1.3) at the first request, and a kept-alive connection
     * whose certificate a reload refused must have been closed by that reload.
     */
    private void probe(Client client, boolean newConnection) throws Exception {
        List<String> prefixes = new ArrayList<>();
        world.routes().forEach(r -> prefixes.add(r.prefix()));
        prefixesSeen.stream().filter(p -> !prefixes.contains(p)).skip(Math.max(0, prefixesSeen.size()
                - prefixes.size() - 2)).forEach(prefixes::add);
        prefixes.add("/nothing-here");
        MtlsClient c = keptAlive.remove(client.name());
        String connection = "a kept-alive connection";
        String cut = "closed by the reload";
        if (c == null || newConnection) {
            if (c != null) {
                c.close();
            }
            connection = "a new connection";
            cut = "refused";
            try {
                c = MtlsClient.connect(proxyAddress(), pki.root(), client.certificate());
            } catch (IOException e) {
                assertThat(world.status(client, STABLE.prefix())).as(step + ": " + client.name()
                        + " was refused in the handshake (" + e + ")").isNull();
                outcomes.merge(cut, 1, Integer::sum);
                return;
            }
            assertThat(c.serverCertificate()).as(step + ": the server certificate of a new handshake is number "
                    + world.serverCertificate()).isEqualTo(serverCertificates.get(world.serverCertificate())
                    .getCertificate());
        }
        for (String prefix : prefixes) {
            Integer expected = world.status(client, prefix);
            String what = client.name() + " on " + connection + " at " + prefix;
            String tag = "probe-" + ++requests;
            int status;
            try {
                status = c.get(prefix + "/" + tag, "X-Case: " + tag).status();
            } catch (IOException e) {
                assertThat(expected).as(step + ": " + what + " failed (" + e + "), the model says " + expected)
                        .isNull();
                outcomes.merge(cut, 1, Integer::sum);
                c.close();
                return;
            }
            assertThat(expected).as(step + ": " + what + " was answered " + status + "; the model refuses its"
                    + " certificate").isNotNull();
            judge(what, prefix, tag, status, expected);
        }
        keptAlive.put(client.name(), c);
    }

    /** The model's status, and for a 200 the backend of the route received it. */
    private void judge(String what, String prefix, String tag, int status, int expected) throws Exception {
        assertThat(status).as(step + ": " + what).isEqualTo(expected);
        outcomes.merge(String.valueOf(status), 1, Integer::sum);
        if (status == 200) {
            assertThat(arrivedAt(tag)).as(step + ": the backend " + what + " reached")
                    .isEqualTo(world.backendOf(prefix));
        }
    }

    /** Which backend received the request tagged {@code tag}: recorded before it answered, so there by now. */
    private String arrivedAt(String tag) throws InterruptedException {
        for (int i = 0; i < BACKENDS.size(); i++) {
            TestBackend.Recorded r;
            while ((r = backends.get(i).nextRequest(0, TimeUnit.SECONDS)) != null) {
                String t = r.headers().get("X-Case");
                if (t != null && t.startsWith("probe-")) {
                    arrivals.put(t, i);
                } else if (i != 0) {
                    backgroundFailures.add(step + ": " + r.method() + " " + r.uri() + " reached " + BACKENDS.get(i));
                }
            }
        }
        Integer at = arrivals.remove(tag);
        return at == null ? "none" : BACKENDS.get(at);
    }

    /**
     * A client calling the route no edit touches, without pause, on a kept-alive connection and now and then a new
     * one: every request is answered 200, whatever is reloaded meanwhile.
     */
    private void keepCalling(Client client) {
        Random own = new Random(SEED * 31 + client.name().hashCode());
        MtlsClient c = null;
        int n = 0;
        while (running.get()) {
            // A steady load, not a flood: on two cores a flood would starve the sequence it runs under.
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(15));
            String tag = "background-" + client.name() + "-" + ++n;
            boolean fresh = c == null || own.nextInt(10) == 0;
            try {
                if (fresh) {
                    if (c != null) {
                        c.close();
                    }
                    c = null;
                    c = MtlsClient.connect(proxyAddress(), pki.root(), client.certificate());
                }
                MtlsClient.Response response = c.get(STABLE.prefix() + "/" + tag, "X-Case: " + tag);
                if (response.status() != 200) {
                    backgroundFailures.add(tag + " (" + step + ", " + (fresh ? "new" : "kept-alive")
                            + " connection): " + response.status());
                } else {
                    backgroundAnswered.incrementAndGet();
                }
            } catch (Exception e) {
                backgroundFailures.add(tag + " (" + step + ", " + (fresh ? "new" : "kept-alive") + " connection): "
                        + e);
                c = null;
            }
        }
        if (c != null) {
            try {
                c.close();
            } catch (IOException ignored) {
                // done anyway
            }
        }
    }

    /** The lines logged since there were {@code count}. */
    private static List<String> since(LogCapture log, int count) {
        List<String> all = log.lines();
        return all.subList(count, all.size());
    }

    private InetSocketAddress proxyAddress() {
        return proxy.server().addresses().get(0);
    }

    private HttpResponse<String> admin(String method, String path) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + proxy.admin().address().getPort()
                + path)).method(method, HttpRequest.BodyPublishers.noBody()).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    /** Every sample of {@code /metrics}, by name and labels as the page writes them. */
    private Map<String, Double> metrics() throws Exception {
        Map<String, Double> samples = new HashMap<>();
        for (String line : admin("GET", "/metrics").body().lines().toList()) {
            if (!line.startsWith("#") && !line.isBlank()) {
                int space = line.lastIndexOf(' ');
                samples.put(line.substring(0, space), Double.parseDouble(line.substring(space + 1)));
            }
        }
        return samples;
    }

    // ---- files ---------------------------------------------------------------------------------------------------

    private static Map<String, String> serverFiles(X509Bundle server) {
        Map<String, String> files = new LinkedHashMap<>();
        files.put("server.pem", server.getCertificatePEM());
        files.put("server.key", server.getPrivateKeyPEM());
        return files;
    }

    private String partnerBundle(List<Integer> trusted) {
        StringBuilder b = new StringBuilder();
        trusted.forEach(i -> b.append(partnerRoots.get(i).getCertificatePEM()));
        return b.toString();
    }

    /**
     * The configuration as YAML, the way a person would write it, each value on a line of its own; {@code slots}
     * replaces the value at a YAML path with what a bad edit writes there.
     */
    private String yaml(World w, Map<String, String> slots) {
        StringBuilder y = new StringBuilder();
        y.append("admin: { address: 127.0.0.1:0 }\n");
        y.append("accessLog: { enabled: false }\n");
        y.append("reload: { watch: true, debounce: ").append(DEBOUNCE.toMillis()).append("ms }\n");
        y.append("trustAnchors:\n");
        y.append("  mesh:\n    caBundle: ").append(workspace.resolve("cas").resolve("mesh.pem"))
                .append('\n');
        y.append("  partners:\n    caBundle: ").append(slots.getOrDefault("trustAnchors.partners.caBundle",
                workspace.resolve("cas").resolve("partners.pem").toString())).append('\n');
        y.append("listeners:\n  - name: main\n");
        y.append("    address: ").append(slots.getOrDefault("listeners[0].address", "127.0.0.1:0")).append('\n');
        y.append("    tls:\n");
        y.append("      certificate: ").append(slots.getOrDefault("listeners[0].tls.certificate",
                workspace.resolve("tls").resolve("server.pem").toString())).append('\n');
        y.append("      privateKey: ").append(slots.getOrDefault("listeners[0].tls.privateKey",
                workspace.resolve("tls").resolve("server.key").toString())).append('\n');
        y.append("identities:\n");
        for (String identity : IDENTITIES) {
            y.append("  ").append(identity).append(": { trustAnchor: ")
                    .append(identity.equals("partner") ? "partners" : "mesh").append(", spiffeId: \"")
                    .append(identity.equals("partner") ? PARTNER_SPIFFE_ID : MESH.get(identity)).append("\" }\n");
        }
        y.append("routes:\n");
        for (int i = 0; i < w.routes().size(); i++) {
            Route r = w.routes().get(i);
            String path = "routes[" + i + "]";
            y.append("  - name: ").append(r.name()).append('\n');
            y.append("    pathPrefix: ").append(r.prefix()).append('\n');
            y.append("    backend: ").append(slots.getOrDefault(path + ".backend", r.backend())).append('\n');
            y.append("    allow: ").append(slots.getOrDefault(path + ".allow", "[" + String.join(", ", r.allow())
                    + "]")).append('\n');
        }
        y.append("backends:\n");
        for (String b : w.backends()) {
            y.append("  ").append(b).append(":\n    url: ").append(slots.getOrDefault("backends." + b + ".url",
                    backends.get(BACKENDS.indexOf(b)).url())).append('\n');
        }
        return y.toString();
    }

    static long seedOf(String property) {
        return property.equals("random") ? new SecureRandom().nextLong() : Long.parseLong(property);
    }

    private static String seed(String what) {
        return what + " (seed " + SEED + ": -Dmtlsproxy.test.seed=" + SEED + " runs this sequence again)";
    }
}
