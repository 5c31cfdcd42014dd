//! The `webhook-recorder` program as the SIPp suite runs it: prints its port,
//! serves TwiML files by route and by directory, answers other paths with an
//! empty 200 or a configured status, and logs each request as a JSON line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tandem-recorder-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("numbers")).unwrap();
    dir
}

/// One HTTP/1.1 exchange with `Connection: close`; returns the raw response.
fn exchange(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn post(port: u16, path: &str, body: &str) -> String {
    exchange(
        port,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[test]
fn recorder_program_serves_files_and_logs_json_lines() {
    let dir = scratch_dir("bin");
    std::fs::write(dir.join("voice.xml"), "<Response><Hangup/></Response>").unwrap();
    std::fs::write(
        dir.join("numbers/100.xml"),
        "<Response><Reject/></Response>",
    )
    .unwrap();
    let log = dir.join("requests.jsonl");
    let child = Command::new(env!("CARGO_BIN_EXE_webhook-recorder"))
        .args(["--port", "0", "--twiml-dir"])
        .arg(&dir)
        .args([
            "--route",
            "/voice=voice.xml",
            "--status",
            "/broken=503",
            "--log",
        ])
        .arg(&log)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Running(child);
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().unwrap();

    let routed = post(port, "/voice?x=1", "CallSid=CA1&From=%2B1415");
    assert!(routed.starts_with("HTTP/1.1 200"), "{routed}");
    assert!(routed.contains("content-type: text/xml"), "{routed}");
    assert!(
        routed.ends_with("<Response><Hangup/></Response>"),
        "{routed}"
    );

    let from_dir = exchange(
        port,
        "GET /numbers/100.xml HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(
        from_dir.ends_with("<Response><Reject/></Response>"),
        "{from_dir}"
    );

    let escape = exchange(
        port,
        "GET /../voice.xml HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(!escape.contains("<Response>"), "{escape}");

    let broken = post(port, "/broken", "");
    assert!(broken.starts_with("HTTP/1.1 503"), "{broken}");
    let other = post(port, "/status", "CallStatus=ringing");
    assert!(other.starts_with("HTTP/1.1 200"), "{other}");

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].starts_with("{\"index\":0,\"ms\":"), "{}", lines[0]);
    assert!(
        lines[0].contains(
            "\"method\":\"POST\",\"path\":\"/voice\",\"query\":\"x=1\",\"headers\":{\"host\":\"t\""
        ),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].ends_with("\"params\":{\"CallSid\":\"CA1\",\"From\":\"+1415\"}}"),
        "{}",
        lines[0]
    );
    assert!(
        lines[4].contains("\"params\":{\"CallStatus\":\"ringing\"}"),
        "{}",
        lines[4]
    );
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn recorder_program_rejects_bad_arguments() {
    let out = Command::new(env!("CARGO_BIN_EXE_webhook-recorder"))
        .args(["--status", "/x=999"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad status code"));
}
