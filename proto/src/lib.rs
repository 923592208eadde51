//! percore's wire protocol between gateways and storage cores: message types, a sans-I/O
//! frame codec and its limits. In-process calls carry the same Rust types; across processes
//! the frames below go over TCP, one port per core. The byte layout is in proto/README.md.
//!
//! Frame = header (40 bytes) + body. Header, little-endian:
//! magic u32 "PCW1" | version u16 | kind u16 | request id u64 | layout version u64 |
//! body length u32 | reserved u32 (zero) | crc32 u32 over header bytes 0..32 and the body |
//! reserved u32 (zero).
//! Decoded payloads are zero-copy slices of the receive buffer.

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub mod limits {
    //! Every bound of the protocol.
    /// The largest frame body: a 16 MiB fragment plus room for fields.
    pub const FRAME_BODY_BYTES_MAX: u32 = 16 * 1024 * 1024 + 64 * 1024;
    pub const META_KEY_BYTES_MAX: u32 = 2048;
    pub const META_VALUE_BYTES_MAX: u32 = 256 * 1024;
    pub const BATCH_LEN_MAX: u32 = 256;
    pub const SCAN_LIMIT_MAX: u32 = 10_000;
    pub const ERROR_MESSAGE_BYTES_MAX: u32 = 4096;
    /// Fragment ids one `ListFragments` answer holds at most (16 bytes each).
    pub const FRAGMENT_LIST_MAX: u32 = 65_536;
    /// Keys one `MetaDigest` asks about at most.
    pub const DIGEST_KEYS_MAX: u32 = 1024;
    const _: () = assert!(META_KEY_BYTES_MAX + META_VALUE_BYTES_MAX < FRAME_BODY_BYTES_MAX);
}

pub const MAGIC: u32 = u32::from_le_bytes(*b"PCW1");
pub const VERSION: u16 = 1;
pub const HEADER_BYTES: usize = 40;

/// Opaque 128-bit id of one stored fragment.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FragmentId(pub [u8; 16]);

impl FragmentId {
    pub fn from_u128(v: u128) -> FragmentId {
        FragmentId(v.to_le_bytes())
    }
    pub fn as_u128(self) -> u128 {
        u128::from_le_bytes(self.0)
    }
}

impl std::fmt::Debug for FragmentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FragmentId({:032x})", self.as_u128())
    }
}

/// One of the two metadata writes of a `Request::MetaPair`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaWrite {
    Put { key: Bytes, value: Bytes },
    Delete { key: Bytes },
}

impl MetaWrite {
    pub fn key(&self) -> &Bytes {
        match self {
            MetaWrite::Put { key, .. } | MetaWrite::Delete { key } => key,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    PutFragment {
        id: FragmentId,
        data: Bytes,
    },
    GetFragment {
        id: FragmentId,
        offset_bytes: u64,
        len_bytes: Option<u64>,
    },
    DeleteFragment {
        id: FragmentId,
    },
    MetaPut {
        key: Bytes,
        value: Bytes,
        hlc: u64,
    },
    /// Compare-and-swap: written only if the key's live value has HLC `expect_hlc` (`None`:
    /// the key is absent or deleted); otherwise `Error { code: ConditionFailed }`.
    MetaPutIf {
        key: Bytes,
        value: Bytes,
        hlc: u64,
        expect_hlc: Option<u64>,
    },
    MetaDelete {
        key: Bytes,
        hlc: u64,
    },
    /// `MetaPut` that also answers what it replaced: `Swapped` with whether the write became
    /// the key's current version (last-writer-wins by HLC) and the version the key held just
    /// before it was applied (a tombstone included). One round trip where a write followed
    /// by a read of its outcome took two.
    MetaSwap {
        key: Bytes,
        value: Bytes,
        hlc: u64,
    },
    /// Two metadata writes of distinct keys at one HLC, logged by the core as one record:
    /// after a crash both apply or neither (an object's head and its listing entry when one
    /// core holds both). Each applies by last-writer-wins on its own key. Answered `Swapped`
    /// for `first`, as `MetaSwap` is.
    MetaPair {
        first: MetaWrite,
        second: MetaWrite,
        hlc: u64,
    },
    /// `PutFragment` and `MetaPair` in one write, one durable round on the core: a small
    /// object's data, head and listing entry when one core holds all three. After a crash the
    /// pair applies only with its fragment (the fragment may stay alone, an orphan). Answered
    /// `Swapped` for `first`, as `MetaPair` is.
    PutPaired {
        id: FragmentId,
        data: Bytes,
        first: MetaWrite,
        second: MetaWrite,
        hlc: u64,
    },
    MetaGet {
        key: Bytes,
    },
    MetaScan {
        prefix: Bytes,
        start_after: Option<Bytes>,
        limit: u32,
    },
    /// Like `MetaGet`, but a deleted key answers its tombstone (with its HLC): quorum reads
    /// need it so an older live value on another replica does not win over a newer delete.
    MetaGetVersioned {
        key: Bytes,
    },
    /// Like `MetaScan`, tombstones included (they count toward `limit`).
    MetaScanVersioned {
        prefix: Bytes,
        start_after: Option<Bytes>,
        limit: u32,
    },
    Batch(Vec<Request>),
    Stats,
    /// Run `0` in the core's low-share background task queue (lifecycle moves, repair,
    /// restores), so foreground requests keep their latency. Answered with `0`'s response.
    /// Neither a batch nor another background request.
    Background(Box<Request>),
    /// Reads fragment `id` whole and checks its record's checksum without shipping the data
    /// back (the scrub): `Done` when sound, `Error { NotFound }` or `Error { Corrupt }`.
    VerifyFragment {
        id: FragmentId,
    },
    /// The ids of the fragments the core holds, by index shard (the orphan sweep): shards
    /// `from..` whole, until `limit` ids are listed; `Fragments` with the next shard to ask
    /// for. A fragment present for the whole listing is listed exactly once.
    ListFragments {
        from: u32,
        limit: u32,
    },
    /// The digest of the core's versions of `keys` ([`meta_digest`]: each key's HLC and
    /// whether it is a tombstone, or its absence), answered `Digest`: the scrub compares a page
    /// of records with a replica in one small answer, shipping values only where it differs.
    MetaDigest {
        keys: Vec<Bytes>,
    },
    /// The node's layout gate: the control-map log index the node has applied and the layouts
    /// it accepts, answered `MapApplied` (a mover learns through any core's port how far each
    /// node has followed the map). About the node, not the core's partition: every core of a
    /// node answers the same, an offline core answers it too, and so does a core whose floor
    /// the frame's layout version is below. Sent alone: in a batch or a background request
    /// it is answered `Error { BadRequest }`.
    MapApplied,
    /// The node's lease for `duration_ms` more, from when it reads this, granted again and
    /// again by the control plane's leader to every node it reaches: while it runs, the
    /// node's gateway may route conditional writes, and its cores may serialize them
    /// (`MetaPutIf`) if `serializes` (false for a demoted node). A node whose gate enforces
    /// leases refuses `MetaPutIf` otherwise. Answered like `MapApplied`, from the node's gate,
    /// and sent alone like it.
    Lease {
        duration_ms: u32,
        serializes: bool,
    },
    /// The control map the node applied last, sealed with the cluster secret, answered
    /// `ControlMap` (empty: the node follows no map). A process whose frame was refused as
    /// routed by an old layout (`LayoutRefused`) fetches it to catch up without waiting for
    /// the voters. Answered from the node's gate and sent alone, like `MapApplied`.
    ControlMap,
    /// `request` as routed by a process that stamps the routing epoch of the control map it
    /// applied (a pure gateway: cluster/DESIGN.md, "Across processes"). The node's server
    /// refuses it (`LayoutRefused`) if `epoch` is below the epoch of the map the node applied,
    /// and answers the request itself otherwise, as if it came alone. Wraps any request but
    /// another `Fenced`.
    Fenced {
        epoch: u64,
        request: Box<Request>,
    },
    /// Which control-map encodings the node's build reads, answered `ControlLevel`
    /// ([`CONTROL_LEVEL`]) from the node's gate, alone like `MapApplied`. A build from before
    /// this request refuses it as an unknown kind (level 0). `percore layout apply` asks every
    /// node and refuses to start a change while their builds differ.
    ControlLevel,
}

/// The control-map encodings (commands, group phases) this build reads and writes. Raised by a
/// build that writes one an older build cannot decode: a node of that older build could not
/// follow a layout change the newer one runs. Builds before `Request::ControlLevel` are 0.
pub const CONTROL_LEVEL: u64 = 1;

/// What a core holds of one key, for [`meta_digest`]: `None` (absent), or its version's HLC
/// and whether that version is a tombstone.
pub type KeyState = Option<(u64, bool)>;

/// The digest of a list of keys and their states, in order (SHA-256 over each key's length,
/// bytes and state), as a core answers `MetaDigest` and a caller computes what it expects.
pub fn meta_digest<'a>(entries: impl IntoIterator<Item = (&'a [u8], KeyState)>) -> [u8; 32] {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for (key, state) in entries {
        h.update((key.len() as u32).to_le_bytes());
        h.update(key);
        match state {
            None => h.update([0u8]),
            Some((hlc, deleted)) => {
                h.update([1u8 + u8::from(deleted)]);
                h.update(hlc.to_le_bytes());
            }
        }
    }
    h.finalize().into()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaEntry {
    pub hlc: u64,
    pub value: Bytes,
}

/// A key's last write on one core, live or a tombstone (`deleted`, with an empty value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaVersion {
    pub hlc: u64,
    pub deleted: bool,
    pub value: Bytes,
}

