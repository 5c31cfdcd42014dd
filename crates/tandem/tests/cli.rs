//! The real `tandem` binary: `--check-config` on good and broken configs,
//! `--help`/`--version`, bad arguments, and a clean stop on SIGTERM.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tandem");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tandem-cli-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tandem(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("run tandem")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A small valid config on ephemeral ports, no files referenced.
const EPHEMERAL: &str = r#"
[sip]
udp = ["127.0.0.1:0"]
tcp = ["127.0.0.1:0"]

[rtp]
address = "127.0.0.1"

[http]
listen = "127.0.0.1:0"

[account]
sid = "AC00000000000000000000000000000000"
auth_token = "t"

[[trunk]]
name = "loopback"
proxy = "sip:127.0.0.1:5090"
sources = ["127.0.0.1"]

[[number]]
number = "+15550001000"
voice_url = "http://127.0.0.1:9/voice"
"#;

#[test]
fn check_config_accepts_the_default_config() {
    let out = tandem(&repo(), &["--check-config"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with("configs/tandem.toml: OK: sip udp 127.0.0.1:5080"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
}

#[test]
fn check_config_falls_back_to_the_embedded_default() {
    let tmp = TempDir::new();
    let out = tandem(&tmp.0, &["--check-config"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with("embedded configs/tandem.toml: OK"),
        "{stdout}"
    );
}

#[test]
fn check_config_rejects_a_bad_value_with_exit_code_2_and_the_key_path() {
    let tmp = TempDir::new();
    let bad = EPHEMERAL.replace(
        r#"sources = ["127.0.0.1"]"#,
        r#"sources = ["127.0.0.1", "300.1.1.1"]"#,
    );
    let path = tmp.write("bad.toml", &bad);
    let out = tandem(
        &tmp.0,
        &[
            "--config",
            path.to_str().expect("utf-8 path"),
            "--check-config",
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(r#"trunk[0].sources[1]: "300.1.1.1" is not an IP address or CIDR"#),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn check_config_rejects_an_unknown_key_with_exit_code_2() {
    let tmp = TempDir::new();
    tmp.write(
        "bad.toml",
        &EPHEMERAL.replace("[rtp]", "[rtp]\nport_mini = 4"),
    );
    let out = tandem(&tmp.0, &["--config=bad.toml", "--check-config"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.toml: rtp.port_mini: unknown key"),
        "{stderr}"
    );
}

#[test]
fn running_a_broken_config_exits_2_before_binding() {
    let tmp = TempDir::new();
    tmp.write(
        "bad.toml",
        &EPHEMERAL.replace("auth_token = \"t\"", "auth_token = \"\""),
    );
    let out = tandem(&tmp.0, &["--config", "bad.toml"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("account.auth_token: must not be empty"),
        "{stderr}"
    );
}

#[test]
fn missing_config_file_exits_2() {
    let tmp = TempDir::new();
    let out = tandem(&tmp.0, &["--config", "nope.toml", "--check-config"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("nope.toml: cannot read"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn help_and_version_exit_0() {
    let out = tandem(&repo(), &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("--check-config"));
    let out = tandem(&repo(), &["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("tandem {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn unknown_argument_exits_2_with_usage() {
    let out = tandem(&repo(), &["--frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("unexpected argument '--frobnicate'"),
        "{stderr}"
    );
    assert!(stderr.contains("Usage: tandem"), "{stderr}");
}

/// `tandem --check-config FILE`, as the README says: the file is checked.
#[test]
fn check_config_takes_the_file_to_check() {
    let dir = TempDir::new();
    let good = dir.write("good.toml", EPHEMERAL);
    let out = tandem(&dir.0, &["--check-config", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("OK"), "{}", text(&out.stdout));
    let bad = dir.write("bad.toml", &EPHEMERAL.replace("[sip]", "[sip]\nt1_ms = 0"));
    let out = tandem(&dir.0, &["--check-config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("sip.t1_ms"),
        "{}",
        text(&out.stderr)
    );
}

/// Also pins a race: a SIGTERM sent right after "SIP endpoint listening" once
/// killed tandem outright, because the handler was registered after that log.
#[cfg(unix)]
#[test]
fn runs_until_sigterm_then_exits_cleanly() {
    let tmp = TempDir::new();
    tmp.write("ok.toml", EPHEMERAL);
    let mut child = Command::new(BIN)
        .args(["--config", "ok.toml"])
        .current_dir(&tmp.0)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tandem");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("SIP endpoint listening") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let listening = rx.recv_timeout(Duration::from_secs(10)).is_ok();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tandem did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = reader.join().expect("reader thread");
    assert!(listening, "never logged its addresses:\n{log}");
    assert!(log.contains("udp=[127.0.0.1:"), "{log}");
    assert!(
        log.contains("shutting down") && log.contains("SIGTERM"),
        "{log}"
    );
    assert_eq!(status.code(), Some(0), "{log}");
}
