//! The call history's cost per call, alone: RATE one-destination calls a
//! second for SECONDS, in real time, each queued the way a `<Dial>` call
//! queues it (the parent's ringing, in-progress and completed; the
//! child's initiated, ringing, in-progress and completed; one trace of the
//! size a bench call writes). Reports the CPU time of the writer thread
//! and of the whole process per call, and the database's size per call.
//!
//! `cargo run --release -p tandem-engine --example history-load -- [RATE] [SECONDS]`

#[path = "support/proc_stat.rs"]
mod proc_stat;

use std::time::{Duration, Instant, SystemTime};

use tandem_engine::history::{CallRecord, History};
use tandem_webhook::{CallStatus, Direction};

fn writer_ticks() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim() == "tandem-history")
        })
        .map(|t| std::fs::read_to_string(t.path().join("stat")).map_or(0, |s| proc_stat::ticks(&s)))
        .sum()
}

fn record(sid: &str, parent: Option<&str>, status: CallStatus, at: SystemTime) -> CallRecord {
    CallRecord {
        sid: sid.to_owned(),
        parent_sid: parent.map(str::to_owned),
        from: "sipp".into(),
        to: if parent.is_some() { "uas" } else { "15550001" }.into(),
        direction: if parent.is_some() {
            Direction::OutboundDial
        } else {
            Direction::Inbound
        },
        status,
        caller_name: Some("sipp".into()),
        forwarded_from: None,
        answered_by: None,
        duration: (status == CallStatus::Completed).then_some(0),
        at,
    }
}

#[allow(clippy::print_stdout)] // an example reports on stdout
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rate: u64 = args.next().map_or(Ok(3000), |a| a.parse())?;
    let secs: u64 = args.next().map_or(Ok(30), |a| a.parse())?;
    let dir = std::env::temp_dir().join(format!("tandem-history-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("tandem.db");
    let history = History::open(&path, None)?;
    // The shape and size of a bench call's trace (854 bytes).
    let trace = |sid: &str| {
        format!(
            r#"{{"start_ms":1796585775503,"legs":[{{"call_id":"5-19757@127.0.0.1","who":"caller","peer":"127.0.0.1:40786"}},{{"call_id":"758726535482b974788f2173","who":"uas@127.0.0.1:47549","peer":"127.0.0.1:47549"}}],"sip":[{{"t":0,"leg":0,"dir":"in","what":"INVITE"}},{{"t":0,"leg":0,"dir":"out","what":"200 OK"}},{{"t":0,"leg":1,"dir":"out","what":"INVITE"}},{{"t":1,"leg":0,"dir":"in","what":"ACK"}},{{"t":1,"leg":1,"dir":"in","what":"180 Ringing"}},{{"t":1,"leg":1,"dir":"in","what":"200 OK"}},{{"t":1,"leg":1,"dir":"out","what":"ACK"}},{{"t":1,"leg":0,"dir":"in","what":"BYE"}},{{"t":1,"leg":0,"dir":"out","what":"200 OK"}},{{"t":1,"leg":1,"dir":"out","what":"BYE"}}],"sip_dropped":0,"hooks":[{{"t":0,"kind":"twiml","url":"file:///tmp/tandem-bench/tandem/dial1.xml","method":"","body":"<Response><Dial><Sip>sip:uas@127.0.0.1:47549</Sip></Dial></Response>\n"}}],"hooks_dropped":0,"sid":"{sid}"}}"#
        )
    };
    let (p0, w0) = (proc_stat::self_ticks(), writer_ticks());
    let start = Instant::now();
    let total = rate * secs;
    let mut made = 0u64;
    while made < total {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while made < due.min(total) {
            let now = SystemTime::now();
            // Each call makes its SIDs with its own generator, as a call
            // task does.
            let mut ids = tandem_sip::builder::IdGen::from_entropy();
            let parent = ids.sid("CA");
            let child = ids.sid("CA");
            for s in [
                CallStatus::Ringing,
                CallStatus::InProgress,
                CallStatus::Completed,
            ] {
                history.record(record(&parent, None, s, now));
            }
            for s in [
                CallStatus::Initiated,
                CallStatus::Ringing,
                CallStatus::InProgress,
                CallStatus::Completed,
            ] {
                history.record(record(&child, Some(&parent), s, now));
            }
            history.record_trace(parent.clone(), trace(&parent));
            made += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    history.flush();
    let wall = start.elapsed();
    let (p1, w1) = (proc_stat::self_ticks(), writer_ticks());
    let per_call = |t: u64| t as f64 / proc_stat::TICKS_PER_SEC * 1e6 / total as f64;
    let (dropped, written) = history.counts();
    let size: u64 = std::fs::read_dir(&dir)?
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "history-load: {total} calls at {rate}/s in {:.1} s: writer {:.1} us/call, process {:.1} us/call, \
         {written} rows written, {dropped} dropped, files {} B/call",
        wall.as_secs_f64(),
        per_call(w1 - w0),
        per_call(p1 - p0),
        size / total.max(1)
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
