//! `tandem-stress`: the attacks of `scripts/stress`, each bounded in count
//! and time, from untrusted loopback addresses (127.0.0.2 and up). Each
//! prints one line of `key=value` figures for the script to judge.
//!
//! ```text
//! tandem-stress register-flood --target ADDR --from IP [--secs S] [--max N]
//! tandem-stress invite-flood   --target ADDR --from IP [--secs S] [--max N]
//! tandem-stress garbage-flood  --target ADDR --from IP [--secs S] [--max N]
//! tandem-stress slowloris      --target ADDR --from IP [--secs S] [--conns N]
//! tandem-stress toll-fraud     --target ADDR --from IP --number N --watch ADDR [--secs S]
//! tandem-stress rtp-spray      --target IP --from IP --ports MIN-MAX [--secs S]
//! tandem-stress dictionary     --target ADDR --from IP --number N --user U [--secs S]
//! ```
//! Floods send as fast as one socket can (at most `--max` messages) and
//! count what comes back by status code: a source that never
//! authenticated should get little back, and nothing twice.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tandem_sip::auth::{Challenge, DigestRequest, respond};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};

const USAGE: &str = "usage: tandem-stress <register-flood|invite-flood|garbage-flood|slowloris|\
                     toll-fraud|rtp-spray|dictionary> --target ADDR --from IP [options]";

#[derive(Debug)]
struct Args {
    attack: String,
    target: String,
    from: IpAddr,
    secs: f64,
    max: u64,
    conns: usize,
    number: String,
    user: String,
    watch: Option<SocketAddr>,
    ports: (u16, u16),
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let attack = argv.next().ok_or(USAGE)?;
    let mut a = Args {
        attack,
        target: String::new(),
        from: IpAddr::from([127, 0, 0, 2]),
        secs: 5.0,
        max: 2_000_000,
        conns: 200,
        number: "+15550000000".into(),
        user: "carol".into(),
        watch: None,
        ports: (0, 0),
    };
    while let Some(flag) = argv.next() {
        let v = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |what: &str| format!("bad {what} {v:?}");
        match flag.as_str() {
            "--target" => a.target = v,
            "--from" => a.from = v.parse().map_err(|_| bad("address"))?,
            "--secs" => a.secs = v.parse().map_err(|_| bad("duration"))?,
            "--max" => a.max = v.parse().map_err(|_| bad("count"))?,
            "--conns" => a.conns = v.parse().map_err(|_| bad("count"))?,
            "--number" => a.number = v,
            "--user" => a.user = v,
            "--watch" => a.watch = Some(v.parse().map_err(|_| bad("address"))?),
            "--ports" => {
                let (lo, hi) = v.split_once('-').ok_or_else(|| bad("range"))?;
                a.ports = (
                    lo.parse().map_err(|_| bad("port"))?,
                    hi.parse().map_err(|_| bad("port"))?,
                );
            }
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if a.target.is_empty() {
        return Err(format!("--target is required\n{USAGE}"));
    }
    Ok(a)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tandem-stress: {e}");
            return ExitCode::from(2);
        }
    };
    let r = match args.attack.as_str() {
        "register-flood" | "invite-flood" | "garbage-flood" => flood(&args).await,
        "slowloris" => slowloris(&args).await,
        "toll-fraud" => toll_fraud(&args).await,
        "rtp-spray" => rtp_spray(&args).await,
        "dictionary" => dictionary(&args).await,
        other => Err(format!("unknown attack {other}\n{USAGE}")),
    };
    match r {
        Ok(line) => {
            use std::io::Write as _;
            let mut stdout = std::io::stdout().lock();
            match writeln!(stdout, "{} {line}", args.attack) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            }
        }
        Err(e) => {
            eprintln!("tandem-stress {}: {e}", args.attack);
            ExitCode::FAILURE
        }
    }
}

fn target(a: &Args) -> Result<SocketAddr, String> {
    a.target
        .parse()
        .map_err(|_| format!("bad target {:?}", a.target))
}

async fn udp_from(ip: IpAddr) -> Result<UdpSocket, String> {
    UdpSocket::bind((ip, 0))
        .await
        .map_err(|e| format!("bind {ip}: {e}"))
}

