package dev.mtlsproxy.core.proxy;

import dev.mtlsproxy.core.identity.PeerChain;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.ssl.SslHandshakeCompletionEvent;
import io.netty.util.ReferenceCountUtil;
import java.security.cert.X509Certificate;
import java.util.function.Supplier;

/**
 * Re-judges a connection whose handshake completes under a newer generation than the one it was accepted with.
 *
 * <p>A reload re-verifies the open connections whose chain is known; one still in its handshake was being verified
 * by the old context's CAs and CRLs, and a client could stall its handshake across a CRL update to keep a revoked
 * certificate usable. Waiting on the handshake future from the reload does not close that: SslHandler completes the
 * future before it fires the completion event, so the chain is not known yet when the future's listeners run. This
 * handler sits right after the identity handler and sees the event with the chain set. A reload that swaps the
 * generation after this check reads it finds the chain set and re-verifies the connection itself.
 *
 * <p>The client's first request often arrives in the same read as its Finished: after a rejection, nothing more
 * reaches the HTTP codec.
 */
final class HandshakeGenerationCheck extends ChannelInboundHandlerAdapter {

    private final String listener;
    private final ListenerGeneration acceptedWith;
    private final Supplier<ListenerGeneration> current;
    private boolean rejected;

    HandshakeGenerationCheck(String listener, ListenerGeneration acceptedWith, Supplier<ListenerGeneration> current) {
        this.listener = listener;
        this.acceptedWith = acceptedWith;
        this.current = current;
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
        if (evt instanceof SslHandshakeCompletionEvent completion && completion.isSuccess()) {
            X509Certificate[] chain = ctx.channel().attr(PeerChain.KEY).get();
            ListenerGeneration now = current.get();
            if (chain != null && now != acceptedWith
                    && !Reverification.passes(listener, ctx.channel(), chain, now)) {
                rejected = true;
                ctx.close();
                return;
            }
            ctx.pipeline().remove(this);
        }
        ctx.fireUserEventTriggered(evt);
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (rejected) {
            ReferenceCountUtil.release(msg);
            return;
        }
        ctx.fireChannelRead(msg);
    }
}
