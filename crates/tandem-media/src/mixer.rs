//! Conference audio mixer for `<Conference>`, sans-IO: the caller pushes
//! each party's decoded PCM as it arrives and calls [`Mixer::tick`] every
//! 20 ms on its own clock; the mixer reads no clock and does no I/O.
//!
//! # Rules
//!
//! - **Parties.** A room holds any number of parties, each named by a
//!   [`PartyId`], added and removed at any time. Each has its own PCM rate:
//!   8000 Hz (G.711 legs) or 48000 Hz (Opus legs). Other rates are refused
//!   ([`MixerError::UnsupportedRate`]).
//! - **Mix rate: 8 kHz** ([`MIX_RATE`]). Telephone conferences are mostly
//!   G.711 legs, so an 8 kHz mix needs no resampling for them, and a
//!   narrowband leg could not hear anything above 4 kHz anyway. The cost is
//!   that two Opus parties hear each other narrowband (the crate's
//!   [`Resampler`] passes up to 3.2 kHz) — the same as through the G.711
//!   bridge. 48 kHz input is brought down to 8 kHz on [`Mixer::push`], and
//!   the mix is brought back up to 48 kHz on [`Mixer::tick`], each party
//!   with its own streaming resamplers (about 2 ms of filter delay each
//!   way).
//! - **Jitter buffer.** [`Mixer::push`] takes any chunk size. Each party
//!   queues at most [`MAX_QUEUED_FRAMES`] frames of 20 ms (60 ms) at the
//!   mix rate; when a push goes beyond that, whole frames are dropped from
//!   the front (the oldest audio) and counted in
//!   [`PartyStats::dropped_frames`]. At a tick, a party with less than a
//!   whole frame queued contributes silence and the tick is counted in
//!   [`PartyStats::underruns`] (a partial frame stays queued for the next
//!   tick).
//! - **N-1 mix.** Each tick takes one frame from every party and gives each
//!   party the sum of everyone else's frame but not its own: the sum over
//!   all contributing parties is computed once in `i32`, and each party's
//!   own frame is subtracted from it, so a tick costs O(N) and not O(N²).
//!   The result saturates to `i16` (a loud room clips, it never wraps
//!   around). Outputs are at each party's own rate (160 samples at 8 kHz,
//!   960 at 48 kHz) and read with [`Mixer::output`] until the next tick.
//! - **Muted** parties contribute nothing but still hear everyone.
//! - **Coach** (Twilio's `coach`): a party coaching another is heard only by
//!   that one party; it is left out of the room's sum and its frame is added
//!   to the coached party's output only. The coach hears everyone. If the
//!   coached party leaves, the coach is heard by no one until
//!   [`Mixer::set_coach`] names another.
//! - **Speaker activity.** [`Mixer::level`] is the RMS of the frame a party
//!   contributed at the last tick (0 when muted or underrun), from which the
//!   engine can derive Twilio's `speaker` events.
//! - **No allocation per tick** once every party has gone through one tick:
//!   all buffers are kept and reused.

use std::collections::{HashMap, VecDeque};

use crate::goertzel;
use crate::resample::Resampler;
use crate::{FRAME_8K, FRAME_48K, RATE_8K, RATE_48K};

/// The rate the room is mixed at, in Hz.
pub const MIX_RATE: u32 = RATE_8K;
/// Samples in one 20 ms frame at [`MIX_RATE`].
pub const MIX_FRAME: usize = FRAME_8K;
/// The most 20 ms frames a party's jitter buffer holds (60 ms).
pub const MAX_QUEUED_FRAMES: usize = 3;

/// Identifies one party of a room (the engine maps its call legs to these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartyId(pub u32);

/// What the mixer refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixerError {
    /// No party with this id is in the room.
    #[error("no party {0:?} in the room")]
    UnknownParty(PartyId),
    /// A party with this id is already in the room.
    #[error("party {0:?} is already in the room")]
    DuplicateParty(PartyId),
    /// Only 8000 and 48000 Hz parties are supported.
    #[error("unsupported party rate {0} Hz (8000 or 48000)")]
    UnsupportedRate(u32),
    /// A party cannot coach itself.
    #[error("party {0:?} cannot coach itself")]
    CoachSelf(PartyId),
}

