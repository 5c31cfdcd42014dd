//! Keeps every `register = true` trunk registered (RFC 3261 §10.2, design
//! §1): one task per trunk drives tandem-sip's sans-IO [`Registration`],
//! sends its REGISTERs through the endpoint and receives their responses by
//! Call-ID through the same routing table as calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem_sip::builder::IdGen;
use tandem_sip::registration::{Registration, RegistrationConfig, State};
use tandem_transport::Peer;
use tracing::Instrument as _;

use crate::call::CallMsg;
use crate::config::Trunk;
use crate::engine::Ctx;

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Starts the registration task of a trunk that asks for it.
pub(crate) fn spawn(ctx: Arc<Ctx>, trunk: Trunk) -> Option<tokio::task::JoinHandle<()>> {
    let expires = trunk.register?;
    let span = tracing::info_span!("trunk", name = %trunk.name);
    Some(tokio::spawn(run(ctx, trunk, expires).instrument(span)))
}

/// The scheme (`sip` or `sips`) and the `host[:port]` of a trunk's proxy URI.
pub(crate) fn proxy_target(trunk: &Trunk) -> (&str, &str) {
    let (scheme, host) = trunk
        .proxy
        .split_once(':')
        .unwrap_or(("sip", trunk.proxy.as_str()));
    (scheme, host.split(';').next().unwrap_or(host))
}

/// Where a trunk's proxy is: the first target RFC 3263 gives for its URI
/// (NAPTR, SRV, A/AAAA; the transport from there or the URI), verified by
/// the URI's host name over TLS from now on.
pub(crate) async fn trunk_peer(ctx: &Ctx, trunk: &Trunk) -> Option<Peer> {
    let name = crate::dns::Name::from_uri(&trunk.proxy)?;
    let peer = *ctx.dns.resolve(&name).await.first()?;
    if peer.transport == tandem_transport::Transport::Tls && name.literal().is_none() {
        ctx.ep.set_tls_name(peer.addr, &name.host);
    }
    Some(peer)
}

async fn run(ctx: Arc<Ctx>, trunk: Trunk, expires: Duration) {
    let (scheme, host_port) = proxy_target(&trunk);
    let (user, password) = match (&trunk.username, &trunk.password) {
        (Some(u), Some(p)) => (u.clone(), p.clone()),
        _ => {
            tracing::warn!(trunk = %trunk.name, "register = true needs username and password: not registering");
            return;
        }
    };
    let Some(peer) = trunk_peer(&ctx, &trunk).await else {
        tracing::warn!(trunk = %trunk.name, proxy = %trunk.proxy, "cannot resolve the trunk's proxy: not registering");
        return;
    };
    let transport = peer.transport;
    let registrar = format!("{scheme}:{host_port}");
    let aor = format!("{scheme}:{user}@{host_port}");
    // Over TCP or TLS the binding says so: the registrar reaches Tandem
    // the way it registered (RFC 3261 §19.1.4 transport parameter).
    let host = ctx.cfg.host(transport);
    let contact = match transport.uri_param() {
        Some(t) => format!("sip:{user}@{host};transport={t}"),
        None => format!("sip:{user}@{host}"),
    };
    let mut cfg = RegistrationConfig::new(registrar, aor, contact);
    cfg.username = user;
    cfg.password = password;
    cfg.expires = u32::try_from(expires.as_secs()).unwrap_or(u32::MAX);
    cfg.transport = transport;
    cfg.sent_by = host.to_owned();
    let mut reg = match Registration::new(now(), cfg, IdGen::from_entropy()) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(trunk = %trunk.name, error = %e, "registration not started");
            return;
        }
    };
    let (tx, mut rx) = crate::call::mailbox();
    let call_id = reg.call_id().to_owned();
    ctx.calls.insert(call_id.clone(), tx);
    let mut last = String::new();
    loop {
        while let Some(req) = reg.poll_request(now()) {
            if ctx.ep.send_request(req, peer).await.is_err() {
                ctx.calls.remove(&call_id);
                return;
            }
        }
        let state = format!("{:?}", reg.state());
        if state != last {
            ctx.metrics
                .trunk_registered(&trunk.name, matches!(reg.state(), State::Registered { .. }));
            match reg.state() {
                State::Registered { .. } => tracing::info!(trunk = %trunk.name, "registered"),
                State::Failed { error, .. } => {
                    tracing::warn!(trunk = %trunk.name, %error, "registration failed; retrying")
                }
                _ => tracing::debug!(trunk = %trunk.name, %state, "registration"),
            }
            last = state;
        }
        let deadline = reg.poll_timeout();
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(CallMsg::Response { response, .. }) => reg.on_response(now(), &response),
                Some(CallMsg::Timeout { .. }) => reg.on_timeout(now()),
                Some(_) => {}
                None => break,
            },
            () = sleep_until(deadline), if deadline.is_some() => {}
        }
    }
    ctx.calls.remove(&call_id);
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}
