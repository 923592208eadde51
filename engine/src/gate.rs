//! A node's layout gate: which layout versions its cores' TCP servers accept, the version they
//! stamp answers with, and the control-map log index the node has applied. One gate per node,
//! shared by every core (`Arc`, atomics: cores read it per frame, the node's map follower
//! writes it rarely). It does not follow the map itself, and it does not drain requests it
//! admitted before a change (see `set_applied`). A frame it refuses is answered with the
//! index of the map the node applied, and `Request::ControlMap` with that map, sealed by the
//! node's follower (`set_sealed_map`): the refused process catches up from the node.
//!
//! It also fences the frames of processes that stamp a routing epoch (`Request::Fenced`: pure
//! gateways, which the mover does not ask whether they applied a phase): a frame stamped below
//! the node's epoch floor is refused, and the follower raising the floor waits until every
//! fenced frame admitted under the floor before has been answered (`raise_epoch_floor`,
//! `admitted_under`) before it reports the map applied.
//!
//! It also holds the node's lease to serialize conditional writes (cluster/DESIGN.md,
//! "Failover of conditional writes"): once a clustered node enforces leases, its cores refuse
//! `MetaPutIf` unless the control plane's leader granted a lease (`Request::Lease`) that has
//! not run out. The leader demotes a node only after any lease it granted must have run out,
//! so a node cut off from the leader stops serializing before another core starts.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use proto::{ErrorCode, Request, Response};

/// Aligned to a cache line so the atomics every core reads per frame do not share one with the
/// `Arc`'s reference counts or with anything else that is written often.
#[derive(Debug)]
#[repr(align(64))]
pub struct LayoutGate {
    /// Frames stamped with a non-zero layout version below it are refused (0 accepts any).
    floor: AtomicU64,
    /// The layout version answers are stamped with (the newest the node knows).
    version: AtomicU64,
    /// The control-map log index the node has applied (0: it follows no map).
    applied: AtomicU64,
    /// Whether `MetaPutIf` needs a lease (a node with a control plane).
    leases: AtomicBool,
    /// Whether the last grant let the cores serialize (false: the node is demoted).
    serializes: AtomicBool,
    /// Until when the lease runs, in ms since `born` (0: none granted).
    lease_until_ms: AtomicU64,
    born: Instant,
    /// The map at `applied`, sealed with the cluster secret (empty: none). Read only to
    /// answer `ControlMap`, which a process sends after a refusal.
    sealed_map: Mutex<Bytes>,
    /// Fenced frames stamped below it are refused (0: none).
    epoch_floor: AtomicU64,
    /// Bumped by each raise of the floor; fenced frames being answered are counted by the
    /// parity of the generation they were admitted under (`admit_fenced`).
    epoch_generation: AtomicU64,
    epoch_admitted: [AtomicU64; 2],
}

