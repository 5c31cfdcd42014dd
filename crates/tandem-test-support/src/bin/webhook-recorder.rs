//! `webhook-recorder`: the recording webhook server as a program, for the SIPp
//! suite. Prints its port on stdout, serves TwiML files, logs each request as
//! one JSON line, and runs until SIGINT or SIGTERM.
//!
//! ```text
//! webhook-recorder [--port N] [--twiml-dir DIR] [--route /PATH=FILE]...
//!                  [--status /PATH=CODE]... [--log FILE]
//! ```
//! A request path with a `--route` gets that file; else `DIR/<path>` when it
//! exists; else 200 with an empty `text/plain` body (fine for callbacks, and
//! reported by Tandem as non-TwiML if used as a voice URL by mistake).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use tandem_test_support::{RecorderConfig, ScriptedResponse, WebhookRecorder};

const USAGE: &str = "usage: webhook-recorder [--port N] [--twiml-dir DIR] \
                     [--route /PATH=FILE]... [--status /PATH=CODE]... [--log FILE]";

struct Args {
    config: RecorderConfig,
    routes: Vec<(String, PathBuf)>,
    statuses: Vec<(String, u16)>,
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut config = RecorderConfig {
        default_response: ScriptedResponse::status(200),
        ..RecorderConfig::default()
    };
    let mut routes = Vec::new();
    let mut statuses = Vec::new();
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => {
                let v = value()?;
                config.port = v.parse().map_err(|_| format!("bad port {v:?}"))?;
            }
            "--twiml-dir" => config.twiml_dir = Some(PathBuf::from(value()?)),
            "--log" => config.log_file = Some(PathBuf::from(value()?)),
            "--route" => {
                let v = value()?;
                let (path, file) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--route wants /PATH=FILE, got {v:?}"))?;
                routes.push((path.to_owned(), PathBuf::from(file)));
            }
            "--status" => {
                let v = value()?;
                let (path, code) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--status wants /PATH=CODE, got {v:?}"))?;
                let code = code
                    .parse::<u16>()
                    .ok()
                    .filter(|c| (100..=599).contains(c))
                    .ok_or_else(|| format!("bad status code in {v:?}"))?;
                statuses.push((path.to_owned(), code));
            }
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(Args {
        config,
        routes,
        statuses,
    })
}

async fn run(args: Args) -> Result<(), String> {
    let mut scripted = Vec::new();
    for (path, file) in &args.routes {
        let file = match (&args.config.twiml_dir, file.is_relative()) {
            (Some(dir), true) => dir.join(file),
            _ => file.clone(),
        };
        let text = tokio::fs::read_to_string(&file)
            .await
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        scripted.push((path.clone(), ScriptedResponse::twiml(text)));
    }
    for (path, code) in &args.statuses {
        scripted.push((path.clone(), ScriptedResponse::status(*code)));
    }
    let recorder = WebhookRecorder::start_with(args.config)
        .await
        .map_err(|e| e.to_string())?;
    for (path, response) in scripted {
        recorder.respond(&path, response);
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", recorder.addr().port())
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write the port to stdout: {e}"))?;
    drop(stdout);
    wait_for_signal().await
}

async fn wait_for_signal() -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(|e| format!("cannot watch SIGINT: {e}")),
        _ = term.recv() => Ok(()),
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(msg) => {
            let _ = writeln!(std::io::stderr(), "{msg}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            let _ = writeln!(std::io::stderr(), "webhook-recorder: {msg}");
            ExitCode::FAILURE
        }
    }
}
