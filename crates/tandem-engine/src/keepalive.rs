//! OPTIONS keep-alives to trunk proxies (`options_interval_s`): one task
//! per trunk sends an OPTIONS every interval, waits for its transaction to
//! end and keeps `tandem_trunk_up{trunk}` at 1 while the proxy answers
//! (any final response: a 404 or 405 is an answer too) and 0 once one goes
//! unanswered (Timer F). A proxy name with several servers (RFC 3263) is
//! up while any answers: a ping that times out, fails to connect or gets
//! 503 goes at once to the next server, which the pings stay with. State
//! changes are logged. Calls are not refused while a trunk is down: the
//! INVITE's own timeout decides.

use std::sync::Arc;
use std::time::Duration;

use tandem_sip::builder::{IdGen, RequestBuilder};
use tandem_sip::message::{HeadersExt as _, Method};
use tracing::Instrument as _;

use crate::call::CallMsg;
use crate::config::Trunk;
use crate::engine::Ctx;

/// Starts the keep-alive task of a trunk that asks for one.
pub(crate) fn spawn(ctx: Arc<Ctx>, trunk: Trunk) -> Option<tokio::task::JoinHandle<()>> {
    let every = trunk.options_interval?;
    let span = tracing::info_span!("trunk", name = %trunk.name);
    Some(tokio::spawn(run(ctx, trunk, every).instrument(span)))
}

async fn run(ctx: Arc<Ctx>, trunk: Trunk, every: Duration) {
    let (scheme, host_port) = crate::registration::proxy_target(&trunk);
    let host_port = host_port.to_owned();
    let targets = crate::registration::trunk_targets(&ctx, &trunk).await;
    let Some(mut targets) = crate::registration::Targets::new(targets) else {
        tracing::warn!(proxy = %trunk.proxy, "cannot resolve the trunk's proxy: no OPTIONS keep-alives");
        return;
    };
    let transport = targets.current().transport;
    let Ok(uri) = tandem_sip::uri::parse(&format!("{scheme}:{host_port}")) else {
        tracing::warn!(proxy = %trunk.proxy, "the trunk's proxy is no SIP URI: no OPTIONS keep-alives");
        return;
    };
    let mut ids = IdGen::from_entropy();
    let call_id = ids.call_id();
    let tag = ids.tag();
    let (tx, mut rx) = crate::call::mailbox();
    ctx.calls.insert(call_id.clone(), tx);
    let mut up: Option<bool> = None;
    let mut seq = 0;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // The current target, then (RFC 3263 §4.3) the others of the name
        // in turn while none answers: the trunk is up if any does.
        let mut answered = None;
        for _ in 0..targets.len() {
            seq += 1;
            let ping = RequestBuilder::new(Method::Options, uri.clone())
                .via(transport.as_str(), ctx.cfg.host(transport), &ids.branch())
                .max_forwards(70)
                .from(format!("<sip:tandem@{}>;tag={tag}", ctx.cfg.sip_host))
                .to(format!("<sip:{host_port}>"))
                .call_id(call_id.clone())
                .cseq(seq)
                .build();
            if ctx.ep.send_request(ping, targets.current()).await.is_err() {
                ctx.calls.remove(&call_id);
                return;
            }
            // The transaction ends with a final response or Timer F.
            answered = loop {
                match rx.recv().await {
                    Some(CallMsg::Response { response, .. })
                        if response.status_code.code() >= 200
                            && response.headers.cseq().is_some_and(|(n, _)| n == seq) =>
                    {
                        break Some(response.status_code.code());
                    }
                    Some(CallMsg::Timeout { .. }) => break None,
                    Some(_) => {}
                    None => {
                        ctx.calls.remove(&call_id);
                        return;
                    }
                }
            };
            if answered.is_some_and(|code| code != 503)
                || !targets.fail_over(&ctx, &trunk, "keep-alive").await
            {
                break;
            }
        }
        let now_up = answered.is_some();
        if up != Some(now_up) {
            ctx.metrics.trunk_up(&trunk.name, now_up);
            match answered {
                Some(code) => tracing::info!(code, "trunk proxy answers OPTIONS: up"),
                None => tracing::warn!("trunk proxy did not answer OPTIONS: down"),
            }
            up = Some(now_up);
        }
    }
}
