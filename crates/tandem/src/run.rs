//! What the binary runs once its config is valid: the SIP endpoint and the
//! engine on top of it, until SIGINT or SIGTERM.

use std::net::IpAddr;

use anyhow::Context as _;
use tandem_engine::{Engine, EngineConfig, MediaConfig, NumberRoute, Trunk, TwimlSource};
use tandem_transport::{Endpoint, EndpointConfig, TimerConfig};
use tracing::{info, warn};

use crate::config::{Config, NumberHandler};

/// Starts everything `config` describes and runs until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let mut shutdown = Shutdown::install()?;
    for key in config.weak_secrets() {
        warn!(%key, "weak secret (the example's change-me, or under 12 characters): set a long random one before exposing Tandem");
    }
    // Validation built both configurations once already: these cannot fail
    // but for a file changed in between.
    let tls_server = match &config.sip.tls_identity {
        Some(id) => Some(
            tandem_transport::tls::server_config(&id.certificate.text, &id.private_key.text)
                .context("sip.tls_certificate")?,
        ),
        None => None,
    };
    let tls_client =
        tandem_transport::tls::client_config(config.sip.tls_ca.as_ref().map(|p| &p.text[..]))
            .context("sip.tls_ca")?;
    let mut endpoint = Endpoint::start(EndpointConfig {
        udp: config.sip.udp.clone(),
        tcp: config.sip.tcp.clone(),
        tls: config.sip.tls.clone(),
        tls_server,
        tls_client: Some(tls_client),
        timers: TimerConfig {
            t1: config.sip.t1,
            t2: config.sip.t2,
            t4: config.sip.t4,
        },
        tcp_max_connections: config.sip.tcp_max_connections,
        tcp_max_per_source: config.sip.tcp_max_per_source,
        tcp_header_timeout: config.sip.tcp_header_timeout,
        tcp_write_timeout: config.sip.tcp_write_timeout,
        ..Default::default()
    })
    .await
    .context("starting the SIP endpoint")?;
    let locals = endpoint.handle.locals().clone();
    info!(udp = ?locals.udp, tcp = ?locals.tcp, tls = ?locals.tls, "SIP endpoint listening");
    let listen = locals
        .udp
        .first()
        .or(locals.tcp.first())
        .or(locals.tls.first())
        .copied()
        .context("no SIP listen address")?;
    let mut engine_cfg = engine_config(&config, listen.ip(), listen.port());
    if let Some(tls) = locals.tls.first() {
        // The TLS listener's port on the host peers reach Tandem at.
        let host = engine_cfg.host(tandem_transport::Transport::Udp);
        let ip = host.rsplit_once(':').map_or(host, |(ip, _)| ip);
        engine_cfg.tls_host = Some(format!("{ip}:{}", tls.port()));
    }
    if let Some(p) = engine_cfg.session_timers
        && p.min_se < 90
    {
        warn!(
            min_se_s = p.min_se,
            "sip.min_se_s below RFC 4028's 90 s: for tests, not for peers on a network"
        );
    }
    if let Err(e) = std::fs::create_dir_all(&engine_cfg.recording_dir) {
        warn!(dir = %engine_cfg.recording_dir.display(), error = %e, "cannot create the recording directory");
    }
    if let Some(dir) = &engine_cfg.call_log_dir
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        warn!(dir = %dir.display(), error = %e, "cannot create the call log directory");
    }
    let engine = Engine::new(engine_cfg, endpoint.handle.clone()).context("starting the engine")?;
    let http = engine
        .serve_http(config.http.listen)
        .await
        .with_context(|| format!("starting the HTTP listener on {}", config.http.listen))?;
    info!(addr = %http.local_addr(), "HTTP listening");
    // The dispatcher runs as a task on the runtime's workers, not as this
    // thread's `block_on`: a shard handing it an event then wakes a task
    // (no system call while a worker is busy) instead of this parked
    // thread through a futex, once per new call (docs/benchmarks.md §3(u)).
    let mut events = std::mem::replace(&mut endpoint.events, tokio::sync::mpsc::channel(1).1);
    let mut dispatcher = tokio::spawn(async move { engine.run(&mut events).await });
    let failed = tokio::select! {
        signal = shutdown.wait() => {
            info!(signal, "shutting down");
            None
        }
        ended = &mut dispatcher => match ended {
            Ok(()) => {
                warn!("SIP endpoint stopped");
                None
            }
            // A panic in the dispatcher ends the process as a failure, as
            // it did when the dispatcher ran on this thread.
            Err(e) => Some(e),
        },
    };
    dispatcher.abort();
    endpoint.shutdown();
    http.shutdown().await;
    if let Some(e) = failed {
        return Err(anyhow::anyhow!("the call dispatcher failed: {e}"));
    }
    info!("stopped");
    Ok(())
}

