//! rtp-bench: load generator for the RTP relay, on 127.0.0.1 only.
//!
//! `rtp-bench run --calls N` starts the relay in a child process
//! (`rtp-bench relay`, the real `tandem_rtp::Leg` relay on tokio), then
//! drives N concurrent bidirectional G.711 streams through it: 160-byte
//! payloads, 50 packets/s each way per call, sends spread evenly over each
//! 20 ms period and batched with `sendmmsg`, receives drained with
//! non-blocking `recvmmsg` between sends, every 200 µs at most. The generator
//! is one thread. Each payload carries the call, direction, sequence and send
//! time, so the receiver counts loss and reordering and measures latency.
//! CPU comes from `/proc/<pid>/stat` of both processes.
//!
//! `rtp-bench sweep --calls 250,500,1000` runs several counts and reports
//! the highest with zero loss and p99 under 2 ms. `--direct` sends endpoint
//! to endpoint without the relay, for the loopback baseline.

#![allow(clippy::print_stdout, reason = "a command-line tool reports on stdout")]

use std::io::{BufRead, BufReader, IoSlice, IoSliceMut, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrIn, recvmmsg, sendmmsg, setsockopt,
    sockopt,
};
use nix::sys::time::TimeSpec;

const PAYLOAD: usize = 160;
/// Marks the generator's own payloads (anything else received is counted
/// as foreign: a ringback tone, RTCP, strays).
const MAGIC: [u8; 4] = *b"TDMB";
const PKT: usize = 12 + PAYLOAD;
const BATCH: usize = 64;
/// Receive polling interval.
const POLL: Duration = Duration::from_micros(200);
const PERIOD: Duration = Duration::from_millis(20);
/// Latency histogram: 10 µs buckets up to 200 ms.
const BUCKET_NS: u64 = 10_000;
const BUCKETS: usize = 20_000;

fn usage() -> ! {
    eprintln!(
        "usage:\n  rtp-bench run   --calls N [--duration S] [--port-min P] [--sockets K] [--workers W | --shards W] [--direct]\n  rtp-bench sweep --calls N1,N2,.. [--duration S] [--port-min P] [--sockets K] [--workers W | --shards W]\n  rtp-bench relay --calls N [--port-min P] [--workers W | --shards W]   (started by run)\n  rtp-bench sip   --events FILE [--events FILE ..] [--talk S] [--dut PID] [--max-secs S]   (scripts/bench-media)"
    );
    std::process::exit(2)
}

#[derive(Clone, Debug)]
struct Opts {
    calls: Vec<usize>,
    duration: u64,
    port_min: u16,
    sockets: usize,
    workers: usize,
    shards: usize,
    direct: bool,
}

fn parse_opts(args: &[String]) -> Opts {
    let mut o = Opts {
        calls: vec![100],
        duration: 10,
        port_min: 20_000,
        sockets: 1,
        workers: 2,
        shards: 0,
        direct: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_else(|| usage());
        match a.as_str() {
            "--calls" => {
                o.calls = val()
                    .split(',')
                    .map(|s| s.parse().unwrap_or_else(|_| usage()))
                    .collect()
            }
            "--duration" => o.duration = val().parse().unwrap_or_else(|_| usage()),
            "--port-min" => o.port_min = val().parse().unwrap_or_else(|_| usage()),
            "--sockets" => o.sockets = val().parse().unwrap_or_else(|_| usage()),
            "--workers" => o.workers = val().parse().unwrap_or_else(|_| usage()),
            "--shards" => o.shards = val().parse().unwrap_or_else(|_| usage()),
            "--direct" => o.direct = true,
            _ => usage(),
        }
    }
    o.duration = o.duration.clamp(1, 50);
    o.sockets = o.sockets.max(1);
    o
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(cmd) = args.get(1) else { usage() };
    if cmd == "sip" {
        return sip::main(&args[2..]);
    }
    let opts = parse_opts(&args[2..]);
    match cmd.as_str() {
        "relay" => relay_main(&opts),
        "run" => {
            let r = run_once(&opts, opts.calls[0]);
            r.print_header();
            r.print();
        }
        "sweep" => sweep(&opts),
        _ => usage(),
    }
}

// ---------------------------------------------------------------- relay side

