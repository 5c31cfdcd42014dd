//! The `tandem` binary: command line, config, tracing, signals, wiring.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use tracing::{error, info};
use tracing_subscriber::EnvFilter;

use tandem::cli::{self, Command};
use tandem::config::Config;
use tandem::run;

/// mimalloc instead of glibc malloc: under call load glibc's arena locks
/// were a fifth of Tandem's CPU (docs/benchmarks.md, perf profile). The
/// `system-allocator` feature leaves malloc to libc, where heap profilers
/// (heaptrack) can see it (docs/benchmarks.md §3(q)).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for a bad command line or an invalid config.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    // Transparent huge pages make every call's few kilobytes fault in 2 MB
    // at a time; without them an established call costs ~4 KB less RSS
    // (docs/benchmarks.md). Best effort: some kernels refuse it.
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
    let (config_path, check_only, replay) = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Help(text)) => {
            print_out(text.trim_end());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            print_out(&format!("tandem {}", env!("CARGO_PKG_VERSION")));
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run {
            config,
            check_only,
            replay,
        }) => (config, check_only, replay),
        Err(e) => {
            eprintln!("tandem: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };

    let loaded = match &config_path {
        Some(path) => Config::load(path),
        None => Config::load_default(),
    };

    if let Some(log) = replay {
        let result = loaded
            .map_err(|e| format!("invalid config: {e}"))
            .and_then(|config| run::replay(&config, &log));
        return match result {
            Ok(timeline) => {
                print_out(timeline.trim_end());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tandem: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
        };
    }

    if check_only {
        return match loaded {
            Ok(config) => {
                print_out(&config.summary());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tandem: invalid config: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
        };
    }

    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let config = match loaded {
        Ok(config) => config,
        Err(e) => {
            error!("invalid config: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    info!(version = env!("CARGO_PKG_VERSION"), config = %config.source, "tandem starting");

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the tokio runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The CLI's own output (`--help`, `--version`, `--check-config`) goes to stdout.
#[allow(
    clippy::print_stdout,
    reason = "the CLI's --help/--version/--check-config output"
)]
fn print_out(s: &str) {
    println!("{s}");
}
