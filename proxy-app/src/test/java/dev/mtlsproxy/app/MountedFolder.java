package dev.mtlsproxy.app;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Stream;

/**
 * A folder laid out as kubelet mounts a ConfigMap or Secret ({@code name -> ..data/name}, {@code ..data -> ..vN}),
 * written to in the three ways files change under a running proxy: rewritten in place through the link (an editor,
 * {@code cat >}), written to a temporary file renamed over the old one (a careful deploy tool), or a new version of
 * the whole folder swapped in by renaming a {@code ..data} link over the old one, whose folder then goes (kubelet).
 */
final class MountedFolder {

    private final Path mount;
    private final Map<String, String> files = new LinkedHashMap<>();
    private int version;

    private MountedFolder(Path mount) {
        this.mount = mount;
    }

    /** A new mount at {@code mount} holding {@code files} (name to content) in its first version. */
    static MountedFolder create(Path mount, Map<String, String> files) throws IOException {
        MountedFolder folder = new MountedFolder(Files.createDirectories(mount));
        folder.files.putAll(files);
        Path first = folder.writeVersion();
        Files.createSymbolicLink(mount.resolve("..data"), first.getFileName());
        for (String name : files.keySet()) {
            Files.createSymbolicLink(mount.resolve(name), Path.of("..data", name));
        }
        return folder;
    }

    /** The path a configuration names: the link in the mount. */
    Path file(String name) {
        return mount.resolve(name);
    }

    Path path() {
        return mount;
    }

    /** What {@code name} holds now. */
    String content(String name) {
        return files.get(name);
    }

    /** Every file and what it holds now. */
    Map<String, String> contents() {
        return Map.copyOf(files);
    }

    /** Truncates the file the link leads to and writes {@code content} into it: a reader may see it half done. */
    void writeInPlace(String name, String content) throws IOException {
        Files.writeString(file(name), content, StandardCharsets.UTF_8);
        files.put(name, content);
    }

    /** Appends to the file the link leads to, in place. */
    void appendInPlace(String name, String more) throws IOException {
        Files.writeString(file(name), more, StandardCharsets.UTF_8, StandardOpenOption.APPEND);
        files.put(name, files.get(name) + more);
    }

    /** Writes a temporary file next to the one the link leads to and renames it over that one. */
    void writeAndRename(String name, String content) throws IOException {
        Path target = file(name).toRealPath();
        Path tmp = Files.createTempFile(target.getParent(), "." + name, ".tmp");
        Files.writeString(tmp, content, StandardCharsets.UTF_8);
        Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        files.put(name, content);
    }

    /**
     * kubelet's update: a new version folder with every file ({@code changed} replacing theirs), a {@code ..data_tmp}
     * link to it renamed over {@code ..data} in one step, then the old version folder removed.
     */
    void swap(Map<String, String> changed) throws IOException {
        Path old = mount.resolve("..data").toRealPath();
        files.putAll(changed);
        Path next = writeVersion();
        Path link = Files.createSymbolicLink(mount.resolve("..data_tmp"), next.getFileName());
        Files.move(link, mount.resolve("..data"), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        try (Stream<Path> all = Files.walk(old)) {
            for (Path p : all.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }

    private Path writeVersion() throws IOException {
        Path dir = Files.createDirectory(mount.resolve("..v" + ++version));
        for (Map.Entry<String, String> f : files.entrySet()) {
            Files.writeString(dir.resolve(f.getKey()), f.getValue(), StandardCharsets.UTF_8);
        }
        return dir;
    }
}