/// The relay under test: the crate's own pool and legs, one bridged pair
/// of legs per call, latching on. With `--shards 0` the legs run on one
/// multi-thread runtime of `--workers` threads; with `--shards W` on W
/// single-thread runtimes, one thread each, both legs of a call on the same
/// one. Prints the ports, then serves until stdin closes.
fn relay_main(o: &Opts) {
    let calls = o.calls[0];
    let pool = tandem_rtp::PortPool::bind(&tandem_rtp::PoolConfig {
        addr: Ipv4Addr::LOCALHOST.into(),
        port_min: o.port_min,
        // Room for 2 pairs per call, plus slack for ports someone else holds.
        port_max: (u32::from(o.port_min) + 4 * calls as u32 + 400).min(65_535) as u16,
        recv_buffer: None,
    })
    .expect("pool");
    // Either one work-stealing runtime, or dedicated media threads.
    let (shared_rt, media) = if o.shards == 0 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(o.workers.max(1))
            .enable_all()
            .build()
            .expect("runtime");
        (Some(rt), None)
    } else {
        let m = tandem_rtp::MediaRuntime::new(o.shards).expect("media threads");
        (None, Some(m))
    };
    let mut legs = Vec::with_capacity(calls);
    let mut line = String::from("PORTS");
    for i in 0..calls {
        let start = |id: u32| {
            let pair = pool.allocate().expect("pool big enough");
            let cfg = tandem_rtp::LegConfig::new(tandem_rtp::LegId(id));
            match (&shared_rt, &media) {
                (_, Some(m)) => m.start_leg(i as u64, pair, cfg, None),
                (Some(rt), None) => {
                    let _enter = rt.enter();
                    tandem_rtp::Leg::start(pair, cfg, None)
                }
                (None, None) => unreachable!("one runtime or the other"),
            }
            .expect("leg")
        };
        let a = start(2 * i as u32);
        let b = start(2 * i as u32 + 1);
        tandem_rtp::bridge(&a, &b);
        line.push_str(&format!(
            " {} {}",
            a.local_rtp_addr().port(),
            b.local_rtp_addr().port()
        ));
        legs.push((a, b));
    }
    println!("{line}");
    let _ = std::io::stdout().flush();
    // Serve until the generator closes our stdin; "MARK" starts the counters.
    let totals = |legs: &[(tandem_rtp::Leg, tandem_rtp::Leg)]| {
        let mut t = [0u64; 5];
        for leg in legs.iter().flat_map(|(a, b)| [a, b]) {
            let st = leg.stats();
            let v = [
                st.rx_packets,
                st.tx_packets,
                st.tx_errors,
                st.not_relayed,
                st.rejected,
            ];
            for (t, v) in t.iter_mut().zip(v) {
                *t += v;
            }
        }
        t
    };
    let mut mark = [0u64; 5];
    let mut s = String::new();
    while std::io::stdin()
        .read_line(&mut s)
        .map(|n| n > 0)
        .unwrap_or(false)
    {
        if s.trim() == "MARK" {
            mark = totals(&legs);
        }
        s.clear();
    }
    let t = totals(&legs);
    let d: Vec<String> = t
        .iter()
        .zip(mark)
        .map(|(t, m)| (t - m).to_string())
        .collect();
    println!("STATS {}", d.join(" "));
    let _ = std::io::stdout().flush();
    // Exit without tearing down: the process ends here.
    std::process::exit(0);
}

// ------------------------------------------------------------ generator side

/// CPU seconds (user + system) of a process, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of stat; `rest` starts at field 3. USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// Busy, total and softirq jiffies of the whole machine, from /proc/stat.
fn machine_jiffies() -> (f64, f64, f64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<f64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    (total - idle, total, v.get(6).copied().unwrap_or(0.0))
}

struct Relay {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
    ports: Vec<(u16, u16)>,
}

impl Relay {
    /// Start the relay's counters now (after priming).
    fn mark(&mut self) {
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = stdin.write_all(b"MARK\n");
            let _ = stdin.flush();
        }
    }

    /// Close the relay's stdin and read its totals: packets received,
    /// sent, send errors, not relayed, rejected.
    fn finish(mut self) -> [u64; 5] {
        drop(self.child.stdin.take());
        let mut line = String::new();
        let _ = self.out.read_line(&mut line);
        let _ = self.child.wait();
        let mut v = [0u64; 5];
        for (slot, x) in v.iter_mut().zip(line.split_whitespace().skip(1)) {
            *slot = x.parse().unwrap_or(0);
        }
        v
    }
}

fn start_relay(o: &Opts, calls: usize) -> Relay {
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .args([
            "relay",
            "--calls",
            &calls.to_string(),
            "--port-min",
            &o.port_min.to_string(),
            "--workers",
            &o.workers.to_string(),
            "--shards",
            &o.shards.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn relay");
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    out.read_line(&mut line).expect("relay output");
    let nums: Vec<u16> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|p| p.parse().ok())
        .collect();
    assert_eq!(nums.len(), 2 * calls, "relay did not start: {line:?}");
    let ports = nums.chunks(2).map(|c| (c[0], c[1])).collect();
    Relay { child, out, ports }
}

fn bench_socket() -> UdpSocket {
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).expect("socket");
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .expect("bind");
    let s: UdpSocket = s.into();
    // As root, a 64 MiB receive buffer (about a second of traffic): the
    // generator is one thread, and if other work starves it for a while its
    // own sockets must not drop what the relay delivered.
    let _ = setsockopt(&s, sockopt::RcvBufForce, &(64 << 20));
    s
}

fn v4(a: SocketAddr) -> SocketAddrV4 {
    match a {
        SocketAddr::V4(v) => v,
        SocketAddr::V6(_) => unreachable!("loopback v4 only"),
    }
}