/// The status code of a SIP response, if `data` is one.
fn status_of(data: &[u8]) -> Option<u16> {
    let rest = data.strip_prefix(b"SIP/2.0 ")?;
    std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()
}

/// Counts responses by status code until `stop`.
fn count_responses(
    sock: Arc<UdpSocket>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<BTreeMap<u16, u64>> {
    tokio::spawn(async move {
        let mut codes = BTreeMap::new();
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::Relaxed) {
            if let Ok(Ok((n, _))) =
                tokio::time::timeout(Duration::from_millis(50), sock.recv_from(&mut buf)).await
                && let Some(c) = status_of(&buf[..n])
            {
                *codes.entry(c).or_insert(0) += 1;
            }
        }
        codes
    })
}

fn codes_text(codes: &BTreeMap<u16, u64>) -> String {
    let total: u64 = codes.values().sum();
    let mut s = format!("replies={total}");
    for (c, n) in codes {
        s.push_str(&format!(" r{c}={n}"));
    }
    s
}

/// A new out-of-dialog request (unique Call-ID, branch, tag).
fn request(method: &str, i: u64, local: SocketAddr, target: SocketAddr, user: &str) -> String {
    let body = if method == "INVITE" {
        format!(
            "v=0\r\no=x 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            ip = local.ip()
        )
    } else {
        String::new()
    };
    let ctype = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} sip:{user}@{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bKst{i:x}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@{target}>;tag=st{i:x}\r\n\
         To: <sip:{user}@{target}>\r\n\
         Call-ID: stress-{i:x}@{lip}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:{user}@{local}>\r\n\
         Expires: 60\r\n\
         {ctype}Content-Length: {len}\r\n\r\n{body}",
        lip = local.ip(),
        len = body.len(),
    )
}

/// Garbage of several kinds: random bytes, truncated and malformed SIP.
fn garbage(i: u64, local: SocketAddr, target: SocketAddr) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    match i % 4 {
        0 => (0..(next() % 1400 + 1)).map(|_| next() as u8).collect(),
        1 => {
            let r = request("INVITE", i, local, target, "g");
            let cut = (next() as usize) % r.len();
            r.as_bytes()[..cut].to_vec()
        }
        2 => request("OPTIONS", i, local, target, "g")
            .replace("CSeq: 1", "CSeq: x")
            .replace("Via:", "Vi\u{0}a:")
            .into_bytes(),
        _ => format!(
            "INVITE sip:{target} SIP/2.0\r\nContent-Length: 99999999\r\nCall-ID: g{i}\r\n\r\n"
        )
        .into_bytes(),
    }
}

async fn flood(a: &Args) -> Result<String, String> {
    let target = target(a)?;
    let sock = Arc::new(udp_from(a.from).await?);
    let local = sock.local_addr().map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let counter = count_responses(sock.clone(), stop.clone());
    let t0 = Instant::now();
    let limit = Duration::from_secs_f64(a.secs);
    let mut sent = 0u64;
    while sent < a.max && t0.elapsed() < limit {
        for _ in 0..64 {
            let msg = match a.attack.as_str() {
                "register-flood" => request("REGISTER", sent, local, target, "flood").into_bytes(),
                "invite-flood" => request("INVITE", sent, local, target, "flood").into_bytes(),
                _ => garbage(sent, local, target),
            };
            // A full socket buffer drops; the count is of datagrams handed over.
            if sock.send_to(&msg, target).await.is_ok() {
                sent += 1;
            }
        }
        tokio::task::yield_now().await;
    }
    let secs = t0.elapsed().as_secs_f64();
    // Late answers still count.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let codes = counter.await.map_err(|e| e.to_string())?;
    Ok(format!(
        "sent={sent} secs={secs:.1} rate={:.0} {}",
        sent as f64 / secs,
        codes_text(&codes)
    ))
}

