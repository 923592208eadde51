//! The object service's metadata records and keys (see s3api/DESIGN.md), each a versioned
//! fixed-width little-endian encoding. Decoding never panics on bad bytes: a record that does
//! not parse is an internal error, reported. One module per kind: the key schema (`keys`),
//! bucket records (`bucket`), object heads and their data's stripes (`head`), listing entries
//! (`listing`), version records (`version`), upload, part and completion records (`upload`),
//! and what their codecs share (`codec`); the format numbers below are all of them, in one
//! place. The golden byte strings of every format are in `tests`.
//!
//! Versions: uploads and parts are written at 2 (version 1 plus checksum fields at the end,
//! see s3api/DESIGN.md); version 1 records, written before checksums were stored, still decode (as
//! records without a checksum). Object versioning added: bucket records at 2 (the versioning
//! state), listing entries at 2 (whether a version record backs the entry), object heads at 3
//! (the null-version and recorded flags), and the version records (`V` keys) at 1. Every older
//! version still decodes, pinned by the golden byte strings in the tests.
//!
//! Bucket incarnations (bucket records at 3): a bucket is known inside by the incarnation id
//! minted when it is created (`BucketId`: the creation HLC and 8 random bytes), and every
//! record of its objects (heads, listing entries, versions, uploads, tags, its lifecycle
//! configuration) is keyed by its **scope**, `name/` ‖ 32 hex digits of the id, not by the
//! bare name. A name deleted and created again is a new scope: nothing of the old
//! incarnation can be reached through it, and a write still in flight when the bucket was
//! deleted lands in the dead scope, where the background pass reclaims it. `/` never occurs
//! in a bucket name, so a scope is never a name and the name is the scope up to its first `/`.
//! Bucket records of formats 1 and 2 (before incarnations) decode with the legacy id, all
//! zeros, whose scope is the bare name: the keys those buckets were written with, so existing
//! data stays readable where it is. Only a bucket created since gets a real id.
//!
//! Object Lock: heads at 7 (a version's retention and legal hold), uploads at 5 (the lock
//! state the completed object gets), bucket records flag 4 (lock enabled). A record without
//! lock state is written exactly as before.
//!
//! Object ACLs and owners: heads at 9 (a version's owner when not the bucket's, and its ACL
//! as the S3 layer encodes it, opaque here), uploads at 6 (what the completed object gets),
//! listing entries at 4 (the current version's owner, for listings). A version owned by the
//! bucket owner with the default ACL is written exactly as before.
//!
//! Encrypted multipart uploads: uploads at 7 (the upload's wrapped data key), parts at 3
//! (each part's nonce base), heads at 10 (the nonce base of every part).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::checksum::{Algo, Kind, ObjectChecksum, Sum, UploadChecksum};
use crate::limits::CHECKSUM_BYTES_MAX;
use cluster::ec::Policy;