/// Wall-clock nanoseconds (CLOCK_REALTIME, the clock of kernel receive
/// timestamps).
fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Counts and latency histograms of everything received.
struct RxStats {
    received: u64,
    reordered: u64,
    /// Send stamp -> kernel arrival at our socket (SO_TIMESTAMPNS).
    hist: Vec<u64>,
    /// Send stamp -> our receive loop (adds the generator's own pacing).
    app: Vec<u64>,
    /// Last sequence number seen per (call, direction).
    last_seq: Vec<u32>,
    /// First sequence number and packets received per (call, direction).
    first_seq: Vec<u32>,
    got: Vec<u32>,
    /// Packets without the generator's mark (ringback, RTCP, strays).
    foreign: u64,
    /// Datagrams our own sockets dropped (SO_RXQ_OVFL), per socket.
    dropped: Vec<u32>,
}

/// The generator's receive side: drains sockets without blocking, on the
/// sending thread. A receiver asleep on a socket would be woken by every
/// packet the relay sends, and on loopback the relay's `sendto` pays for
/// that wakeup (and is preempted by it); latency comes from the kernel's
/// arrival timestamp, so draining late does not count in it.
struct Receiver {
    hdrs: MultiHeaders<SockaddrIn>,
    bufs: Vec<[u8; 256]>,
    lens: [usize; BATCH],
    kts: [u64; BATCH],
    calls: usize,
    st: RxStats,
}

impl Receiver {
    fn new(calls: usize) -> Self {
        Receiver {
            hdrs: MultiHeaders::<SockaddrIn>::preallocate(
                BATCH,
                Some(nix::cmsg_space!(TimeSpec, u32)),
            ),
            bufs: vec![[0u8; 256]; BATCH],
            lens: [0; BATCH],
            kts: [0; BATCH],
            calls,
            st: RxStats {
                received: 0,
                reordered: 0,
                hist: vec![0; BUCKETS],
                app: vec![0; BUCKETS],
                last_seq: vec![0; 2 * calls],
                first_seq: vec![0; 2 * calls],
                got: vec![0; 2 * calls],
                foreign: 0,
                dropped: Vec::new(),
            },
        }
    }

    /// Read everything queued on socket number `idx`.
    fn drain(&mut self, idx: usize, sock: &UdpSocket) {
        loop {
            let n = self.batch(idx, sock);
            if n == 0 {
                return;
            }
            self.account(n);
            if n < BATCH {
                return;
            }
        }
    }

