//! A demoted node's way back (cluster/DESIGN.md, "Failover of conditional writes"): before it
//! serializes its groups' conditional writes again, it gets every record that the cores which
//! serialized them meanwhile hold.
//!
//! While node N is demoted, each group N heads is serialized by the next core of its row (the
//! substitute). A conditional write the substitute accepted has its record on the substitute at
//! once, and on the other replicas only when its writer's next step reaches them. Once N is on
//! its way back no core serializes those groups, and every node has ended the swaps it chose
//! before (`Backend::set_standing`); a writer may still be replicating one. If N took over then,
//! a create whose check read a quorum without that record would be accepted by N: two creates
//! of one key both acknowledged. So the records of N's groups are copied from each substitute to
//! N's core first, as the mover hands a group's records from its old authority to its new one.
//!
//! Owns: finding N's groups' substitutes and copying what they hold. Does not own: when to do
//! it (the lease keeper, in the binary), nor the standing itself (the map).

use bytes::Bytes;
use proto::Request;

use crate::backend::{repair_request, Backend, BackendError, Standing};
use crate::limits::SCAN_BATCH_MAX;
use crate::moves::{expect_done, holds_at_least, Catalog};

/// Copies to node `node`'s cores every record of the groups it serializes when it serves
/// that the core which serializes them while it is skipped holds (under the other nodes'
/// current standing), each written with its HLC and read back. Scans every core of the other
/// serving nodes once; any failure fails the whole (it is run again). Returns how many records
/// were copied.
pub async fn hand_back(
    backend: &Backend,
    catalog: &dyn Catalog,
    node: u64,
) -> Result<u64, BackendError> {
    let on_node = |c: usize| backend.node_of(c) == Some(node);
    let serving = |c: usize| {
        if on_node(c) {
            Standing::Serves
        } else {
            backend.standing_of(c)
        }
    };
    let skipped = |c: usize| {
        if on_node(c) {
            Standing::Skipped
        } else {
            backend.standing_of(c)
        }
    };
    // The other nodes' cores that may have stood in: not those of a node removed from the
    // layout (gone), nor of a demoted or restoring node (it serializes nothing now; what it
    // accepted while it did is its own way back's to hand on).
    let layout = backend.layout();
    let removed = |n: u64| {
        layout
            .as_ref()
            .is_some_and(|l| l.nodes().iter().any(|s| s.id == n && s.removed))
    };
    let sources: Vec<usize> = (0..backend.core_count())
        .filter(|&c| {
            backend.node_of(c).is_some_and(|n| n != node && !removed(n))
                && backend.standing_of(c) == Standing::Serves
        })
        .collect();
    let empty = Bytes::new();
    let mut copied = 0u64;
    for source in sources {
        let mut cursor: Option<Bytes> = None;
        loop {
            let (entries, next) = backend
                .meta_scan_sets(
                    &[source],
                    vec![vec![source]],
                    true,
                    &empty,
                    cursor.clone(),
                    SCAN_BATCH_MAX,
                )
                .await?;
            for (key, v) in entries {
                let Some(route) = catalog.route(&key) else {
                    continue;
                };
                let placed = backend.meta_cores(route);
                let (Some(to), Some(from)) =
                    (placed.serializer(&serving), placed.serializer(&skipped))
                else {
                    continue;
                };
                if from != source || !on_node(to) {
                    continue;
                }
                expect_done(backend.call_anyway(to, repair_request(&key, &v)).await)?;
                let back = backend
                    .call_anyway(to, Request::MetaGetVersioned { key: key.clone() })
                    .await?;
                if !holds_at_least(back, &v)? {
                    return Err(BackendError::Core {
                        code: proto::ErrorCode::Corrupt,
                        message: format!(
                            "{} does not hold the record it was given back",
                            backend.core_name(to)
                        ),
                    });
                }
                copied += 1;
            }
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
    }
    Ok(copied)
}
