//! A node's layout gate: which layout versions its cores' TCP servers accept, the version they
//! stamp answers with, and the control-map log index the node has applied. One gate per node,
//! shared by every core (`Arc`, atomics: cores read it per frame, the node's map follower
//! writes it rarely). It does not follow the map itself, and it does not drain requests it
//! admitted before a change (see `set_applied`).

use std::sync::atomic::{AtomicU64, Ordering};

use proto::{ErrorCode, Response};

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
}

impl LayoutGate {
    /// A gate accepting `layout_version` and newer (0: any), applied index 0.
    pub fn new(layout_version: u64) -> LayoutGate {
        LayoutGate {
            floor: AtomicU64::new(layout_version),
            version: AtomicU64::new(layout_version),
            applied: AtomicU64::new(0),
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
    /// newer layout is not stale. Only routing by a layout older than the floor is refused.
    pub fn refusal(&self, stamped: u64) -> Option<Response> {
        let floor = self.floor();
        if floor == 0 || stamped == 0 || stamped >= floor {
            return None;
        }
        Some(Response::Error {
            code: ErrorCode::LayoutMismatch,
            message: format!(
                "routed with layout {stamped}, this node refuses layouts below {floor} \
                 (its layout is {})",
                self.version()
            ),
        })
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
        let Some(Response::Error { code, message }) = gate.refusal(2) else {
            panic!("refused");
        };
        assert_eq!(code, ErrorCode::LayoutMismatch);
        assert!(
            message.contains("layout 2") && message.contains("below 3"),
            "{message}"
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

    #[test]
    fn sits_on_its_own_cache_line() {
        assert_eq!(std::mem::align_of::<LayoutGate>(), 64);
    }
}
