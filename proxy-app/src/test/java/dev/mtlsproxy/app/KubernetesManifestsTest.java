package dev.mtlsproxy.app;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MappingIterator;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import dev.mtlsproxy.app.demo.DemoPki;
import dev.mtlsproxy.config.ConfigException;
import dev.mtlsproxy.config.ConfigLoader;
import dev.mtlsproxy.config.ProxyConfig;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.time.Clock;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * deploy/kubernetes/ against the proxy and the image: every file is valid YAML of Kubernetes objects; the embedded
 * configuration loads through the real {@link ConfigLoader}, with real certificates at exactly the paths where the
 * Deployment mounts the Secrets' keys; the ports the Deployment, the Service, the probes and the scrape annotations
 * name are the ones that configuration binds; and the pod runs as the Dockerfile's user, read-only, without
 * capabilities. So renaming a config key, moving a port or a mount breaks the build, not a rollout.
 */
class KubernetesManifestsTest {

    private static final Path KUBERNETES = Path.of("..", "deploy", "kubernetes");
    private static final Path DOCKERFILE = Path.of("..", "Dockerfile");
    private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());
    private static final String POD_LABEL = "app.kubernetes.io/name";

    private static List<JsonNode> objects;
    private static JsonNode deployment;
    private static JsonNode pod;
    private static JsonNode container;

    @BeforeAll
    static void parse() throws IOException {
        objects = new ArrayList<>();
        try (Stream<Path> files = Files.list(KUBERNETES)) {
            for (Path file : files.filter(f -> f.toString().endsWith(".yaml")).sorted().toList()) {
                try (MappingIterator<JsonNode> docs = YAML.readerFor(JsonNode.class).readValues(file.toFile())) {
                    for (JsonNode doc : docs.readAll()) {
                        if (!file.getFileName().toString().equals("kustomization.yaml")) {
                            assertThat(doc.path("apiVersion").asText()).as("%s: apiVersion", file).isNotEmpty();
                            assertThat(doc.path("kind").asText()).as("%s: kind", file).isNotEmpty();
                            assertThat(doc.at("/metadata/name").asText()).as("%s: metadata.name", file).isNotEmpty();
                        }
                        objects.add(doc);
                    }
                }
            }
        }
        deployment = only("Deployment", "mtls-proxy");
        pod = deployment.at("/spec/template/spec");
        assertThat(pod.path("containers")).hasSize(1);
        container = pod.path("containers").get(0);
    }

    @Test
    void kustomizationListsExistingFilesAndNoPlaceholderSecrets() throws IOException {
        JsonNode kustomization = YAML.readTree(KUBERNETES.resolve("kustomization.yaml").toFile());
        List<String> resources = new ArrayList<>();
        kustomization.path("resources").forEach(r -> resources.add(r.asText()));
        assertThat(resources).isNotEmpty().allSatisfy(r -> assertThat(KUBERNETES.resolve(r)).isRegularFile());
        // Applying placeholder Secrets would overwrite the ones cert-manager or SPIRE writes.
        assertThat(resources).doesNotContain("secrets.yaml");
    }

    @Test
    void embeddedConfigLoadsWithCertificatesWhereTheSecretsAreMounted(@TempDir Path root)
            throws IOException, GeneralSecurityException, ConfigException {
        DemoPki pki = DemoPki.ensure(root.resolve("pki"), Clock.systemUTC());
        Map<String, Path> material = Map.of(
                "tls.crt", pki.serverCertificate(),
                "tls.key", pki.serverKey(),
                "ca.crt", pki.caCertificate());
        // Lay out the pod's files under root: each ConfigMap and Secret key at its mount path, as the kubelet would.
        Map<String, JsonNode> volumes = volumesByName();
        for (JsonNode mount : container.path("volumeMounts")) {
            JsonNode volume = volumes.get(mount.path("name").asText());
            assertThat(volume).as("volume of mount %s", mount.path("name").asText()).isNotNull();
            Path dir = under(root, mount.path("mountPath").asText());
            Files.createDirectories(dir);
            if (volume.has("configMap")) {
                JsonNode configMap = only("ConfigMap", volume.at("/configMap/name").asText());
                for (var entry : configMap.path("data").properties()) {
                    Files.writeString(dir.resolve(entry.getKey()),
                            entry.getValue().asText().replace("/etc/mtls-proxy/", root + "/etc/mtls-proxy/"));
                }
            } else if (volume.has("secret")) {
                JsonNode secret = only("Secret", volume.at("/secret/secretName").asText());
                for (var entry : secret.path("stringData").properties()) {
                    assertThat(material).as("a certificate for Secret key %s", entry.getKey())
                            .containsKey(entry.getKey());
                    Files.copy(material.get(entry.getKey()), dir.resolve(entry.getKey()));
                }
            } else {
                assertThat(volume.has("emptyDir")).as("volume %s", volume).isTrue();
            }
        }

        List<String> args = texts(container.path("args"));
        assertThat(args).as("container args").startsWith("run", "--config").hasSize(3);
        ProxyConfig config = ConfigLoader.load(under(root, args.get(2)));

        assertThat(ConfigLoader.warnings(config, Instant.now())).isEmpty();
        assertThat(config.listeners()).hasSize(1);
        assertThat(config.listeners().get(0).address().host()).isEqualTo("0.0.0.0");
        assertThat(config.admin().address().host()).as("admin reachable by probes").isEqualTo("0.0.0.0");
        assertThat(containerPort("https")).isEqualTo(config.listeners().get(0).address().port());
        assertThat(containerPort("admin")).isEqualTo(config.admin().address().port());
    }

    @Test
    void readinessOutlastsOneSlowAnswerAndStillTurnsWithinThePreStopPause() {
        JsonNode readiness = container.at("/readinessProbe");
        int failureThreshold = readiness.path("failureThreshold").asInt(3); // Kubernetes' defaults
        int periodSeconds = readiness.path("periodSeconds").asInt(10);
        List<String> preStop = texts(container.at("/lifecycle/preStop/exec/command"));

        assertThat(failureThreshold).as("one slow /readyz must not take the pod out").isGreaterThanOrEqualTo(2);
        assertThat(preStop.get(0)).isEqualTo("sleep");
        assertThat(periodSeconds * failureThreshold).as("unready before the drain stops accepting")
                .isLessThanOrEqualTo(Integer.parseInt(preStop.get(1)));
    }

    @Test
    void probesServiceAndScrapingUseTheNamedPorts() {
        assertThat(container.at("/readinessProbe/httpGet/path").asText()).isEqualTo("/readyz");
        assertThat(container.at("/livenessProbe/httpGet/path").asText()).isEqualTo("/healthz");
        for (String probe : List.of("startupProbe", "readinessProbe", "livenessProbe")) {
            assertThat(container.at("/" + probe + "/httpGet/port").asText()).as(probe).isEqualTo("admin");
        }
        JsonNode annotations = deployment.at("/spec/template/metadata/annotations");
        assertThat(annotations.path("prometheus.io/scrape").asText()).isEqualTo("true");
        assertThat(annotations.path("prometheus.io/path").asText()).isEqualTo("/metrics");
        assertThat(annotations.path("prometheus.io/port").asInt()).isEqualTo(containerPort("admin"));
        assertThat(only("PodMonitor", "mtls-proxy").at("/spec/podMetricsEndpoints/0/port").asText())
                .isEqualTo("admin");

        JsonNode service = only("Service", "mtls-proxy");
        for (JsonNode port : service.at("/spec/ports")) {
            containerPort(port.path("targetPort").asText());
        }
        assertThat(texts(service.at("/spec/ports"), "targetPort")).containsExactly("https");

        assertThat(dockerfile("EXPOSE").split(" ")).containsExactlyInAnyOrder(
                String.valueOf(containerPort("https")), String.valueOf(containerPort("admin")));
    }

    @Test
    void selectorsMatchThePods() {
        JsonNode podLabels = deployment.at("/spec/template/metadata/labels");
        assertThat(podLabels.path(POD_LABEL).asText()).isEqualTo("mtls-proxy");
        for (JsonNode selector : List.of(deployment.at("/spec/selector/matchLabels"),
                only("PodDisruptionBudget", "mtls-proxy").at("/spec/selector/matchLabels"),
                only("PodMonitor", "mtls-proxy").at("/spec/selector/matchLabels"),
                only("NetworkPolicy", "mtls-proxy").at("/spec/podSelector/matchLabels"),
                only("Service", "mtls-proxy").at("/spec/selector"))) {
            assertThat(selector.isEmpty()).isFalse();
            selector.properties().forEach(e -> assertThat(podLabels.path(e.getKey())).isEqualTo(e.getValue()));
        }
    }

    @Test
    void theAdminPortIsOpenOnlyToPrometheusAndTheMtlsPortToEveryone() {
        JsonNode policy = only("NetworkPolicy", "mtls-proxy");
        assertThat(texts(policy.at("/spec/policyTypes"))).contains("Ingress");
        List<String> reachable = new ArrayList<>();
        for (JsonNode rule : policy.at("/spec/ingress")) {
            for (JsonNode port : rule.path("ports")) {
                String name = port.path("port").asText();
                containerPort(name);
                reachable.add(name);
                if (name.equals("admin")) {
                    assertThat(rule.path("from").isEmpty()).as("admin open to every source").isFalse();
                    rule.path("from").forEach(peer -> assertThat(peer.path("ipBlock").isMissingNode())
                            .as("admin opened to an address block").isTrue());
                } else {
                    assertThat(name).isEqualTo("https");
                }
            }
            assertThat(rule.path("ports").isEmpty()).as("a rule opening every port").isFalse();
        }
        assertThat(reachable).containsExactlyInAnyOrder("https", "admin");
    }

    @Test
    void scaledOutWithDisruptionBudgetAndGracefulStop() {
        assertThat(deployment.at("/spec/replicas").asInt()).isGreaterThanOrEqualTo(2);
        assertThat(only("PodDisruptionBudget", "mtls-proxy").at("/spec/minAvailable").asInt())
                .isPositive().isLessThan(deployment.at("/spec/replicas").asInt());
        assertThat(deployment.at("/spec/strategy/rollingUpdate/maxUnavailable").asInt()).isZero();
        List<String> preStop = texts(container.at("/lifecycle/preStop/exec/command"));
        assertThat(preStop).hasSize(2).first().isEqualTo("sleep");
        int preStopSeconds = Integer.parseInt(preStop.get(1));
        assertThat(preStopSeconds).isPositive();
        // After preStop, SIGTERM starts the proxy's own drain: the grace period must leave time for it.
        assertThat(pod.path("terminationGracePeriodSeconds").asInt()).isGreaterThan(preStopSeconds + 20);
        assertThat(dockerfile("STOPSIGNAL")).isEqualTo("SIGTERM");
    }

    @Test
    void hardenedAsTheImageExpects() {
        String[] user = dockerfile("USER").split(":");
        JsonNode podSecurity = pod.path("securityContext");
        assertThat(podSecurity.path("runAsNonRoot").asBoolean()).isTrue();
        assertThat(podSecurity.path("runAsUser").asText()).isEqualTo(user[0]);
        assertThat(podSecurity.path("runAsGroup").asText()).isEqualTo(user[1]);
        assertThat(podSecurity.path("fsGroup").asText()).as("Secret files readable by the image's group")
                .isEqualTo(user[1]);
        assertThat(podSecurity.at("/seccompProfile/type").asText()).isEqualTo("RuntimeDefault");
        assertThat(pod.path("automountServiceAccountToken").asBoolean(true)).isFalse();

        JsonNode security = container.path("securityContext");
        assertThat(security.path("readOnlyRootFilesystem").asBoolean()).isTrue();
        assertThat(security.path("allowPrivilegeEscalation").asBoolean(true)).isFalse();
        assertThat(texts(security.at("/capabilities/drop"))).containsExactly("ALL");

        for (String kind : List.of("requests", "limits")) {
            assertThat(container.at("/resources/" + kind + "/cpu").asText()).as(kind).isNotEmpty();
            assertThat(container.at("/resources/" + kind + "/memory").asText()).as(kind).isNotEmpty();
        }
        // The one writable place, where the image declares it: /tmp.
        Set<String> writable = new HashSet<>();
        Map<String, JsonNode> volumes = volumesByName();
        for (JsonNode mount : container.path("volumeMounts")) {
            if (volumes.get(mount.path("name").asText()).has("emptyDir")) {
                writable.add(mount.path("mountPath").asText());
            } else {
                assertThat(mount.path("readOnly").asBoolean()).as("mount %s read-only", mount).isTrue();
            }
        }
        assertThat(writable).containsExactly("/tmp");
        assertThat(dockerfile("VOLUME")).contains("\"/tmp\"");
    }

    @Test
    void certManagerWritesTheMountedSecretInTheFormatTheProxyReads() {
        JsonNode certificate = only("Certificate", "mtls-proxy").path("spec");
        assertThat(certificate.path("secretName").asText()).isEqualTo(volumesByName().get("tls").at("/secret/secretName")
                .asText());
        assertThat(certificate.at("/privateKey/encoding").asText()).isEqualTo("PKCS8");
        assertThat(only("Secret", "mtls-proxy-tls").path("type").asText()).isEqualTo("kubernetes.io/tls");
    }

    private static Map<String, JsonNode> volumesByName() {
        Map<String, JsonNode> volumes = new HashMap<>();
        pod.path("volumes").forEach(v -> volumes.put(v.path("name").asText(), v));
        return volumes;
    }

    private static int containerPort(String name) {
        for (JsonNode port : container.path("ports")) {
            if (port.path("name").asText().equals(name)) {
                return port.path("containerPort").asInt();
            }
        }
        throw new AssertionError("no container port named " + name + " in " + container.path("ports"));
    }

    private static JsonNode only(String kind, String name) {
        List<JsonNode> found = objects.stream()
                .filter(o -> o.path("kind").asText().equals(kind) && o.at("/metadata/name").asText().equals(name))
                .toList();
        assertThat(found).as("%s %s in deploy/kubernetes", kind, name).hasSize(1);
        return found.get(0);
    }

    private static List<String> texts(JsonNode array) {
        List<String> texts = new ArrayList<>();
        array.forEach(n -> texts.add(n.asText()));
        return texts;
    }

    private static List<String> texts(JsonNode array, String field) {
        List<String> texts = new ArrayList<>();
        array.forEach(n -> texts.add(n.path(field).asText()));
        return texts;
    }

    /** An absolute path in the pod, under the test's root folder. */
    private static Path under(Path root, String absolute) {
        assertThat(absolute).startsWith("/");
        return root.resolve(absolute.substring(1));
    }

    /** The argument of the Dockerfile instruction, which must appear once. */
    private static String dockerfile(String instruction) {
        try {
            Matcher m = Pattern.compile("(?m)^" + instruction + " (.+)$").matcher(Files.readString(DOCKERFILE));
            assertThat(m.find()).as("%s in the Dockerfile", instruction).isTrue();
            String value = m.group(1).trim();
            assertThat(m.find()).as("a single %s in the Dockerfile", instruction).isFalse();
            return value;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