/// Splits the validated config into the engine's plain settings.
/// Replays a call log (`--replay`) with this config: the call's outputs, a
/// line each, `+seconds.micros what`.
pub fn replay(config: &Config, log: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let listen = config
        .sip
        .udp
        .first()
        .or(config.sip.tcp.first())
        .copied()
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 5060)));
    let cfg = std::sync::Arc::new(engine_config(config, listen.ip(), listen.port()));
    let out = tandem_engine::replay(&text, cfg).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut s = String::new();
    for (at, what) in out {
        s.push_str(&format!(
            "+{}.{:06} {what}\n",
            at.as_secs(),
            at.subsec_micros()
        ));
    }
    Ok(s)
}

fn engine_config(config: &Config, listen_ip: IpAddr, sip_port: u16) -> EngineConfig {
    let host_ip = config
        .sip
        .external_address
        .unwrap_or(if listen_ip.is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            listen_ip
        });
    let sip_host = match host_ip {
        IpAddr::V6(v6) => format!("[{v6}]:{sip_port}"),
        IpAddr::V4(v4) => format!("{v4}:{sip_port}"),
    };
    let rtp = &config.rtp;
    let sdp_address = config
        .sip
        .external_address
        .unwrap_or(if rtp.address.is_unspecified() {
            host_ip
        } else {
            rtp.address
        });
    EngineConfig {
        account_sid: config.account.sid.clone(),
        auth_token: config.account.auth_token.expose().to_owned(),
        sip_host,
        tls_host: None,
        dns_servers: config.sip.dns_servers.clone(),
        digest_algorithms: config.sip.digest_algorithms.clone(),
        public_url: config.http.public_url.to_string(),
        trunks: config
            .trunks
            .iter()
            .map(|t| Trunk {
                name: t.name.clone(),
                proxy: t.proxy.uri.clone(),
                username: t.credentials.as_ref().map(|c| c.username.clone()),
                password: t
                    .credentials
                    .as_ref()
                    .map(|c| c.password.expose().to_owned()),
                prefixes: t.prefixes.clone(),
                sources: t
                    .sources
                    .iter()
                    .map(|c| (c.network(), c.prefix()))
                    .collect(),
                register: t.register.then_some(t.register_expires),
                options_interval: t.options_interval,
            })
            .collect(),
        numbers: config
            .numbers
            .iter()
            .map(|n| NumberRoute {
                number: n.number.clone(),
                source: match &n.handler {
                    NumberHandler::Twiml(path) => TwimlSource::File(path.clone()),
                    NumberHandler::Webhook(w) => TwimlSource::Url {
                        url: w.voice_url.to_string(),
                        method: w.voice_method,
                        fallback: w
                            .fallback_url
                            .as_ref()
                            .map(|u| (u.to_string(), w.fallback_method)),
                    },
                },
            })
            .collect(),
        clients: config
            .clients
            .iter()
            .map(|c| tandem_engine::Client {
                identity: c.identity.clone(),
                password: c.password.expose().to_owned(),
                any_from: c.any_from,
            })
            .collect(),
        limits: config.limits,
        recording_dir: config.recording.directory.clone(),
        transcribe_command: config.recording.transcribe_command.clone(),
        speech_command: config.speech.command.clone(),
        call_log_dir: config.debug.call_logs.clone(),
        database: Some(config.database.path.clone()),
        retention: config.database.retention,
        webhook_timeout: config.http.webhook_timeout,
        media_auth: config.http.media_auth,
        media: Some(MediaConfig {
            address: rtp.address,
            sdp_address,
            port_min: rtp.port_min,
            port_max: rtp.port_max,
            latching: rtp.latching,
            media_timeout: rtp.media_timeout,
            srtp_over_tls: rtp.srtp_over_tls,
        }),
        session_timers: config.sip.session_timers,
    }
}

/// SIGINT and SIGTERM listeners, registered when created (so a signal that
/// arrives before anyone awaits [`Shutdown::wait`] is not lost).
struct Shutdown {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Shutdown {
    /// Registers the listeners. Must run inside a tokio runtime.
    fn install() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                int: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
                term: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    /// Resolves with the signal's name on SIGINT (Ctrl-C) or SIGTERM.
    async fn wait(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => "SIGINT",
                _ = self.term.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => "Ctrl-C",
                Err(e) => {
                    warn!(error = %e, "cannot listen for Ctrl-C");
                    std::future::pending().await
                }
            }
        }
    }
}