/// Counters of one party, since it joined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartyStats {
    /// Samples pushed, at the party's own rate.
    pub samples_pushed: u64,
    /// Whole 20 ms frames pushed (`samples_pushed` / frame size).
    pub frames_pushed: u64,
    /// Frames dropped from the front of the jitter buffer because it was
    /// full.
    pub dropped_frames: u64,
    /// Ticks at which less than a whole frame was queued (silence was
    /// contributed instead).
    pub underruns: u64,
}

#[derive(Debug)]
struct Party {
    id: PartyId,
    rate: u32,
    muted: bool,
    /// The party this one coaches, if any.
    coaching: Option<PartyId>,
    /// 48 kHz -> mix rate, for 48 kHz parties.
    down: Option<Resampler>,
    /// Mix rate -> 48 kHz, for 48 kHz parties.
    up: Option<Resampler>,
    /// Output of `down` before it enters the queue.
    scratch: Vec<i16>,
    /// Jitter buffer, at the mix rate.
    queue: VecDeque<i16>,
    /// This tick's contribution, at the mix rate (zeros when silent).
    frame: [i16; MIX_FRAME],
    /// Whether `frame` is in the room's sum.
    in_sum: bool,
    /// This tick's mix for the party, at the mix rate, before saturation.
    mix: [i32; MIX_FRAME],
    /// This tick's output, at the party's rate.
    out: Vec<i16>,
    level: f32,
    stats: PartyStats,
}

impl Party {
    fn frame_len(&self) -> usize {
        if self.rate == RATE_48K {
            FRAME_48K
        } else {
            FRAME_8K
        }
    }
}

/// An audio mixer for one conference room (see the module docs for the
/// rules).
#[derive(Debug)]
pub struct Mixer {
    parties: Vec<Party>,
    /// Position of each party in `parties`.
    index: HashMap<PartyId, usize>,
    /// The room's sum at this tick.
    total: Vec<i32>,
    ticks: u64,
}

impl Default for Mixer {
    fn default() -> Self {
        Mixer::new()
    }
}

impl Mixer {
    /// An empty room.
    pub fn new() -> Self {
        Mixer {
            parties: Vec::new(),
            index: HashMap::new(),
            total: vec![0; MIX_FRAME],
            ticks: 0,
        }
    }

    /// Adds a party whose PCM runs at `rate` Hz (8000 or 48000). It starts
    /// unmuted, coaching no one, with an empty jitter buffer.
    pub fn add_party(&mut self, id: PartyId, rate: u32) -> Result<(), MixerError> {
        if rate != RATE_8K && rate != RATE_48K {
            return Err(MixerError::UnsupportedRate(rate));
        }
        if self.index.contains_key(&id) {
            return Err(MixerError::DuplicateParty(id));
        }
        let wide = rate != MIX_RATE;
        let party = Party {
            id,
            rate,
            muted: false,
            coaching: None,
            down: wide.then(|| Resampler::new(rate, MIX_RATE)),
            up: wide.then(|| Resampler::new(MIX_RATE, rate)),
            scratch: Vec::with_capacity(if wide { MIX_FRAME } else { 0 }),
            queue: VecDeque::with_capacity((MAX_QUEUED_FRAMES + 1) * MIX_FRAME),
            frame: [0; MIX_FRAME],
            in_sum: false,
            mix: [0; MIX_FRAME],
            out: Vec::with_capacity(if wide { FRAME_48K } else { FRAME_8K }),
            level: 0.0,
            stats: PartyStats::default(),
        };
        self.index.insert(id, self.parties.len());
        self.parties.push(party);
        Ok(())
    }

    /// Removes a party and returns its counters. Parties it was coaching
    /// or that were coaching it are otherwise unaffected.
    pub fn remove_party(&mut self, id: PartyId) -> Result<PartyStats, MixerError> {
        let at = self.index.remove(&id).ok_or(MixerError::UnknownParty(id))?;
        let party = self.parties.swap_remove(at);
        if let Some(moved) = self.parties.get(at) {
            self.index.insert(moved.id, at);
        }
        Ok(party.stats)
    }

    /// Number of parties in the room.
    pub fn len(&self) -> usize {
        self.parties.len()
    }

    /// Whether the room is empty.
    pub fn is_empty(&self) -> bool {
        self.parties.is_empty()
    }

