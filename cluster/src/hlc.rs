//! Hybrid logical clock: 48 bits of wall-clock milliseconds and a 16-bit logical counter in
//! one u64, so timestamps order like time but never go backwards or repeat on one clock, and
//! observing a peer's timestamp moves the clock past it.

use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Default)]
pub struct Hlc {
    last: u64,
}

const LOGICAL_BITS: u32 = 16;

pub fn physical_now() -> u64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    ms << LOGICAL_BITS
}

impl Hlc {
    /// A timestamp greater than every one this clock issued or observed.
    pub fn now(&mut self) -> u64 {
        self.tick(physical_now())
    }

    /// `now` with the wall clock given (tests).
    pub fn tick(&mut self, physical: u64) -> u64 {
        self.last = physical.max(self.last + 1);
        self.last
    }

    /// Moves the clock past a timestamp seen from a peer.
    pub fn observe(&mut self, remote: u64) {
        self.last = self.last.max(remote);
    }

    pub fn millis(ts: u64) -> u64 {
        ts >> LOGICAL_BITS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_under_clock_skew() {
        let mut c = Hlc::default();
        let a = c.tick(1000 << 16);
        let b = c.tick(999 << 16);
        assert!(b > a);
        c.observe(5000 << 16);
        assert!(c.tick(1001 << 16) > 5000 << 16);
        assert_eq!(Hlc::millis(a), 1000);
    }
}
