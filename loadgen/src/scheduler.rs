//! The open-loop schedule, sans I/O: when each request is due, whether it may go now, and which
//! endpoint a moment belongs to in compare mode.
//!
//! Request `i` is due at `i / rate` after the start, whatever happened before it. Its latency is
//! measured from that due ("intended") time, not from when it actually left, so a stall in the
//! server (or in the generator) is charged to every request that should have been sent during
//! it: the coordinated-omission correction. When `inflight_max` requests are outstanding the
//! next one waits for a slot; it is sent late, marked *delayed*, and still timed from its due
//! time.
//!
//! Nothing here reads a clock or sleeps: the caller passes `now_ns` in and acts on the returned
//! [`Action`]. The real driver (`runner`) uses the monotonic clock; the tests use a simulated one.

/// What the driver should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send request `dispatch.index` now.
    Send(Dispatch),
    /// Nothing is due before this time (ns since start); sleep until then or until a completion.
    WaitUntil(u64),
    /// A request is due but `inflight_max` are outstanding: wait for a completion.
    WaitForCompletion,
    /// Every request of the run has been sent.
    Finished,
}

/// One request leaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dispatch {
    pub index: u64,
    /// When it was due, ns since start; its latency is measured from here.
    pub intended_ns: u64,
    /// How late it leaves, ns (generator lag plus any wait for a slot).
    pub lag_ns: u64,
    /// It was due while the in-flight bound held the generator back.
    pub delayed: bool,
}

/// The open-loop schedule of one run.
#[derive(Debug, Clone)]
pub struct OpenLoop {
    rate_per_s: f64,
    total: u64,
    inflight_max: u64,
    sent: u64,
    /// Sent requests that finished, as the caller counts them.
    completed: u64,
    /// Requests given up by [`OpenLoop::abandon`]: counted as sent, never in flight.
    abandoned: u64,
    /// Since when the bound has been holding back a due request.
    blocked_since_ns: Option<u64>,
    /// When the bound last let go: requests due before this were delayed by it.
    unblocked_at_ns: Option<u64>,
}

impl OpenLoop {
    /// `total` requests at `rate_per_s`, at most `inflight_max` outstanding.
    pub fn new(rate_per_s: f64, total: u64, inflight_max: u64) -> OpenLoop {
        assert!(rate_per_s.is_finite() && rate_per_s > 0.0);
        assert!(inflight_max >= 1);
        OpenLoop {
            rate_per_s,
            total,
            inflight_max,
            sent: 0,
            completed: 0,
            abandoned: 0,
            blocked_since_ns: None,
            unblocked_at_ns: None,
        }
    }

    /// When request `index` is due, ns since start. Computed from the index, never accumulated,
    /// so rounding does not drift over a long run.
    pub fn intended_ns(&self, index: u64) -> u64 {
        (index as f64 * 1e9 / self.rate_per_s).round() as u64
    }

    #[cfg(test)]
    pub fn completed(&self) -> u64 {
        self.completed
    }

    pub fn inflight(&self) -> u64 {
        self.sent - self.abandoned - self.completed
    }

    /// The next step at `now_ns`.
    pub fn poll(&mut self, now_ns: u64) -> Action {
        if self.sent == self.total {
            return Action::Finished;
        }
        let intended_ns = self.intended_ns(self.sent);
        if now_ns < intended_ns {
            return Action::WaitUntil(intended_ns);
        }
        if self.inflight() >= self.inflight_max {
            self.blocked_since_ns.get_or_insert(now_ns);
            return Action::WaitForCompletion;
        }
        if self.blocked_since_ns.take().is_some() {
            self.unblocked_at_ns = Some(now_ns);
        }
        let delayed = self.unblocked_at_ns.is_some_and(|t| intended_ns < t);
        let dispatch = Dispatch {
            index: self.sent,
            intended_ns,
            lag_ns: now_ns - intended_ns,
            delayed,
        };
        self.sent += 1;
        Action::Send(dispatch)
    }

    /// `completed` sent requests have finished (successfully or not) since the start: a
    /// running count the caller keeps, so completions need not reach the pacer one by one.
    pub fn completed_up_to(&mut self, completed: u64) {
        assert!(
            completed >= self.completed,
            "the completion count went back"
        );
        assert!(
            completed <= self.sent - self.abandoned,
            "completion without a send"
        );
        self.completed = completed;
    }

