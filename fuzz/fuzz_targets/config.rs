//! The `tandem` binary's config parser (TOML into the validated config tree:
//! `tandem::config::Config::parse`), on the input as UTF-8 (lossy), with
//! relative paths resolved against the repository root (so the fixtures the
//! shipped configs name are found). Errors are rendered, since the TOML
//! error snippet slices the input by line and column.

use std::path::{Path, PathBuf};

use tandem::config::{Config, ConfigSource};

fn main() {
    let root: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bases = [root];
    afl::fuzz!(|data: &[u8]| {
        let text = String::from_utf8_lossy(data);
        match Config::parse(
            &text,
            ConfigSource::File(PathBuf::from("fuzz.toml")),
            &bases,
        ) {
            Ok(config) => {
                let _ = config.summary();
                let _ = config.weak_secrets();
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    });
}
