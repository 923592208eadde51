//! percore's object service, being moved out of the `gateway` crate (the issue "The gateway in
//! three layers"): what an object is and how it is stored, independent of how S3 spells it on
//! the wire. So far: the store (`store`: records, the data path, listings, incarnations,
//! retirement; `bucket_cache`: the bucket records a single node keeps), versions (`versions`: commits, version records, delete markers, deletes under
//! Object Lock) and their listing (`version_list`: the walk merging the listing and version
//! indexes), multipart uploads (`multipart`: create, parts stored or copied,
//! complete, abort, listings; their records in `uploads`), copies (`copy`), object and
//! bucket tags (`tagging`), Object Lock configurations and retention and legal-hold changes
//! (`lock`), bucket configuration records (`configs`), storage classes at work (`tiering`:
//! verified data moves, restores of archived versions, intelligent tiering's access
//! tracking), lifecycle rules and the background pass that applies them (`lifecycle`), the
//! scrub and the orphan sweep after it (`scrub`, `orphans`), the background workers
//! (`workers`) and the retirement schedule of replaced versions' chunks (`retire`), the
//! metadata keys and record codecs (`records`), what the records route and reference for the
//! cluster layer's mover under a layout change (`move_catalog`), the checksums of objects and
//! uploads (`checksum`), sealed bodies (`seal`, `keywrap`) and the
//! object bounds (`limits`).
//! Nothing here names an s3s, hyper or http type; errors are this crate's own ([`Error`]),
//! and the gateway turns them into S3 codes in one place.

pub mod bucket_cache;
pub mod checksum;
pub mod configs;
pub mod copy;
pub mod error;
pub mod keywrap;
pub mod lifecycle;
pub mod limits;
pub mod lock;
pub mod master_keys;
pub mod move_catalog;
pub mod multipart;
pub mod observe;
pub mod orphans;
pub mod read_ahead;
pub mod records;
pub mod retire;
pub mod scrub;
pub mod seal;
pub mod sealed;
pub mod store;
pub mod tagging;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
pub mod tiering;
pub mod uploads;
pub mod version_list;
pub mod versions;
pub mod workers;

pub use error::{CommitError, Error, PartError};