    /// The requests that were due but never sent when the run is cut short at `now_ns`: their
    /// indexes and due times, so the caller can charge them.
    pub fn abandon(&mut self, now_ns: u64) -> Vec<(u64, u64)> {
        let mut unsent = Vec::new();
        while self.sent < self.total {
            let intended_ns = self.intended_ns(self.sent);
            if intended_ns > now_ns {
                break;
            }
            unsent.push((self.sent, intended_ns));
            self.sent += 1;
            self.abandoned += 1;
        }
        self.total = self.sent;
        unsent
    }
}

/// Compare mode: which endpoint owns the moment `t_ns`, slices alternating from endpoint 0.
pub fn endpoint_at(t_ns: u64, slice_ns: u64, endpoints: usize) -> usize {
    assert!(slice_ns > 0 && endpoints > 0);
    ((t_ns / slice_ns) % endpoints as u64) as usize
}

/// How long endpoint `endpoint` owned the window `[from_ns, to_ns)`, ns.
pub fn owned_ns(endpoint: usize, from_ns: u64, to_ns: u64, slice_ns: u64, endpoints: usize) -> u64 {
    assert!(slice_ns > 0 && endpoints > 0 && endpoint < endpoints);
    let mut owned = 0;
    let mut t = from_ns;
    while t < to_ns {
        let slice_end = (t / slice_ns + 1) * slice_ns;
        let end = slice_end.min(to_ns);
        if endpoint_at(t, slice_ns, endpoints) == endpoint {
            owned += end - t;
        }
        t = end;
    }
    owned
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    use hdrhistogram::Histogram;

    use super::*;

    /// A simulated clock the test moves by hand, nanoseconds since the start.
    struct SimClock(Cell<u64>);

    impl SimClock {
        fn now_ns(&self) -> u64 {
            self.0.get()
        }
    }

    struct SimResult {
        /// Latency from the due time, µs: what the generator reports.
        intended_us: Histogram<u64>,
        /// Latency from the actual send, µs: what a naive (closed-loop style) tool reports.
        service_us: Histogram<u64>,
        delayed: u64,
    }

    /// Drives `OpenLoop` against a simulated server whose request `i` takes `service_ns(i)`,
    /// with no real time passing.
    fn simulate(
        rate_per_s: f64,
        total: u64,
        inflight_max: u64,
        service_ns: impl Fn(u64) -> u64,
    ) -> SimResult {
        let clock = SimClock(Cell::new(0));
        let mut schedule = OpenLoop::new(rate_per_s, total, inflight_max);
        // Completion time, due time, send time.
        let mut pending: BinaryHeap<Reverse<(u64, u64, u64)>> = BinaryHeap::new();
        let mut result = SimResult {
            intended_us: Histogram::new(3).unwrap(),
            service_us: Histogram::new(3).unwrap(),
            delayed: 0,
        };
        let complete_until = |t: u64,
                              pending: &mut BinaryHeap<Reverse<(u64, u64, u64)>>,
                              schedule: &mut OpenLoop,
                              result: &mut SimResult| {
            while let Some(Reverse((done, intended, sent))) = pending.peek().copied() {
                if done > t {
                    break;
                }
                pending.pop();
                schedule.completed_up_to(schedule.completed() + 1);
                result.intended_us.record((done - intended) / 1000).unwrap();
                result.service_us.record((done - sent) / 1000).unwrap();
            }
        };
        loop {
            let now = clock.now_ns();
            complete_until(now, &mut pending, &mut schedule, &mut result);
            match schedule.poll(now) {
                Action::Send(d) => {
                    result.delayed += u64::from(d.delayed);
                    pending.push(Reverse((now + service_ns(d.index), d.intended_ns, now)));
                }
                Action::WaitUntil(t) => {
                    let next_done = pending.peek().map_or(u64::MAX, |r| r.0 .0);
                    clock.0.set(t.min(next_done));
                }
                Action::WaitForCompletion => {
                    let Reverse((done, _, _)) = *pending.peek().expect("a request is in flight");
                    clock.0.set(done);
                }
                Action::Finished => {
                    complete_until(u64::MAX, &mut pending, &mut schedule, &mut result);
                    break;
                }
            }
        }
        assert_eq!(schedule.completed(), total);
        result
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn intended_times_do_not_drift() {
        let schedule = OpenLoop::new(3.0, 10, 1);
        assert_eq!(schedule.intended_ns(0), 0);
        assert_eq!(schedule.intended_ns(1), 333_333_333);
        assert_eq!(schedule.intended_ns(3), 1_000_000_000);
        let fast = OpenLoop::new(100_000.0, u64::MAX, 1);
        assert_eq!(fast.intended_ns(360_000_000), 3600 * 1_000_000_000);
    }

    #[test]
    fn a_stall_is_charged_to_every_request_due_during_it() {
        // 100 req/s for 10 s over one connection; every request takes 1 ms except request 500,
        // which stalls for 1 s. About 100 requests were due during the stall.
        let result = simulate(100.0, 1000, 1, |i| if i == 500 { 1000 * MS } else { MS });
        let p99_ms = result.intended_us.value_at_quantile(0.99) as f64 / 1000.0;
        let p50_ms = result.intended_us.value_at_quantile(0.50) as f64 / 1000.0;
        // Latency from the due time: the requests queued behind the stall waited 10 ms..1 s.
        assert!(p99_ms > 800.0, "p99 {p99_ms} ms");
        assert!(result.intended_us.value_at_quantile(0.95) > 400_000);
        assert!((0.9..1.5).contains(&p50_ms), "p50 {p50_ms} ms");
        // Timed from the send, the same run looks perfect: the omission this corrects.
        assert!(result.service_us.value_at_quantile(0.99) < 1100);
        // Those requests are reported as delayed by the in-flight bound: the ~100 due during the
        // stall, plus the ~10 that fell due while the backlog drained at 1 ms each (the backlog
        // catches up after k ms where 501 + k = 600 + k / 10, k = 110).
        assert!(
            (105..=115).contains(&result.delayed),
            "delayed {}",
            result.delayed
        );
    }

    #[test]
    fn with_room_in_flight_a_stall_only_hurts_itself() {
        let result = simulate(100.0, 1000, 1000, |i| if i == 500 { 1000 * MS } else { MS });
        assert!(result.intended_us.value_at_quantile(0.99) < 1100);
        assert!(result.intended_us.max() >= 999_000);
        assert_eq!(result.delayed, 0);
    }

    #[test]
    fn a_slow_server_is_charged_its_queueing() {
        // Service time 12 ms at 100 req/s over one connection: the queue grows without bound,
        // and latency from the due time grows with it (about 0.2 s after 1000 requests).
        let result = simulate(100.0, 1000, 1, |_| 12 * MS);
        assert!(result.intended_us.max() > 1_900_000);
        assert!(result.service_us.max() < 13_000);
    }

    #[test]
    fn bound_holds_and_abandon_charges_the_rest() {
        let mut schedule = OpenLoop::new(1000.0, 100, 2);
        assert!(matches!(schedule.poll(0), Action::Send(_)));
        assert_eq!(schedule.poll(0), Action::WaitUntil(MS));
        assert!(matches!(schedule.poll(MS), Action::Send(_)));
        assert_eq!(schedule.poll(2 * MS), Action::WaitForCompletion);
        assert_eq!(schedule.inflight(), 2);
        let unsent = schedule.abandon(5 * MS);
        assert_eq!(
            unsent,
            vec![(2, 2 * MS), (3, 3 * MS), (4, 4 * MS), (5, 5 * MS)]
        );
        assert_eq!(schedule.poll(6 * MS), Action::Finished);
        schedule.completed_up_to(2);
        assert_eq!(schedule.inflight(), 0);
    }

    #[test]
    fn compare_slices_alternate_and_split_the_window() {
        let slice = 1000;
        assert_eq!(endpoint_at(0, slice, 2), 0);
        assert_eq!(endpoint_at(999, slice, 2), 0);
        assert_eq!(endpoint_at(1000, slice, 2), 1);
        assert_eq!(endpoint_at(2500, slice, 2), 0);
        assert_eq!(owned_ns(0, 500, 3500, slice, 2), 500 + 1000);
        assert_eq!(owned_ns(1, 500, 3500, slice, 2), 1000 + 500);
        assert_eq!(owned_ns(0, 0, 10_000, slice, 1), 10_000);
    }
}