    fn batch(&mut self, idx: usize, sock: &UdpSocket) -> usize {
        if self.st.dropped.len() <= idx {
            self.st.dropped.resize(idx + 1, 0);
        }
        let mut ovfl = self.st.dropped[idx];
        let mut iovs: Vec<[IoSliceMut<'_>; 1]> = self
            .bufs
            .iter_mut()
            .map(|b| [IoSliceMut::new(&mut b[..])])
            .collect();
        let Ok(res) = recvmmsg(
            sock.as_raw_fd(),
            &mut self.hdrs,
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        ) else {
            return 0;
        };
        let mut n = 0;
        for (i, m) in res.enumerate() {
            self.lens[i] = m.bytes;
            self.kts[i] = 0;
            if let Ok(cmsgs) = m.cmsgs() {
                for c in cmsgs {
                    match c {
                        ControlMessageOwned::ScmTimestampns(t) => {
                            self.kts[i] = t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64;
                        }
                        ControlMessageOwned::RxqOvfl(d) => ovfl = ovfl.max(d),
                        _ => {}
                    }
                }
            }
            n += 1;
        }
        self.st.dropped[idx] = ovfl;
        n
    }

    fn account(&mut self, n: usize) {
        let now = wall_ns();
        let st = &mut self.st;
        for ((b, &len), &kt) in self.bufs.iter().zip(&self.lens).zip(&self.kts).take(n) {
            if len < PKT {
                continue;
            }
            let p = &b[12..];
            let call = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize;
            let dir = usize::from(p[4] & 1);
            let seq = u32::from_be_bytes([p[5], p[6], p[7], p[8]]);
            let sent = u64::from_be_bytes([p[9], p[10], p[11], p[12], p[13], p[14], p[15], p[16]]);
            if p[17..21] != MAGIC || call >= self.calls {
                st.foreign += 1;
                continue;
            }
            if seq == 0 {
                continue; // priming packet
            }
            st.received += 1;
            let i = 2 * call + dir;
            if st.last_seq.len() <= i {
                let n = (i + 1).next_power_of_two();
                st.last_seq.resize(n, 0);
                st.first_seq.resize(n, 0);
                st.got.resize(n, 0);
            }
            let last = &mut st.last_seq[i];
            if seq <= *last {
                st.reordered += 1;
            }
            *last = seq;
            if st.first_seq[i] == 0 || seq < st.first_seq[i] {
                st.first_seq[i] = seq;
            }
            st.got[i] += 1;
            let arrived = if kt == 0 { now } else { kt };
            let lat = arrived.saturating_sub(sent) / BUCKET_NS;
            st.hist[(lat as usize).min(BUCKETS - 1)] += 1;
            let app = now.saturating_sub(sent) / BUCKET_NS;
            st.app[(app as usize).min(BUCKETS - 1)] += 1;
        }
    }
}

/// One direction of one call: socket index and destination.
#[derive(Clone, Copy)]
struct Flow {
    call: u32,
    dir: u8,
    dst: SockaddrIn,
}

fn fill_packet(buf: &mut [u8], f: &Flow, seq: u32, sent_ns: u64) {
    tandem_rtp::rtp::write_header(
        buf,
        false,
        0,
        seq as u16,
        seq.wrapping_mul(160),
        0x1000 + f.call * 2 + u32::from(f.dir),
    );
    let p = &mut buf[12..PKT];
    p[..4].copy_from_slice(&f.call.to_be_bytes());
    p[4] = f.dir;
    p[5..9].copy_from_slice(&seq.to_be_bytes());
    p[9..17].copy_from_slice(&sent_ns.to_be_bytes());
    p[17..21].copy_from_slice(&MAGIC);
}

/// Send one packet for each flow in `flows` (all from `sock`), batched.
fn send_batch(
    sock: &UdpSocket,
    flows: &[Flow],
    seq: u32,
    bufs: &mut [[u8; PKT]],
    hdrs: &mut MultiHeaders<SockaddrIn>,
) -> u64 {
    let mut sent = 0;
    for chunk in flows.chunks(BATCH) {
        let now = wall_ns();
        for (b, f) in bufs.iter_mut().zip(chunk) {
            fill_packet(b, f, seq, now);
        }
        sent += send_filled(sock, &bufs[..chunk.len()], chunk, hdrs);
    }
    sent
}

/// Send `bufs[i]` to `flows[i].dst` for every `i`, in `sendmmsg` calls
/// (the rest again after a partial send; a datagram refused is skipped).
fn send_filled(
    sock: &UdpSocket,
    bufs: &[[u8; PKT]],
    flows: &[Flow],
    hdrs: &mut MultiHeaders<SockaddrIn>,
) -> u64 {
    let iovs: Vec<[IoSlice<'_>; 1]> = bufs.iter().map(|b| [IoSlice::new(b)]).collect();
    let addrs: Vec<Option<SockaddrIn>> = flows.iter().map(|f| Some(f.dst)).collect();
    let (mut off, mut sent) = (0, 0);
    while off < addrs.len() {
        match sendmmsg(
            sock.as_raw_fd(),
            hdrs,
            &iovs[off..],
            &addrs[off..],
            [],
            MsgFlags::empty(),
        ) {
            Ok(r) => {
                let k = r.count();
                off += k.max(1);
                sent += k as u64;
            }
            Err(_) => off += 1,
        }
    }
    sent
}

struct Report {
    calls: usize,
    duration: f64,
    direct: bool,
    sent: u64,
    received: u64,
    reordered: u64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    app_p99_us: f64,
    relay_cpu: f64,
    gen_cpu: f64,
    /// CPU used by everything else on the machine during the run.
    other_cpu: f64,
    /// Softirq time (loopback delivery not charged to a process).
    softirq_cpu: f64,
    /// Datagrams dropped by the generator's own full sockets.
    gen_drops: u64,
    /// Relay sends that failed, and packets it received but did not relay.
    relay_errors: u64,
    /// Packets sent that the relay never read (its sockets overflowed
    /// while it was behind).
    in_drops: u64,
}

impl Report {
    fn loss(&self) -> u64 {
        self.sent.saturating_sub(self.received)
    }

    fn print_header(&self) {
        println!(
            "{:>6} {:>4} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>6} {:>6} {:>6}",
            "calls",
            "mode",
            "sent",
            "relayed/s",
            "lost",
            "in-drop",
            "gendrop",
            "rlyerr",
            "reorder",
            "p50us",
            "p99us",
            "p999us",
            "maxus",
            "appp99",
            "relay%",
            "gen%",
            "sirq%",
            "other%"
        );
    }

    fn print(&self) {
        println!(
            "{:>6} {:>4} {:>9} {:>9.0} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7.0} {:>7.0} {:>7.0} {:>7.0} {:>7.0} {:>6.0} {:>6.0} {:>6.0} {:>6.0}",
            self.calls,
            if self.direct { "dir" } else { "rly" },
            self.sent,
            self.received as f64 / self.duration,
            self.loss(),
            self.in_drops,
            self.gen_drops,
            self.relay_errors,
            self.reordered,
            self.p50_us,
            self.p99_us,
            self.p999_us,
            self.max_us,
            self.app_p99_us,
            self.relay_cpu * 100.0,
            self.gen_cpu * 100.0,
            self.softirq_cpu * 100.0,
            self.other_cpu * 100.0,
        );
    }
}

fn percentile(hist: &[u64], total: u64, q: f64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let want = ((total as f64) * q).ceil() as u64;
    let mut acc = 0;
    for (i, &c) in hist.iter().enumerate() {
        acc += c;
        if acc >= want {
            return ((i as u64 + 1) * BUCKET_NS) as f64 / 1000.0;
        }
    }
    (BUCKETS as u64 * BUCKET_NS) as f64 / 1000.0
}

fn run_once(o: &Opts, calls: usize) -> Report {
    let mut relay = (!o.direct).then(|| start_relay(o, calls));
    let k = o.sockets;
    let a_socks: Vec<UdpSocket> = (0..k).map(|_| bench_socket()).collect();
    let b_socks: Vec<UdpSocket> = (0..k).map(|_| bench_socket()).collect();
    let addr = |s: &UdpSocket| SockaddrIn::from(v4(s.local_addr().expect("addr")));
    // Flows: A side sends to the relay's leg A (which relays to B's socket), and back.
    let mut a_flows: Vec<Vec<Flow>> = vec![Vec::new(); k];
    let mut b_flows: Vec<Vec<Flow>> = vec![Vec::new(); k];
    for call in 0..calls {
        let s = call % k;
        let (da, db) = match &relay {
            Some(r) => {
                let (pa, pb) = r.ports[call];
                (
                    SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::LOCALHOST, pa)),
                    SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::LOCALHOST, pb)),
                )
            }
            None => (addr(&b_socks[s]), addr(&a_socks[s])),
        };
        a_flows[s].push(Flow {
            call: call as u32,
            dir: 0,
            dst: da,
        });
        b_flows[s].push(Flow {
            call: call as u32,
            dir: 1,
            dst: db,
        });
    }
    let mut bufs = vec![[0u8; PKT]; BATCH];
    let mut hdrs = MultiHeaders::<SockaddrIn>::preallocate(BATCH, None);

    // Prime: one packet per flow so the relay latches onto our sockets.
    for s in 0..k {
        send_batch(&a_socks[s], &a_flows[s], 0, &mut bufs, &mut hdrs);
        send_batch(&b_socks[s], &b_flows[s], 0, &mut bufs, &mut hdrs);
    }
    std::thread::sleep(Duration::from_millis(300));

    if let Some(r) = relay.as_mut() {
        r.mark();
    }
    let mut receiver = Receiver::new(calls);
    for (i, sock) in a_socks.iter().chain(&b_socks).enumerate() {
        let _ = setsockopt(sock, sockopt::ReceiveTimestampns, &true);
        let _ = setsockopt(sock, sockopt::RxqOvfl, &1);
        receiver.drain(i, sock);
    }
    receiver.st = Receiver::new(calls).st;

    // Spread the calls over 1 ms slots of the 20 ms period.
    let slots = PERIOD.as_millis() as usize;
    let mut slot_flows: Vec<Vec<Vec<Flow>>> = vec![vec![Vec::new(); 2 * k]; slots];
    for s in 0..k {
        for f in &a_flows[s] {
            slot_flows[f.call as usize * slots / calls.max(1)][s].push(*f);
        }
        for f in &b_flows[s] {
            slot_flows[f.call as usize * slots / calls.max(1)][k + s].push(*f);
        }
    }
    let self_pid = std::process::id().to_string();
    let relay_pid = relay.as_ref().map(|r| r.child.id().to_string());
    let cpu0 = (
        relay_pid.as_deref().map_or(0.0, cpu_seconds),
        cpu_seconds(&self_pid),
    );
    let m0 = machine_jiffies();
    let periods = o.duration * 1000 / PERIOD.as_millis() as u64;
    let t0 = Instant::now();
    let mut sent = 0u64;
    for period in 0..periods {
        let seq = period as u32 + 1;
        for (slot, flows) in slot_flows.iter().enumerate() {
            let due = t0 + PERIOD * period as u32 + Duration::from_millis(slot as u64);
            while let Some(wait) = due.checked_duration_since(Instant::now()) {
                for (i, sock) in a_socks.iter().chain(&b_socks).enumerate() {
                    receiver.drain(i, sock);
                }
                std::thread::sleep(wait.min(POLL));
            }
            for (si, f) in flows.iter().enumerate() {
                if f.is_empty() {
                    continue;
                }
                let sock = if si < k {
                    &a_socks[si]
                } else {
                    &b_socks[si - k]
                };
                sent += send_batch(sock, f, seq, &mut bufs, &mut hdrs);
            }
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu1 = (
        relay_pid.as_deref().map_or(0.0, cpu_seconds),
        cpu_seconds(&self_pid),
    );
    let m1 = machine_jiffies();
    // Stragglers.
    let end = Instant::now() + Duration::from_millis(300);
    while Instant::now() < end {
        for (i, sock) in a_socks.iter().chain(&b_socks).enumerate() {
            receiver.drain(i, sock);
        }
        std::thread::sleep(POLL);
    }
    let RxStats {
        received,
        reordered,
        hist,
        app,
        dropped,
        ..
    } = receiver.st;
    let relay_stats = relay.map(Relay::finish).unwrap_or_default();
    let max = hist
        .iter()
        .rposition(|&c| c > 0)
        .map_or(0.0, |i| ((i as u64 + 1) * BUCKET_NS) as f64 / 1000.0);
    Report {
        calls,
        duration: elapsed,
        direct: o.direct,
        sent,
        received,
        reordered,
        p50_us: percentile(&hist, received, 0.50),
        p99_us: percentile(&hist, received, 0.99),
        p999_us: percentile(&hist, received, 0.999),
        max_us: max,
        app_p99_us: percentile(&app, received, 0.99),
        relay_cpu: (cpu1.0 - cpu0.0) / elapsed,
        gen_cpu: (cpu1.1 - cpu0.1) / elapsed,
        // Jiffies are USER_HZ (100/s) summed over CPUs.
        other_cpu: ((m1.0 - m0.0 - (m1.2 - m0.2)) / 100.0 - (cpu1.0 - cpu0.0) - (cpu1.1 - cpu0.1))
            .max(0.0)
            / elapsed,
        softirq_cpu: (m1.2 - m0.2) / 100.0 / elapsed,
        gen_drops: dropped.iter().map(|&d| u64::from(d)).sum(),
        relay_errors: relay_stats[2] + relay_stats[3],
        in_drops: if o.direct {
            0
        } else {
            sent.saturating_sub(relay_stats[0])
        },
    }
}

fn sweep(o: &Opts) {
    let mut best = None;
    let mut first = true;
    for &n in &o.calls {
        let r = run_once(o, n);
        if first {
            r.print_header();
            first = false;
        }
        r.print();
        if r.loss() == 0 && r.p99_us < 2000.0 {
            best = Some(n);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    match best {
        Some(n) => println!("highest call count with zero loss and p99 < 2 ms: {n}"),
        None => println!("no call count met zero loss and p99 < 2 ms"),
    }
}

// ------------------------------------------------------- calls over SIP

/// `rtp-bench sip`: media for calls that SIPp sets up through Tandem
/// (`scripts/bench-media`). The generator binds one socket for the callers
/// (A) and one for the callees (B) and prints `PORTS <a> <b>`; SIPp puts
/// those ports in every SDP it sends (`-set gen PORT`) and writes one line
/// per call to an event file as soon as it knows where Tandem wants the
/// media: the caller scenario `A <ip> <port>` from Tandem's SDP answer in the
/// 200, the callee scenario `B <ip> <port>` from Tandem's SDP offer, written
/// when the ACK arrives. The generator tails those files and, for each line,
/// starts one flow: `--talk` seconds of G.711-sized packets every 20 ms, each
/// stamped with its flow, sequence number and send time. Everything that
/// comes back is matched by the stamp, so loss and added latency are
/// measured per packet through the engine. Stops on `STOP` or EOF on stdin
/// (or after `--max-secs`), then reports.
mod sip {
    use std::fs::File;
    use std::io::{BufRead, Read};
    use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use nix::sys::socket::{MultiHeaders, SockaddrIn, setsockopt, sockopt};

    use super::{
        BATCH, BUCKET_NS, Flow, PERIOD, PKT, POLL, Receiver, RxStats, bench_socket, cpu_seconds,
        fill_packet, machine_jiffies, percentile, send_filled, v4,
    };

    struct Opts {
        events: Vec<String>,
        talk: u32,
        dut: Option<String>,
        max_secs: u64,
    }

    fn parse(args: &[String]) -> Opts {
        let mut o = Opts {
            events: Vec::new(),
            talk: 10,
            dut: None,
            max_secs: 600,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = || it.next().cloned().unwrap_or_else(|| super::usage());
            match a.as_str() {
                "--events" => o.events.push(val()),
                "--talk" => o.talk = val().parse().unwrap_or_else(|_| super::usage()),
                "--dut" => o.dut = Some(val()),
                "--max-secs" => o.max_secs = val().parse().unwrap_or_else(|_| super::usage()),
                _ => super::usage(),
            }
        }
        if o.events.is_empty() || o.talk == 0 {
            super::usage()
        }
        o
    }

    /// An event file SIPp appends to: read what is new, line by line.
    struct Tail {
        path: String,
        file: Option<File>,
        partial: Vec<u8>,
    }

    impl Tail {
        /// New complete lines since the last call: `(side, destination)`.
        fn poll(&mut self, out: &mut Vec<(u8, SocketAddrV4)>, bad: &mut u64) {
            if self.file.is_none() {
                self.file = File::open(&self.path).ok();
            }
            let Some(f) = self.file.as_mut() else { return };
            let mut buf = [0u8; 8192];
            loop {
                match f.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => self.partial.extend_from_slice(&buf[..n]),
                }
            }
            let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
                return;
            };
            let lines: Vec<u8> = self.partial.drain(..=end).collect();
            for line in lines.lines().map_while(Result::ok) {
                let mut w = line.split_whitespace();
                let side = match w.next() {
                    Some("A") => 0,
                    Some("B") => 1,
                    _ => continue,
                };
                let ip = w.next().and_then(|v| v.parse::<Ipv4Addr>().ok());
                let port = w.next().and_then(|v| v.parse::<u16>().ok());
                match (ip, port) {
                    (Some(ip), Some(port)) if port != 0 => {
                        out.push((side, SocketAddrV4::new(ip, port)))
                    }
                    _ => *bad += 1,
                }
            }
        }
    }

    /// One direction of one call, being sent.
    struct Talk {
        flow: Flow,
        seq: u32,
        left: u32,
    }

    /// One second of the run, for the steady-state window.
    #[derive(Clone, Copy, Default)]
    struct Second {
        flows: usize,
        sent: u64,
        received: u64,
        dut_cpu: f64,
        gen_cpu: f64,
        busy: f64,
        softirq: f64,
    }

    /// Send one packet for each talk in `talks` from `sock`, each with its
    /// own next sequence number; talks with nothing left are removed.
    fn send_talks(
        sock: &UdpSocket,
        talks: &mut Vec<Talk>,
        bufs: &mut [[u8; PKT]],
        hdrs: &mut MultiHeaders<SockaddrIn>,
    ) -> u64 {
        let mut sent = 0;
        let mut flows = Vec::with_capacity(BATCH);
        for chunk in talks.chunks_mut(BATCH) {
            let now = super::wall_ns();
            flows.clear();
            for (b, t) in bufs.iter_mut().zip(chunk.iter_mut()) {
                t.seq += 1;
                t.left -= 1;
                fill_packet(b, &t.flow, t.seq, now);
                flows.push(t.flow);
            }
            sent += send_filled(sock, &bufs[..chunk.len()], &flows, hdrs);
        }
        talks.retain(|t| t.left > 0);
        sent
    }

    pub(super) fn main(args: &[String]) {
        let o = parse(args);
        let socks = [bench_socket(), bench_socket()];
        for s in &socks {
            let _ = setsockopt(s, sockopt::ReceiveTimestampns, &true);
            let _ = setsockopt(s, sockopt::RxqOvfl, &1);
        }
        let port = |s: &UdpSocket| v4(s.local_addr().expect("addr")).port();
        println!("PORTS {} {}", port(&socks[0]), port(&socks[1]));
        let _ = std::io::Write::flush(&mut std::io::stdout());

        let stop = Arc::new(AtomicBool::new(false));
        {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut line = String::new();
                while std::io::stdin().read_line(&mut line).unwrap_or(0) > 0 {
                    if line.trim() == "STOP" {
                        break;
                    }
                    line.clear();
                }
                stop.store(true, Ordering::Relaxed);
            });
        }

        let mut tails: Vec<Tail> = o
            .events
            .iter()
            .map(|p| Tail {
                path: p.clone(),
                file: None,
                partial: Vec::new(),
            })
            .collect();
        let mut receiver = Receiver::new(0);
        receiver.calls = usize::MAX / 4;
        let slots = PERIOD.as_millis() as usize;
        // Per 1 ms slot of the 20 ms period: the talks of each socket.
        let mut wheel: Vec<[Vec<Talk>; 2]> = (0..slots).map(|_| [Vec::new(), Vec::new()]).collect();
        let mut bufs = vec![[0u8; PKT]; BATCH];
        let mut hdrs = MultiHeaders::<SockaddrIn>::preallocate(BATCH, None);
        let mut bad_events = 0u64;
        let mut flows = 0u32;
        let mut sent_per_flow: Vec<u32> = Vec::new();
        // Per flow: side, destination, start (ms into the run).
        let mut flow_info: Vec<(u8, SocketAddrV4, u64)> = Vec::new();
        let mut sent = 0u64;
        let mut peak = 0usize;
        let mut seconds: Vec<Second> = Vec::new();
        let mut last_sec = (0u64, 0u64, 0.0, 0.0, machine_jiffies());
        let self_pid = std::process::id().to_string();
        let dut_cpu = || o.dut.as_deref().map_or(0.0, cpu_seconds);
        last_sec.2 = dut_cpu();
        last_sec.3 = cpu_seconds(&self_pid);
        let t0 = Instant::now();
        let mut tick = 0u64;
        let mut next_slot = 0usize;
        // Calls learned from the event files, not started yet.
        let mut pending: Vec<(u8, SocketAddrV4)> = Vec::new();
        while !stop.load(Ordering::Relaxed) && t0.elapsed().as_secs() < o.max_secs {
            // Wait for the next 1 ms tick, draining what arrives meanwhile.
            let due = t0 + Duration::from_millis(tick);
            while let Some(wait) = due.checked_duration_since(Instant::now()) {
                for (i, sock) in socks.iter().enumerate() {
                    receiver.drain(i, sock);
                }
                std::thread::sleep(wait.min(POLL));
            }
            if tick.is_multiple_of(5) {
                for t in &mut tails {
                    t.poll(&mut pending, &mut bad_events);
                }
            }
            let slot = (tick % slots as u64) as usize;
            // New flows go to the slots in turn (the first packet within
            // 20 ms): the load stays spread over the period, as real
            // callers' packets are, instead of bunching on the ticks the
            // event files are read.
            for (side, dst) in pending.drain(..) {
                next_slot = (next_slot + 1) % slots;
                let flow = Flow {
                    call: flows,
                    dir: side,
                    dst: SockaddrIn::from(dst),
                };
                flows += 1;
                sent_per_flow.push(o.talk * 50);
                flow_info.push((side, dst, t0.elapsed().as_millis() as u64));
                wheel[next_slot][usize::from(side)].push(Talk {
                    flow,
                    seq: 0,
                    left: o.talk * 50,
                });
            }
            for (side, sock) in socks.iter().enumerate() {
                let talks = &mut wheel[slot][side];
                if !talks.is_empty() {
                    sent += send_talks(sock, talks, &mut bufs, &mut hdrs);
                }
            }
            tick += 1;
            if tick.is_multiple_of(1000) {
                let active: usize = wheel.iter().map(|w| w[0].len() + w[1].len()).sum();
                peak = peak.max(active);
                let (d, g, m) = (dut_cpu(), cpu_seconds(&self_pid), machine_jiffies());
                let s = Second {
                    flows: active,
                    sent: sent - last_sec.0,
                    received: receiver.st.received - last_sec.1,
                    dut_cpu: d - last_sec.2,
                    gen_cpu: g - last_sec.3,
                    busy: (m.0 - last_sec.4.0) / 100.0,
                    softirq: (m.2 - last_sec.4.2) / 100.0,
                };
                eprintln!(
                    "t={:>3}s flows={:>5} sent/s={:>6} received/s={:>6} dut={:>3.0}% gen={:>3.0}% machine={:>3.0}% softirq={:>3.0}%",
                    tick / 1000,
                    s.flows,
                    s.sent,
                    s.received,
                    s.dut_cpu * 100.0,
                    s.gen_cpu * 100.0,
                    s.busy * 100.0,
                    s.softirq * 100.0
                );
                seconds.push(s);
                last_sec = (sent, receiver.st.received, d, g, m);
            }
        }
        // Flows cut short by the stop: count what they really sent.
        for w in &wheel {
            for t in w.iter().flatten() {
                sent_per_flow[t.flow.call as usize] -= t.left;
            }
        }
        let end = Instant::now() + Duration::from_millis(300);
        while Instant::now() < end {
            for (i, sock) in socks.iter().enumerate() {
                receiver.drain(i, sock);
            }
            std::thread::sleep(POLL);
        }
        report(
            &o,
            receiver.st,
            Totals {
                sent_per_flow,
                flow_info,
                sent,
                peak,
                seconds,
                bad_events,
            },
        );
    }

    /// What the sending side counted over the run.
    struct Totals {
        /// Packets each flow sent.
        sent_per_flow: Vec<u32>,
        /// Per flow: side, destination, start (ms into the run).
        flow_info: Vec<(u8, SocketAddrV4, u64)>,
        sent: u64,
        /// Most flows sending at once.
        peak: usize,
        seconds: Vec<Second>,
        /// Event lines that could not be read.
        bad_events: u64,
    }

    fn report(o: &Opts, st: RxStats, t: Totals) {
        let (sent_per_flow, flow_info, seconds) = (&t.sent_per_flow, &t.flow_info, &t.seconds);
        let (sent, peak, bad_events) = (t.sent, t.peak, t.bad_events);
        let mut lost_start = 0u64;
        let mut lost_after = 0u64;
        let mut flows_lossy = 0u64;
        for (id, &want) in sent_per_flow.iter().enumerate() {
            // Each flow has one direction: find its slot.
            let (got, first) = [2 * id, 2 * id + 1]
                .iter()
                .filter_map(|&i| Some((*st.got.get(i)?, *st.first_seq.get(i)?)))
                .find(|&(g, _)| g > 0)
                .unwrap_or((0, 0));
            let missing = u64::from(want.saturating_sub(got));
            if missing == 0 {
                continue;
            }
            flows_lossy += 1;
            if flows_lossy <= 20 {
                let (side, dst, at) = flow_info[id];
                eprintln!(
                    "lossy flow {id} (side {}, to {dst}, started {at} ms): sent {want}, received {got}, first sequence number received {first}",
                    if side == 0 { "A" } else { "B" }
                );
            }
            let at_start = if got == 0 {
                u64::from(want)
            } else {
                u64::from(first - 1)
            };
            lost_start += at_start.min(missing);
            lost_after += missing - at_start.min(missing);
        }
        // Steady state: the seconds with at least 95 % of the peak flows.
        let steady: Vec<&Second> = seconds
            .iter()
            .filter(|s| peak > 0 && s.flows * 100 >= peak * 95)
            .collect();
        let n = steady.len().max(1) as f64;
        let avg = |f: fn(&Second) -> f64| steady.iter().map(|s| f(s)).sum::<f64>() / n;
        let max = st
            .hist
            .iter()
            .rposition(|&c| c > 0)
            .map_or(0.0, |i| ((i as u64 + 1) * BUCKET_NS) as f64 / 1000.0);
        let gen_drops: u64 = st.dropped.iter().map(|&d| u64::from(d)).sum();
        println!(
            "RESULT flows={} peak_flows={} talk_s={} sent={} received={} lost={} lost_at_start={} lost_after_start={} lossy_flows={} reordered={} foreign={} gen_drops={} bad_events={} p50_us={:.0} p99_us={:.0} p999_us={:.0} max_us={:.0} steady_s={} steady_relayed_per_s={:.0} steady_dut_cpu_pct={:.0} steady_gen_cpu_pct={:.0} steady_machine_pct={:.0} steady_softirq_pct={:.0}",
            sent_per_flow.len(),
            peak,
            o.talk,
            sent,
            st.received,
            sent.saturating_sub(st.received),
            lost_start,
            lost_after,
            flows_lossy,
            st.reordered,
            st.foreign,
            gen_drops,
            bad_events,
            percentile(&st.hist, st.received, 0.50),
            percentile(&st.hist, st.received, 0.99),
            percentile(&st.hist, st.received, 0.999),
            max,
            steady.len(),
            avg(|s| s.received as f64),
            avg(|s| s.dut_cpu) * 100.0,
            avg(|s| s.gen_cpu) * 100.0,
            avg(|s| s.busy) * 100.0,
            avg(|s| s.softirq) * 100.0,
        );
    }
}
