package dev.mtlsproxy.bench;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ReportTest {

    @TempDir
    Path dir;

    @Test
    void allThreeServersGiveTheTableTheyAlwaysGave() throws IOException {
        String report = render(keepalive("ours", 9000, 40), keepalive("nginx", 10000, 50),
                keepalive("haproxy", 12000, 80));

        assertTrue(report.contains("| metric | ours | nginx | HAProxy | ours ÷ nginx | ours ÷ HAProxy | better |\n"
                + "|---|---:|---:|---:|---:|---:|---|\n"), report);
        assertTrue(report.contains("| keep-alive: requests/s | 9000 | 10000 | 12000 | 0.90 | 0.75 | higher |\n"), report);
        assertTrue(report.contains("| connection errors, all rounds (must be 0) | 0 | 0 | 0 | | | |\n"), report);
        assertFalse(report.contains("ours-base"), report);
    }

    @Test
    void theBaselineBuildGetsItsOwnColumnAndRatioNextToOurs() throws IOException {
        String report = render(keepalive("nginx", 10000, 50), keepalive("ours-base", 8000, 50),
                keepalive("ours", 9000, 40), keepalive("haproxy", 12000, 80));

        assertTrue(report.contains("| metric | ours | ours-base | nginx | HAProxy | ours ÷ ours-base | ours ÷ nginx "
                + "| ours ÷ HAProxy | better |\n|---|---:|---:|---:|---:|---:|---:|---:|---|\n"), report);
        assertTrue(report.contains(
                "| keep-alive: requests/s | 9000 | 8000 | 10000 | 12000 | 1.13 | 0.90 | 0.75 | higher |\n"), report);
        assertTrue(report.contains(
                "| keep-alive: proxy CPU per request (µs) | 40.0 | 50.0 | 50.0 | 80.0 | 0.80 | 0.80 | 0.50 | lower |\n"),
                report);
        assertTrue(report.contains("| connection errors, all rounds (must be 0) | 0 | 0 | 0 | 0 | | | | |\n"), report);
    }

    @Test
    void anAbRunWithoutTheOtherServersHasNoEmptyColumnsForThem() throws IOException {
        String report = render(keepalive("ours", 9000, 40), keepalive("ours-base", 8000, 50));

        assertTrue(report.contains("| metric | ours | ours-base | ours ÷ ours-base | better |\n"), report);
        assertTrue(report.contains("| keep-alive: proxy CPU per request (µs) | 40.0 | 50.0 | 0.80 | lower |\n"), report);
        assertFalse(report.contains("HAProxy |"), report);
    }

    /** Three rounds with the given median, the other two on either side of it. */
    private static List<String> keepalive(String target, int rate, int cpuUsPerOp) {
        List<String> lines = new ArrayList<>();
        int[] offsets = {0, -100, 100};
        for (int round = 1; round <= 3; round++) {
            lines.add("result scenario=keepalive target=" + target + " round=" + round + " rate="
                    + (rate + offsets[round - 1]) + " cpu_us_per_op=" + (cpuUsPerOp + offsets[round - 1] / 100)
                    + " non200=0 errors=0");
        }
        return lines;
    }

    @SafeVarargs
    private String render(List<String>... targets) throws IOException {
        List<String> lines = new ArrayList<>(List.of("info date 2026-11-29T00:00:00Z"));
        for (List<String> target : targets) {
            lines.addAll(target);
        }
        Path file = dir.resolve("results.txt");
        Files.write(file, lines);
        return Report.render(file);
    }
}
