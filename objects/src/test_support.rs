//! What several modules' unit tests build their records from (this crate's, and other
//! crates' through the `test-support` feature).

use crate::records::{ObjectHead, ObjectLock, PartRef, StorageClass, Tiering, UploadRecord};

/// A head of parts of `sizes` bytes (part version ids `[2; 12]`), uploaded in parts when
/// there is more than one (ETag `00-N`), with nothing else set.
pub fn head_of_parts(sizes: &[u64]) -> ObjectHead {
    ObjectHead {
        size: sizes.iter().sum(),
        modified_ms: 1,
        etag: format!("00-{}", sizes.len()),
        version_id: [1; 12],
        chunk_bytes: 1 << 20,
        policy: cluster::ec::Policy::Replicas(1),
        content_type: String::new(),
        metadata: vec![],
        headers: vec![],
        parts: sizes
            .iter()
            .map(|&size| PartRef {
                version_id: [2; 12],
                size,
            })
            .collect(),
        checksum: None,
        null_version: true,
        in_versions: false,
        tiering: Tiering::default(),
        tags: vec![],
        part_checksums: vec![],
        lock: crate::records::ObjectLock::default(),
        encryption: None,
        owner: None,
        acl: None,
    }
}

/// An upload by "o" at 1 ms, STANDARD, with nothing else set (format 4 when encoded).
pub fn small_upload() -> UploadRecord {
    UploadRecord {
        owner: "o".into(),
        initiated_ms: 1,
        content_type: String::new(),
        metadata: vec![],
        headers: vec![],
        checksum: None,
        class: StorageClass::Standard,
        tags: vec![],
        lock: ObjectLock::default(),
        object_owner: None,
        acl: None,
        encryption: None,
    }
}

/// A layout of 4 nodes in 4 zones, 4 cores each, 64 placement groups (nothing listens: for
/// routing, or for links a test makes).
pub fn four_nodes_of_four_cores() -> std::sync::Arc<placement::Layout> {
    std::sync::Arc::new(
        placement::Layout::from_toml_str(&nodes_of_four_cores(4, 1)).expect("a valid layout"),
    )
}

/// The text of a layout version `version` of `nodes` nodes in as many zones, 4 cores each, 64
/// placement groups (`four_nodes_of_four_cores` is its first version with 4 nodes).
pub fn nodes_of_four_cores(nodes: usize, version: u64) -> String {
    use std::fmt::Write as _;
    let mut text = format!("format = 1\nversion = {version}\nplacement_groups = 64\n");
    for n in 0..nodes {
        let _ = write!(
            text,
            "[[node]]\nid = {}\naddress = \"127.0.0.1\"\nbase_port = {}\ncores = 4\n\
             zone = \"z{n}\"\n",
            n + 1,
            20_000 + 10 * n,
        );
    }
    text
}
