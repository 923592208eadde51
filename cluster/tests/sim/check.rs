//! The model and the checker. Every metadata record (an object's head, its listing entry) is a
//! register; the history keeps, per register, every write (its version, when it was invoked,
//! when it was acknowledged if it was) and every successful read (what it returned, when).
//!
//! The promise checked is the one the quorum design makes (backend.rs: majority writes,
//! overlapping reads, newest version wins): a read returns a version some write had started
//! before the read ended, no older than every write acknowledged before the read started
//! (read-after-write; no resurrection: a tombstone acknowledged before hides every older
//! value).
//!
//! A stronger property is checked apart: a read is no older than what a read that ended
//! before it started returned (no flip-flop between readers, as a linearizable register would
//! give). The backend does not promise it for writes that failed: such a write may sit on one
//! replica, a read that reaches it returns it and repairs the others only best effort, and a
//! listing does no repair at all, so a later read of two other replicas does not see it.
//! Flip-flops are counted (`strict` makes them fail a run).
//!
//! Versions order as the cores order them: HLC, a value above a tombstone, value bytes. Writes
//! from gateways with skewed clocks are ordered by their HLC, not by real time: blind writes
//! racing across gateways are last-writer-wins by HLC, which the design accepts.

use std::collections::BTreeMap;

use bytes::Bytes;

/// A version as the cores order it (field order = comparison order).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ver {
    pub hlc: u64,
    pub live: bool,
    pub value: Bytes,
}

impl Ver {
    pub fn put(hlc: u64, value: Bytes) -> Ver {
        Ver {
            hlc,
            live: true,
            value,
        }
    }

