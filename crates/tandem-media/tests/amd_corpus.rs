//! Accuracy of the answering-machine detector over the labelled corpus
//! `scripts/amd-corpus` writes (docs/amd.md). Runs only when `AMD_CORPUS`
//! names the corpus folder:
//!
//! ```text
//! scripts/amd-corpus target/amd-corpus
//! AMD_CORPUS=$PWD/target/amd-corpus cargo test -p tandem-media --test amd_corpus -- --nocapture
//! ```
//!
//! Every `<label>-<n>.raw` file (8 kHz s16le mono) runs through both modes
//! in 20 ms chunks with Twilio's defaults; the expected answers:
//!
//! | label             | Enable          | DetectMessageEnd      |
//! |-------------------|-----------------|-----------------------|
//! | `human`           | `human`         | `human`               |
//! | `machine_beep`    | `machine_start` | `machine_end_beep`    |
//! | `machine_silence` | `machine_start` | `machine_end_silence` |
//! | `machine_nobeep`  | `machine_start` | `machine_end_other`   |
//! | `silence`         | `unknown`       | `unknown`             |
//! | `fax`             | `fax`           | `fax`                 |
//!
//! Fails if either mode is below 95 % or a decision comes after
//! `machineDetectionTimeout`.

use std::collections::BTreeMap;
use std::path::Path;

use tandem_media::{AmdConfig, AmdDetector, AmdMode, AnsweredBy, FRAME_8K};

const LABELS: [&str; 6] = [
    "human",
    "machine_beep",
    "machine_silence",
    "machine_nobeep",
    "silence",
    "fax",
];

fn expected(label: &str, mode: AmdMode) -> AnsweredBy {
    match (label, mode) {
        ("human", _) => AnsweredBy::Human,
        ("silence", _) => AnsweredBy::Unknown,
        ("fax", _) => AnsweredBy::Fax,
        (_, AmdMode::Enable) => AnsweredBy::MachineStart,
        ("machine_beep", _) => AnsweredBy::MachineEndBeep,
        ("machine_silence", _) => AnsweredBy::MachineEndSilence,
        _ => AnsweredBy::MachineEndOther,
    }
}

#[derive(Default)]
struct ClassStats {
    count: usize,
    correct: usize,
    times_ms: Vec<u32>,
    wrong: Vec<String>,
}

fn read_pcm(path: &Path) -> Vec<i16> {
    let bytes = std::fs::read(path).expect("read corpus file");
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Runs one mode over the files; returns (correct, total, latest decision).
fn score(files: &[(String, String, Vec<i16>)], mode: AmdMode) -> (usize, usize, u32) {
    let cfg = AmdConfig {
        mode,
        ..AmdConfig::default()
    };
    let mut stats: BTreeMap<&str, ClassStats> = BTreeMap::new();
    let mut latest = 0;
    for (name, label, pcm) in files {
        let mut d = AmdDetector::new(cfg);
        let result = pcm
            .chunks(FRAME_8K)
            .find_map(|c| d.process(c))
            .or_else(|| d.finish())
            .expect("a decision");
        latest = latest.max(result.after_ms);
        let want = expected(label, mode);
        let s = stats.entry(label_key(label)).or_default();
        s.count += 1;
        s.times_ms.push(result.after_ms);
        if result.answered_by == want {
            s.correct += 1;
        } else {
            s.wrong.push(format!(
                "{name}: {} at {} ms (want {})",
                result.answered_by, result.after_ms, want
            ));
        }
    }
    eprintln!("\n{mode:?} (timeout {} ms)", cfg.timeout_ms);
    eprintln!(
        "{:<16} {:>5} {:>7} {:>8} {:>10} {:>8}",
        "class", "files", "correct", "accuracy", "median ms", "max ms"
    );
    let (mut total, mut correct) = (0, 0);
    for label in LABELS {
        let Some(s) = stats.get_mut(label) else {
            continue;
        };
        s.times_ms.sort_unstable();
        let median = s.times_ms[s.times_ms.len() / 2];
        let max = *s.times_ms.last().unwrap_or(&0);
        eprintln!(
            "{:<16} {:>5} {:>7} {:>7.1}% {:>10} {:>8}",
            label,
            s.count,
            s.correct,
            100.0 * s.correct as f64 / s.count as f64,
            median,
            max
        );
        total += s.count;
        correct += s.correct;
    }
    eprintln!(
        "{:<16} {:>5} {:>7} {:>7.1}%",
        "all",
        total,
        correct,
        100.0 * correct as f64 / total.max(1) as f64
    );
    for s in stats.values() {
        for w in &s.wrong {
            eprintln!("  wrong: {w}");
        }
    }
    (correct, total, latest)
}

fn label_key(label: &str) -> &'static str {
    LABELS
        .iter()
        .find(|l| **l == label)
        .copied()
        .expect("known label")
}

#[test]
fn amd_corpus_accuracy() {
    let Some(dir) = std::env::var_os("AMD_CORPUS") else {
        eprintln!("AMD_CORPUS not set: skipping (scripts/amd-corpus writes the corpus)");
        return;
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("AMD_CORPUS is a folder") {
        let path = entry.expect("dir entry").path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".raw") else {
            continue;
        };
        let Some((label, _n)) = stem.rsplit_once('-') else {
            continue;
        };
        assert!(LABELS.contains(&label), "unknown label in {name}");
        files.push((name.to_owned(), label.to_owned(), read_pcm(&path)));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!files.is_empty(), "no .raw files in {dir:?}");

    let timeout = AmdConfig::default().timeout_ms;
    let mut failures = Vec::new();
    for mode in [AmdMode::Enable, AmdMode::DetectMessageEnd] {
        let (correct, total, latest) = score(&files, mode);
        if (correct as f64) < 0.95 * total as f64 {
            failures.push(format!("{mode:?}: {correct}/{total} below 95 %"));
        }
        if latest > timeout {
            failures.push(format!(
                "{mode:?}: a decision at {latest} ms > {timeout} ms"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}