/// Counters of one core. Encoded with a field count so a newer peer's extra fields are skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreStats {
    pub fragments: u64,
    pub live_bytes: u64,
    pub dead_bytes: u64,
    pub capacity_bytes: u64,
    pub free_bytes: u64,
    pub segments: u64,
    pub corrupt_reads: u64,
    pub poisoned: bool,
    pub puts: u64,
    pub gets: u64,
    pub deletes: u64,
    /// Damaged log records skipped by the last start's replay.
    pub corrupt_records_replayed: u64,
    /// The last start found the checkpoint damaged and rebuilt the index from the whole log.
    pub checkpoint_rebuilt: bool,
    /// Fragment reads the core's cache served, and those it could not (read from the device).
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Cache entries dropped to stay within the budget.
    pub cache_evictions: u64,
    /// Bytes the cache holds now (payloads and per-entry overhead), and its budget.
    pub cache_bytes: u64,
    pub cache_budget_bytes: u64,
    /// Reclaimed segment files kept for reuse, segments written into a reused file, and log
    /// scans that stopped at a reused file's old records (engine/DESIGN.md, "Recycled segment
    /// files").
    pub free_segment_files: u64,
    pub segments_reused: u64,
    pub replay_stale_stops: u64,
    /// Log bytes appends took since the core started, and bytes of its LMDB file in use
    /// (engine `StoreStats`).
    pub log_appended_bytes: u64,
    pub meta_bytes: u64,
    /// Guarded metadata pairs the last start's replay dropped because their fragment's record
    /// was not there (engine/DESIGN.md, "Conditional metadata writes").
    pub guarded_pairs_dropped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    NotFound = 1,
    NoSpace = 2,
    Corrupt = 3,
    Poisoned = 4,
    Busy = 5,
    BadRequest = 6,
    /// A refusal of a frame routed by an old layout, as builds before `Response::LayoutRefused`
    /// answer it (without the node's map index).
    LayoutMismatch = 7,
    VersionMismatch = 8,
    TooLarge = 9,
    Internal = 10,
    ConditionFailed = 11,
    /// The core did not start: its partition is damaged (the message says why). Callers treat
    /// it like an unreachable core and read around it.
    Offline = 12,
    /// A conditional write (`MetaPutIf`) on a node whose lease to serialize them ran out
    /// (`Request::Lease`): it may have been demoted; callers answer 503.
    NoLease = 13,
    /// A request of a kind this core's build does not know (a newer peer's,
    /// `Message::Unknown`). The connection stays usable; the caller may say the same in kinds
    /// the core knows. Builds before this code answered such a frame with request id 0 and
    /// closed the connection (see `unknown_kind_refused`).
    UnknownKind = 14,
}

