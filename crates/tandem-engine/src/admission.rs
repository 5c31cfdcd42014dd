//! Admission control and throttles (docs/security.md): how many calls run
//! at once and start per second, how fast one untrusted address may send
//! out-of-dialog requests, and how many wrong passwords an address or an
//! identity may try per minute.
//!
//! Everything here is decided by the dispatcher before a call exists, in
//! constant time, without an await: a refusal costs less than the request.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// The limits; `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Calls in progress at once.
    pub max_calls: Option<u32>,
    /// New calls per second (burst: one second's worth).
    pub max_cps: Option<u32>,
    /// Out-of-dialog requests per second from one untrusted address (burst: two seconds' worth).
    pub source_requests_per_second: Option<u32>,
    /// Failed digest attempts per minute from one address (burst: the same number).
    pub source_auth_failures_per_minute: Option<u32>,
    /// Failed digest attempts per minute against one identity.
    pub identity_auth_failures_per_minute: Option<u32>,
}

/// A token bucket: `rate` tokens a second up to `burst`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.last = now;
    }

    /// Takes a token if there is one.
    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        self.refill(now, rate, burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether a token is there, without taking it.
    fn has(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        self.refill(now, rate, burst);
        self.tokens >= 1.0
    }

    /// Full again: the entry can go.
    fn idle(&self, now: Instant, rate: f64, burst: f64) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + dt * rate >= burst
    }
}

/// Buckets by key, pruned of full ones so a flood of distinct keys (spoofed
/// addresses, made-up identities) cannot grow it past `MAX_KEYS`.
#[derive(Debug)]
struct Buckets<K: std::hash::Hash + Eq> {
    map: DashMap<K, Bucket>,
    rate: f64,
    burst: f64,
    pruned: Mutex<Instant>,
}

/// Most keys a bucket table holds; past it, keys with full buckets are
/// dropped, and if none is full a new key is refused (fails closed).
const MAX_KEYS: usize = 100_000;

impl<K: std::hash::Hash + Eq + Clone> Buckets<K> {
    fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Self {
            map: DashMap::new(),
            rate,
            burst,
            pruned: Mutex::new(now),
        }
    }

    fn take(&self, key: &K, now: Instant) -> bool {
        if let Some(mut b) = self.map.get_mut(key) {
            return b.take(now, self.rate, self.burst);
        }
        if !self.room(now) {
            return false;
        }
        let mut b = Bucket::full(self.burst, now);
        let ok = b.take(now, self.rate, self.burst);
        self.map.insert(key.clone(), b);
        ok
    }

    fn has(&self, key: &K, now: Instant) -> bool {
        match self.map.get_mut(key) {
            Some(mut b) => b.has(now, self.rate, self.burst),
            None => true,
        }
    }

    /// Prunes full buckets once a second, or every 100 ms while at
    /// capacity (a scan per new key would let a flood of new keys cost
    /// O(n) each).
    fn room(&self, now: Instant) -> bool {
        let full = self.map.len() >= MAX_KEYS;
        let every = if full {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        };
        let due = {
            let mut last = self.pruned.lock().unwrap_or_else(|p| p.into_inner());
            if now.saturating_duration_since(*last) >= every {
                *last = now;
                true
            } else {
                false
            }
        };
        if due {
            let (rate, burst) = (self.rate, self.burst);
            self.map.retain(|_, b| !b.idle(now, rate, burst));
        }
        self.map.len() < MAX_KEYS
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

/// Why a new call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max_calls` calls are up.
    TooManyCalls,
    /// `max_cps` calls started in the last second.
    TooFast,
}

/// What was refused or dropped, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub calls_refused_max_calls: AtomicU64,
    pub calls_refused_max_cps: AtomicU64,
    pub requests_throttled: AtomicU64,
    pub auth_failures: AtomicU64,
    pub auth_throttled: AtomicU64,
}