/// The first format of every record.
const VERSION: u8 = 1;
/// Object heads, uploads and parts with their checksums.
const VERSION_CHECKSUMS: u8 = 2;
/// Bucket records with a versioning state, listing entries with their flags.
const VERSION_VERSIONING: u8 = 2;
/// Object heads with their version flags.
const HEAD_VERSIONING: u8 = 3;
/// Object heads with their storage class, tier, restore and access state; listing entries
/// and uploads with their storage class.
const HEAD_TIERING: u8 = 4;
/// Object heads with the tags their writer gave (PUT, copy, multipart), committed with the
/// head in one record (issue #12: tags written after the commit could fail for an object that
/// existed).
const HEAD_TAGS: u8 = 5;
/// Object heads of a multipart upload with a checksum algorithm, with each part's checksum
/// (GetObjectAttributes' parts, a part's checksum on GET and HEAD with partNumber). Heads
/// without part checksums are still written at format 5.
const HEAD_PART_SUMS: u8 = 6;
/// Object heads with Object Lock state (a retention, a legal hold): format 6's fields with
/// the part checksums behind a presence byte, then the lock state. Heads without lock state
/// are still written at format 5 or 6.
const HEAD_LOCK: u8 = 7;
/// Object heads of an encrypted body: format 7's fields, then the encryption (its kind, the
/// plaintext size, the wrapped data key). Heads of plain bodies are still written at 5, 6 or 7.
const HEAD_SSE: u8 = 8;
/// Object heads with an owner or an access control list (S3 object ACLs, ownership): format
/// 8's fields with the encryption behind a presence byte, then the owner (a string, empty:
/// the bucket owner) and the ACL (u16 length, 0: none ‖ the S3 layer's bytes). Heads with
/// neither are still written at 5, 6, 7 or 8.
const HEAD_ACL: u8 = 9;
/// Object heads of an encrypted multipart upload: format 9's fields, the encryption followed
/// by each part's nonce base (`Encryption::part_nonces`). Every other head is still written
/// at format 5 to 9.
const HEAD_SSE_PARTS: u8 = 10;
/// Listing entries with the current version's owner (when not the bucket owner): format
/// 3's fields, then the owner; entries without one are still written at format 3.
const LISTING_OWNER: u8 = 4;
/// Encryption kinds. Persisted codes never change.
const SSE_CUSTOMER: u8 = 1;
/// SSE-S3: the kind is followed by the id of the master key (`master_keys`) that wrapped the
/// data key (u16 length ‖ bytes).
const SSE_MASTER: u8 = 2;
/// SSE-KMS against a named key of the master key file: the kind is followed by its id.
const SSE_KMS: u8 = 3;
const LISTING_CLASS: u8 = 3;
const UPLOAD_CLASS: u8 = 3;
/// Uploads with the tags CreateMultipartUpload was given (the completed object's).
const UPLOAD_TAGS: u8 = 4;
/// Uploads with the Object Lock state CreateMultipartUpload resolved (the completed
/// object's); uploads without one are still written at format 4.
const UPLOAD_LOCK: u8 = 5;
/// Uploads with the owner or access control list the completed object gets: format 5's
/// fields (the lock state always, possibly none), then the owner and ACL as a head of format
/// 9 has them (the record's last fields); uploads with neither are still written at 4 or 5.
const UPLOAD_ACL: u8 = 6;
/// Uploads whose parts are sealed (server-side encryption): format 6's fields, then the
/// encryption's kind and the upload's wrapped data key (`UploadRecord::encryption`); uploads
/// without are still written at 4, 5 or 6.
const UPLOAD_SSE: u8 = 7;
/// Parts sealed under their upload's data key: format 2's fields, then the part's nonce base.
const PART_SSE: u8 = 3;
/// Bucket records with an incarnation id and a deleting flag.
const BUCKET_INCARNATION: u8 = 3;
/// Bucket record flags: a DeleteBucket is checking the bucket is empty; writes that commit
/// meanwhile fail (`Gateway::check_live`).
const FLAG_DELETING: u8 = 1;
/// Bucket record flag: `BucketRecord::tags_changed`.
const FLAG_TAGS_CHANGED: u8 = 2;
/// Bucket record flag: `BucketRecord::object_lock`.
const FLAG_OBJECT_LOCK: u8 = 4;
/// Version records (`V` keys): the first format.
const VERSION_RECORD: u8 = 1;
/// Kinds of version record.
const KIND_OBJECT: u8 = 1;
const KIND_DELETE_MARKER: u8 = 2;
/// Version flags (object heads, delete markers): S3 shows the version's id as `null`.
const FLAG_NULL_VERSION: u8 = 1;
/// Version flags (object heads, listing entries): a `V` record of this version exists.
const FLAG_IN_VERSIONS: u8 = 2;

mod bucket;
mod codec;
mod head;
mod keys;
mod listing;
#[cfg(test)]
mod tests;
mod upload;
mod version;

pub use bucket::*;
pub use codec::*;
pub use head::*;
pub use keys::*;
pub use listing::*;
pub use upload::*;
pub use version::*;