    /// Ticks run so far.
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// Whether `id` is in the room.
    pub fn contains(&self, id: PartyId) -> bool {
        self.index.contains_key(&id)
    }

    fn party(&self, id: PartyId) -> Result<&Party, MixerError> {
        self.index
            .get(&id)
            .map(|&at| &self.parties[at])
            .ok_or(MixerError::UnknownParty(id))
    }

    fn party_mut(&mut self, id: PartyId) -> Result<&mut Party, MixerError> {
        match self.index.get(&id) {
            Some(&at) => Ok(&mut self.parties[at]),
            None => Err(MixerError::UnknownParty(id)),
        }
    }

    /// Mutes or unmutes a party: muted, it contributes nothing but still
    /// hears the room.
    pub fn set_muted(&mut self, id: PartyId, muted: bool) -> Result<(), MixerError> {
        self.party_mut(id)?.muted = muted;
        Ok(())
    }

    /// Whether a party is muted.
    pub fn is_muted(&self, id: PartyId) -> Result<bool, MixerError> {
        Ok(self.party(id)?.muted)
    }

    /// Makes `id` coach `target` (heard by `target` only), or, with
    /// `None`, a plain party again. `target` must be in the room now.
    pub fn set_coach(&mut self, id: PartyId, target: Option<PartyId>) -> Result<(), MixerError> {
        if let Some(t) = target {
            if t == id {
                return Err(MixerError::CoachSelf(id));
            }
            self.party(t)?;
        }
        self.party_mut(id)?.coaching = target;
        Ok(())
    }

    /// The party `id` coaches, if any.
    pub fn coaching(&self, id: PartyId) -> Result<Option<PartyId>, MixerError> {
        Ok(self.party(id)?.coaching)
    }

    /// Queues a party's decoded audio, at the party's rate, in any chunk
    /// size. Beyond [`MAX_QUEUED_FRAMES`] frames the oldest whole frames are
    /// dropped and counted.
    pub fn push(&mut self, id: PartyId, pcm: &[i16]) -> Result<(), MixerError> {
        let party = self.party_mut(id)?;
        party.stats.samples_pushed += pcm.len() as u64;
        party.stats.frames_pushed = party.stats.samples_pushed / party.frame_len() as u64;
        match party.down.as_mut() {
            Some(down) => {
                party.scratch.clear();
                down.process(pcm, &mut party.scratch);
                party.queue.extend(party.scratch.iter().copied());
            }
            None => party.queue.extend(pcm.iter().copied()),
        }
        while party.queue.len() > MAX_QUEUED_FRAMES * MIX_FRAME {
            party.queue.drain(..MIX_FRAME);
            party.stats.dropped_frames += 1;
        }
        Ok(())
    }

    /// Frames (at the mix rate, rounded down) waiting in a party's jitter
    /// buffer.
    pub fn queued_frames(&self, id: PartyId) -> Result<usize, MixerError> {
        Ok(self.party(id)?.queue.len() / MIX_FRAME)
    }

    /// Runs one 20 ms step: takes one frame from every party's jitter
    /// buffer and computes every party's N-1 mix, read with
    /// [`Mixer::output`].
    pub fn tick(&mut self) {
        self.ticks += 1;
        self.total.fill(0);
        // Take this tick's frames and sum the room once.
        for p in &mut self.parties {
            let have = p.queue.len() >= MIX_FRAME;
            if have {
                for (dst, src) in p.frame.iter_mut().zip(p.queue.drain(..MIX_FRAME)) {
                    *dst = src;
                }
            } else {
                p.stats.underruns += 1;
            }
            if !have || p.muted {
                p.frame.fill(0);
                p.level = 0.0;
            } else {
                p.level = goertzel::rms(&p.frame);
            }
            p.in_sum = have && !p.muted && p.coaching.is_none();
            if p.in_sum {
                for (t, &s) in self.total.iter_mut().zip(p.frame.iter()) {
                    *t += i32::from(s);
                }
            }
        }
        // Everyone hears the sum less their own frame.
        for p in &mut self.parties {
            if p.in_sum {
                for ((m, &t), &s) in p.mix.iter_mut().zip(self.total.iter()).zip(p.frame.iter()) {
                    *m = t - i32::from(s);
                }
            } else {
                p.mix.copy_from_slice(&self.total);
            }
        }
        // Coaches are heard by their one party only.
        for c in 0..self.parties.len() {
            let Some(target) = self.parties[c].coaching else {
                continue;
            };
            let Some(&t) = self.index.get(&target) else {
                continue;
            };
            let frame = self.parties[c].frame;
            for (m, s) in self.parties[t].mix.iter_mut().zip(frame) {
                *m += i32::from(s);
            }
        }
        // Saturate, and bring the mix to each party's rate.
        let mut narrow = [0i16; MIX_FRAME];
        for p in &mut self.parties {
            for (n, &m) in narrow.iter_mut().zip(p.mix.iter()) {
                *n = m.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
            }
            p.out.clear();
            match p.up.as_mut() {
                Some(up) => up.process(&narrow, &mut p.out),
                None => p.out.extend_from_slice(&narrow),
            }
        }
    }