/// The engine's gatekeeper.
#[derive(Debug)]
pub(crate) struct Admission {
    limits: Limits,
    calls: Arc<AtomicUsize>,
    cps: Mutex<Bucket>,
    sources: Option<Buckets<IpAddr>>,
    auth_sources: Option<Buckets<IpAddr>>,
    auth_identities: Option<Buckets<String>>,
    /// Per identity: the address it last authenticated from, and when. An
    /// identity's own address keeps trying when guessers elsewhere have
    /// spent the identity's allowance (bounded: only configured
    /// identities ever succeed).
    logins: DashMap<String, (IpAddr, Instant)>,
    pub counters: Counters,
}

/// How long a successful login exempts its address from its identity's
/// failure allowance.
const LOGIN_MEMORY: Duration = Duration::from_secs(3600);

/// The key a source is limited by: IPv4 (mapped or not) as is, IPv6 by its
/// /64 (one subscriber's allocation: an attacker rotating through it must
/// not get a fresh allowance per address).
pub(crate) fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(a) => {
            let s = a.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
        v4 => v4,
    }
}

/// One admitted call; dropping it frees its place under `max_calls`.
#[derive(Debug)]
pub(crate) struct Admitted(Arc<AtomicUsize>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn per_minute(n: u32) -> f64 {
    f64::from(n) / 60.0
}

impl Admission {
    pub(crate) fn new(limits: Limits, now: Instant) -> Self {
        let cps = limits.max_cps.map_or(0.0, f64::from);
        Self {
            limits,
            calls: Arc::new(AtomicUsize::new(0)),
            cps: Mutex::new(Bucket::full(cps, now)),
            sources: limits
                .source_requests_per_second
                .map(|r| Buckets::new(f64::from(r), 2.0 * f64::from(r), now)),
            auth_sources: limits
                .source_auth_failures_per_minute
                .map(|n| Buckets::new(per_minute(n), f64::from(n), now)),
            auth_identities: limits
                .identity_auth_failures_per_minute
                .map(|n| Buckets::new(per_minute(n), f64::from(n), now)),
            logins: DashMap::new(),
            counters: Counters::default(),
        }
    }

    /// Calls admitted and not yet ended.
    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// A new call: admitted (keep the token for the call's life) or refused.
    pub(crate) fn admit_call(&self, now: Instant) -> Result<Admitted, Refusal> {
        if let Some(max) = self.limits.max_calls
            && self.calls() >= max as usize
        {
            self.counters
                .calls_refused_max_calls
                .fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::TooManyCalls);
        }
        if let Some(cps) = self.limits.max_cps {
            let r = f64::from(cps);
            let mut b = self.cps.lock().unwrap_or_else(|p| p.into_inner());
            if !b.take(now, r, r) {
                self.counters
                    .calls_refused_max_cps
                    .fetch_add(1, Ordering::Relaxed);
                return Err(Refusal::TooFast);
            }
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(Admitted(self.calls.clone()))
    }

    /// An out-of-dialog request from an address no trunk allows: false when
    /// that address is over its rate (drop the request, answer nothing).
    pub(crate) fn allow_request(&self, source: IpAddr, now: Instant) -> bool {
        let source = source_key(source);
        let ok = self.sources.as_ref().is_none_or(|b| b.take(&source, now));
        if !ok {
            let n = self
                .counters
                .requests_throttled
                .fetch_add(1, Ordering::Relaxed)
                + 1;
            if n.is_power_of_two() {
                tracing::warn!(%source, throttled = n, "source over its request rate: requests dropped");
            }
        }
        ok
    }

    /// Whether a digest attempt from `source` for `identity` may be checked
    /// at all (false: answer 403 without looking at it, right or wrong).
    pub(crate) fn may_try_auth(
        &self,
        source: IpAddr,
        identity: Option<&str>,
        now: Instant,
    ) -> bool {
        let source = source_key(source);
        let source_ok = self
            .auth_sources
            .as_ref()
            .is_none_or(|b| b.has(&source, now));
        let identity_ok = match (identity, &self.auth_identities) {
            (Some(id), Some(b)) => {
                self.logged_in_from(id, source, now) || b.has(&id.to_owned(), now)
            }
            _ => true,
        };
        let ok = source_ok && identity_ok;
        if !ok {
            let n = self.counters.auth_throttled.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(%source, identity = identity.unwrap_or(""), throttled = n,
                    "too many failed digest attempts: refused unchecked");
            }
        }
        ok
    }

    /// A digest attempt failed (wrong password or unknown identity). Logged
    /// once per address until its allowance is spent, then at powers of two.
    pub(crate) fn auth_failed(&self, source: IpAddr, identity: Option<&str>, now: Instant) {
        let source = source_key(source);
        let n = self.counters.auth_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let fresh = self
            .auth_sources
            .as_ref()
            .is_none_or(|b| b.has(&source, now));
        if let Some(b) = &self.auth_sources {
            b.take(&source, now);
        }
        if let (Some(id), Some(b)) = (identity, &self.auth_identities) {
            b.take(&id.to_owned(), now);
        }
        if fresh || n.is_power_of_two() {
            tracing::warn!(%source, identity = identity.unwrap_or(""), failures = n,
                "digest authentication failed");
        }
    }
}

