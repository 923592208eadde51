//! The control plane's bounds, in one place (STYLE 3). Layout sizes come from the placement
//! crate; the others are this crate's own.

use std::time::Duration;

/// A layout file carried in a proposal (placement's own bound on layout files).
pub const LAYOUT_TOML_BYTES_MAX: usize = placement::limits::FILE_BYTES_MAX;
/// The stored PG tables carried in a proposal (placement's bound on a state file).
pub const LAYOUT_STATE_BYTES_MAX: usize = placement::state::STATE_BYTES_MAX;
/// Layout versions the map keeps: the current one, the one a change moves from, and history.
pub const LAYOUT_VERSIONS_KEPT_MAX: usize = 3;
/// Users in the map.
pub const USERS_MAX: usize = 10_000;
/// An identity policy document (JSON), as AWS bounds managed policies (6 KiB) with room.
pub const USER_POLICY_BYTES_MAX: usize = 20 * 1024;
/// Keys a user signs with at once (the gateway's bound): its first and one more, to rotate.
pub const USER_KEYS_MAX: usize = 2;
/// Bytes of one user record at most: name, keys and policy.
pub const USER_BYTES_MAX: usize =
    64 + (USER_KEYS_MAX + 1) * (128 + 128 + 16) + USER_POLICY_BYTES_MAX;

/// One encoded record (a log entry, the snapshot, the vote): a whole map at most.
pub const RECORD_BYTES_MAX: usize = LAYOUT_VERSIONS_KEPT_MAX
    * (LAYOUT_TOML_BYTES_MAX + LAYOUT_STATE_BYTES_MAX + 64)
    + USERS_MAX * USER_BYTES_MAX
    + (1 << 20);
/// The LMDB map (address space, not disk): the snapshot, the log kept after it, and room for
/// LMDB's copy-on-write pages.
pub const STORE_MAP_BYTES: usize = 8 * RECORD_BYTES_MAX.next_power_of_two();

/// Log entries sent in one AppendEntries message.
pub const APPEND_ENTRIES_MAX: u64 = 8;
/// One frame on the wire: an AppendEntries of the most entries, or one snapshot chunk.
pub const FRAME_BYTES_MAX: usize = APPEND_ENTRIES_MAX as usize * RECORD_BYTES_MAX + (1 << 20);
/// Inbound connections a node serves at once.
pub const CONNECTIONS_MAX: usize = 64;
/// A peer's connect, or one request and its answer, after which it counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Reading one frame from a connection that went quiet.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(30);
/// A proposal forwarded to the leader, until it commits or is refused (the leader's own wait,
/// `Timing::propose_timeout`, must be shorter).
pub const PROPOSE_TIMEOUT: Duration = Duration::from_secs(30);
/// The pause after a failed accept (out of descriptors), so the loop does not spin.
pub const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How long a voter holds a follower's `WatchMap` before answering with the map it has.
pub const WATCH_WAIT: Duration = Duration::from_secs(10);
/// A follower's wait for a `WatchMap` answer: the voter's hold and room for a slow answer.
pub const WATCH_CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// A follower's pause after a voter failed it, doubled at each failure up to the maximum,
/// before it asks the next voter.
pub const FOLLOW_BACKOFF_MIN: Duration = Duration::from_millis(100);
pub const FOLLOW_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long an administrator's command looks for a voter that commits it (elections, a
/// voter down) before giving up.
pub const ADMIN_RETRY_FOR: Duration = Duration::from_secs(20);
/// Hops a proposal may take: the node asked, then the leader it names.
pub const FORWARD_HOPS_MAX: u8 = 1;

const _: () = assert!(
    LAYOUT_VERSIONS_KEPT_MAX >= 2,
    "a change needs its old and new version"
);
const _: () = assert!(
    RECORD_BYTES_MAX < u32::MAX as usize,
    "lengths are u32 on disk"
);
const _: () = assert!(FRAME_BYTES_MAX < (1 << 40));
const _: () = assert!(
    WATCH_WAIT.as_millis() < WATCH_CALL_TIMEOUT.as_millis()
        && WATCH_CALL_TIMEOUT.as_millis() < FRAME_TIMEOUT.as_millis(),
    "a held watch is answered before the follower and the connection give up"
);

/// How long a voter's start waits for its port while the previous process on it still holds
/// it (a killed process's sockets outlive it briefly; engine's `BIND_WAIT_MAX` says why).
pub const BIND_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(5);