    pub fn tombstone(hlc: u64) -> Ver {
        Ver {
            hlc,
            live: false,
            value: Bytes::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Write {
    pub ver: Ver,
    pub start: u64,
    /// When it was acknowledged; `None`: it failed or never finished (it may or may not have
    /// landed).
    pub acked: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Read {
    pub key: Bytes,
    pub start: u64,
    pub end: u64,
    /// The live version returned; `None`: absent or deleted.
    pub got: Option<Ver>,
    /// What read it (for messages).
    pub what: &'static str,
}

/// Whether read `r` is no older than `floor`: its version is, or it is absent and a
/// tombstone no older than `floor`, written by a write that started before it ended, hides it.
fn satisfies(r: &Read, writes: &[Write], floor: Option<&Ver>) -> bool {
    match &r.got {
        Some(v) => floor.is_none_or(|f| v >= f),
        None => floor.is_none_or(|f| {
            writes
                .iter()
                .any(|w| !w.ver.live && w.start < r.end && w.ver >= *f)
        }),
    }
}

#[derive(Debug, Default)]
pub struct History {
    pub writes: BTreeMap<Bytes, Vec<Write>>,
    pub reads: Vec<Read>,
}

fn show(key: &[u8]) -> String {
    String::from_utf8_lossy(key).replace('\0', "/")
}

impl History {
    /// Starts a write; returns its index for `ack`.
    pub fn write(&mut self, key: &Bytes, ver: Ver, start: u64) -> usize {
        let w = self.writes.entry(key.clone()).or_default();
        w.push(Write {
            ver,
            start,
            acked: None,
        });
        w.len() - 1
    }

    pub fn ack(&mut self, key: &Bytes, index: usize, at: u64) {
        self.writes.get_mut(key).expect("written")[index].acked = Some(at);
    }

    pub fn read(&mut self, read: Read) {
        self.reads.push(read);
    }

    /// The newest version acknowledged before `t`.
    pub fn acked_floor(&self, key: &Bytes, t: u64) -> Option<&Ver> {
        self.writes
            .get(key)?
            .iter()
            .filter(|w| w.acked.is_some_and(|a| a < t))
            .map(|w| &w.ver)
            .max()
    }

    /// Checks every read against the writes acknowledged before it: `Err` describes the first
    /// violation. `Ok` lists the flip-flops: reads older than a version an earlier read had
    /// returned (see `Strictness`), which fail the check only when `strict`.
    pub fn check(&self, strict: bool) -> Result<Vec<String>, String> {
        // Reads by end time, to find what earlier readers saw.
        let mut by_end: Vec<&Read> = self.reads.iter().collect();
        by_end.sort_by_key(|r| r.end);
        let mut flips = Vec::new();
        for r in &self.reads {
            let writes = self.writes.get(&r.key).map_or(&[][..], Vec::as_slice);
            let acked = self.acked_floor(&r.key, r.start);
            let seen = by_end
                .iter()
                .take_while(|o| o.end < r.start)
                .filter(|o| o.key == r.key && o.got.is_some())
                .max_by(|a, b| a.got.cmp(&b.got));
            let why = |what: &str| {
                format!(
                    "{} of {} at [{}, {}] returned {:?}: {what} (newest acknowledged before: \
                     {acked:?}; newest seen by an earlier read: {:?}; writes: {writes:?})",
                    r.what,
                    show(&r.key),
                    r.start,
                    r.end,
                    r.got,
                    seen.map(|o| (o.what, o.start, o.end, &o.got)),
                )
            };
            if !satisfies(r, writes, acked) {
                return Err(why("older than a write acknowledged before it started"));
            }
            if let Some(v) = &r.got {
                if !writes.iter().any(|w| w.ver == *v && w.start < r.end) {
                    return Err(why("no write of that version had started"));
                }
            }
            let seen_ver = seen.and_then(|o| o.got.as_ref());
            if !satisfies(r, writes, seen_ver) {
                let flip = why("older than what an earlier read returned (a flip-flop)");
                if strict {
                    return Err(flip);
                }
                flips.push(flip);
            }
        }
        Ok(flips)
    }

    /// Acknowledged writes whose versions contradict real time: a write that started after
    /// another was acknowledged but got an older version (an older HLC: the gateways' clocks
    /// are skewed and the second gateway had not observed the first write). The later write
    /// is invisible from the moment it is acknowledged; the design orders writes by HLC, so
    /// these are counted (`strict` fails on them).
    pub fn inversions(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (key, writes) in &self.writes {
            for a in writes {
                let Some(a_acked) = a.acked else { continue };
                for b in writes {
                    // Two tombstones in either order mean the same.
                    let differs = a.ver.live || b.ver.live;
                    if differs && b.acked.is_some() && a_acked < b.start && b.ver <= a.ver {
                        out.push(format!(
                            "{}: the write of {:?} started at {} after the write of {:?} was \
                             acknowledged at {a_acked}, yet orders before it",
                            show(key),
                            b.ver,
                            b.start,
                            a.ver
                        ));
                    }
                }
            }
        }
        out
    }

    /// The newest version that certainly landed on a replica: acknowledged, or returned by
    /// a read.
    pub fn landed_floor(&self, key: &Bytes) -> Option<Ver> {
        let acked = self.acked_floor(key, u64::MAX).cloned();
        let seen = self
            .reads
            .iter()
            .filter(|r| r.key == *key)
            .filter_map(|r| r.got.clone())
            .max();
        acked.max(seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Bytes {
        Bytes::from_static(b"k")
    }

    fn v(hlc: u64, s: &'static str) -> Ver {
        Ver::put(hlc, Bytes::from_static(s.as_bytes()))
    }

    fn read(start: u64, end: u64, got: Option<Ver>) -> Read {
        Read {
            key: key(),
            start,
            end,
            got,
            what: "get",
        }
    }

    fn two_writes() -> History {
        let mut h = History::default();
        let a = h.write(&key(), v(10, "a"), 1);
        h.ack(&key(), a, 2);
        let b = h.write(&key(), v(20, "b"), 3);
        h.ack(&key(), b, 4);
        h
    }

    #[test]
    fn accepts_a_correct_history() {
        let mut h = two_writes();
        h.read(read(5, 6, Some(v(20, "b"))));
        // Concurrent with the second write: either version.
        h.read(read(3, 7, Some(v(10, "a"))));
        h.check(true).unwrap();
    }

    #[test]
    fn catches_a_stale_read() {
        let mut h = two_writes();
        h.read(read(5, 6, Some(v(10, "a"))));
        assert!(h.check(false).unwrap_err().contains("older than"));
    }

    #[test]
    fn catches_a_resurrection_and_a_lost_write() {
        let mut h = two_writes();
        let d = h.write(&key(), Ver::tombstone(30), 5);
        h.ack(&key(), d, 6);
        h.read(read(7, 8, Some(v(20, "b"))));
        assert!(h.check(false).is_err(), "a value back after its delete");
        let mut h = two_writes();
        h.read(read(5, 6, None));
        assert!(h.check(false).unwrap_err().contains("older than"));
    }

    #[test]
    fn finds_versions_out_of_real_time_order() {
        let mut h = two_writes();
        assert!(h.inversions().is_empty());
        let c = h.write(&key(), v(15, "c"), 5);
        h.ack(&key(), c, 6);
        assert_eq!(
            h.inversions().len(),
            1,
            "started after b was acknowledged, older hlc"
        );
    }

    #[test]
    fn catches_a_value_nobody_wrote_and_a_flip_flop() {
        let mut h = two_writes();
        h.read(read(5, 6, Some(v(20, "x"))));
        assert!(h.check(false).unwrap_err().contains("no write"));
        // An unacknowledged write seen by one reader must stay seen by later readers.
        let mut h = two_writes();
        h.write(&key(), v(30, "c"), 5);
        h.read(read(6, 7, Some(v(30, "c"))));
        h.read(read(8, 9, Some(v(20, "b"))));
        assert_eq!(h.check(false).unwrap().len(), 1, "a flip-flop, counted");
        assert!(h.check(true).unwrap_err().contains("flip-flop"));
    }
}