impl Admission {
    /// `identity` proved itself from `source`: that address keeps trying
    /// for an hour whatever happens to the identity's allowance.
    pub(crate) fn auth_succeeded(&self, source: IpAddr, identity: &str, now: Instant) {
        self.logins
            .insert(identity.to_owned(), (source_key(source), now));
    }

    fn logged_in_from(&self, identity: &str, source: IpAddr, now: Instant) -> bool {
        self.logins
            .get(identity)
            .is_some_and(|e| e.0 == source && now.saturating_duration_since(e.1) < LOGIN_MEMORY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_calls: Some(2),
            max_cps: Some(10),
            source_requests_per_second: Some(5),
            source_auth_failures_per_minute: Some(3),
            identity_auth_failures_per_minute: Some(4),
        }
    }

    #[test]
    fn max_calls_counts_calls_until_their_token_drops() {
        let t = Instant::now();
        let a = Admission::new(limits(), t);
        let one = a.admit_call(t).unwrap();
        let two = a.admit_call(t).unwrap();
        assert_eq!(a.admit_call(t).unwrap_err(), Refusal::TooManyCalls);
        drop(one);
        let _three = a.admit_call(t).unwrap();
        drop(two);
        assert_eq!(a.calls(), 1);
        assert_eq!(
            a.counters.calls_refused_max_calls.load(Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn max_cps_allows_one_second_of_burst_then_the_rate() {
        let t = Instant::now();
        let a = Admission::new(
            Limits {
                max_cps: Some(10),
                ..Limits::default()
            },
            t,
        );
        let admitted = (0..25).filter(|_| a.admit_call(t).is_ok()).count();
        assert_eq!(admitted, 10);
        // Half a second later: five more.
        let t2 = t + Duration::from_millis(500);
        let admitted = (0..25).filter(|_| a.admit_call(t2).is_ok()).count();
        assert_eq!(admitted, 5);
        assert_eq!(a.counters.calls_refused_max_cps.load(Ordering::Relaxed), 35);
        // Over ten seconds at 20 offered per second, 10 per second pass.
        let mut ok = 0;
        for i in 0..200u64 {
            let ti = t2 + Duration::from_millis(50 * (i + 1));
            ok += usize::from(a.admit_call(ti).is_ok());
        }
        assert_eq!(ok, 100);
    }

    #[test]
    fn an_untrusted_source_gets_twice_its_rate_in_a_burst_and_others_are_unaffected() {
        let t = Instant::now();
        let a = Admission::new(limits(), t);
        let bad: IpAddr = "127.0.0.2".parse().unwrap();
        let good: IpAddr = "127.0.0.3".parse().unwrap();
        assert_eq!((0..100).filter(|_| a.allow_request(bad, t)).count(), 10);
        assert!(a.allow_request(good, t));
        let t1 = t + Duration::from_secs(1);
        assert_eq!((0..100).filter(|_| a.allow_request(bad, t1)).count(), 5);
        assert_eq!(a.counters.requests_throttled.load(Ordering::Relaxed), 185);
    }

    #[test]
    fn a_flood_of_spoofed_sources_keeps_the_table_bounded() {
        let t = Instant::now();
        let a = Admission::new(limits(), t);
        for i in 0..(MAX_KEYS as u32 + 5_000) {
            let ip = IpAddr::from(i.to_be_bytes());
            a.allow_request(ip, t);
        }
        let b = a.sources.as_ref().unwrap();
        assert!(b.len() <= MAX_KEYS, "{}", b.len());
        // Once their buckets refill, the entries go and new sources pass.
        let later = t + Duration::from_secs(3);
        assert!(a.allow_request("10.9.9.9".parse().unwrap(), later));
        assert!(b.len() < 10, "{}", b.len());
    }

    #[test]
    fn guessers_elsewhere_do_not_lock_an_identity_out_of_its_own_address() {
        let t = Instant::now();
        let a = Admission::new(limits(), t);
        let home: IpAddr = "192.0.2.10".parse().unwrap();
        a.auth_succeeded(home, "alice", t);
        // Four guessers spend alice's allowance of four.
        for i in 1..=4u8 {
            let g = IpAddr::from([203, 0, 113, i]);
            assert!(a.may_try_auth(g, Some("alice"), t));
            a.auth_failed(g, Some("alice"), t);
        }
        assert!(!a.may_try_auth("203.0.113.99".parse().unwrap(), Some("alice"), t));
        assert!(
            a.may_try_auth(home, Some("alice"), t),
            "alice's own address"
        );
        // An hour later that memory is gone.
        let later = t + Duration::from_secs(3601);
        for i in 1..=4u8 {
            a.auth_failed(IpAddr::from([203, 0, 113, i]), Some("alice"), later);
        }
        assert!(!a.may_try_auth(home, Some("alice"), later));
    }

    #[test]
    fn ipv6_sources_are_limited_by_their_64_and_mapped_ipv4_as_ipv4() {
        let t = Instant::now();
        let a = Admission::new(limits(), t);
        // 10 requests (burst) from anywhere in one /64, however many addresses.
        let ok = (0..100u16)
            .filter(|&i| {
                let ip = IpAddr::from([0x2001, 0xdb8, 1, 2, i, 0, 0, i]);
                a.allow_request(ip, t)
            })
            .count();
        assert_eq!(ok, 10);
        assert!(a.allow_request("2001:db8:1:3::1".parse().unwrap(), t));
        assert_eq!(
            source_key("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn failed_passwords_lock_out_the_source_then_trickle_back() {
        let t = Instant::now();
        let a = Admission::new(limits(), t);
        let src: IpAddr = "198.51.100.7".parse().unwrap();
        let other: IpAddr = "198.51.100.8".parse().unwrap();
        for _ in 0..3 {
            assert!(a.may_try_auth(src, Some("alice"), t));
            a.auth_failed(src, Some("alice"), t);
        }
        assert!(!a.may_try_auth(src, Some("bob"), t), "the source is out");
        assert!(
            a.may_try_auth(other, Some("alice"), t),
            "alice has one left"
        );
        a.auth_failed(other, Some("alice"), t);
        assert!(!a.may_try_auth(other, Some("alice"), t), "alice is out");
        assert!(a.may_try_auth(other, Some("carol"), t));
        // One more try per 20 s for the source (3 a minute).
        assert!(!a.may_try_auth(src, None, t + Duration::from_secs(19)));
        assert!(a.may_try_auth(src, None, t + Duration::from_secs(21)));
        // An online dictionary gets 3 a minute: 60 in 20 minutes, not thousands.
        let mut tries = 0;
        for s in 0..1200u64 {
            let ts = t + Duration::from_secs(21 + s);
            if a.may_try_auth(src, None, ts) {
                tries += 1;
                a.auth_failed(src, None, ts);
            }
        }
        assert!((59..=61).contains(&tries), "{tries}");
    }
}
