//! Command-line arguments, on clap's builder API: `--config FILE`,
//! `--check-config [FILE]`, `--replay CALLLOG`, `--help`, `--version`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Arg, ArgAction, value_parser};

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Print the help text (the `String`).
    Help(String),
    /// Print the version.
    Version,
    /// Load the config, then run it or only check it.
    Run {
        /// `--config FILE` (or `--check-config FILE`); `None` means the default config.
        config: Option<PathBuf>,
        /// `--check-config`.
        check_only: bool,
        /// `--replay CALLLOG`.
        replay: Option<PathBuf>,
    },
}

/// A command line that makes no sense: clap's message, ready to print.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CliError(pub String);

fn command() -> clap::Command {
    clap::Command::new("tandem")
        .about("A SIP B2BUA that runs TwiML call control")
        .disable_version_flag(true)
        .disable_help_flag(true)
        .after_help(
            "Environment:\n  RUST_LOG  Log filter (default: info), e.g. RUST_LOG=tandem=debug.",
        )
        .arg(
            Arg::new("config")
                .short('c')
                .long("config")
                .value_name("FILE")
                .value_parser(value_parser!(PathBuf))
                .help(
                    "Run this config file. Without it, tandem runs ./configs/tandem.toml \
                     if it exists, else the copy of that file embedded in the binary.",
                ),
        )
        .arg(
            Arg::new("check-config")
                .long("check-config")
                .value_name("FILE")
                .num_args(0..=1)
                .value_parser(value_parser!(PathBuf))
                .conflicts_with("replay")
                .help(
                    "Validate the config (FILE, else --config's, else the default), \
                     print a one-line summary and exit; exit code 2 and the offending \
                     key if it is invalid.",
                ),
        )
        .arg(
            Arg::new("replay")
                .long("replay")
                .value_name("CALLLOG")
                .value_parser(value_parser!(PathBuf))
                .help(
                    "Replay a call's event log (written with [debug] call_logs) on a \
                     virtual clock and print what the call did, with times in \
                     microseconds since it began.",
                ),
        )
        .arg(
            Arg::new("help")
                .short('h')
                .long("help")
                .action(ArgAction::SetTrue)
                .help("Print this help."),
        )
        .arg(
            Arg::new("version")
                .short('V')
                .long("version")
                .action(ArgAction::SetTrue)
                .help("Print the version."),
        )
}

/// The help text.
pub fn usage() -> String {
    command().render_help().to_string()
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, CliError> {
    let argv = std::iter::once(OsString::from("tandem")).chain(args);
    let m = command()
        .try_get_matches_from(argv)
        .map_err(|e| CliError(e.render().to_string().trim_end().to_owned()))?;
    if m.get_flag("help") {
        return Ok(Command::Help(usage()));
    }
    if m.get_flag("version") {
        return Ok(Command::Version);
    }
    let config = m.get_one::<PathBuf>("config").cloned();
    let check_file = m.get_one::<PathBuf>("check-config").cloned();
    let check_only = m.contains_id("check-config");
    if config.is_some() && check_file.is_some() {
        return Err(CliError(
            "error: give the config once: --check-config FILE, or --config FILE --check-config"
                .into(),
        ));
    }
    let empty = |p: &Option<PathBuf>| p.as_ref().is_some_and(|p| p.as_os_str().is_empty());
    let replay = m.get_one::<PathBuf>("replay").cloned();
    if empty(&config) || empty(&check_file) || empty(&replay) {
        return Err(CliError(
            "error: --config, --check-config and --replay need a FILE that is not empty".into(),
        ));
    }
    Ok(Command::Run {
        config: config.or(check_file),
        check_only,
        replay,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Command, CliError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn no_arguments_run_the_default_config() {
        assert_eq!(
            parse_strs(&[]),
            Ok(Command::Run {
                config: None,
                check_only: false,
                replay: None,
            })
        );
    }

    #[test]
    fn check_config_takes_its_file_or_the_config_flag() {
        let want = Ok(Command::Run {
            config: Some(PathBuf::from("a.toml")),
            check_only: true,
            replay: None,
        });
        assert_eq!(parse_strs(&["--check-config", "a.toml"]), want);
        assert_eq!(parse_strs(&["--config", "a.toml", "--check-config"]), want);
        assert_eq!(parse_strs(&["--check-config", "--config=a.toml"]), want);
        assert_eq!(parse_strs(&["--check-config", "-c", "a.toml"]), want);
        assert_eq!(
            parse_strs(&["--check-config"]),
            Ok(Command::Run {
                config: None,
                check_only: true,
                replay: None,
            })
        );
        assert!(parse_strs(&["--check-config", "a.toml", "-c", "b.toml"]).is_err());
    }

    #[test]
    fn replay_takes_a_call_log_beside_the_config() {
        assert_eq!(
            parse_strs(&["--config", "a.toml", "--replay", "CA1.calllog"]),
            Ok(Command::Run {
                config: Some(PathBuf::from("a.toml")),
                check_only: false,
                replay: Some(PathBuf::from("CA1.calllog")),
            })
        );
        assert!(parse_strs(&["--replay"]).is_err());
        assert!(parse_strs(&["--replay", "x", "--check-config"]).is_err());
    }

    #[test]
    fn help_and_version_win() {
        assert!(matches!(
            parse_strs(&["--config", "x", "--help"]),
            Ok(Command::Help(h)) if h.contains("--check-config")
        ));
        assert_eq!(parse_strs(&["-V"]), Ok(Command::Version));
    }

    #[test]
    fn bad_command_lines_are_errors_that_say_why() {
        let e = parse_strs(&["--config"]).unwrap_err();
        assert!(e.0.contains("--config"), "{e}");
        assert!(parse_strs(&["--config="]).is_err());
        assert!(parse_strs(&["-c", "a", "-c", "b"]).is_err());
        let e = parse_strs(&["--verbose"]).unwrap_err();
        assert!(e.0.contains("--verbose"), "{e}");
        assert!(parse_strs(&["a.toml"]).is_err());
    }
}