impl ErrorCode {
    /// Unknown codes (from a newer peer) read as `Internal`.
    pub fn from_u16(v: u16) -> ErrorCode {
        match v {
            1 => Self::NotFound,
            2 => Self::NoSpace,
            3 => Self::Corrupt,
            4 => Self::Poisoned,
            5 => Self::Busy,
            6 => Self::BadRequest,
            7 => Self::LayoutMismatch,
            8 => Self::VersionMismatch,
            9 => Self::TooLarge,
            11 => Self::ConditionFailed,
            12 => Self::Offline,
            13 => Self::NoLease,
            14 => Self::UnknownKind,
            _ => Self::Internal,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Done,
    Fragment(Bytes),
    Meta(Option<MetaEntry>),
    Scan {
        entries: Vec<(Bytes, MetaEntry)>,
        next_start_after: Option<Bytes>,
    },
    MetaVersioned(Option<MetaVersion>),
    /// The answer to `MetaSwap`.
    Swapped {
        won: bool,
        previous: Option<MetaVersion>,
    },
    ScanVersioned {
        entries: Vec<(Bytes, MetaVersion)>,
        next_start_after: Option<Bytes>,
    },
    Batch(Vec<Response>),
    Stats(CoreStats),
    /// The answer to `ListFragments`: `next` is the first shard not listed (`None`: done).
    Fragments {
        ids: Vec<FragmentId>,
        next: Option<u32>,
    },
    /// The answer to `MetaDigest`.
    Digest([u8; 32]),
    /// The answer to `MapApplied`: the control-map log `index` the node has applied (0: it
    /// follows no map), the layout `floor` below which it refuses frames (0: none) and the
    /// layout `version` it stamps answers with.
    MapApplied {
        index: u64,
        floor: u64,
        version: u64,
    },
    /// The answer to `ControlMap`: the node's sealed map (empty: none).
    ControlMap(Bytes),
    /// The frame was routed by a layout older than the node's floor: nothing was done. `index`
    /// is the control-map log index the node has applied (0: it follows no map), whose map
    /// `ControlMap` fetches from it.
    LayoutRefused {
        message: String,
        index: u64,
    },
    /// The answer to `ControlLevel`.
    ControlLevel(u64),
    Error {
        code: ErrorCode,
        message: String,
    },
}

impl Response {
    /// A scan page's resume key (`None`: the scan is done, or this is not a scan page).
    pub fn next_start_after(&self) -> Option<&Bytes> {
        match self {
            Response::Scan {
                next_start_after, ..
            }
            | Response::ScanVersioned {
                next_start_after, ..
            } => next_start_after.as_ref(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
    /// A whole, checked frame of a kind this build does not know (inside a `Fenced` or
    /// `Batch` too): a newer peer's. A core answers it `ErrorCode::UnknownKind` under its
    /// request id and reads on.
    Unknown(u16),
}

/// The kind a core refused as unknown to its build, from its error answer: `ErrorCode::
/// UnknownKind` (builds since that code), or the text of `ProtoError::UnknownKind` that builds
/// before it sent under request id 0 before closing the connection.
pub fn unknown_kind_refused(code: ErrorCode, message: &str) -> Option<u16> {
    match code {
        ErrorCode::UnknownKind | ErrorCode::BadRequest => message
            .strip_prefix(UNKNOWN_KIND_TEXT)
            .and_then(|k| k.trim().parse().ok()),
        _ => None,
    }
}

/// How `ProtoError::UnknownKind` reads, before the kind (the same in every build).
const UNKNOWN_KIND_TEXT: &str = "unknown message kind ";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub request_id: u64,
    pub layout_version: u64,
    pub message: Message,
}

impl Frame {
    /// Whether this frame is a response under `request_id`: the connection it came on is in
    /// step with its peer and may carry the next request. (A refusal under id 0, from builds
    /// before `ErrorCode::UnknownKind`, came before the peer closed the connection.)
    pub fn answers(&self, request_id: u64) -> bool {
        self.request_id == request_id && matches!(self.message, Message::Response(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("bad frame magic")]
    BadMagic,
    #[error("unsupported protocol version {got}")]
    UnsupportedVersion { got: u16 },
    #[error("frame checksum mismatch")]
    BadChecksum,
    #[error("frame body of {len} bytes exceeds {max}")]
    TooLarge { len: u64, max: u64 },
    #[error("unknown message kind {0}")]
    UnknownKind(u16),
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    #[error("nested batch")]
    NestedBatch,
}

// Message kinds: requests 1.., responses 0x100 + n; appended, never renumbered.
const K_PUT: u16 = 1;
const K_GET: u16 = 2;
const K_DELETE: u16 = 3;
const K_META_PUT: u16 = 4;
const K_META_DELETE: u16 = 5;
const K_META_GET: u16 = 6;
const K_META_SCAN: u16 = 7;
const K_BATCH: u16 = 8;
const K_STATS: u16 = 9;
const K_META_PUT_IF: u16 = 10;
const K_META_GET_VERSIONED: u16 = 11;
const K_META_SCAN_VERSIONED: u16 = 12;
const K_BACKGROUND: u16 = 13;
const K_META_SWAP: u16 = 14;
const K_VERIFY: u16 = 15;
const K_LIST_FRAGMENTS: u16 = 16;
const K_META_DIGEST: u16 = 17;
const K_MAP_APPLIED: u16 = 18;
const K_LEASE: u16 = 19;
const K_CONTROL_MAP: u16 = 20;
const K_FENCED: u16 = 21;
/// `Request::MetaPair`'s kind: builds before it refuse it (`unknown_kind_refused`).
pub const K_META_PAIR: u16 = 22;
/// `Request::PutPaired`'s kind: builds before it refuse it (`unknown_kind_refused`).
pub const K_PUT_PAIRED: u16 = 23;
const K_CONTROL_LEVEL: u16 = 24;
const R_DONE: u16 = 0x101;
const R_FRAGMENT: u16 = 0x102;
const R_META: u16 = 0x103;
const R_SCAN: u16 = 0x104;
const R_BATCH: u16 = 0x105;
const R_STATS: u16 = 0x106;
const R_ERROR: u16 = 0x107;
const R_META_VERSIONED: u16 = 0x108;
const R_SCAN_VERSIONED: u16 = 0x109;
const R_SWAPPED: u16 = 0x10A;
const R_FRAGMENTS: u16 = 0x10B;
const R_DIGEST: u16 = 0x10C;
const R_MAP_APPLIED: u16 = 0x10D;
const R_CONTROL_MAP: u16 = 0x10E;
const R_LAYOUT_REFUSED: u16 = 0x10F;
const R_CONTROL_LEVEL: u16 = 0x110;

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_u32_le(b.len() as u32);
    out.put_slice(b);
}

fn put_meta_writes(out: &mut BytesMut, writes: [&MetaWrite; 2]) {
    for write in writes {
        match write {
            MetaWrite::Put { key, value } => {
                out.put_u8(0);
                put_bytes(out, key);
                put_bytes(out, value);
            }
            MetaWrite::Delete { key } => {
                out.put_u8(1);
                put_bytes(out, key);
            }
        }
    }
}

fn put_opt_bytes(out: &mut BytesMut, b: Option<&Bytes>) {
    match b {
        Some(b) => {
            out.put_u8(1);
            put_bytes(out, b);
        }
        None => out.put_u8(0),
    }
}

fn request_kind(r: &Request) -> u16 {
    match r {
        Request::PutFragment { .. } => K_PUT,
        Request::GetFragment { .. } => K_GET,
        Request::DeleteFragment { .. } => K_DELETE,
        Request::MetaPut { .. } => K_META_PUT,
        Request::MetaPutIf { .. } => K_META_PUT_IF,
        Request::MetaSwap { .. } => K_META_SWAP,
        Request::MetaPair { .. } => K_META_PAIR,
        Request::PutPaired { .. } => K_PUT_PAIRED,
        Request::MetaDelete { .. } => K_META_DELETE,
        Request::MetaGet { .. } => K_META_GET,
        Request::MetaScan { .. } => K_META_SCAN,
        Request::MetaGetVersioned { .. } => K_META_GET_VERSIONED,
        Request::MetaScanVersioned { .. } => K_META_SCAN_VERSIONED,
        Request::Batch(_) => K_BATCH,
        Request::Stats => K_STATS,
        Request::Background(_) => K_BACKGROUND,
        Request::VerifyFragment { .. } => K_VERIFY,
        Request::ListFragments { .. } => K_LIST_FRAGMENTS,
        Request::MetaDigest { .. } => K_META_DIGEST,
        Request::MapApplied => K_MAP_APPLIED,
        Request::ControlLevel => K_CONTROL_LEVEL,
        Request::Lease { .. } => K_LEASE,
        Request::ControlMap => K_CONTROL_MAP,
        Request::Fenced { .. } => K_FENCED,
    }
}

fn encode_request_body(r: &Request, out: &mut BytesMut) {
    match r {
        Request::PutFragment { id, data } => {
            out.put_slice(&id.0);
            put_bytes(out, data);
        }
        Request::GetFragment {
            id,
            offset_bytes,
            len_bytes,
        } => {
            out.put_slice(&id.0);
            out.put_u64_le(*offset_bytes);
            match len_bytes {
                Some(l) => {
                    out.put_u8(1);
                    out.put_u64_le(*l);
                }
                None => out.put_u8(0),
            }
        }
        Request::DeleteFragment { id } | Request::VerifyFragment { id } => out.put_slice(&id.0),
        Request::MetaPut { key, value, hlc } | Request::MetaSwap { key, value, hlc } => {
            out.put_u64_le(*hlc);
            put_bytes(out, key);
            put_bytes(out, value);
        }
        Request::MetaPutIf {
            key,
            value,
            hlc,
            expect_hlc,
        } => {
            out.put_u64_le(*hlc);
            put_bytes(out, key);
            put_bytes(out, value);
            match expect_hlc {
                Some(h) => {
                    out.put_u8(1);
                    out.put_u64_le(*h);
                }
                None => out.put_u8(0),
            }
        }
        Request::MetaDelete { key, hlc } => {
            out.put_u64_le(*hlc);
            put_bytes(out, key);
        }
        Request::MetaPair { first, second, hlc } => {
            out.put_u64_le(*hlc);
            put_meta_writes(out, [first, second]);
        }
        Request::PutPaired {
            id,
            data,
            first,
            second,
            hlc,
        } => {
            out.put_slice(&id.0);
            put_bytes(out, data);
            out.put_u64_le(*hlc);
            put_meta_writes(out, [first, second]);
        }
        Request::MetaGet { key } | Request::MetaGetVersioned { key } => put_bytes(out, key),
        Request::MetaScan {
            prefix,
            start_after,
            limit,
        }
        | Request::MetaScanVersioned {
            prefix,
            start_after,
            limit,
        } => {
            put_bytes(out, prefix);
            put_opt_bytes(out, start_after.as_ref());
            out.put_u32_le(*limit);
        }
        Request::Batch(parts) => {
            out.put_u32_le(parts.len() as u32);
            for p in parts {
                assert!(
                    !matches!(p, Request::Batch(_) | Request::Fenced { .. }),
                    "batches do not nest, and a fenced request is not inside one"
                );
                let mut body = BytesMut::new();
                encode_request_body(p, &mut body);
                out.put_u16_le(request_kind(p));
                put_bytes(out, &body);
            }
        }
        Request::Stats | Request::MapApplied | Request::ControlMap | Request::ControlLevel => {}
        Request::Lease {
            duration_ms,
            serializes,
        } => {
            out.put_u32_le(*duration_ms);
            out.put_u8(u8::from(*serializes));
        }
        Request::ListFragments { from, limit } => {
            out.put_u32_le(*from);
            out.put_u32_le(*limit);
        }
        Request::MetaDigest { keys } => {
            out.put_u32_le(keys.len() as u32);
            for key in keys {
                put_bytes(out, key);
            }
        }
        Request::Background(inner) => {
            assert!(
                !matches!(
                    **inner,
                    Request::Batch(_) | Request::Background(_) | Request::Fenced { .. }
                ),
                "a background request wraps one plain request"
            );
            let mut body = BytesMut::new();
            encode_request_body(inner, &mut body);
            out.put_u16_le(request_kind(inner));
            put_bytes(out, &body);
        }
        // The wrapped request's body follows unframed: the rest of the frame is its body, so
        // a fragment is not copied once more.
        Request::Fenced { epoch, request } => {
            assert!(
                !matches!(**request, Request::Fenced { .. }),
                "a fenced request does not wrap another"
            );
            out.put_u64_le(*epoch);
            out.put_u16_le(request_kind(request));
            encode_request_body(request, out);
        }
    }
}

fn response_kind(r: &Response) -> u16 {
    match r {
        Response::Done => R_DONE,
        Response::Fragment(_) => R_FRAGMENT,
        Response::Meta(_) => R_META,
        Response::Scan { .. } => R_SCAN,
        Response::MetaVersioned(_) => R_META_VERSIONED,
        Response::Swapped { .. } => R_SWAPPED,
        Response::ScanVersioned { .. } => R_SCAN_VERSIONED,
        Response::Batch(_) => R_BATCH,
        Response::Stats(_) => R_STATS,
        Response::Fragments { .. } => R_FRAGMENTS,
        Response::Digest(_) => R_DIGEST,
        Response::MapApplied { .. } => R_MAP_APPLIED,
        Response::ControlMap(_) => R_CONTROL_MAP,
        Response::LayoutRefused { .. } => R_LAYOUT_REFUSED,
        Response::ControlLevel(_) => R_CONTROL_LEVEL,
        Response::Error { .. } => R_ERROR,
    }
}

fn put_entry(out: &mut BytesMut, e: &MetaEntry) {
    out.put_u64_le(e.hlc);
    put_bytes(out, &e.value);
}

fn put_version(out: &mut BytesMut, v: &MetaVersion) {
    out.put_u64_le(v.hlc);
    out.put_u8(u8::from(v.deleted));
    put_bytes(out, &v.value);
}

fn encode_response_body(r: &Response, out: &mut BytesMut) {
    match r {
        Response::Done => {}
        Response::Fragment(b) => put_bytes(out, b),
        Response::Meta(m) => match m {
            Some(e) => {
                out.put_u8(1);
                put_entry(out, e);
            }
            None => out.put_u8(0),
        },
        Response::Scan {
            entries,
            next_start_after,
        } => {
            out.put_u32_le(entries.len() as u32);
            for (k, e) in entries {
                put_bytes(out, k);
                put_entry(out, e);
            }
            put_opt_bytes(out, next_start_after.as_ref());
        }
        Response::MetaVersioned(m) => match m {
            Some(v) => {
                out.put_u8(1);
                put_version(out, v);
            }
            None => out.put_u8(0),
        },
        Response::Digest(d) => out.put_slice(d),
        Response::MapApplied {
            index,
            floor,
            version,
        } => {
            out.put_u64_le(*index);
            out.put_u64_le(*floor);
            out.put_u64_le(*version);
        }
        Response::ControlMap(sealed) => put_bytes(out, sealed),
        Response::ControlLevel(level) => out.put_u64_le(*level),
        Response::LayoutRefused { message, index } => {
            out.put_u64_le(*index);
            put_message(out, message);
        }
        Response::Fragments { ids, next } => {
            out.put_u32_le(ids.len() as u32);
            for id in ids {
                out.put_slice(&id.0);
            }
            match next {
                Some(n) => {
                    out.put_u8(1);
                    out.put_u32_le(*n);
                }
                None => out.put_u8(0),
            }
        }
        Response::Swapped { won, previous } => {
            out.put_u8(u8::from(*won));
            match previous {
                Some(v) => {
                    out.put_u8(1);
                    put_version(out, v);
                }
                None => out.put_u8(0),
            }
        }
        Response::ScanVersioned {
            entries,
            next_start_after,
        } => {
            out.put_u32_le(entries.len() as u32);
            for (k, v) in entries {
                put_bytes(out, k);
                put_version(out, v);
            }
            put_opt_bytes(out, next_start_after.as_ref());
        }
        Response::Batch(parts) => {
            out.put_u32_le(parts.len() as u32);
            for p in parts {
                let mut body = BytesMut::new();
                encode_response_body(p, &mut body);
                out.put_u16_le(response_kind(p));
                put_bytes(out, &body);
            }
        }
        Response::Stats(s) => {
            let fields = [
                s.fragments,
                s.live_bytes,
                s.dead_bytes,
                s.capacity_bytes,
                s.free_bytes,
                s.segments,
                s.corrupt_reads,
                u64::from(s.poisoned),
                s.puts,
                s.gets,
                s.deletes,
                s.corrupt_records_replayed,
                u64::from(s.checkpoint_rebuilt),
                s.cache_hits,
                s.cache_misses,
                s.cache_evictions,
                s.cache_bytes,
                s.cache_budget_bytes,
                s.free_segment_files,
                s.segments_reused,
                s.replay_stale_stops,
                s.log_appended_bytes,
                s.meta_bytes,
                s.guarded_pairs_dropped,
            ];
            out.put_u32_le(fields.len() as u32);
            for f in fields {
                out.put_u64_le(f);
            }
        }
        Response::Error { code, message } => {
            out.put_u16_le(*code as u16);
            put_message(out, message);
        }
    }
}

/// An error's message, cut at a character boundary to `ERROR_MESSAGE_BYTES_MAX`.
fn put_message(out: &mut BytesMut, message: &str) {
    let mut m = message.as_bytes();
    if m.len() > limits::ERROR_MESSAGE_BYTES_MAX as usize {
        let mut cut = limits::ERROR_MESSAGE_BYTES_MAX as usize;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        m = &m[..cut];
    }
    put_bytes(out, m);
}

fn get_message(b: &mut Bytes) -> Result<String, ProtoError> {
    let m = get_bytes(b, limits::ERROR_MESSAGE_BYTES_MAX)?;
    Ok(String::from_utf8_lossy(&m).into_owned())
}

fn write_frame(kind: u16, request_id: u64, layout_version: u64, body: &[u8], out: &mut BytesMut) {
    assert!(
        body.len() <= limits::FRAME_BODY_BYTES_MAX as usize,
        "frame body within limits"
    );
    let start = out.len();
    out.reserve(HEADER_BYTES + body.len());
    out.put_u32_le(MAGIC);
    out.put_u16_le(VERSION);
    out.put_u16_le(kind);
    out.put_u64_le(request_id);
    out.put_u64_le(layout_version);
    out.put_u32_le(body.len() as u32);
    out.put_u32_le(0);
    let mut h = crc32fast::Hasher::new();
    h.update(&out[start..start + 32]);
    h.update(body);
    out.put_u32_le(h.finalize());
    out.put_u32_le(0);
    out.put_slice(body);
}

/// Appends a request frame to `out`.
pub fn encode_request(request_id: u64, layout_version: u64, r: &Request, out: &mut BytesMut) {
    let mut body = BytesMut::new();
    encode_request_body(r, &mut body);
    write_frame(request_kind(r), request_id, layout_version, &body, out);
}

/// Appends a response frame to `out`.
pub fn encode_response(request_id: u64, layout_version: u64, r: &Response, out: &mut BytesMut) {
    let mut body = BytesMut::new();
    encode_response_body(r, &mut body);
    write_frame(response_kind(r), request_id, layout_version, &body, out);
}

/// The body length a buffered frame header announces (`None` until the header is complete).
/// Lets a receiver reserve memory for the body before reading it.
pub fn peek_body_bytes(buf: &[u8]) -> Option<u32> {
    buf.get(24..28)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
}

/// Takes one whole frame off the front of `buf`. `Ok(None)` until a whole frame is buffered.
/// Never reserves memory for a length it has not checked against the limits.
pub fn decode_frame(buf: &mut BytesMut) -> Result<Option<Frame>, ProtoError> {
    if buf.len() < HEADER_BYTES {
        if buf.len() >= 4 && buf[0..4] != MAGIC.to_le_bytes() {
            return Err(ProtoError::BadMagic);
        }
        return Ok(None);
    }
    let h = &buf[..HEADER_BYTES];
    if h[0..4] != MAGIC.to_le_bytes() {
        return Err(ProtoError::BadMagic);
    }
    let version = u16::from_le_bytes([h[4], h[5]]);
    if version != VERSION {
        return Err(ProtoError::UnsupportedVersion { got: version });
    }
    let kind = u16::from_le_bytes([h[6], h[7]]);
    let request_id = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
    let layout_version = u64::from_le_bytes(h[16..24].try_into().expect("8 bytes"));
    let body_len = u32::from_le_bytes(h[24..28].try_into().expect("4 bytes"));
    if body_len > limits::FRAME_BODY_BYTES_MAX {
        return Err(ProtoError::TooLarge {
            len: u64::from(body_len),
            max: u64::from(limits::FRAME_BODY_BYTES_MAX),
        });
    }
    if h[28..32] != [0; 4] || h[36..40] != [0; 4] {
        return Err(ProtoError::Malformed("reserved header bytes"));
    }
    let crc = u32::from_le_bytes(h[32..36].try_into().expect("4 bytes"));
    let total = HEADER_BYTES + body_len as usize;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&buf[0..32]);
    hasher.update(&buf[HEADER_BYTES..total]);
    if hasher.finalize() != crc {
        return Err(ProtoError::BadChecksum);
    }
    let mut frame = buf.split_to(total).freeze();
    frame.advance(HEADER_BYTES);
    let message = match decode_message(kind, &mut frame, true) {
        // The frame is whole and its checksum holds: only its kind is newer than this build.
        Err(ProtoError::UnknownKind(k)) => {
            return Ok(Some(Frame {
                request_id,
                layout_version,
                message: Message::Unknown(k),
            }))
        }
        decoded => decoded?,
    };
    if frame.has_remaining() {
        return Err(ProtoError::Malformed("trailing bytes"));
    }
    Ok(Some(Frame {
        request_id,
        layout_version,
        message,
    }))
}

fn need(b: &Bytes, n: usize) -> Result<(), ProtoError> {
    if b.remaining() < n {
        Err(ProtoError::Malformed("truncated field"))
    } else {
        Ok(())
    }
}

fn get_u8(b: &mut Bytes) -> Result<u8, ProtoError> {
    need(b, 1)?;
    Ok(b.get_u8())
}
fn get_u16(b: &mut Bytes) -> Result<u16, ProtoError> {
    need(b, 2)?;
    Ok(b.get_u16_le())
}
fn get_u32(b: &mut Bytes) -> Result<u32, ProtoError> {
    need(b, 4)?;
    Ok(b.get_u32_le())
}
fn get_u64(b: &mut Bytes) -> Result<u64, ProtoError> {
    need(b, 8)?;
    Ok(b.get_u64_le())
}
fn get_bytes(b: &mut Bytes, max: u32) -> Result<Bytes, ProtoError> {
    let len = get_u32(b)?;
    if len > max {
        return Err(ProtoError::TooLarge {
            len: u64::from(len),
            max: u64::from(max),
        });
    }
    need(b, len as usize)?;
    Ok(b.split_to(len as usize))
}
fn get_opt_bytes(b: &mut Bytes, max: u32) -> Result<Option<Bytes>, ProtoError> {
    match get_u8(b)? {
        0 => Ok(None),
        1 => get_bytes(b, max).map(Some),
        _ => Err(ProtoError::Malformed("option tag")),
    }
}
fn get_id(b: &mut Bytes) -> Result<FragmentId, ProtoError> {
    need(b, 16)?;
    let mut id = [0u8; 16];
    b.copy_to_slice(&mut id);
    Ok(FragmentId(id))
}
fn get_meta_write(b: &mut Bytes) -> Result<MetaWrite, ProtoError> {
    use limits::META_KEY_BYTES_MAX as KEY;
    Ok(match get_u8(b)? {
        0 => {
            let key = get_bytes(b, KEY)?;
            let value = get_bytes(b, limits::META_VALUE_BYTES_MAX)?;
            MetaWrite::Put { key, value }
        }
        1 => MetaWrite::Delete {
            key: get_bytes(b, KEY)?,
        },
        _ => return Err(ProtoError::Malformed("metadata write tag")),
    })
}
fn get_entry(b: &mut Bytes) -> Result<MetaEntry, ProtoError> {
    Ok(MetaEntry {
        hlc: get_u64(b)?,
        value: get_bytes(b, limits::META_VALUE_BYTES_MAX)?,
    })
}

fn get_version(b: &mut Bytes) -> Result<MetaVersion, ProtoError> {
    let hlc = get_u64(b)?;
    let deleted = match get_u8(b)? {
        0 => false,
        1 => true,
        _ => return Err(ProtoError::Malformed("tombstone flag")),
    };
    Ok(MetaVersion {
        hlc,
        deleted,
        value: get_bytes(b, limits::META_VALUE_BYTES_MAX)?,
    })
}

fn get_scan_request(b: &mut Bytes) -> Result<(Bytes, Option<Bytes>, u32), ProtoError> {
    use limits::META_KEY_BYTES_MAX as KEY;
    let prefix = get_bytes(b, KEY)?;
    let start_after = get_opt_bytes(b, KEY)?;
    let limit = get_u32(b)?;
    if limit > limits::SCAN_LIMIT_MAX {
        return Err(ProtoError::TooLarge {
            len: u64::from(limit),
            max: u64::from(limits::SCAN_LIMIT_MAX),
        });
    }
    Ok((prefix, start_after, limit))
}

/// The entry count of a scan response, checked against the limit.
fn get_scan_len(b: &mut Bytes) -> Result<u32, ProtoError> {
    let n = get_u32(b)?;
    if n > limits::SCAN_LIMIT_MAX {
        return Err(ProtoError::TooLarge {
            len: u64::from(n),
            max: u64::from(limits::SCAN_LIMIT_MAX),
        });
    }
    Ok(n)
}

fn decode_message(kind: u16, b: &mut Bytes, top: bool) -> Result<Message, ProtoError> {
    use limits::{FRAME_BODY_BYTES_MAX as BODY, META_KEY_BYTES_MAX as KEY};
    let m = match kind {
        K_PUT => Message::Request(Request::PutFragment {
            id: get_id(b)?,
            data: get_bytes(b, BODY)?,
        }),
        K_GET => {
            let id = get_id(b)?;
            let offset_bytes = get_u64(b)?;
            let len_bytes = match get_u8(b)? {
                0 => None,
                1 => Some(get_u64(b)?),
                _ => return Err(ProtoError::Malformed("option tag")),
            };
            Message::Request(Request::GetFragment {
                id,
                offset_bytes,
                len_bytes,
            })
        }
        K_DELETE => Message::Request(Request::DeleteFragment { id: get_id(b)? }),
        K_VERIFY => Message::Request(Request::VerifyFragment { id: get_id(b)? }),
        K_LIST_FRAGMENTS => {
            let from = get_u32(b)?;
            let limit = get_u32(b)?;
            if limit > limits::FRAGMENT_LIST_MAX {
                return Err(ProtoError::TooLarge {
                    len: u64::from(limit),
                    max: u64::from(limits::FRAGMENT_LIST_MAX),
                });
            }
            Message::Request(Request::ListFragments { from, limit })
        }
        K_META_DIGEST => {
            let n = get_u32(b)?;
            if n > limits::DIGEST_KEYS_MAX {
                return Err(ProtoError::TooLarge {
                    len: u64::from(n),
                    max: u64::from(limits::DIGEST_KEYS_MAX),
                });
            }
            let mut keys = Vec::with_capacity(n as usize);
            for _ in 0..n {
                keys.push(get_bytes(b, KEY)?);
            }
            Message::Request(Request::MetaDigest { keys })
        }
        K_META_PUT => {
            let hlc = get_u64(b)?;
            let key = get_bytes(b, KEY)?;
            let value = get_bytes(b, limits::META_VALUE_BYTES_MAX)?;
            Message::Request(Request::MetaPut { key, value, hlc })
        }
        K_META_SWAP => {
            let hlc = get_u64(b)?;
            let key = get_bytes(b, KEY)?;
            let value = get_bytes(b, limits::META_VALUE_BYTES_MAX)?;
            Message::Request(Request::MetaSwap { key, value, hlc })
        }
        K_META_PAIR => {
            let hlc = get_u64(b)?;
            let first = get_meta_write(b)?;
            let second = get_meta_write(b)?;
            Message::Request(Request::MetaPair { first, second, hlc })
        }
        K_PUT_PAIRED => {
            let id = get_id(b)?;
            let data = get_bytes(b, BODY)?;
            let hlc = get_u64(b)?;
            let first = get_meta_write(b)?;
            let second = get_meta_write(b)?;
            Message::Request(Request::PutPaired {
                id,
                data,
                first,
                second,
                hlc,
            })
        }
        K_META_PUT_IF => {
            let hlc = get_u64(b)?;
            let key = get_bytes(b, KEY)?;
            let value = get_bytes(b, limits::META_VALUE_BYTES_MAX)?;
            let expect_hlc = match get_u8(b)? {
                0 => None,
                1 => Some(get_u64(b)?),
                _ => return Err(ProtoError::Malformed("option tag")),
            };
            Message::Request(Request::MetaPutIf {
                key,
                value,
                hlc,
                expect_hlc,
            })
        }
        K_META_DELETE => {
            let hlc = get_u64(b)?;
            Message::Request(Request::MetaDelete {
                key: get_bytes(b, KEY)?,
                hlc,
            })
        }
        K_META_GET => Message::Request(Request::MetaGet {
            key: get_bytes(b, KEY)?,
        }),
        K_META_SCAN => {
            let (prefix, start_after, limit) = get_scan_request(b)?;
            Message::Request(Request::MetaScan {
                prefix,
                start_after,
                limit,
            })
        }
        K_META_GET_VERSIONED => Message::Request(Request::MetaGetVersioned {
            key: get_bytes(b, KEY)?,
        }),
        K_META_SCAN_VERSIONED => {
            let (prefix, start_after, limit) = get_scan_request(b)?;
            Message::Request(Request::MetaScanVersioned {
                prefix,
                start_after,
                limit,
            })
        }
        K_STATS => Message::Request(Request::Stats),
        K_MAP_APPLIED => Message::Request(Request::MapApplied),
        K_CONTROL_MAP => Message::Request(Request::ControlMap),
        K_CONTROL_LEVEL => Message::Request(Request::ControlLevel),
        K_LEASE => Message::Request(Request::Lease {
            duration_ms: get_u32(b)?,
            serializes: match get_u8(b)? {
                0 => false,
                1 => true,
                _ => return Err(ProtoError::Malformed("a lease's serializes flag is 0 or 1")),
            },
        }),
        K_FENCED => {
            if !top {
                return Err(ProtoError::Malformed("a fenced request is not nested"));
            }
            let epoch = get_u64(b)?;
            let k = get_u16(b)?;
            if k == K_FENCED {
                return Err(ProtoError::Malformed("a fenced request wraps another"));
            }
            let Message::Request(inner) = decode_message(k, b, true)? else {
                return Err(ProtoError::Malformed("a fenced request wraps a request"));
            };
            Message::Request(Request::Fenced {
                epoch,
                request: Box::new(inner),
            })
        }
        K_BACKGROUND => {
            let k = get_u16(b)?;
            if k == K_BATCH || k == K_BACKGROUND {
                return Err(ProtoError::Malformed("background wraps one plain request"));
            }
            let mut body = get_bytes(b, BODY)?;
            let Message::Request(inner) = decode_message(k, &mut body, false)? else {
                return Err(ProtoError::Malformed("background wraps a request"));
            };
            if body.has_remaining() {
                return Err(ProtoError::Malformed(
                    "trailing bytes in a background request",
                ));
            }
            Message::Request(Request::Background(Box::new(inner)))
        }
        K_BATCH | R_BATCH => {
            if !top {
                return Err(ProtoError::NestedBatch);
            }
            let n = get_u32(b)?;
            if n > limits::BATCH_LEN_MAX {
                return Err(ProtoError::TooLarge {
                    len: u64::from(n),
                    max: u64::from(limits::BATCH_LEN_MAX),
                });
            }
            let mut reqs = Vec::new();
            let mut resps = Vec::new();
            for _ in 0..n {
                let k = get_u16(b)?;
                let mut body = get_bytes(b, BODY)?;
                match decode_message(k, &mut body, false)? {
                    Message::Request(r) if kind == K_BATCH => reqs.push(r),
                    Message::Response(r) if kind == R_BATCH => resps.push(r),
                    _ => return Err(ProtoError::Malformed("batch mixes requests and responses")),
                }
                if body.has_remaining() {
                    return Err(ProtoError::Malformed("trailing bytes in batch part"));
                }
            }
            if kind == K_BATCH {
                Message::Request(Request::Batch(reqs))
            } else {
                Message::Response(Response::Batch(resps))
            }
        }
        R_DONE => Message::Response(Response::Done),
        R_FRAGMENT => Message::Response(Response::Fragment(get_bytes(b, BODY)?)),
        R_META => Message::Response(Response::Meta(match get_u8(b)? {
            0 => None,
            1 => Some(get_entry(b)?),
            _ => return Err(ProtoError::Malformed("option tag")),
        })),
        R_META_VERSIONED => Message::Response(Response::MetaVersioned(match get_u8(b)? {
            0 => None,
            1 => Some(get_version(b)?),
            _ => return Err(ProtoError::Malformed("option tag")),
        })),
        R_FRAGMENTS => {
            let n = get_u32(b)?;
            if n > limits::FRAGMENT_LIST_MAX {
                return Err(ProtoError::TooLarge {
                    len: u64::from(n),
                    max: u64::from(limits::FRAGMENT_LIST_MAX),
                });
            }
            let mut ids = Vec::with_capacity(n as usize);
            for _ in 0..n {
                ids.push(get_id(b)?);
            }
            let next = match get_u8(b)? {
                0 => None,
                1 => Some(get_u32(b)?),
                _ => return Err(ProtoError::Malformed("option tag")),
            };
            Message::Response(Response::Fragments { ids, next })
        }
        R_DIGEST => {
            need(b, 32)?;
            let mut d = [0u8; 32];
            b.copy_to_slice(&mut d);
            Message::Response(Response::Digest(d))
        }
        R_MAP_APPLIED => Message::Response(Response::MapApplied {
            index: get_u64(b)?,
            floor: get_u64(b)?,
            version: get_u64(b)?,
        }),
        R_CONTROL_MAP => Message::Response(Response::ControlMap(get_bytes(
            b,
            limits::FRAME_BODY_BYTES_MAX,
        )?)),
        R_CONTROL_LEVEL => Message::Response(Response::ControlLevel(get_u64(b)?)),
        R_LAYOUT_REFUSED => {
            let index = get_u64(b)?;
            let message = get_message(b)?;
            Message::Response(Response::LayoutRefused { message, index })
        }
        R_SWAPPED => {
            let won = match get_u8(b)? {
                0 => false,
                1 => true,
                _ => return Err(ProtoError::Malformed("bool")),
            };
            let previous = match get_u8(b)? {
                0 => None,
                1 => Some(get_version(b)?),
                _ => return Err(ProtoError::Malformed("option tag")),
            };
            Message::Response(Response::Swapped { won, previous })
        }
        R_SCAN_VERSIONED => {
            let n = get_scan_len(b)?;
            let mut entries = Vec::new();
            for _ in 0..n {
                let k = get_bytes(b, KEY)?;
                entries.push((k, get_version(b)?));
            }
            let next_start_after = get_opt_bytes(b, KEY)?;
            Message::Response(Response::ScanVersioned {
                entries,
                next_start_after,
            })
        }
        R_SCAN => {
            let n = get_scan_len(b)?;
            let mut entries = Vec::new();
            for _ in 0..n {
                let k = get_bytes(b, KEY)?;
                entries.push((k, get_entry(b)?));
            }
            let next_start_after = get_opt_bytes(b, KEY)?;
            Message::Response(Response::Scan {
                entries,
                next_start_after,
            })
        }
        R_STATS => {
            let n = get_u32(b)? as usize;
            need(b, n.saturating_mul(8))?;
            let mut f = [0u64; 24];
            for i in 0..n {
                let v = b.get_u64_le();
                if i < f.len() {
                    f[i] = v;
                }
            }
            Message::Response(Response::Stats(CoreStats {
                fragments: f[0],
                live_bytes: f[1],
                dead_bytes: f[2],
                capacity_bytes: f[3],
                free_bytes: f[4],
                segments: f[5],
                corrupt_reads: f[6],
                poisoned: f[7] != 0,
                puts: f[8],
                gets: f[9],
                deletes: f[10],
                corrupt_records_replayed: f[11],
                checkpoint_rebuilt: f[12] != 0,
                cache_hits: f[13],
                cache_misses: f[14],
                cache_evictions: f[15],
                cache_bytes: f[16],
                cache_budget_bytes: f[17],
                free_segment_files: f[18],
                segments_reused: f[19],
                replay_stale_stops: f[20],
                log_appended_bytes: f[21],
                meta_bytes: f[22],
                guarded_pairs_dropped: f[23],
            }))
        }
        R_ERROR => {
            let code = ErrorCode::from_u16(get_u16(b)?);
            let message = get_message(b)?;
            Message::Response(Response::Error { code, message })
        }
        other => return Err(ProtoError::UnknownKind(other)),
    };
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_digest_tells_states_apart() {
        let d = |e: &[(&[u8], KeyState)]| meta_digest(e.iter().copied());
        let base = d(&[(b"a", Some((5, false))), (b"b", None)]);
        assert_eq!(base, d(&[(b"a", Some((5, false))), (b"b", None)]));
        for other in [
            d(&[(b"a", Some((6, false))), (b"b", None)]),
            d(&[(b"a", Some((5, true))), (b"b", None)]),
            d(&[(b"a", None), (b"b", None)]),
            d(&[(b"a", Some((5, false))), (b"b", Some((0, false)))]),
            d(&[(b"b", None), (b"a", Some((5, false)))]),
            d(&[(b"ab", Some((5, false)))]),
            d(&[(b"a", Some((5, false)))]),
        ] {
            assert_ne!(base, other);
        }
    }

    fn samples() -> Vec<Request> {
        vec![
            Request::PutFragment {
                id: FragmentId::from_u128(7),
                data: Bytes::from_static(b"abc"),
            },
            Request::GetFragment {
                id: FragmentId::from_u128(8),
                offset_bytes: 3,
                len_bytes: None,
            },
            Request::GetFragment {
                id: FragmentId::from_u128(8),
                offset_bytes: 0,
                len_bytes: Some(9),
            },
            Request::DeleteFragment {
                id: FragmentId::from_u128(9),
            },
            Request::VerifyFragment {
                id: FragmentId::from_u128(10),
            },
            Request::Background(Box::new(Request::VerifyFragment {
                id: FragmentId::from_u128(11),
            })),
            Request::ListFragments {
                from: 3,
                limit: 100,
            },
            Request::Background(Box::new(Request::ListFragments { from: 0, limit: 1 })),
            Request::MetaDigest { keys: vec![] },
            Request::Background(Box::new(Request::MetaDigest {
                keys: vec![Bytes::from_static(b"a"), Bytes::from_static(b"bc")],
            })),
            Request::MetaPut {
                key: Bytes::from_static(b"k"),
                value: Bytes::from_static(b"v"),
                hlc: 5,
            },
            Request::MetaSwap {
                key: Bytes::from_static(b"k"),
                value: Bytes::from_static(b"w"),
                hlc: 7,
            },
            Request::MetaPair {
                first: MetaWrite::Put {
                    key: Bytes::from_static(b"h/k"),
                    value: Bytes::from_static(b"head"),
                },
                second: MetaWrite::Delete {
                    key: Bytes::from_static(b"l/k"),
                },
                hlc: 8,
            },
            Request::MetaPair {
                first: MetaWrite::Delete {
                    key: Bytes::from_static(b"l/k"),
                },
                second: MetaWrite::Put {
                    key: Bytes::from_static(b"h/k"),
                    value: Bytes::new(),
                },
                hlc: 9,
            },
            Request::PutPaired {
                id: FragmentId::from_u128(12),
                data: Bytes::from_static(b"data"),
                first: MetaWrite::Put {
                    key: Bytes::from_static(b"h/k"),
                    value: Bytes::from_static(b"head"),
                },
                second: MetaWrite::Put {
                    key: Bytes::from_static(b"l/k"),
                    value: Bytes::from_static(b"entry"),
                },
                hlc: 10,
            },
            Request::MetaDelete {
                key: Bytes::from_static(b"k"),
                hlc: 6,
            },
            Request::MetaGet {
                key: Bytes::from_static(b"k"),
            },
            Request::MetaScan {
                prefix: Bytes::from_static(b"p/"),
                start_after: Some(Bytes::from_static(b"p/a")),
                limit: 10,
            },
            Request::Background(Box::new(Request::MetaGet {
                key: Bytes::from_static(b"bg"),
            })),
            Request::MetaGetVersioned {
                key: Bytes::from_static(b"k"),
            },
            Request::MetaScanVersioned {
                prefix: Bytes::from_static(b"p/"),
                start_after: None,
                limit: 3,
            },
            Request::Stats,
            Request::MapApplied,
            Request::Lease {
                duration_ms: 4000,
                serializes: true,
            },
            Request::ControlMap,
            Request::ControlLevel,
        ]
    }

    #[test]
    fn requests_and_responses_round_trip() {
        let mut all = samples();
        all.push(Request::Batch(samples()));
        let fenced: Vec<Request> = all
            .iter()
            .map(|r| Request::Fenced {
                epoch: (7 << 32) | 0xc,
                request: Box::new(r.clone()),
            })
            .collect();
        all.extend(fenced);
        for (i, r) in all.iter().enumerate() {
            let mut buf = BytesMut::new();
            encode_request(i as u64, 3, r, &mut buf);
            let f = decode_frame(&mut buf).unwrap().unwrap();
            assert_eq!(
                f,
                Frame {
                    request_id: i as u64,
                    layout_version: 3,
                    message: Message::Request(r.clone())
                }
            );
            assert!(buf.is_empty());
        }
        let responses = vec![
            Response::Done,
            Response::Fragment(Bytes::from_static(b"xyz")),
            Response::Meta(None),
            Response::Meta(Some(MetaEntry {
                hlc: 1,
                value: Bytes::from_static(b"v"),
            })),
            Response::Scan {
                entries: vec![(
                    Bytes::from_static(b"a"),
                    MetaEntry {
                        hlc: 2,
                        value: Bytes::new(),
                    },
                )],
                next_start_after: Some(Bytes::from_static(b"a")),
            },
            Response::Stats(CoreStats {
                fragments: 1,
                poisoned: true,
                deletes: 9,
                corrupt_records_replayed: 2,
                checkpoint_rebuilt: true,
                cache_hits: 11,
                cache_misses: 12,
                cache_evictions: 13,
                cache_bytes: 14,
                cache_budget_bytes: 15,
                free_segment_files: 16,
                segments_reused: 17,
                replay_stale_stops: 18,
                log_appended_bytes: 19,
                meta_bytes: 20,
                guarded_pairs_dropped: 21,
                ..CoreStats::default()
            }),
            Response::Error {
                code: ErrorCode::NoSpace,
                message: "full".into(),
            },
            Response::Error {
                code: ErrorCode::Offline,
                message: "core offline: damaged".into(),
            },
            Response::MetaVersioned(None),
            Response::MetaVersioned(Some(MetaVersion {
                hlc: 4,
                deleted: true,
                value: Bytes::new(),
            })),
            Response::Swapped {
                won: true,
                previous: None,
            },
            Response::Fragments {
                ids: vec![FragmentId::from_u128(1), FragmentId::from_u128(2)],
                next: Some(7),
            },
            Response::Fragments {
                ids: vec![],
                next: None,
            },
            Response::Digest([7; 32]),
            Response::MapApplied {
                index: 0,
                floor: 0,
                version: 0,
            },
            Response::MapApplied {
                index: u64::MAX,
                floor: 2,
                version: 3,
            },
            Response::ControlMap(Bytes::new()),
            Response::ControlMap(Bytes::from_static(b"sealed map")),
            Response::ControlLevel(CONTROL_LEVEL),
            Response::LayoutRefused {
                message: "routed with layout 1".into(),
                index: 12,
            },
            Response::Swapped {
                won: false,
                previous: Some(MetaVersion {
                    hlc: 9,
                    deleted: false,
                    value: Bytes::from_static(b"newer"),
                }),
            },
            Response::ScanVersioned {
                entries: vec![
                    (
                        Bytes::from_static(b"a"),
                        MetaVersion {
                            hlc: 2,
                            deleted: false,
                            value: Bytes::from_static(b"v"),
                        },
                    ),
                    (
                        Bytes::from_static(b"b"),
                        MetaVersion {
                            hlc: 3,
                            deleted: true,
                            value: Bytes::new(),
                        },
                    ),
                ],
                next_start_after: None,
            },
            Response::Batch(vec![
                Response::Done,
                Response::Meta(None),
                Response::MapApplied {
                    index: 9,
                    floor: 1,
                    version: 1,
                },
            ]),
        ];
        for r in responses {
            let mut buf = BytesMut::new();
            encode_response(1, 0, &r, &mut buf);
            assert_eq!(
                decode_frame(&mut buf).unwrap().unwrap().message,
                Message::Response(r)
            );
        }
    }

    /// A fenced request wraps one request at the top of a frame: never another fenced one,
    /// and never inside a batch or a background request.
    #[test]
    fn a_fenced_request_is_only_at_the_top() {
        let fenced = |inner_kind: u16| {
            let mut body = BytesMut::new();
            body.put_u64_le(9);
            body.put_u16_le(inner_kind);
            body
        };
        let frame = |kind: u16, body: &[u8]| {
            let mut buf = BytesMut::new();
            write_frame(kind, 1, 0, body, &mut buf);
            decode_frame(&mut buf)
        };
        assert_eq!(
            frame(K_FENCED, &fenced(K_STATS)).unwrap().unwrap().message,
            Message::Request(Request::Fenced {
                epoch: 9,
                request: Box::new(Request::Stats)
            })
        );
        assert!(
            frame(K_FENCED, &fenced(K_FENCED)).is_err(),
            "fenced in fenced"
        );
        let mut background = BytesMut::new();
        background.put_u16_le(K_FENCED);
        put_bytes(&mut background, &fenced(K_STATS));
        assert!(
            frame(K_BACKGROUND, &background).is_err(),
            "fenced in background"
        );
        let mut batch = BytesMut::new();
        batch.put_u32_le(1);
        batch.put_u16_le(K_FENCED);
        put_bytes(&mut batch, &fenced(K_STATS));
        assert!(frame(K_BATCH, &batch).is_err(), "fenced in a batch");
    }

    /// `MapApplied` took the next free kinds (18, 0x10D) and its answer is three u64s: a core
    /// of an older build answers kind 18 with an unknown-kind error, never a misread.
    #[test]
    fn map_applied_kinds_are_appended() {
        let mut buf = BytesMut::new();
        encode_request(1, 0, &Request::MapApplied, &mut buf);
        assert_eq!(&buf[6..8], &18u16.to_le_bytes());
        assert_eq!(buf.len(), HEADER_BYTES);
        let mut buf = BytesMut::new();
        let answer = Response::MapApplied {
            index: 0x0102_0304_0506_0708,
            floor: 2,
            version: 3,
        };
        encode_response(1, 3, &answer, &mut buf);
        assert_eq!(&buf[6..8], &0x10Du16.to_le_bytes());
        assert_eq!(
            &buf[HEADER_BYTES..HEADER_BYTES + 8],
            &[8, 7, 6, 5, 4, 3, 2, 1]
        );
        assert_eq!(buf.len(), HEADER_BYTES + 24);
    }

    /// A checked frame of a kind this build does not know (a newer peer's) is taken off the
    /// buffer whole, with its request id, and the frame after it decodes.
    #[test]
    fn a_frame_of_an_unknown_kind_is_skipped_whole() {
        let mut buf = BytesMut::new();
        write_frame(999, 7, 3, b"a newer body", &mut buf);
        encode_request(8, 3, &Request::Stats, &mut buf);
        let unknown = decode_frame(&mut buf).unwrap().unwrap();
        assert_eq!(
            (unknown.request_id, unknown.layout_version, unknown.message),
            (7, 3, Message::Unknown(999))
        );
        let next = decode_frame(&mut buf).unwrap().unwrap();
        assert_eq!(
            (next.request_id, next.message),
            (8, Message::Request(Request::Stats))
        );
        assert!(buf.is_empty());
        // Inside a fenced frame too.
        let mut body = BytesMut::new();
        body.put_u64_le(5);
        body.put_u16_le(999);
        write_frame(K_FENCED, 9, 3, &body, &mut buf);
        let unknown = decode_frame(&mut buf).unwrap().unwrap();
        assert_eq!(
            (unknown.request_id, unknown.message),
            (9, Message::Unknown(999))
        );
    }

    /// A refusal of an unknown kind reads the same from this build (its code) and from builds
    /// before the code (the decoder's text under `BadRequest`); no other error reads as one.
    #[test]
    fn unknown_kind_refusals_are_read_from_either_build() {
        let text = ProtoError::UnknownKind(K_PUT_PAIRED).to_string();
        assert_eq!(
            unknown_kind_refused(ErrorCode::UnknownKind, &text),
            Some(23)
        );
        assert_eq!(unknown_kind_refused(ErrorCode::BadRequest, &text), Some(23));
        assert_eq!(unknown_kind_refused(ErrorCode::NotFound, &text), None);
        let other = ProtoError::Malformed("truncated field").to_string();
        assert_eq!(unknown_kind_refused(ErrorCode::BadRequest, &other), None);
        assert_eq!(
            ErrorCode::from_u16(ErrorCode::UnknownKind as u16),
            ErrorCode::UnknownKind
        );
    }

    /// `ControlLevel` took the next free kinds (24, 0x110), its answer one u64: a core of an
    /// older build refuses kind 24 as unknown (level 0).
    #[test]
    fn control_level_kinds_are_appended() {
        let mut buf = BytesMut::new();
        encode_request(1, 0, &Request::ControlLevel, &mut buf);
        assert_eq!(
            (&buf[6..8], buf.len()),
            (&24u16.to_le_bytes()[..], HEADER_BYTES)
        );
        let mut buf = BytesMut::new();
        encode_response(1, 0, &Response::ControlLevel(7), &mut buf);
        assert_eq!(&buf[6..8], &0x110u16.to_le_bytes());
        assert_eq!(&buf[HEADER_BYTES..], &7u64.to_le_bytes());
    }

    /// `Lease` took the next free kind (19): a u32 and a u8 flag after the header.
    #[test]
    fn lease_kind_is_appended() {
        let mut buf = BytesMut::new();
        encode_request(
            1,
            0,
            &Request::Lease {
                duration_ms: 0x0102_0304,
                serializes: true,
            },
            &mut buf,
        );
        assert_eq!(&buf[6..8], &19u16.to_le_bytes());
        assert_eq!(&buf[HEADER_BYTES..], &[4, 3, 2, 1, 1]);
    }

    #[test]
    fn partial_frames_wait_and_garbage_is_an_error() {
        let mut whole = BytesMut::new();
        encode_request(1, 0, &Request::Batch(samples()), &mut whole);
        let whole = whole.freeze();
        let mut buf = BytesMut::new();
        for (i, b) in whole.iter().enumerate() {
            buf.put_u8(*b);
            let r = decode_frame(&mut buf).unwrap();
            assert_eq!(r.is_some(), i + 1 == whole.len());
        }
        // Every single-bit flip is detected (magic, version, length, checksum or body).
        for bit in 0..whole.len() * 8 {
            let mut bad = BytesMut::from(&whole[..]);
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !matches!(decode_frame(&mut bad), Ok(Some(_))),
                "flip at {bit} accepted"
            );
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x1234_5678;
        for _ in 0..20_000 {
            let mut v = Vec::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 200) as usize;
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v.push(x as u8);
            }
            if x.is_multiple_of(2) && v.len() >= 8 {
                v[0..4].copy_from_slice(&MAGIC.to_le_bytes());
                v[4..6].copy_from_slice(&VERSION.to_le_bytes());
            }
            let _ = decode_frame(&mut BytesMut::from(&v[..]));
        }
        let mut huge = BytesMut::new();
        huge.put_u32_le(MAGIC);
        huge.put_u16_le(VERSION);
        huge.put_u16_le(K_PUT);
        huge.put_u64_le(0);
        huge.put_u64_le(0);
        huge.put_u32_le(u32::MAX);
        huge.put_u32_le(0);
        huge.put_u32_le(0);
        huge.put_u32_le(0);
        assert!(matches!(
            decode_frame(&mut huge),
            Err(ProtoError::TooLarge { .. })
        ));
    }

    /// Format stability: a version-1 frame as bytes that must keep decoding.
    #[test]
    fn golden_v1_frame() {
        let golden = include_bytes!("../tests/fixtures/v1-meta-put.bin");
        let mut buf = BytesMut::from(&golden[..]);
        let f = decode_frame(&mut buf).unwrap().unwrap();
        assert_eq!(
            f.message,
            Message::Request(Request::MetaPut {
                key: Bytes::from_static(b"bucket/key"),
                value: Bytes::from_static(b"value"),
                hlc: 0x0102_0304_0506_0708
            })
        );
        assert_eq!((f.request_id, f.layout_version), (42, 7));
    }
}
