//! Which core takes the S3 port's next connection: each core accepts from the same socket and
//! keeps what it accepted for the connection's life, so the cores should hold about as many
//! connections each. `AcceptShare` counts what each core holds; a core more than
//! `ACCEPT_SLACK` ahead of the least loaded core leaves the next connection to the others for
//! up to `ACCEPT_DEFER_MAX` (an accept then still happens if nobody else took it: a core that is
//! stuck or stopped never holds connections up for longer).
//!
//! Why (#16): a client's pool opens its connections in a burst. The core that is awake drains
//! the listen queue before the other core's wake-up lands: 64 connections opened back to back
//! came out 65 to 0 (the metrics request included) in 6 of 8 bursts, and under the load
//! generator one core of a server did twice the other's work. That was the noise that made an
//! A/B of two servers of one build read from 0.965 to 1.294.
//!
//! It does not move a connection once accepted, and it balances counts, not load: an idle
//! connection weighs as much as a busy one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How many connections a core may hold beyond the least loaded core and still accept.
pub const ACCEPT_SLACK: usize = 2;
/// The longest a core ahead of the others leaves a waiting connection to them.
pub const ACCEPT_DEFER_MAX: Duration = Duration::from_millis(5);
/// How often a deferring core looks again.
pub const ACCEPT_DEFER_POLL: Duration = Duration::from_micros(250);

const _: () = assert!(ACCEPT_DEFER_POLL.as_nanos() < ACCEPT_DEFER_MAX.as_nanos());

/// The connections each core of one server holds.
#[derive(Debug)]
pub struct AcceptShare {
    held: Box<[AtomicUsize]>,
}

impl AcceptShare {
    pub fn new(cores: usize) -> Arc<AcceptShare> {
        assert!(cores > 0);
        Arc::new(AcceptShare {
            held: (0..cores).map(|_| AtomicUsize::new(0)).collect(),
        })
    }

    pub fn cores(&self) -> usize {
        self.held.len()
    }

    /// The connections core `core` holds.
    pub fn held(&self, core: usize) -> usize {
        self.held[core].load(Ordering::Relaxed)
    }

    /// Whether core `core` holds more than `ACCEPT_SLACK` connections beyond the least loaded
    /// other core, and should leave the next one to the others.
    pub fn ahead(&self, core: usize) -> bool {
        let mine = self.held(core);
        let least = (0..self.cores())
            .filter(|&c| c != core)
            .map(|c| self.held(c))
            .min();
        least.is_some_and(|least| mine > least + ACCEPT_SLACK)
    }

    /// Counts a connection core `core` accepted, until the returned guard is dropped.
    pub fn hold(self: &Arc<Self>, core: usize) -> Held {
        let now = self.held[core].fetch_add(1, Ordering::Relaxed) + 1;
        crate::metrics::global().http_connections(core, now);
        Held {
            share: Arc::clone(self),
            core,
        }
    }
}

/// One accepted connection, counted on its core while it lives.
#[derive(Debug)]
pub struct Held {
    share: Arc<AcceptShare>,
    core: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        let before = self.share.held[self.core].fetch_sub(1, Ordering::Relaxed);
        assert!(
            before > 0,
            "core {} dropped a connection it did not hold",
            self.core
        );
        crate::metrics::global().http_connections(self.core, before - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_core_is_ahead_only_past_the_slack_over_the_least_loaded_other() {
        let share = AcceptShare::new(3);
        let mut held = Vec::new();
        for _ in 0..ACCEPT_SLACK {
            held.push(share.hold(0));
            assert!(!share.ahead(0), "{} held", share.held(0));
        }
        held.push(share.hold(0));
        assert!(share.ahead(0));
        // One other core catching up is not enough: the least loaded one counts.
        let one = share.hold(1);
        assert!(share.ahead(0));
        let two = share.hold(2);
        assert!(!share.ahead(0));
        assert!(!share.ahead(1) && !share.ahead(2));
        drop((one, two));
        assert!(share.ahead(0));
        held.pop();
        assert!(!share.ahead(0));
        assert_eq!(share.held(0), ACCEPT_SLACK);
        drop(held);
        assert_eq!((share.held(0), share.held(1), share.held(2)), (0, 0, 0));
    }

    #[test]
    fn a_single_core_is_never_ahead() {
        let share = AcceptShare::new(1);
        let held: Vec<Held> = (0..100).map(|_| share.hold(0)).collect();
        assert!(!share.ahead(0));
        assert_eq!(share.held(0), held.len());
    }
}
