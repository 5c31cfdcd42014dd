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

/// Every target RFC 3263 gives for a trunk's proxy (NAPTR, SRV, A/AAAA; the
/// transport from there or the URI) on the transport of the first (the
/// Contact a REGISTER carries names one transport), best first; over TLS
/// each is verified by the URI's host name.
pub(crate) async fn trunk_targets(ctx: &Ctx, trunk: &Trunk) -> Vec<Peer> {
    let Some(name) = crate::dns::Name::from_uri(&trunk.proxy) else {
        return Vec::new();
    };
    let all = ctx.dns.resolve(&name).await;
    let Some(first) = all.first().copied() else {
        return Vec::new();
    };
    let targets: Vec<Peer> = all
        .into_iter()
        .filter(|p| p.transport == first.transport)
        .collect();
    if first.transport == tandem_transport::Transport::Tls && name.literal().is_none() {
        for p in &targets {
            ctx.ep.set_tls_name(p.addr, &name.host);
        }
    }
    targets
}

/// The servers of a trunk's proxy name a registration or keep-alive goes
/// to: the current one, and the others to fail over to (RFC 3263 §4.3)
/// when a request to it times out, its connection fails or it answers 503.
pub(crate) struct Targets {
    all: Vec<Peer>,
    at: usize,
}

impl Targets {
    /// `all` as [`trunk_targets`] gives them; `None` when there are none.
    pub(crate) fn new(all: Vec<Peer>) -> Option<Self> {
        (!all.is_empty()).then_some(Self { all, at: 0 })
    }

    pub(crate) fn current(&self) -> Peer {
        self.all[self.at]
    }

    pub(crate) fn len(&self) -> usize {
        self.all.len()
    }

    /// After the current server failed: moves to the next and says so
    /// (logged, `what` naming the request), or, once every one was tried,
    /// starts over at the first of a fresh lookup (same transport) and
    /// returns `false`.
    pub(crate) async fn fail_over(&mut self, ctx: &Ctx, trunk: &Trunk, what: &str) -> bool {
        let from = self.current();
        if self.at + 1 < self.all.len() {
            self.at += 1;
            tracing::info!(trunk = %trunk.name, from = %from.addr, to = %self.current().addr,
                "{what} fails over to the next target");
            return true;
        }
        self.at = 0;
        let fresh: Vec<Peer> = trunk_targets(ctx, trunk)
            .await
            .into_iter()
            .filter(|p| p.transport == from.transport)
            .collect();
        if !fresh.is_empty() {
            self.all = fresh;
        }
        false
    }
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
    let Some(mut targets) = Targets::new(trunk_targets(&ctx, &trunk).await) else {
        tracing::warn!(trunk = %trunk.name, proxy = %trunk.proxy, "cannot resolve the trunk's proxy: not registering");
        return;
    };
    let transport = targets.current().transport;
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
            if ctx.ep.send_request(req, targets.current()).await.is_err() {
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
                Some(CallMsg::Response { response, .. }) => {
                    reg.on_response(now(), &response);
                    if response.status_code.code() == 503
                        && targets.fail_over(&ctx, &trunk, "registration").await
                    {
                        reg.retry_now(now());
                    }
                }
                Some(CallMsg::Timeout { .. }) => {
                    reg.on_timeout(now());
                    if targets.fail_over(&ctx, &trunk, "registration").await {
                        reg.retry_now(now());
                    }
                }
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
