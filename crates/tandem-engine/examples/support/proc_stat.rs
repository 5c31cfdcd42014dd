//! CPU time from Linux's `/proc/.../stat`, for the load examples.

/// Clock ticks of user plus system time in a `stat` file's text (the
/// fields after the parenthesised command name: utime is the 12th, stime
/// the 13th).
pub fn ticks(stat: &str) -> u64 {
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

/// Clock ticks of this whole process so far (all threads).
pub fn self_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat").map_or(0, |s| ticks(&s))
}

/// Clock ticks a second (`USER_HZ`, 100 on Linux).
pub const TICKS_PER_SEC: f64 = 100.0;