    /// What a party hears from the last tick, at its own rate (160 samples
    /// at 8 kHz, 960 at 48 kHz; empty before its first tick).
    pub fn output(&self, id: PartyId) -> Result<&[i16], MixerError> {
        Ok(&self.party(id)?.out)
    }

    /// RMS of the frame the party contributed at the last tick (0 when
    /// muted, underrun, or before its first tick).
    pub fn level(&self, id: PartyId) -> Result<f32, MixerError> {
        Ok(self.party(id)?.level)
    }

    /// A party's counters.
    pub fn stats(&self, id: PartyId) -> Result<PartyStats, MixerError> {
        Ok(self.party(id)?.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goertzel::tone_share;

    const A: PartyId = PartyId(1);
    const B: PartyId = PartyId(2);
    const C: PartyId = PartyId(3);
    const D: PartyId = PartyId(4);

    /// Frame `n` (20 ms) of a sine at `freq` Hz, `rate` Hz, amplitude `amp`.
    fn sine(freq: f32, rate: u32, n: u64, amp: f32) -> Vec<i16> {
        let len = (rate / 50) as u64;
        (n * len..(n + 1) * len)
            .map(|k| {
                let t = k as f64 / f64::from(rate);
                (f64::from(amp) * (2.0 * std::f64::consts::PI * f64::from(freq) * t).sin()) as i16
            })
            .collect()
    }

    fn room(parties: &[(PartyId, u32)]) -> Mixer {
        let mut m = Mixer::new();
        for &(id, rate) in parties {
            m.add_party(id, rate).unwrap();
        }
        m
    }

    #[test]
    fn each_party_hears_the_others_but_not_itself() {
        let tones = [(A, 400.0), (B, 700.0), (C, 1100.0)];
        let mut m = room(&[(A, RATE_8K), (B, RATE_8K), (C, RATE_8K)]);
        for n in 0..5 {
            for &(id, f) in &tones {
                m.push(id, &sine(f, RATE_8K, n, 8000.0)).unwrap();
            }
            m.tick();
            for &(id, own) in &tones {
                let out = m.output(id).unwrap();
                assert_eq!(out.len(), FRAME_8K);
                assert!(tone_share(out, own, RATE_8K) < 0.001, "{id:?} hears itself");
                for &(other, f) in &tones {
                    if other != id {
                        let share = tone_share(out, f, RATE_8K);
                        assert!(share > 0.4, "{id:?} hears {other:?} at {share}");
                    }
                }
                assert!((m.level(id).unwrap() - 8000.0 / 2f32.sqrt()).abs() < 50.0);
            }
        }
        for &(id, _) in &tones {
            let s = m.stats(id).unwrap();
            assert_eq!((s.frames_pushed, s.dropped_frames, s.underruns), (5, 0, 0));
        }
    }

    #[test]
    fn a_48k_party_hears_and_is_heard() {
        let mut m = room(&[(A, RATE_8K), (B, RATE_8K), (D, RATE_48K)]);
        for n in 0..10 {
            m.push(A, &sine(400.0, RATE_8K, n, 8000.0)).unwrap();
            m.push(B, &sine(700.0, RATE_8K, n, 8000.0)).unwrap();
            // Odd chunk sizes: 960 samples in three pieces.
            let wide = sine(1000.0, RATE_48K, n, 8000.0);
            for piece in wide.chunks(400) {
                m.push(D, piece).unwrap();
            }
            m.tick();
        }
        let out = m.output(D).unwrap();
        assert_eq!(out.len(), FRAME_48K);
        assert!(tone_share(out, 400.0, RATE_48K) > 0.4);
        assert!(tone_share(out, 700.0, RATE_48K) > 0.4);
        assert!(tone_share(out, 1000.0, RATE_48K) < 0.01);
        for id in [A, B] {
            let out = m.output(id).unwrap();
            assert_eq!(out.len(), FRAME_8K);
            let share = tone_share(out, 1000.0, RATE_8K);
            assert!(share > 0.3, "{id:?} hears the 48 kHz party at {share}");
        }
        let s = m.stats(D).unwrap();
        assert_eq!((s.frames_pushed, s.dropped_frames, s.underruns), (10, 0, 0));
    }

    #[test]
    fn muted_party_is_not_heard_but_hears() {
        let mut m = room(&[(A, RATE_8K), (B, RATE_8K), (C, RATE_8K)]);
        m.set_muted(C, true).unwrap();
        assert!(m.is_muted(C).unwrap());
        m.push(A, &sine(400.0, RATE_8K, 0, 8000.0)).unwrap();
        m.push(B, &sine(700.0, RATE_8K, 0, 8000.0)).unwrap();
        m.push(C, &sine(1100.0, RATE_8K, 0, 8000.0)).unwrap();
        m.tick();
        for id in [A, B] {
            assert!(tone_share(m.output(id).unwrap(), 1100.0, RATE_8K) < 0.001);
        }
        let c = m.output(C).unwrap();
        assert!(tone_share(c, 400.0, RATE_8K) > 0.4);
        assert!(tone_share(c, 700.0, RATE_8K) > 0.4);
        assert_eq!(m.level(C).unwrap(), 0.0);
        // Unmuted, C is heard again.
        m.set_muted(C, false).unwrap();
        m.push(C, &sine(1100.0, RATE_8K, 1, 8000.0)).unwrap();
        m.tick();
        assert!(tone_share(m.output(A).unwrap(), 1100.0, RATE_8K) > 0.9);
    }

    #[test]
    fn loud_room_saturates_without_wrapping() {
        let mut m = room(&[(A, RATE_8K), (B, RATE_8K), (C, RATE_8K)]);
        for (sign, expect) in [(1i16, i16::MAX), (-1, i16::MIN)] {
            for id in [A, B, C] {
                m.push(id, &[sign * 30_000; FRAME_8K]).unwrap();
            }
            m.tick();
            for id in [A, B, C] {
                assert!(m.output(id).unwrap().iter().all(|&s| s == expect));
            }
        }
        // One loud party alone is passed through unclipped.
        m.push(A, &[30_000; FRAME_8K]).unwrap();
        m.tick();
        assert!(m.output(B).unwrap().iter().all(|&s| s == 30_000));
        assert!(m.output(A).unwrap().iter().all(|&s| s == 0));
    }

    #[test]
    fn jitter_buffer_is_bounded() {
        let mut m = room(&[(A, RATE_8K), (B, RATE_8K)]);
        for n in 0..10 {
            m.push(A, &sine(400.0, RATE_8K, n, 8000.0)).unwrap();
        }
        let s = m.stats(A).unwrap();
        assert_eq!((s.frames_pushed, s.dropped_frames), (10, 7));
        assert_eq!(m.queued_frames(A).unwrap(), MAX_QUEUED_FRAMES);
        m.tick();
        assert_eq!(m.queued_frames(A).unwrap(), 2);
        // The oldest were dropped: B hears frame 7 of A.
        assert_eq!(m.output(B).unwrap(), sine(400.0, RATE_8K, 7, 8000.0));
        // B pushed nothing: underrun, silence.
        assert_eq!(m.stats(B).unwrap().underruns, 1);
        assert_eq!(m.level(B).unwrap(), 0.0);
        assert!(m.output(A).unwrap().iter().all(|&s| s == 0));
        // A partial frame is an underrun and stays queued.
        m.tick();
        m.tick();
        m.push(A, &[1000; 100]).unwrap();
        m.tick();
        assert_eq!(m.stats(A).unwrap().underruns, 1);
        m.push(A, &[1000; 60]).unwrap();
        m.tick();
        assert!(m.output(B).unwrap().iter().all(|&s| s == 1000));
        assert_eq!(m.stats(B).unwrap().underruns, 5);
    }

    #[test]
    fn party_removed_mid_call() {
        let tones = [(A, 400.0), (B, 700.0), (C, 1100.0)];
        let mut m = room(&[(A, RATE_8K), (B, RATE_8K), (C, RATE_8K)]);
        for n in 0..3 {
            for &(id, f) in &tones {
                m.push(id, &sine(f, RATE_8K, n, 8000.0)).unwrap();
            }
            m.tick();
        }
        let stats = m.remove_party(A).unwrap();
        assert_eq!(stats.frames_pushed, 3);
        assert_eq!(m.len(), 2);
        assert!(!m.contains(A));
        assert_eq!(m.push(A, &[0; 160]), Err(MixerError::UnknownParty(A)));
        assert_eq!(m.output(A), Err(MixerError::UnknownParty(A)));
        for n in 3..6 {
            for &(id, f) in &tones[1..] {
                m.push(id, &sine(f, RATE_8K, n, 8000.0)).unwrap();
            }
            m.tick();
            let b = m.output(B).unwrap();
            let c = m.output(C).unwrap();
            assert!(tone_share(b, 1100.0, RATE_8K) > 0.99);
            assert!(tone_share(c, 700.0, RATE_8K) > 0.99);
            assert!(tone_share(b, 400.0, RATE_8K) < 0.001);
        }
        // The id can join again.
        m.add_party(A, RATE_48K).unwrap();
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn coach_is_heard_by_one_party_only() {
        let mut m = room(&[(A, RATE_8K), (B, RATE_8K), (C, RATE_8K)]);
        // C coaches A.
        m.set_coach(C, Some(A)).unwrap();
        assert_eq!(m.coaching(C).unwrap(), Some(A));
        m.push(A, &sine(400.0, RATE_8K, 0, 8000.0)).unwrap();
        m.push(B, &sine(700.0, RATE_8K, 0, 8000.0)).unwrap();
        m.push(C, &sine(1100.0, RATE_8K, 0, 8000.0)).unwrap();
        m.tick();
        let a = m.output(A).unwrap();
        assert!(tone_share(a, 700.0, RATE_8K) > 0.4);
        assert!(tone_share(a, 1100.0, RATE_8K) > 0.4);
        assert!(tone_share(a, 400.0, RATE_8K) < 0.001);
        let b = m.output(B).unwrap();
        assert!(tone_share(b, 400.0, RATE_8K) > 0.99);
        assert!(tone_share(b, 1100.0, RATE_8K) < 0.001);
        let c = m.output(C).unwrap();
        assert!(tone_share(c, 400.0, RATE_8K) > 0.4);
        assert!(tone_share(c, 700.0, RATE_8K) > 0.4);
        assert!(tone_share(c, 1100.0, RATE_8K) < 0.001);
        assert!(m.level(C).unwrap() > 5000.0);
        // Errors, and back to a plain party.
        assert_eq!(m.set_coach(C, Some(C)), Err(MixerError::CoachSelf(C)));
        assert_eq!(m.set_coach(C, Some(D)), Err(MixerError::UnknownParty(D)));
        m.set_coach(C, None).unwrap();
        m.push(C, &sine(1100.0, RATE_8K, 1, 8000.0)).unwrap();
        m.tick();
        assert!(tone_share(m.output(B).unwrap(), 1100.0, RATE_8K) > 0.99);
        // A coach whose party left is heard by no one.
        m.set_coach(C, Some(A)).unwrap();
        m.remove_party(A).unwrap();
        m.push(C, &sine(1100.0, RATE_8K, 2, 8000.0)).unwrap();
        m.tick();
        assert!(m.output(B).unwrap().iter().all(|&s| s == 0));
    }

    #[test]
    fn refuses_bad_parties() {
        let mut m = Mixer::new();
        assert_eq!(
            m.add_party(A, 16_000),
            Err(MixerError::UnsupportedRate(16_000))
        );
        m.add_party(A, RATE_8K).unwrap();
        assert_eq!(m.add_party(A, RATE_8K), Err(MixerError::DuplicateParty(A)));
        assert!(m.output(A).unwrap().is_empty());
        assert!(!m.is_empty() && m.ticks() == 0);
    }
}
