package dev.mtlsproxy.core.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.mtlsproxy.config.ProxyConfig;
import dev.mtlsproxy.config.TrustAnchorConfig;
import dev.mtlsproxy.core.identity.IdentityHandler;
import dev.mtlsproxy.core.testing.LogCapture;
import dev.mtlsproxy.core.testing.MtlsClient;
import dev.mtlsproxy.core.testing.ProxyFixture;
import dev.mtlsproxy.core.testing.RunningProxy;
import dev.mtlsproxy.core.testing.TestPki;
import io.netty.pkitesting.X509Bundle;
import java.math.BigInteger;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import org.bouncycastle.asn1.x509.CRLNumber;
import org.bouncycastle.asn1.x509.DistributionPointName;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.IssuingDistributionPoint;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * CRLs that must not speak for a client's certificate, over real handshakes: a delta CRL (refused at load, so the
 * reload fails and the complete CRL keeps applying), another shard's CRL, and one issued in the future. Each of them
 * is the issuer's newest CRL and says nothing of the client, which is what used to let a revoked client in.
 */
class CrlCoverageTest {

    static final String ORDERS = "spiffe://prod.test/ns/shop/sa/orders";
    static final String SHARD_1 = "http://crl.test/shard-1.crl";
    static final String SHARD_2 = "http://crl.test/shard-2.crl";

    @RegisterExtension
    static final LogCapture handshakes = LogCapture.of(IdentityHandler.class);

    @RegisterExtension
    final ProxyFixture fixture = new ProxyFixture((pki, backend) -> RunningProxy.builder(pki)
            .identity("orders", ORDERS)
            .backend("shop", backend.url())
            .route("orders-api", "/orders", "shop", "orders"));

    private ProxyConfig withCrls(ProxyConfig config, Path... files) {
        return config.withTrustAnchors(Map.of(TestPki.ANCHOR, new TrustAnchorConfig(fixture.pki().caPem(),
                List.of(files), null, null)));
    }

    private Path crl(String name, Duration age, TestPki.CrlContent content, X509Bundle... revoked) {
        Instant now = Instant.now();
        return fixture.pki().write(name, TestPki.crl(fixture.pki().root(), now.minus(age),
                now.plus(Duration.ofHours(1)), content, java.util.Arrays.stream(revoked)
                        .map(X509Bundle::getCertificate).toArray(java.security.cert.X509Certificate[]::new)));
    }

    private static TestPki.CrlContent shard(String distributionPoint) {
        return b -> b.addExtension(Extension.issuingDistributionPoint, true, new IssuingDistributionPoint(
                new DistributionPointName(new GeneralNames(new GeneralName(GeneralName.uniformResourceIdentifier,
                        distributionPoint))), false, false, null, false, false));
    }

    private Throwable refusalOf(X509Bundle client) {
        return catchThrowable(() -> {
            try (MtlsClient c = fixture.connect(client)) {
                c.get("/orders");
            }
        });
    }

    private int statusOf(X509Bundle client) throws Exception {
        try (MtlsClient c = fixture.connect(client)) {
            return c.get("/orders").status();
        }
    }

    @Test
    void aDeltaCrlFailsTheReloadAndTheCompleteCrlKeepsTheClientRevoked() throws Exception {
        X509Bundle revoked = fixture.pki().client(ORDERS);
        Path base = crl("base.crl", Duration.ofMinutes(30), b -> { }, revoked);
        fixture.proxy().reload(c -> withCrls(c, base));
        assertThat(refusalOf(revoked)).isNotNull();

        // Newer than the base and silent about the client, as a delta is about what did not change
        Path delta = crl("delta.crl", Duration.ofMinutes(5), b -> b.addExtension(Extension.deltaCRLIndicator, true,
                new CRLNumber(BigInteger.ONE)));
        Throwable reload = catchThrowable(() -> fixture.proxy().reload(c -> withCrls(c, base, delta)));

        assertThat(reload).isInstanceOf(ReloadException.class).hasMessageContaining("delta CRL");
        assertThat(refusalOf(revoked)).as("the last good configuration still applies").isNotNull();
        assertThat(fixture.proxy().count("mtls.proxy.tls.handshakes", "reason", "revoked")).isEqualTo(2);
    }

    @Test
    void aClientIsJudgedByItsOwnShardsCrlHoweverNewerAnotherShardsIs() throws Exception {
        X509Bundle revokedInShard1 = fixture.pki().client(ORDERS,
                b -> b.addCrlDistributionPoint(URI.create(SHARD_1)));
        X509Bundle goodInShard2 = fixture.pki().client(ORDERS, b -> b.addCrlDistributionPoint(URI.create(SHARD_2)));
        X509Bundle noDistributionPoint = fixture.pki().client(ORDERS);
        Path shard1 = crl("shard-1.crl", Duration.ofMinutes(30), shard(SHARD_1), revokedInShard1);
        Path shard2 = crl("shard-2.crl", Duration.ofMinutes(5), shard(SHARD_2));
        fixture.proxy().reload(c -> withCrls(c, shard1, shard2));

        assertThat(refusalOf(revokedInShard1)).isNotNull();
        assertThat(statusOf(goodInShard2)).isEqualTo(200);
        assertThat(refusalOf(noDistributionPoint)).as("a shard's CRL covers only certificates that name it")
                .isNotNull();
        handshakes.await("\"reason\":\"revoked\"", "is revoked by the CRL of");
        handshakes.await("\"reason\":\"revoked\"", "for chain index 0 (a CRL for another distribution point)");
    }

    @Test
    void aCrlIssuedInTheFutureDoesNotCountAndTheLogSaysSo() throws Exception {
        X509Bundle revoked = fixture.pki().client(ORDERS);
        Instant now = Instant.now();
        Path current = crl("current.crl", Duration.ofMinutes(30), b -> { }, revoked);
        Path future = fixture.pki().write("future.crl", TestPki.crl(fixture.pki().root(),
                now.plus(Duration.ofMinutes(10)), now.plus(Duration.ofHours(2))));

        fixture.proxy().reload(c -> withCrls(c, current, future));
        assertThat(refusalOf(revoked)).as("the current CRL decides").isNotNull();

        fixture.proxy().reload(c -> withCrls(c, future));
        assertThat(refusalOf(fixture.pki().client(ORDERS))).isNotNull();
        handshakes.await("\"reason\":\"revoked\"", "(a CRL not yet valid, thisUpdate ");
    }
}