/// A fenced frame admitted by the gate, counted until it is dropped: once the core has answered
/// it (its work done), before the answer is sent back.
#[derive(Debug)]
pub struct Admitted<'a>(&'a AtomicU64);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl LayoutGate {
    /// A gate accepting `layout_version` and newer (0: any), applied index 0.
    pub fn new(layout_version: u64) -> LayoutGate {
        LayoutGate {
            floor: AtomicU64::new(layout_version),
            version: AtomicU64::new(layout_version),
            applied: AtomicU64::new(0),
            leases: AtomicBool::new(false),
            serializes: AtomicBool::new(false),
            lease_until_ms: AtomicU64::new(0),
            born: Instant::now(),
            sealed_map: Mutex::new(Bytes::new()),
            epoch_floor: AtomicU64::new(0),
            epoch_generation: AtomicU64::new(0),
            epoch_admitted: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    /// From now on `MetaPutIf` needs a lease (`grant_lease`); until one is granted, none passes.
    pub fn enforce_leases(&self) {
        self.leases.store(true, Ordering::Release);
    }

    /// Extends the lease to `duration_ms` from now (never shortens it: grants arrive out of
    /// order), and says whether the cores may serialize under it. The leader flips
    /// `serializes` only for a node it demoted (after its lease ran out) or gives the role
    /// back to (after every node applied that it may), never within one running lease.
    pub fn grant_lease(&self, duration_ms: u32, serializes: bool) {
        self.serializes.store(serializes, Ordering::Release);
        let until = self.now_ms() + u64::from(duration_ms);
        self.lease_until_ms.fetch_max(until, Ordering::AcqRel);
    }

    /// Whether the node holds a running lease (or enforces none): its gateway may route
    /// conditional writes, its map being recent enough.
    pub fn holds_lease(&self) -> bool {
        !self.leases.load(Ordering::Acquire)
            || self.now_ms() < self.lease_until_ms.load(Ordering::Acquire)
    }

    /// Whether the node's cores may serialize a conditional write now: leases not enforced,
    /// or a running lease that lets them.
    pub fn may_serialize(&self) -> bool {
        !self.leases.load(Ordering::Acquire)
            || (self.serializes.load(Ordering::Acquire) && self.holds_lease())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The answer to `request` if it holds a conditional write (alone, in a batch or as
    /// background work) and the node holds no lease; `None` if it passes.
    pub fn lease_refusal(&self, request: &Request) -> Option<Response> {
        fn conditional(r: &Request) -> bool {
            match r {
                Request::MetaPutIf { .. } => true,
                Request::Background(inner) => conditional(inner),
                Request::Batch(all) => all.iter().any(conditional),
                _ => false,
            }
        }
        if self.may_serialize() || !conditional(request) {
            return None;
        }
        Some(Response::Error {
            code: ErrorCode::NoLease,
            message: "this node holds no lease to serialize conditional writes (cut off from \
                      the control plane's leader, or demoted)"
                .into(),
        })
    }

    /// The answer to a request about the node itself (`MapApplied`, `Lease`, `ControlMap`,
    /// `ControlLevel`),
    /// answered from the gate whatever the core's state; `None` for any other request.
    pub fn node_answer(&self, request: &Request) -> Option<Response> {
        match request {
            Request::MapApplied => Some(self.map_applied()),
            Request::ControlMap => Some(Response::ControlMap(self.sealed_map())),
            Request::ControlLevel => Some(Response::ControlLevel(proto::CONTROL_LEVEL)),
            Request::Lease {
                duration_ms,
                serializes,
            } => {
                self.grant_lease(*duration_ms, *serializes);
                Some(self.map_applied())
            }
            _ => None,
        }
    }

    /// Refuses frames stamped below `floor` from the next frame on, on every core and every
    /// open connection, and stamps answers with `version`. The floor never passes the
    /// version: a node accepts at least the layout it knows (a caller passing more is a bug).
    pub fn set_layout(&self, floor: u64, version: u64) {
        assert!(
            floor <= version,
            "layout floor {floor} above the node's version {version}"
        );
        // Release: a core that reads the new floor or version also sees what the follower
        // did before setting them.
        self.version.store(version, Ordering::Release);
        self.floor.store(floor, Ordering::Release);
    }

    /// Records that the node has applied the control map up to log `index`. Call it after
    /// `set_layout` for that index: a reader that sees `index` then sees that layout (or a
    /// later one). Frames admitted under the old floor and still running are not waited for.
    pub fn set_applied(&self, index: u64) {
        self.applied.store(index, Ordering::Release);
    }

    /// Keeps the map the node is applying, sealed, for `ControlMap`. Call it before
    /// `set_applied` of its index: a process refused with that index then fetches it (or a
    /// later one).
    pub fn set_sealed_map(&self, sealed: Bytes) {
        *self
            .sealed_map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = sealed;
    }

    fn sealed_map(&self) -> Bytes {
        self.sealed_map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn floor(&self) -> u64 {
        self.floor.load(Ordering::Acquire)
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// The answer to a frame stamped with `stamped` if the gate refuses it, `None` if it
    /// passes. Version 0 on either side passes, as does any version at or above the floor: a
    /// newer frame comes from a gateway whose map is ahead of this node's, and routing by a
    /// newer layout is not stale. Only routing by a layout older than the floor is refused,
    /// with the index of the map the node applied (which `ControlMap` answers).
    pub fn refusal(&self, stamped: u64) -> Option<Response> {
        let floor = self.floor();
        if floor == 0 || stamped == 0 || stamped >= floor {
            return None;
        }
        Some(Response::LayoutRefused {
            message: format!(
                "routed with layout {stamped}, this node refuses layouts below {floor} \
                 (its layout is {})",
                self.version()
            ),
            index: self.applied(),
        })
    }

    /// Admits a frame stamped with routing `epoch` (`Request::Fenced`), or refuses it if it is
    /// below the epoch floor. An admitted frame is counted under the floor's generation until
    /// the guard drops: a raise of the floor waits for it (`admitted_under`).
    pub fn admit_fenced(&self, epoch: u64) -> Result<Admitted<'_>, Box<Response>> {
        let admitted = loop {
            let generation = self.epoch_generation.load(Ordering::SeqCst);
            let slot = &self.epoch_admitted[(generation & 1) as usize];
            slot.fetch_add(1, Ordering::SeqCst);
            // Counted under the generation still current: a raise after this point waits for
            // this frame; one before it is seen by the floor read below.
            if self.epoch_generation.load(Ordering::SeqCst) == generation {
                break Admitted(slot);
            }
            slot.fetch_sub(1, Ordering::SeqCst);
        };
        let floor = self.epoch_floor.load(Ordering::SeqCst);
        if epoch < floor {
            return Err(Box::new(Response::LayoutRefused {
                message: format!(
                    "routed at epoch {epoch:#x} of the control map, this node refuses epochs \
                     below {floor:#x} (a process a phase of a layout change behind)"
                ),
                index: self.applied(),
            }));
        }
        Ok(admitted)
    }

    /// Refuses fenced frames stamped below `epoch` from now on (the floor never goes down),
    /// and returns the generation the frames admitted before were counted under: once
    /// `admitted_under` it is 0, none of them is still being answered.
    pub fn raise_epoch_floor(&self, epoch: u64) -> u64 {
        self.epoch_floor.fetch_max(epoch, Ordering::SeqCst);
        self.epoch_generation.fetch_add(1, Ordering::SeqCst)
    }

    /// Fenced frames admitted under `generation` (from `raise_epoch_floor`) not answered yet.
    /// Raises are serialized by the node's follower, which waits for this to reach 0 before
    /// the next (even after a wait that gave up): the two parities never mix generations.
    pub fn admitted_under(&self, generation: u64) -> u64 {
        self.epoch_admitted[(generation & 1) as usize].load(Ordering::SeqCst)
    }

    /// The answer to `Request::MapApplied`. The applied index is read first: the floor and
    /// version read after it are those set before it, or later ones.
    pub fn map_applied(&self) -> Response {
        let index = self.applied();
        Response::MapApplied {
            index,
            floor: self.floor(),
            version: self.version(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passes(gate: &LayoutGate, stamped: u64) -> bool {
        gate.refusal(stamped).is_none()
    }

    #[test]
    fn refuses_only_below_the_floor() {
        let gate = LayoutGate::new(0);
        assert!([0, 1, 7].iter().all(|&v| passes(&gate, v)));
        gate.set_layout(3, 4);
        assert!(passes(&gate, 0));
        assert!(!passes(&gate, 1));
        assert!(!passes(&gate, 2));
        assert!(passes(&gate, 3));
        assert!(passes(&gate, 4));
        assert!(passes(&gate, 9));
        gate.set_applied(17);
        let Some(Response::LayoutRefused { message, index }) = gate.refusal(2) else {
            panic!("refused");
        };
        assert_eq!(index, 17, "the refusal names the map the node applied");
        assert!(
            message.contains("layout 2") && message.contains("below 3"),
            "{message}"
        );
    }

    #[test]
    fn fenced_frames_below_the_epoch_floor_are_refused_and_a_raise_waits_for_those_admitted() {
        let gate = LayoutGate::new(3);
        gate.set_applied(8);
        let early = gate.admit_fenced(5).expect("no floor yet");
        let generation = gate.raise_epoch_floor(7);
        assert_eq!(
            gate.admitted_under(generation),
            1,
            "the frame admitted before"
        );
        let Err(refused) = gate.admit_fenced(6) else {
            panic!("below the floor");
        };
        let Response::LayoutRefused { index, message } = *refused else {
            panic!("{refused:?}");
        };
        assert_eq!(index, 8);
        assert!(
            message.contains("0x6") && message.contains("0x7"),
            "{message}"
        );
        assert_eq!(
            gate.admitted_under(generation),
            1,
            "a refused frame is not counted"
        );
        let later = gate.admit_fenced(7).expect("at the floor");
        let above = gate.admit_fenced(9).expect("above the floor");
        assert_eq!(
            gate.admitted_under(generation),
            1,
            "counted under the new generation"
        );
        drop(early);
        assert_eq!(gate.admitted_under(generation), 0);
        let next = gate.raise_epoch_floor(2);
        assert_eq!(gate.admitted_under(next), 2, "the two admitted since");
        drop((later, above));
        assert_eq!(gate.admitted_under(next), 0);
        assert!(gate.admit_fenced(6).is_err(), "the floor never goes down");
    }

    #[test]
    fn control_map_answers_the_sealed_map_whatever_the_stamp() {
        let gate = LayoutGate::new(3);
        assert_eq!(
            gate.node_answer(&Request::ControlMap),
            Some(Response::ControlMap(Bytes::new())),
            "no map yet"
        );
        gate.set_sealed_map(Bytes::from_static(b"sealed"));
        assert_eq!(
            gate.node_answer(&Request::ControlMap),
            Some(Response::ControlMap(Bytes::from_static(b"sealed")))
        );
    }

    #[test]
    fn map_applied_answers_what_was_set() {
        let gate = LayoutGate::new(5);
        assert_eq!(
            gate.map_applied(),
            Response::MapApplied {
                index: 0,
                floor: 5,
                version: 5
            }
        );
        gate.set_layout(5, 6);
        gate.set_applied(42);
        assert_eq!(
            gate.map_applied(),
            Response::MapApplied {
                index: 42,
                floor: 5,
                version: 6
            }
        );
    }

    #[test]
    #[should_panic(expected = "above the node's version")]
    fn a_floor_above_the_version_is_a_bug() {
        LayoutGate::new(1).set_layout(3, 2);
    }

    fn put_if() -> Request {
        Request::MetaPutIf {
            key: bytes::Bytes::from_static(b"k"),
            value: bytes::Bytes::from_static(b"v"),
            hlc: 1,
            expect_hlc: None,
        }
    }

    #[test]
    fn conditional_writes_need_a_running_lease_once_enforced() {
        let gate = LayoutGate::new(0);
        assert!(gate.lease_refusal(&put_if()).is_none(), "not enforced");
        gate.enforce_leases();
        let refused = |r: &Request| {
            matches!(
                gate.lease_refusal(r),
                Some(Response::Error {
                    code: ErrorCode::NoLease,
                    ..
                })
            )
        };
        assert!(refused(&put_if()), "none granted yet");
        assert!(refused(&Request::Background(Box::new(put_if()))));
        assert!(refused(&Request::Batch(vec![Request::Stats, put_if()])));
        assert!(gate.lease_refusal(&Request::Stats).is_none());
        assert_eq!(
            gate.node_answer(&Request::Lease {
                duration_ms: 200,
                serializes: false,
            }),
            Some(gate.map_applied())
        );
        assert!(gate.holds_lease());
        assert!(
            refused(&put_if()),
            "a demoted node's lease does not serialize"
        );
        gate.grant_lease(200, true);
        assert!(!refused(&put_if()), "granted");
        gate.grant_lease(0, true);
        assert!(!refused(&put_if()), "a shorter grant does not shorten it");
        std::thread::sleep(std::time::Duration::from_millis(250));
        assert!(refused(&put_if()), "ran out");
        assert!(!gate.holds_lease());
    }

    #[test]
    fn sits_on_its_own_cache_line() {
        assert_eq!(std::mem::align_of::<LayoutGate>(), 64);
    }
}
