//! percore's object service, being moved out of the `gateway` crate (the issue "The gateway in
//! three layers"): what an object is, independent of how S3 spells it on the wire. So far the
//! metadata keys and record codecs (`records`), the checksums of objects and uploads
//! (`checksum`) and the object bounds (`limits`); the operations still live in the gateway.
//! Nothing here names an s3s, hyper or http type, and errors are this crate's own.

pub mod checksum;
pub mod error;
pub mod keywrap;
pub mod limits;
pub mod records;
pub mod seal;
pub mod store;
pub mod versions;
pub mod workers;

pub use error::{CommitError, Error};