/// Opens `conns` TCP connections from one address and trickles a request
/// a byte every 200 ms on each; counts how many the server closed, and how
/// soon.
async fn slowloris(a: &Args) -> Result<String, String> {
    let target = target(a)?;
    let closed = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let opened = Arc::new(AtomicU64::new(0));
    let last_close_ms = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let limit = Duration::from_secs_f64(a.secs);
    let mut tasks = Vec::new();
    for i in 0..a.conns {
        let (closed, refused, opened, last) = (
            closed.clone(),
            refused.clone(),
            opened.clone(),
            last_close_ms.clone(),
        );
        let from = a.from;
        tasks.push(tokio::spawn(async move {
            let sock = match from {
                IpAddr::V4(_) => TcpSocket::new_v4(),
                IpAddr::V6(_) => TcpSocket::new_v6(),
            };
            let Ok(sock) = sock else { return };
            if sock.bind(SocketAddr::new(from, 0)).is_err() {
                return;
            }
            let Ok(mut stream) = sock.connect(target).await else {
                refused.fetch_add(1, Ordering::Relaxed);
                return;
            };
            opened.fetch_add(1, Ordering::Relaxed);
            let msg = format!(
                "OPTIONS sip:{target} SIP/2.0\r\nVia: SIP/2.0/TCP x;branch=z9hG4bKsl{i}\r\n"
            );
            let mut buf = [0u8; 64];
            for b in msg.bytes().cycle() {
                if t0.elapsed() >= limit {
                    return;
                }
                if stream.write_all(&[b]).await.is_err() {
                    break;
                }
                match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await
                {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    _ => {}
                }
            }
            closed.fetch_add(1, Ordering::Relaxed);
            last.fetch_max(t0.elapsed().as_millis() as u64, Ordering::Relaxed);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(format!(
        "conns={} opened={} closed_by_server={} refused={} last_close_ms={}",
        a.conns,
        opened.load(Ordering::Relaxed),
        closed.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        last_close_ms.load(Ordering::Relaxed)
    ))
}

/// A blind caller who is no trunk: an INVITE to a number (401 comes
/// back), then an ACK and a BYE with guessed tags, then the same INVITE
/// with a made-up Authorization. Any INVITE reaching `--watch` (where the
/// number's `<Dial>` would ring) is a call placed for the attacker.
async fn toll_fraud(a: &Args) -> Result<String, String> {
    let target = target(a)?;
    let watch = a.watch.ok_or("--watch is required")?;
    let callee = UdpSocket::bind(watch)
        .await
        .map_err(|e| format!("bind {watch}: {e}"))?;
    let sock = Arc::new(udp_from(a.from).await?);
    let local = sock.local_addr().map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let counter = count_responses(sock.clone(), stop.clone());
    let invite = request("INVITE", 1, local, target, &a.number);
    sock.send_to(invite.as_bytes(), target)
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    for (method, tag) in [("ACK", "guess1"), ("BYE", "guess2")] {
        let m = invite
            .replacen("INVITE sip:", &format!("{method} sip:"), 1)
            .replace("CSeq: 1 INVITE", &format!("CSeq: 1 {method}"))
            .replace(
                &format!("To: <sip:{}@{target}>", a.number),
                &format!("To: <sip:{}@{target}>;tag={tag}", a.number),
            );
        sock.send_to(m.as_bytes(), target)
            .await
            .map_err(|e| e.to_string())?;
    }
    let forged = invite.replacen(
        "Max-Forwards: 70\r\n",
        &format!(
            "Max-Forwards: 70\r\nAuthorization: Digest username=\"{}\", realm=\"x\", \
             nonce=\"00\", uri=\"sip:{}@{target}\", response=\"00000000000000000000000000000000\"\r\n",
            a.user, a.number
        ),
        1,
    );
    sock.send_to(forged.as_bytes(), target)
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65_536];
    let rung = tokio::time::timeout(Duration::from_secs_f64(a.secs), callee.recv_from(&mut buf))
        .await
        .is_ok();
    stop.store(true, Ordering::Relaxed);
    let codes = counter.await.map_err(|e| e.to_string())?;
    Ok(format!("rung={} {}", u8::from(rung), codes_text(&codes)))
}

/// Sprays RTP at every even port of the range for `--secs`.
async fn rtp_spray(a: &Args) -> Result<String, String> {
    let ip: IpAddr = a
        .target
        .parse()
        .map_err(|_| format!("bad target {:?}", a.target))?;
    let (lo, hi) = a.ports;
    if lo == 0 || hi < lo {
        return Err("--ports MIN-MAX is required".into());
    }
    let sock = udp_from(a.from).await?;
    let mut pkt = vec![0u8; 172];
    pkt[0] = 0x80;
    pkt[8..12].copy_from_slice(&0xBAD0_BAD0u32.to_be_bytes());
    // Loud 3000 Hz-ish: alternating extremes in u-law.
    for (i, b) in pkt[12..].iter_mut().enumerate() {
        *b = if i % 2 == 0 { 0x00 } else { 0x80 };
    }
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut seq = 0u16;
    while t0.elapsed() < Duration::from_secs_f64(a.secs) {
        pkt[2..4].copy_from_slice(&seq.to_be_bytes());
        pkt[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        seq = seq.wrapping_add(1);
        for port in (lo..=hi).step_by(2) {
            if sock.send_to(&pkt, (ip, port)).await.is_ok() {
                sent += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(format!("sent={sent} ports={}", (hi - lo) / 2 + 1))
}

/// An online dictionary against `--user`: INVITE, read the 401's
/// challenge, answer it with the next guess, for `--secs`. Counts the
/// guesses the server answered and how.
async fn dictionary(a: &Args) -> Result<String, String> {
    let target = target(a)?;
    let sock = udp_from(a.from).await?;
    let local = sock.local_addr().map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let limit = Duration::from_secs_f64(a.secs);
    let mut buf = vec![0u8; 65_536];
    let mut codes = BTreeMap::new();
    let (mut guesses, mut challenged) = (0u64, 0u64);
    let mut i = 0u64;
    while t0.elapsed() < limit {
        i += 1;
        let invite = request("INVITE", 1_000_000 + i, local, target, &a.number);
        let invite = invite.replace(
            &format!("From: <sip:{}@{target}>", a.number),
            &format!("From: <sip:{}@{target}>", a.user),
        );
        let _ = sock.send_to(invite.as_bytes(), target).await;
        // Wait for the final answer to this INVITE (skip 100 Trying).
        let Some((code, text)) = final_response(&sock, &mut buf, Duration::from_millis(500)).await
        else {
            continue;
        };
        *codes.entry(code).or_insert(0) += 1;
        if code != 401 {
            continue;
        }
        challenged += 1;
        let Some(challenge) = text
            .lines()
            .find_map(|l| l.strip_prefix("WWW-Authenticate: "))
            .and_then(|v| Challenge::parse(v).ok())
        else {
            return Err("a 401 without a readable challenge".into());
        };
        let uri = format!("sip:{}@{target}", a.number);
        let req = DigestRequest {
            method: "INVITE",
            uri: &uri,
            body: b"",
        };
        let password = format!("guess{i}");
        let creds = respond(&challenge, &req, &a.user, &password, "c0ffee", 1)
            .map_err(|e| e.to_string())?;
        let again = invite
            .replace("CSeq: 1 INVITE", "CSeq: 2 INVITE")
            .replace(
                &format!("branch=z9hG4bKst{:x}", 1_000_000 + i),
                &format!("branch=z9hG4bKsu{:x}", 1_000_000 + i),
            )
            .replacen(
                "Max-Forwards: 70\r\n",
                &format!("Max-Forwards: 70\r\nAuthorization: {creds}\r\n"),
                1,
            );
        let _ = sock.send_to(again.as_bytes(), target).await;
        guesses += 1;
        if let Some((code, _)) = final_response(&sock, &mut buf, Duration::from_millis(500)).await {
            *codes.entry(code).or_insert(0) += 1;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok(format!(
        "guesses={guesses} challenged={challenged} secs={secs:.1} {}",
        codes_text(&codes)
    ))
}

async fn final_response(sock: &UdpSocket, buf: &mut [u8], wait: Duration) -> Option<(u16, String)> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let (n, _) = tokio::time::timeout_at(deadline, sock.recv_from(buf))
            .await
            .ok()?
            .ok()?;
        if let Some(code) = status_of(&buf[..n])
            && code >= 200
        {
            return Some((code, String::from_utf8_lossy(&buf[..n]).into_owned()));
        }
    }
}
