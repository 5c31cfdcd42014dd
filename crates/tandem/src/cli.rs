//! Command-line arguments: `--config FILE`, `--check-config`, `--replay CALLLOG`,
//! `--help`, `--version`.

use std::ffi::OsString;
use std::path::PathBuf;

/// Usage text printed by `--help`.
pub const USAGE: &str = "\
tandem: a SIP B2BUA that runs TwiML call control

Usage: tandem [--config FILE] [--check-config | --replay CALLLOG]

Options:
  -c, --config FILE   Run this config file. Without it, tandem runs
                      ./configs/tandem.toml if it exists, else the copy of
                      that file embedded in the binary.
      --check-config  Validate the config, print a one-line summary and exit
                      (exit code 2 and the offending key if it is invalid).
      --replay CALLLOG
                      Replay a call's event log (written with [debug]
                      call_logs) on a virtual clock and print what the call
                      did, with times in microseconds since it began.
  -h, --help          Print this help.
  -V, --version       Print the version.

Environment:
  RUST_LOG            Log filter (default: info), e.g. RUST_LOG=tandem=debug.
";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Print [`USAGE`].
    Help,
    /// Print the version.
    Version,
    /// Load the config, then run it or only check it.
    Run {
        /// `--config FILE`; `None` means the default config.
        config: Option<PathBuf>,
        /// `--check-config`.
        check_only: bool,
        /// `--replay CALLLOG`.
        replay: Option<PathBuf>,
    },
}

/// A command line that makes no sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// An option tandem does not know.
    #[error("unknown argument {0:?}")]
    Unknown(String),
    /// `--config` (or `--replay`) without its FILE.
    #[error("--config and --replay need a FILE")]
    MissingValue,
    /// `--config` given twice.
    #[error("--config given more than once")]
    Repeated,
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, CliError> {
    let mut config = None;
    let mut check_only = false;
    let mut replay = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let value = match arg.to_str() {
            Some("-h" | "--help") => return Ok(Command::Help),
            Some("-V" | "--version") => return Ok(Command::Version),
            Some("--check-config") => {
                check_only = true;
                continue;
            }
            Some("--replay") => {
                let v = args.next().ok_or(CliError::MissingValue)?;
                if v.is_empty() {
                    return Err(CliError::MissingValue);
                }
                replay = Some(PathBuf::from(v));
                continue;
            }
            Some("-c" | "--config") => args.next().ok_or(CliError::MissingValue)?,
            Some(s) if s.starts_with("--config=") => OsString::from(&s["--config=".len()..]),
            _ => return Err(CliError::Unknown(arg.to_string_lossy().into_owned())),
        };
        if value.is_empty() {
            return Err(CliError::MissingValue);
        }
        if config.replace(PathBuf::from(value)).is_some() {
            return Err(CliError::Repeated);
        }
    }
    Ok(Command::Run {
        config,
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
    fn config_and_check_flags_combine_in_any_order() {
        let want = Ok(Command::Run {
            config: Some(PathBuf::from("a.toml")),
            check_only: true,
            replay: None,
        });
        assert_eq!(parse_strs(&["--config", "a.toml", "--check-config"]), want);
        assert_eq!(parse_strs(&["--check-config", "--config=a.toml"]), want);
        assert_eq!(parse_strs(&["--check-config", "-c", "a.toml"]), want);
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
        assert_eq!(parse_strs(&["--replay"]), Err(CliError::MissingValue));
    }

    #[test]
    fn help_and_version_win() {
        assert_eq!(parse_strs(&["--config", "x", "--help"]), Ok(Command::Help));
        assert_eq!(parse_strs(&["-V"]), Ok(Command::Version));
    }

    #[test]
    fn bad_command_lines_are_errors() {
        assert_eq!(parse_strs(&["--config"]), Err(CliError::MissingValue));
        assert_eq!(parse_strs(&["--config="]), Err(CliError::MissingValue));
        assert_eq!(parse_strs(&["-c", "a", "-c", "b"]), Err(CliError::Repeated));
        assert_eq!(
            parse_strs(&["--verbose"]),
            Err(CliError::Unknown("--verbose".into()))
        );
        assert_eq!(
            parse_strs(&["a.toml"]),
            Err(CliError::Unknown("a.toml".into()))
        );
    }
}
