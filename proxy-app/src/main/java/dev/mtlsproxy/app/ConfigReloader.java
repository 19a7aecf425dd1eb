package dev.mtlsproxy.app;

import dev.mtlsproxy.app.admin.AdminEndpoints;
import dev.mtlsproxy.app.admin.ReloadOutcome;
import dev.mtlsproxy.config.BackendConfig;
import dev.mtlsproxy.config.ConfigException;
import dev.mtlsproxy.config.ConfigLoader;
import dev.mtlsproxy.config.ConfigProblem;
import dev.mtlsproxy.config.Durations;
import dev.mtlsproxy.config.ListenerConfig;
import dev.mtlsproxy.config.LoadedConfig;
import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.config.RestartOnlySettings;
import dev.mtlsproxy.config.TrustAnchorConfig;
import dev.mtlsproxy.core.log.LogText;
import dev.mtlsproxy.core.metrics.ProxyMetrics;
import dev.mtlsproxy.core.proxy.ProxyServer;
import dev.mtlsproxy.core.proxy.ReloadException;
import dev.mtlsproxy.core.proxy.ReloadFailureReason;
import java.io.IOException;
import java.nio.file.ClosedWatchServiceException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardWatchEventKinds;
import java.nio.file.WatchEvent;
import java.nio.file.WatchKey;
import java.nio.file.WatchService;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Reloads the configuration from its file: on a change to it or to any file it references (certificates, keys, CA
 * bundles, CRLs), on SIGHUP, and on {@code POST /admin/reload}. Every reload runs on one thread, one at a time, never
 * on an event loop; a failure at any step is logged with its YAML path or file, counted with its reason, and leaves
 * the running generation untouched (readiness is not affected).
 *
 * <p>Watching: the parent directory of every referenced file (and of its resolved target, when it is a symlink) is
 * watched, because Kubernetes updates a mounted ConfigMap or Secret by swapping a {@code ..data} symlink in that
 * directory, which no watch on the file itself would see. Only events on those files' names (and on the links
 * leading to them) count, so a busy access log in the same directory can neither hold back a reload nor keep this
 * thread awake. They schedule a check after a quiet period (the debounce); the check compares SHA-256 hashes of the
 * files' contents with those of the last reload, so a touch or a burst of writes does not reload more than once.
 *
 * <p>A watch that ends on an error (the watch service failing or closed under it) is started again with a fresh
 * watch service after a back-off ({@link #FIRST_RESTART_DELAY}, doubling up to {@link #MAX_RESTART_DELAY}), every
 * directory registered again and the files compared once, since their events were missed meanwhile.
 */
final class ConfigReloader implements AdminEndpoints.Reloader, AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(ConfigReloader.class);
    private static final String MISSING = "missing";
    /** File systems that keep modification times to the second or two (FAT, some network ones): a margin for them. */
    private static final Duration MTIME_GRANULARITY = Duration.ofSeconds(2);
    /** Linux gives up at 40 too (ELOOP). */
    private static final int MAX_SYMLINK_HOPS = 40;
    /** How long a failed watch waits to start again the first time; each failure in a row doubles it. */
    static final Duration FIRST_RESTART_DELAY = Duration.ofSeconds(1);
    /**
     * The longest wait between restarts of a watch that keeps failing; a watch that ran this long before failing
     * starts again after {@link #FIRST_RESTART_DELAY}.
     */
    static final Duration MAX_RESTART_DELAY = Duration.ofSeconds(60);

    private final Path configFile;
    private final ProxyServer server;
    private final ProxyMetrics metrics;
    private final Loader loader;
    /** The configuration the process started with: what runs of the settings a reload does not apply. */
    private final ProxyConfig started;
    private final WatchServices watchServices;
    private final ScheduledExecutorService worker;
    /** Confined to the worker thread. */
    private Map<Path, String> lastHashes;
    private volatile AdminEndpoints.ConfigSnapshot snapshot;
    private ScheduledFuture<?> pendingCheck;
    /** The quiet period after a file event; set before the watcher starts. */
    private volatile Duration debounce;
    /** The watch running now; replaced by a fresh one when it fails. Written by the worker, closed by close(). */
    private volatile WatchService watchService;
    private volatile Thread watcher;
    private volatile boolean closed;
    /** The reload asked for and not yet started, which a new ask joins; guarded by this. */
    private CompletableFuture<ReloadOutcome> queued;
    /** The wait before the next restart of a failed watch, and when the running watch started; worker only. */
    private Duration restartDelay = FIRST_RESTART_DELAY;
    private long watchStartedNanos;
    /** Confined to the worker thread. */
    private final Set<Path> watchedDirectories = new HashSet<>();
    /**
     * File names in the watched directories whose events schedule a check; written by the worker, read by the
     * watcher. One set for all directories: a same-named file elsewhere costs at most a hash comparison.
     */
    private volatile Set<String> watchedNames = Set.of();

    /**
     * What the files of a configuration held as it was loaded: the config file hashed before it was read, the files
     * it names hashed before the server read them. A watch started later compares against this, so a write during
     * start-up is a change, not the baseline.
     */
    record Fingerprint(Map<Path, String> byFile) {

        /** Hashes {@code configFile} now: call it before loading the file. */
        static String configHash(Path configFile) {
            return ConfigReloader.hashes(Set.of(configFile.toAbsolutePath().normalize())).values().iterator().next();
        }

        /** {@code configHash} from before {@code config} was loaded; the files it names, hashed now. */
        static Fingerprint of(Path configFile, String configHash, ProxyConfig config) {
            Path file = configFile.toAbsolutePath().normalize();
            Map<Path, String> hashes = ConfigReloader.hashes(files(file, config));
            hashes.put(file, configHash);
            return new Fingerprint(Map.copyOf(hashes));
        }
    }

    /**
     * How a reload reads and validates the file: {@link ConfigLoader#loadWithPositions}, whose positions place the
     * settings only a restart applies in the file; a test makes this step fail.
     */
    @FunctionalInterface
    interface Loader {
        LoadedConfig load(Path configFile) throws ConfigException;
    }

    /** Where watches come from: the default file system's; a test hands out one that fails. */
    @FunctionalInterface
    interface WatchServices {
        WatchServices DEFAULT = () -> FileSystems.getDefault().newWatchService();

        WatchService open() throws IOException;
    }

    ConfigReloader(Path configFile, Fingerprint loaded, ProxyServer server, ProxyMetrics metrics, Loader loader) {
        this(configFile, loaded, server, metrics, loader, WatchServices.DEFAULT);
    }

    ConfigReloader(Path configFile, Fingerprint loaded, ProxyServer server, ProxyMetrics metrics, Loader loader,
            WatchServices watchServices) {
        this.configFile = configFile.toAbsolutePath().normalize();
        this.server = server;
        this.metrics = metrics;
        this.loader = loader;
        this.watchServices = watchServices;
        this.worker = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "config-reload");
            t.setDaemon(true);
            return t;
        });
        this.lastHashes = loaded.byFile();
        this.started = server.config();
        this.snapshot = new AdminEndpoints.ConfigSnapshot(server.config(), server.generation(),
                lastHashes.get(this.configFile));
    }

    /** The configuration serving now, for {@code /admin/config}. */
    AdminEndpoints.ConfigSnapshot snapshot() {
        return snapshot;
    }

    /**
     * Queues a reload; the future completes when it is done, successful or not. Never throws. A reload asked for
     * while another is queued and not yet started joins that one, and shares its outcome: it reads the files after
     * both were asked for, so it is what each asked for. Queued one per ask, a client of the admin listener could
     * queue reloads without end (64 connections of 128 pipelined {@code POST /admin/reload}, again and again), and
     * a SIGHUP or a rotated certificate waited behind all of them; now at most one waits behind the one running.
     */
    @Override
    public CompletableFuture<ReloadOutcome> reload(String trigger) {
        synchronized (this) {
            if (queued != null) {
                return queued.copy();
            }
            CompletableFuture<ReloadOutcome> reload = new CompletableFuture<>();
            try {
                worker.execute(() -> {
                    synchronized (this) {
                        queued = null; // started: a reload asked for from now on reads the files after this one
                    }
                    try {
                        reload.complete(reloadNow(trigger));
                    } catch (Throwable e) {
                        reload.completeExceptionally(e);
                        throw e;
                    }
                });
            } catch (RejectedExecutionException e) {
                return CompletableFuture.completedFuture(shuttingDown());
            }
            queued = reload;
            return reload.copy();
        }
    }

    private ReloadOutcome shuttingDown() {
        return new ReloadOutcome(false, server.generation(), ReloadFailureReason.OTHER.label(),
                List.of("the proxy is shutting down"));
    }

    /** Starts watching the config file and every file it references. */
    void watch(Duration debounce) throws IOException {
        this.debounce = debounce;
        WatchService service;
        try {
            service = watchServices.open();
        } catch (IOException e) {
            // An exhausted inotify limit, say: the proxy starts all the same and treats it as a watch that failed
            // while running, logged with its restart and tried again after the back-off. SIGHUP and POST
            // /admin/reload do not need the watch. (A file system with no watch service at all throws
            // UnsupportedOperationException, which no retry mends: that still stops the start.)
            worker.execute(() -> scheduleRestart(e));
            return;
        }
        watchService = service;
        CompletableFuture.runAsync(() -> {
            watchStartedNanos = System.nanoTime();
            registerDirectories(server.config());
        }, worker).join();
        startWatcher(service);
        // A write between the load and the watch raised no event: compare once against what was loaded, after the
        // quiet period as for an event, so that a burst of writes already under way is still one reload.
        worker.execute(this::scheduleCheck);
    }

    private void startWatcher(WatchService service) {
        Thread thread = new Thread(() -> watchLoop(service), "config-watch");
        thread.setDaemon(true);
        watcher = thread;
        thread.start();
    }

    private void watchLoop(WatchService service) {
        try {
            while (true) {
                WatchKey key = service.take();
                boolean relevant = false;
                for (WatchEvent<?> event : key.pollEvents()) {
                    relevant |= event.kind() == StandardWatchEventKinds.OVERFLOW
                            || watchedNames.contains(String.valueOf(event.context()));
                }
                key.reset();
                if (!relevant) {
                    // Another file in a watched directory, such as an access log written there: it must not
                    // restart the quiet period, or a busy log would hold back every reload.
                    continue;
                }
                worker.execute(this::scheduleCheck);
            }
        } catch (InterruptedException | ClosedWatchServiceException e) {
            if (!closed) {
                // Not by close(): the watch service went away under the loop, which is a failure like any other.
                watchFailed(e);
            }
        } catch (RuntimeException | Error e) {
            if (closed) {
                return; // the worker refusing the check, say: closing
            }
            if (e instanceof VirtualMachineError && !(e instanceof StackOverflowError)) {
                log.error("event=config_watch_failed cause=\"{}\" detail=\"file changes are no longer watched; SIGHUP"
                        + " and POST /admin/reload still reload\"", LogText.quoted(e.toString()), e);
                throw e; // the JVM's to handle, as in reloadNow
            }
            watchFailed(e);
        }
    }

    /** On the watcher, as its loop ends on {@code cause}: the worker starts a new watch after the back-off. */
    private void watchFailed(Throwable cause) {
        try {
            worker.execute(() -> scheduleRestart(cause));
        } catch (RejectedExecutionException e) {
            // closing
        }
    }

    /**
     * On the worker. Logs the failure with the wait before the restart, which doubles with each failure in a row up
     * to {@link #MAX_RESTART_DELAY}: a watch that fails at once every time (an exhausted inotify limit) costs a line
     * a minute, not a busy loop. One that had run for that long before failing starts again from the first wait.
     */
    private void scheduleRestart(Throwable cause) {
        if (System.nanoTime() - watchStartedNanos >= MAX_RESTART_DELAY.toNanos()) {
            restartDelay = FIRST_RESTART_DELAY;
        }
        Duration delay = restartDelay;
        restartDelay = delay.multipliedBy(2).compareTo(MAX_RESTART_DELAY) > 0 ? MAX_RESTART_DELAY
                : delay.multipliedBy(2);
        log.error("event=config_watch_failed cause=\"{}\" restart_in={} detail=\"file changes are not watched until"
                + " then; SIGHUP and POST /admin/reload still reload\"", LogText.quoted(String.valueOf(cause)),
                Durations.format(delay), cause);
        try {
            worker.schedule(this::restartWatch, delay.toNanos(), TimeUnit.NANOSECONDS);
        } catch (RejectedExecutionException e) {
            // closing
        }
    }

    /**
     * On the worker: a fresh watch service, every directory registered on it again (those of the files hashed last
     * and of the running configuration's), a new watcher, and one comparison of the files after the quiet period,
     * as {@link #watch} makes, since whatever changed while no watch ran raised no event that anyone saw.
     */
    private void restartWatch() {
        if (closed) {
            return;
        }
        WatchService fresh;
        try {
            fresh = watchServices.open();
        } catch (IOException | RuntimeException e) {
            scheduleRestart(e);
            return;
        }
        WatchService failed = watchService;
        watchService = fresh;
        if (closed) { // close() may have read the failed service: this one is closed here
            closeQuietly(fresh);
            return;
        }
        closeQuietly(failed);
        watchStartedNanos = System.nanoTime();
        watchedDirectories.clear();
        Set<Path> files = new LinkedHashSet<>(lastHashes.keySet());
        files.addAll(files(server.config()));
        registerFiles(files);
        startWatcher(fresh);
        log.info("event=config_watch_restarted directories={}", watchedDirectories.size());
        scheduleCheck();
    }

    private static void closeQuietly(WatchService service) {
        if (service == null) {
            return; // none opened yet: the one at start failed
        }
        try {
            service.close();
        } catch (IOException e) {
            log.debug("event=config_watch_close_failed cause={}", e.toString());
        }
    }

    /** On the worker. Each call restarts the quiet period: a burst of writes is one check, after it ends. */
    private void scheduleCheck() {
        if (pendingCheck != null) {
            pendingCheck.cancel(false);
        }
        pendingCheck = worker.schedule(this::reloadIfChanged, debounce.toNanos(), TimeUnit.NANOSECONDS);
    }

    private void reloadIfChanged() {
        pendingCheck = null;
        Map<Path, String> now = hashes(lastHashes.keySet());
        if (!now.equals(lastHashes)) {
            reloadNow("file_change");
        }
    }

    /**
     * A surprise fails the reload like a bad file: logged, counted, the old generation serving, the thread ready for
     * the next one. That includes an {@link Error} from a step of the reload (a stack overflow on some structure
     * nobody foresaw, a class that fails to load or initialise because the jar was replaced under the process, a
     * failed assertion): the new generation is built apart and swapped in last, and the running one's classes are
     * loaded already, so it is not involved. Let through, such an Error reached no log (the executor keeps it in a
     * future nobody reads) and the admin endpoint answered without a reason.
     *
     * <p>Not caught: running out of memory and the JVM's own failures ({@link VirtualMachineError} other than
     * {@link StackOverflowError}, the line Scala's {@code NonFatal} draws too), after which nothing can be trusted to
     * work; they are the JVM's to handle, and the container image's {@code -XX:+ExitOnOutOfMemoryError} ends the
     * process before one gets here.
     */
    private ReloadOutcome reloadNow(String trigger) {
        try {
            // What this reload tries is recorded before anything is read, and stays recorded when it fails on a
            // surprise (below): the same files would fail the same way again, so an unchanged file is not retried,
            // and logged, on every unrelated event in its directory; the next change to one of them is, and SIGHUP
            // or POST /admin/reload retries at once. A reload that gets further records what it read instead.
            // Hashed before reading: a write landing while it runs shows as a change afterwards and is loaded by the
            // next check, where hashing after reading would record content that never ran.
            Set<Path> files = new LinkedHashSet<>(lastHashes.keySet());
            files.add(configFile);
            if (watchService != null) {
                // A link among them may lead elsewhere now (a ..data swap, a release link flipped): the folder of
                // its new target is watched whatever this reload comes to. Registered only on success, a reload that
                // failed before reading the files' names (a YAML syntax error) left it unwatched, and the fix written
                // there next was never seen. Registered before hashing (as everywhere here): a write after the hash
                // then raises an event, where one between the hash and the registration was lost.
                registerFiles(files);
            }
            lastHashes = hashes(files);
            return reloadOnce(trigger, lastHashes.get(configFile));
        } catch (RuntimeException e) {
            return unexpected(trigger, ReloadFailureReason.OTHER, e);
        } catch (StackOverflowError e) {
            // Unwound by now: the stack is back to this frame, and logging is safe.
            return unexpected(trigger, ReloadFailureReason.INTERNAL_ERROR, e);
        } catch (VirtualMachineError e) {
            throw e;
        } catch (Error e) {
            return unexpected(trigger, ReloadFailureReason.INTERNAL_ERROR, e);
        }
    }

    private ReloadOutcome unexpected(String trigger, ReloadFailureReason reason, Throwable e) {
        log.error("event=reload_failed trigger={} reason={} cause=\"{}\"", trigger, reason.label(),
                LogText.quoted(e.toString()), e);
        metrics.reloadFailed(reason);
        return failure(reason, List.of(e.toString()));
    }

    /** {@code configHash}: the config file's, taken before this reload read it. */
    private ReloadOutcome reloadOnce(String trigger, String configHash) {
        Instant loadStarted = Instant.now();
        LoadedConfig loaded;
        try {
            loaded = loader.load(configFile);
        } catch (ConfigException e) {
            List<String> problems = new ArrayList<>();
            for (ConfigProblem p : e.problems()) {
                problems.add(p.toString());
                log.error("event=reload_failed trigger={} reason=invalid_config file={} problem=\"{}\"", trigger,
                        configFile, LogText.quoted(p.toString()));
            }
            metrics.reloadFailed(ReloadFailureReason.INVALID_CONFIG);
            // Remember what failed so an unchanged bad file is not retried on every unrelated event, and watch the
            // files the failed config names too: the one it is missing may be about to appear.
            Set<Path> named = e.attempted().map(this::files).orElse(Set.of());
            Set<Path> watched = new LinkedHashSet<>(lastHashes.keySet());
            watched.addAll(named);
            if (watchService != null) {
                e.attempted().ifPresent(this::registerDirectories);
            }
            Map<Path, String> now = hashes(watched);
            now.put(configFile, configHash);
            // A newly named file that reads now may have appeared between the load and the watch just registered,
            // with its event lost: it counts as changed, and one check is made after the quiet period. Only one
            // written since the load began can have: one older than that was there for the load to read, and
            // checking it again failed the same way, logged and counted twice for one edit.
            boolean appeared = false;
            for (Path file : named) {
                if (!lastHashes.containsKey(file) && !MISSING.equals(now.get(file))
                        && !writtenBefore(file, loadStarted.minus(MTIME_GRANULARITY))) {
                    now.put(file, "appeared after a failed reload");
                    appeared = true;
                }
            }
            lastHashes = now;
            if (appeared && watchService != null) {
                scheduleCheck();
            }
            return failure(ReloadFailureReason.INVALID_CONFIG, problems);
        }
        ProxyConfig config = loaded.config();
        List<String> startOnly = RestartOnlySettings.startOnlyChanges(started, config, loaded.positions()).stream()
                .map(ConfigProblem::toString).toList();
        for (String warning : ConfigLoader.warnings(config, Instant.now())) {
            log.warn("event=config_warning detail=\"{}\"", LogText.quoted(warning));
        }
        if (watchService != null) {
            // Whatever this reload comes to, the files this configuration names are watched: an edit to one is
            // tried again, even after a refusal for a restart. Before hashing them: a write between the hash and
            // the registration raised no event anyone saw, and the file kept its stale hash until some other
            // change, though the log already said the reload was done (a user or test acting on that line lost
            // the edit).
            registerDirectories(config);
        }
        // Before the server reads the files, as at start-up.
        Map<Path, String> hashes = Fingerprint.of(configFile, configHash, config).byFile();
        long generation;
        try {
            generation = server.reload(config, loaded.positions());
        } catch (ReloadException e) {
            // Refused for a restart: everything else that only a restart applies is listed too, as one restart
            // applies it all.
            List<String> problems = new ArrayList<>(e.problems());
            if (e.reason() == ReloadFailureReason.RESTART_REQUIRED) {
                problems.addAll(startOnly);
            }
            if (e.reason() == ReloadFailureReason.OTHER && e.getCause() != null) {
                // A surprise while building the generation: its stack trace is what a bug report needs, as for one
                // thrown anywhere else in a reload; the message alone ("long overflow") says nothing of where.
                log.error("event=reload_failed trigger={} reason={} cause=\"{}\"", trigger, e.reason().label(),
                        LogText.quoted(e.getCause().toString()), e.getCause());
                lastHashes = hashes;
                return failure(e.reason(), problems);
            }
            for (String problem : problems) {
                log.error("event=reload_failed trigger={} reason={} problem=\"{}\"", trigger, e.reason().label(),
                        LogText.quoted(problem));
            }
            lastHashes = hashes;
            return failure(e.reason(), problems);
        }
        lastHashes = hashes;
        snapshot = new AdminEndpoints.ConfigSnapshot(config, generation, hashes.get(configFile));
        for (String problem : startOnly) {
            log.warn("event=config_restart_needed generation={} problem=\"{}\"", generation,
                    LogText.quoted(problem));
        }
        log.info("event=reload_succeeded trigger={} generation={}", trigger, generation);
        return new ReloadOutcome(true, generation, null, List.of(), startOnly);
    }

    /** Whether the file was last written before {@code instant}; false when that cannot be told. */
    private static boolean writtenBefore(Path file, Instant instant) {
        try {
            return Files.getLastModifiedTime(file).toInstant().isBefore(instant);
        } catch (IOException e) {
            return false;
        }
    }

    private ReloadOutcome failure(ReloadFailureReason reason, List<String> problems) {
        return new ReloadOutcome(false, server.generation(), reason.label(), problems);
    }

    private Set<Path> files(ProxyConfig config) {
        return files(configFile, config);
    }

    /** The config file and every file it references. */
    private static Set<Path> files(Path configFile, ProxyConfig config) {
        Set<Path> files = new LinkedHashSet<>();
        files.add(configFile);
        for (ListenerConfig l : config.listeners()) {
            if (l.tls() != null) { // absent only in a config that failed validation
                files.add(l.tls().certificate());
                files.add(l.tls().privateKey());
            }
        }
        for (TrustAnchorConfig anchor : config.trustAnchors().values()) {
            files.add(anchor.caBundle());
            files.addAll(anchor.crls());
        }
        // A backend's client certificate rotated in place must reach the connections before the old one expires.
        for (BackendConfig backend : config.backends().values()) {
            if (backend.tls() != null) {
                files.addAll(backend.tls().serverCAs());
                files.add(backend.tls().certificate());
                files.add(backend.tls().privateKey());
            }
        }
        files.removeIf(Objects::isNull);
        return files;
    }

    private void registerDirectories(ProxyConfig config) {
        registerFiles(files(config));
    }

    /** Watches the directories of {@code files}: on the worker. */
    private void registerFiles(Set<Path> files) {
        Set<String> names = new HashSet<>(watchedNames);
        for (Path file : files) {
            names.addAll(namesToWatch(file));
        }
        watchedNames = Set.copyOf(names);
        for (Path file : files) {
            List<Path> dirs = new ArrayList<>();
            dirs.add(file.toAbsolutePath().getParent());
            try {
                // A symlinked file (ConfigMap/Secret mounts: file -> ..data/file) changes where its target lives.
                dirs.add(file.toRealPath().getParent());
            } catch (IOException e) {
                // missing right now; its directory is still watched
            }
            for (Path dir : dirs) {
                if (dir != null && watchedDirectories.add(dir)) {
                    try {
                        dir.register(watchService, StandardWatchEventKinds.ENTRY_CREATE,
                                StandardWatchEventKinds.ENTRY_MODIFY, StandardWatchEventKinds.ENTRY_DELETE);
                    } catch (IOException e) {
                        watchedDirectories.remove(dir);
                        log.warn("event=config_watch_unavailable directory={} cause={}", dir, e.toString());
                    } catch (ClosedWatchServiceException e) {
                        // The watch ended and waits for its restart, which registers every directory again; or the
                        // proxy is closing. Either way this reload goes on: SIGHUP and the admin endpoint still work.
                        watchedDirectories.remove(dir);
                    }
                }
            }
        }
    }

    /**
     * The names whose events in a watched directory can change what {@code file} reads: its own, and along its
     * symlink chain each link's name and the first name of a relative target. For a Kubernetes volume
     * ({@code proxy.yaml -> ..data/proxy.yaml}) that is {@code proxy.yaml} and {@code ..data}, the link kubelet swaps.
     */
    private static Set<String> namesToWatch(Path file) {
        Set<String> names = new HashSet<>();
        Path p = file.toAbsolutePath().normalize();
        for (int hop = 0; hop < MAX_SYMLINK_HOPS && p.getFileName() != null; hop++) {
            names.add(p.getFileName().toString());
            if (!Files.isSymbolicLink(p)) {
                break;
            }
            Path target;
            try {
                target = Files.readSymbolicLink(p);
            } catch (IOException e) {
                break;
            }
            if (!target.isAbsolute() && target.getNameCount() > 0) {
                names.add(target.getName(0).toString());
            }
            p = p.resolveSibling(target);
        }
        try {
            names.add(file.toRealPath().getFileName().toString());
        } catch (IOException e) {
            // missing right now: its own name is enough to see it appear
        }
        return names;
    }

    /** SHA-256 of each file's content as it reads now (following symlinks); "missing" when it cannot be read. */
    private static Map<Path, String> hashes(Set<Path> files) {
        Map<Path, String> hashes = new LinkedHashMap<>();
        for (Path file : files) {
            try {
                hashes.put(file, HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
                        .digest(Files.readAllBytes(file))));
            } catch (IOException e) {
                hashes.put(file, MISSING);
            } catch (NoSuchAlgorithmException e) {
                throw new IllegalStateException("the JDK always has SHA-256", e);
            }
        }
        return hashes;
    }

    @Override
    public void close() {
        closed = true;
        Thread thread = watcher;
        if (thread != null) {
            thread.interrupt();
        }
        WatchService service = watchService;
        if (service != null) {
            closeQuietly(service);
        }
        worker.shutdownNow();
        synchronized (this) {
            // Dropped by shutdownNow before it started: its askers are answered rather than left waiting.
            if (queued != null) {
                queued.complete(shuttingDown());
                queued = null;
            }
        }
    }
}
