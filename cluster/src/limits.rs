//! Every bound of the cluster client, named once.

/// Connections one cluster client keeps open to one remote core at most (the core serves one request
/// per connection at a time); calls beyond wait up to `REMOTE_QUEUE_TIMEOUT`.
pub const REMOTE_CONNECTIONS_MAX: usize = 64;
/// Idle connections kept per remote core.
pub const REMOTE_IDLE_MAX: usize = 16;
/// Connecting to a remote core.
pub const REMOTE_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// One call to a remote core, from sending the request to the whole answer (a 1 MiB fragment
/// on a loaded 2-core VM takes milliseconds; seconds mean the core is stuck).
pub const REMOTE_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Waiting for a free connection to a remote core.
pub const REMOTE_QUEUE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a core that failed a call is skipped before it is tried again.
pub const CORE_DOWN_FOR: std::time::Duration = std::time::Duration::from_secs(3);
/// A healthy read of one fragment; past it, an EC read decodes the stripe from the others.
pub const FRAGMENT_READ_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);
/// Entries a merged listing fetches from each replica per round.
pub const SCAN_BATCH_MAX: u32 = 1000;
/// Between two passes of the repair of missed writes.
pub const REPAIR_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
/// Bytes of one metadata record's key on a core (the engine's bound, for the layers above).
pub const META_KEY_BYTES_MAX: u64 = engine::limits::META_KEY_BYTES_MAX;
/// Attempts of one phase step of one placement group before the mover gives up (each after
/// `MOVE_RETRY_PAUSE_MS`): a core down for longer than that stops the move with an error.
pub const MOVE_ATTEMPTS_MAX: u32 = 100;
/// Placement groups one mover step takes through a phase together (`MoverConfig`'s default):
/// a cluster commits their phase and waits for every node once for all of them.
pub const MOVE_GROUPS_PER_STEP: usize = 16;
/// Tries of one mover request that got no answer before its step fails (each request is
/// idempotent; the step's retry redoes all of its groups).
pub const MOVE_CALL_TRIES_MAX: u32 = 3;
/// Records the mover copies to one core in one batch request (their writes, then their
/// read-backs in another), and the key and value bytes past which a batch takes no more. A
/// read-back answers what the core holds, which may be a newer and larger version: the batch's
/// answer must fit a frame even if every record is at the largest.
pub const MOVE_COPY_BATCH_RECORDS_MAX: usize = 32;
pub const MOVE_COPY_BATCH_BYTES_MAX: usize = 1024 * 1024;
const _: () = assert!(
    MOVE_COPY_BATCH_RECORDS_MAX
        * ((proto::limits::META_KEY_BYTES_MAX + proto::limits::META_VALUE_BYTES_MAX) as usize
            + 4096)
        < (proto::limits::FRAME_BODY_BYTES_MAX as usize)
);
/// Requests without data in their answers (`VerifyFragment`, `DeleteFragment`) the mover
/// sends to one core in one batch request. The core runs a batch's parts at once: 32 checks
/// of fragments of a megabyte read 32 MiB together (the checks read 128 KiB at a time each).
pub const MOVE_BATCH_REQUESTS_MAX: usize = 32;
/// Stripes the mover takes through `move_stripes` together (their checks and retirements
/// batched): a page of records may reference many more.
pub const MOVE_STRIPES_PER_ROUND_MAX: usize = 256;
/// Pause between two attempts of a failed phase step.
pub const MOVE_RETRY_PAUSE_MS: u64 = 500;
/// Polls of a placement group's operations in flight before the mover's fence fails.
pub const MOVE_FENCE_POLLS_MAX: u32 = 1000;
/// Between two polls of the fence.
pub const MOVE_FENCE_POLL_MS: u64 = 20;
/// How long a conditional write waits for a core that may serialize it before it answers 503:
/// a layout change's handoff (two commits of the control plane and one scan of the old
/// authority), a demoted node's way back (a commit, then every node applying it), a node
/// without a lease yet (its first grant after a start comes within a second or two of the
/// leader's election; leases run 4 s, a node unreached for 6 s is demoted).
pub const CONDITIONAL_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(10);
/// Between two looks at a handoff or a restore.
pub const HANDOFF_WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(5);
/// Between two tries of a serializer without a lease.
pub const NO_LEASE_WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(100);
/// How long a request refused as routed by an old layout waits for this process to apply the
/// refusing node's map before it is routed again (`Backend::caught_up`); past it, 503.
pub const REROUTE_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(1);
/// How often that wait looks at the applied map.
pub const REROUTE_WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(5);
/// How long a request pauses before it runs again when a node refused it naming a map this
/// process already applied (the node is applying a newer one).
pub const REROUTE_BEHIND_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);
