//! DTMF collection for `<Gather>` (sans-IO): `timeout` seconds to wait for
//! each digit, `finishOnKey` ends the input (the key itself is not part of
//! it), `numDigits` ends it once that many digits arrived.

use std::time::{Duration, Instant};

use tandem_twiml::{Event, Gather};

/// One `<Gather>` in progress.
#[derive(Debug, Clone)]
pub(crate) struct Gathering {
    deadline: Instant,
    timeout: Duration,
    num_digits: Option<u32>,
    finish_on_key: Option<char>,
    digits: String,
}

impl Gathering {
    /// Starts collecting at `now` (after the prompts).
    pub(crate) fn new(now: Instant, g: &Gather) -> Self {
        let timeout = Duration::from_secs(u64::from(g.timeout.max(1)));
        Self {
            deadline: now + timeout,
            timeout,
            num_digits: g.num_digits.filter(|n| *n > 0),
            finish_on_key: g.finish_on_key,
            digits: String::new(),
        }
    }

    /// When the wait for the next digit ends.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// A digit arrived; returns the interpreter event when the input is complete.
    pub(crate) fn on_digit(&mut self, now: Instant, digit: char) -> Option<Event> {
        if self.finish_on_key == Some(digit) {
            return Some(Event::Digits {
                digits: std::mem::take(&mut self.digits),
                finished_on_key: Some(digit),
            });
        }
        self.digits.push(digit);
        self.deadline = now + self.timeout;
        if self
            .num_digits
            .is_some_and(|n| self.digits.chars().count() >= n as usize)
        {
            return Some(Event::Digits {
                digits: std::mem::take(&mut self.digits),
                finished_on_key: None,
            });
        }
        None
    }

    /// The timeout passed: what was typed so far, or nothing.
    pub(crate) fn on_timeout(&mut self, now: Instant) -> Option<Event> {
        if now < self.deadline {
            return None;
        }
        if self.digits.is_empty() {
            Some(Event::GatherTimeout)
        } else {
            Some(Event::Digits {
                digits: std::mem::take(&mut self.digits),
                finished_on_key: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gather(num: Option<u32>, finish: Option<char>) -> Gather {
        Gather {
            num_digits: num,
            finish_on_key: finish,
            timeout: 3,
            ..Gather::default()
        }
    }

    #[test]
    fn num_digits_completes_the_input() {
        let t0 = Instant::now();
        let mut g = Gathering::new(t0, &gather(Some(2), Some('#')));
        assert_eq!(g.on_digit(t0, '1'), None);
        assert_eq!(
            g.on_digit(t0, '2'),
            Some(Event::Digits {
                digits: "12".into(),
                finished_on_key: None
            })
        );
    }

    #[test]
    fn finish_on_key_ends_without_the_key() {
        let t0 = Instant::now();
        let mut g = Gathering::new(t0, &gather(None, Some('#')));
        g.on_digit(t0, '4');
        assert_eq!(
            g.on_digit(t0, '#'),
            Some(Event::Digits {
                digits: "4".into(),
                finished_on_key: Some('#')
            })
        );
    }

    #[test]
    fn timeout_is_per_digit_and_exact() {
        let t0 = Instant::now();
        let mut g = Gathering::new(t0, &gather(None, None));
        let t1 = t0 + Duration::from_secs(2);
        g.on_digit(t1, '7');
        assert_eq!(g.deadline(), t1 + Duration::from_secs(3));
        assert_eq!(g.on_timeout(t1 + Duration::from_millis(2999)), None);
        assert_eq!(
            g.on_timeout(t1 + Duration::from_secs(3)),
            Some(Event::Digits {
                digits: "7".into(),
                finished_on_key: None
            })
        );
        let mut empty = Gathering::new(t0, &gather(None, None));
        assert_eq!(
            empty.on_timeout(t0 + Duration::from_secs(3)),
            Some(Event::GatherTimeout)
        );
    }
}
