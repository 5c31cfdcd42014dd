//! Why a config was refused: every error names the file and the key's full
//! dotted path (`trunk[1].sources[0]`).

use std::fmt;

/// One broken rule: the key's dotted path and what is wrong with its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Dotted path of the key, e.g. `trunk[1].sources[0]`.
    pub key: String,
    /// What is wrong, e.g. `"300.1.1.1" is not an IP address or CIDR`.
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// A config that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{origin}: cannot read: {source}")]
    Read {
        /// The file.
        origin: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The text is not TOML, or a key is unknown, missing or of the wrong type.
    #[error("{origin}: {}", ParseDisplay { key: key.as_deref(), message, line: *line })]
    Parse {
        /// The file (or `embedded configs/tandem.toml`).
        origin: String,
        /// Dotted path of the offending key; `None` for a TOML syntax error.
        key: Option<String>,
        /// What is wrong.
        message: String,
        /// 1-based line of the offending text, when known.
        line: Option<usize>,
    },
    /// Values that parse but break a rule: every one found, in file order.
    #[error("{origin}: {}", IssuesDisplay(issues))]
    Invalid {
        /// The file (or `embedded configs/tandem.toml`).
        origin: String,
        /// The broken rules (never empty).
        issues: Vec<Issue>,
    },
}

impl ConfigError {
    /// The dotted paths of every key this error names.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Self::Read { .. } => Vec::new(),
            Self::Parse { key, .. } => key.as_deref().into_iter().collect(),
            Self::Invalid { issues, .. } => issues.iter().map(|i| i.key.as_str()).collect(),
        }
    }
}

struct ParseDisplay<'a> {
    key: Option<&'a str>,
    message: &'a str,
    line: Option<usize>,
}

impl fmt::Display for ParseDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(key) = self.key {
            write!(f, "{key}: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

struct IssuesDisplay<'a>(&'a [Issue]);

impl fmt::Display for IssuesDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} errors", many.len())?;
                for issue in many {
                    write!(f, "\n  {issue}")?;
                }
                Ok(())
            }
        }
    }
}

/// Turns a serde error at `path` into [`ConfigError::Parse`], moving the key
/// an unknown/missing-field message names into the path.
pub(crate) fn from_toml(
    origin: &str,
    text: &str,
    err: serde_path_to_error::Error<toml::de::Error>,
) -> ConfigError {
    let path = path_string(err.path());
    let inner = err.into_inner();
    let mut line = inner
        .span()
        .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    // The parser's messages may span lines; keep the error on one.
    let raw = inner
        .message()
        .trim_end()
        .lines()
        .collect::<Vec<_>>()
        .join("; ");
    let (key, message) = if let Some((field, rest)) = field_in(&raw, "unknown field `") {
        // serde_path_to_error has already pushed the unknown key onto the path.
        let key = if path.is_empty() {
            field.to_owned()
        } else {
            path
        };
        (Some(key), format!("unknown key{rest}"))
    } else if let Some((field, _)) = field_in(&raw, "missing field `") {
        // The span is the whole enclosing table: no useful line.
        line = None;
        (
            Some(join(&path, field)),
            "is required but missing".to_owned(),
        )
    } else if path.is_empty() && is_syntax(&raw) {
        (None, raw)
    } else {
        let key = if path.is_empty() {
            "(top level)".to_owned()
        } else {
            path
        };
        (Some(key), raw)
    };
    ConfigError::Parse {
        origin: origin.to_owned(),
        key,
        message,
        line,
    }
}

/// `serde_path_to_error` prints the root as `.`; we print it as "".
fn path_string(path: &serde_path_to_error::Path) -> String {
    let s = path.to_string();
    if s == "." { String::new() } else { s }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// For ``unknown field `x`, expected ...`` returns (`x`, `, expected ...`).
fn field_in<'a>(message: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let rest = message.strip_prefix(prefix)?;
    let end = rest.find('`')?;
    Some((&rest[..end], &rest[end + 1..]))
}

/// Serde's data-model messages (`invalid type`, `invalid value`, ...) are
/// about a key; anything else at the root came from the TOML parser.
fn is_syntax(message: &str) -> bool {
    ![
        "invalid type",
        "invalid value",
        "invalid length",
        "unknown variant",
        "duplicate field",
    ]
    .iter()
    .any(|p| message.starts_with(p))
}
