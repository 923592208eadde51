//! A structural check of an LMDB data file (`data.mdb`) before LMDB maps it.
//!
//! Why: LMDB trusts its file. It checks the two meta pages' magic and version at open and that
//! a page number is below the meta page's `last_pg`, and nothing else: a garbled `last_pg`, a
//! node size or an overflow page count sends it (or the caller reading a value it returned)
//! past the end of the file inside its 64 GiB map, and the process dies of SIGBUS; other damage
//! trips its internal asserts (`abort`) or returns garbage. Measured on main: random damage to
//! one core's `data.mdb` killed `percore serve` with SIGBUS on the second GET.
//!
//! Owns: parsing LMDB 0.9 pages (64-bit build, no DUPSORT, as `meta.rs` uses it) and checking,
//! for both meta pages and every page reachable from the newest meta (free list and main tree,
//! named databases included), that every page number, node offset, key, value and overflow run
//! lies inside the file and the page, that every page names itself, and that keys are in order
//! within a page. Free-list entries must name pages that exist. A file that passes cannot make
//! LMDB read outside the file. Does not own: the meaning of values (`meta.rs`), nor damage that
//! keeps the structure valid (a flipped bit inside a value's bytes, a swapped pair of pages):
//! those read back as wrong values, which `meta.rs` catches with its own per-value checksum.
//!
//! Sans-I/O: pages come from a `read_page` callback, so tests feed it damaged files.

use std::collections::HashSet;

/// Page header size (`PAGEHDRSZ` on 64-bit).
const PAGE_HEADER_BYTES: usize = 16;
const P_BRANCH: u16 = 0x01;
const P_LEAF: u16 = 0x02;
const P_OVERFLOW: u16 = 0x04;
const P_META: u16 = 0x08;
const F_BIGDATA: u16 = 0x01;
const F_SUBDATA: u16 = 0x02;
const F_DUPDATA: u16 = 0x04;
const MDB_MAGIC: u32 = 0xBEEF_C0DE;
const MDB_DATA_VERSION: u32 = 1;
/// `P_INVALID`: an empty tree's root.
const PGNO_INVALID: u64 = u64::MAX;
/// Bytes of an `MDB_db` record (inside meta pages and named-database nodes).
const DB_RECORD_BYTES: usize = 48;
/// Deeper than any B-tree LMDB can build in a 64-bit file with 4 KiB pages (bounds recursion).
const TREE_DEPTH_MAX: u32 = 64;
/// Bytes of a free-list value read whole (a free list is at most a few MiB).
const FREE_VALUE_BYTES_MAX: usize = 256 << 20;

/// What the check found wrong, in words for an operator (it names the page).
pub type Damage = String;

/// What a sound file looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub page_bytes: u32,
    pub last_page: u64,
    pub txnid: u64,
    pub pages_visited: u64,
    pub entries: u64,
}

#[derive(Debug, Clone, Copy)]
struct Db {
    root: u64,
    entries: u64,
}

impl Db {
    fn parse(b: &[u8]) -> Db {
        Db {
            root: le64(&b[40..48]),
            entries: le64(&b[32..40]),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    page_bytes: u32,
    free: Db,
    main: Db,
    last_page: u64,
    txnid: u64,
}

fn le16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}
fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[0..4].try_into().expect("4 bytes"))
}
fn le64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[0..8].try_into().expect("8 bytes"))
}

/// Parses one meta page image (at least `PAGE_HEADER_BYTES + 136` bytes).
fn parse_meta(page: &[u8], which: u64) -> Result<Meta, Damage> {
    if le16(&page[10..12]) & P_META == 0 {
        return Err(format!("meta page {which} is not flagged as a meta page"));
    }
    let m = &page[PAGE_HEADER_BYTES..];
    if le32(&m[0..4]) != MDB_MAGIC {
        return Err(format!("meta page {which} has no LMDB magic"));
    }
    if le32(&m[4..8]) != MDB_DATA_VERSION {
        return Err(format!(
            "meta page {which} has LMDB format version {}",
            le32(&m[4..8])
        ));
    }
    let page_bytes = le32(&m[24..28]);
    if !page_bytes.is_power_of_two() || !(512..=65536).contains(&page_bytes) {
        return Err(format!(
            "meta page {which} has a page size of {page_bytes} bytes"
        ));
    }
    Ok(Meta {
        page_bytes,
        free: Db::parse(&m[24..72]),
        main: Db::parse(&m[72..120]),
        last_page: le64(&m[120..128]),
        txnid: le64(&m[128..136]),
    })
}

/// Checks an LMDB data file of `file_bytes` bytes, to be opened with a map of `map_bytes`.
/// `read_page(offset, buf)` fills `buf` from the file at `offset` (a short file is an error of
/// the callback).
pub fn check(
    file_bytes: u64,
    map_bytes: u64,
    mut read_page: impl FnMut(u64, &mut [u8]) -> std::io::Result<()>,
) -> Result<Summary, Damage> {
    const META_IMAGE_BYTES: usize = PAGE_HEADER_BYTES + 136;
    if file_bytes < 2 * 512 {
        return Err(format!(
            "the file is {file_bytes} bytes, shorter than two meta pages"
        ));
    }
    let mut image = [0u8; META_IMAGE_BYTES];
    read_page(0, &mut image).map_err(|e| format!("reading meta page 0: {e}"))?;
    let m0 = parse_meta(&image, 0)?;
    if file_bytes < 2 * u64::from(m0.page_bytes) {
        return Err(format!(
            "the file is {file_bytes} bytes, shorter than two meta pages"
        ));
    }
    read_page(u64::from(m0.page_bytes), &mut image)
        .map_err(|e| format!("reading meta page 1: {e}"))?;
    let m1 = parse_meta(&image, 1)?;
    if m1.page_bytes != m0.page_bytes {
        return Err("the two meta pages disagree on the page size".into());
    }
    // LMDB uses the meta page with the higher txnid (the first on a tie).
    let meta = if m1.txnid > m0.txnid { m1 } else { m0 };
    let page_bytes = u64::from(meta.page_bytes);
    // The file may end before `last_page` when the last pages are free (allocated, freed and
    // never written): only the pages a tree reaches must be in the file.
    let pages_in_file = file_bytes / page_bytes;
    if meta.last_page < 1 || meta.last_page.saturating_add(1).saturating_mul(page_bytes) > map_bytes
    {
        // Past the map LMDB would grow its map and write its next page there (a file of
        // terabytes, sparse), never fail.
        return Err(format!(
            "the newest meta page says the last page is {}, past the {map_bytes}-byte map",
            meta.last_page
        ));
    }
    let mut walk = Walk {
        page_bytes: meta.page_bytes as usize,
        last_page: meta.last_page,
        pages_in_file,
        seen: HashSet::new(),
        read_page: &mut read_page,
        entries: 0,
        free_list: Vec::new(),
        in_main: false,
        named: Vec::new(),
    };
    walk.tree(meta.free, true)?;
    walk.in_main = true;
    walk.tree(meta.main, false)?;
    walk.in_main = false;
    for db in std::mem::take(&mut walk.named) {
        walk.tree(db, false)?;
    }
    for pgno in std::mem::take(&mut walk.free_list) {
        if pgno < 2 || pgno > meta.last_page {
            return Err(format!(
                "the free list names page {pgno}, past the last page {}",
                meta.last_page
            ));
        }
    }
    Ok(Summary {
        page_bytes: meta.page_bytes,
        last_page: meta.last_page,
        txnid: meta.txnid,
        pages_visited: walk.seen.len() as u64,
        entries: walk.entries,
    })
}

struct Walk<'a, F> {
    page_bytes: usize,
    last_page: u64,
    pages_in_file: u64,
    /// Every page visited: each is reachable once, so a second visit is a cycle.
    seen: HashSet<u64>,
    read_page: &'a mut F,
    entries: u64,
    /// Page numbers the free list's values name.
    free_list: Vec<u64>,
    /// Walking the main tree, the only one whose nodes may be named databases.
    in_main: bool,
    /// The named databases' records found in the main tree, walked after it.
    named: Vec<Db>,
}

/// One node of a branch or leaf page, bounds-checked.
struct Node<'p> {
    lo_hi: u64,
    flags: u16,
    key: &'p [u8],
    /// Bytes after the key up to the end of the page.
    rest: &'p [u8],
}

impl<F: FnMut(u64, &mut [u8]) -> std::io::Result<()>> Walk<'_, F> {
    /// Whether a page a tree reaches is in use by LMDB's own account and in the file.
    fn in_file(&self, pgno: u64) -> bool {
        pgno >= 2 && pgno <= self.last_page && pgno < self.pages_in_file
    }

    fn read(&mut self, pgno: u64) -> Result<Vec<u8>, Damage> {
        let mut page = vec![0u8; self.page_bytes];
        (self.read_page)(pgno * self.page_bytes as u64, &mut page)
            .map_err(|e| format!("reading page {pgno}: {e}"))?;
        if le64(&page[0..8]) != pgno {
            return Err(format!(
                "page {pgno} names itself page {} (zeroed or overwritten)",
                le64(&page[0..8])
            ));
        }
        Ok(page)
    }

    /// Walks one tree; its entry count must be the one its `MDB_db` record keeps (a node lost
    /// to a damaged page header would otherwise vanish silently).
    fn tree(&mut self, db: Db, free: bool) -> Result<(), Damage> {
        let before = self.entries;
        if db.root != PGNO_INVALID {
            self.page(db.root, free, 0, None, None)?;
        }
        let found = self.entries - before;
        if found != db.entries {
            return Err(format!(
                "a tree rooted at page {} holds {found} entries, its record says {}",
                db.root, db.entries
            ));
        }
        Ok(())
    }

    /// One page and what it reaches. Every key of a data tree lies in `lo..hi`, the range its
    /// parent's separators give it: a damaged separator would otherwise send a lookup to the
    /// wrong leaf, and a get would miss a key a scan finds (found by the random damage test).
    fn page(
        &mut self,
        pgno: u64,
        free: bool,
        depth: u32,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
    ) -> Result<(), Damage> {
        if !self.in_file(pgno) {
            return Err(format!("a tree points at page {pgno}, outside the file"));
        }
        if depth > TREE_DEPTH_MAX {
            return Err(format!(
                "the tree is deeper than {TREE_DEPTH_MAX} at page {pgno}"
            ));
        }
        if !self.seen.insert(pgno) {
            return Err(format!("page {pgno} is reachable twice (a cycle)"));
        }
        let page = self.read(pgno)?;
        let flags = le16(&page[10..12]);
        // P_DIRTY, P_LOOSE and P_KEEP are in-memory marks that may reach the file.
        let branch = match flags & !(0x10 | 0x4000 | 0x8000) {
            P_BRANCH => true,
            P_LEAF => false,
            other => {
                return Err(format!(
                    "page {pgno} has page type {other:#x} inside a tree"
                ))
            }
        };
        let (lower, upper) = (le16(&page[12..14]) as usize, le16(&page[14..16]) as usize);
        if lower < PAGE_HEADER_BYTES
            || !(lower - PAGE_HEADER_BYTES).is_multiple_of(2)
            || lower > upper
            || upper > self.page_bytes
        {
            return Err(format!(
                "page {pgno} has free-space bounds {lower}..{upper}"
            ));
        }
        let keys = (lower - PAGE_HEADER_BYTES) / 2;
        if keys < 2 && branch {
            // LMDB asserts (aborts) on a branch page with fewer than two children.
            return Err(format!("branch page {pgno} has {keys} keys"));
        }
        let mut previous: Option<Vec<u8>> = None;
        for i in 0..keys {
            let node = node_at(&page, i, upper).map_err(|e| format!("page {pgno}: {e}"))?;
            // A branch page's first key is unused (empty); the others must increase (the free
            // list's keys are native integers, not in byte order).
            if !free && (!branch || i > 0) {
                if let Some(p) = &previous {
                    if p.as_slice() >= node.key {
                        return Err(format!("page {pgno}: keys out of order at node {i}"));
                    }
                }
                if lo.is_some_and(|lo| node.key < lo) || hi.is_some_and(|hi| node.key >= hi) {
                    return Err(format!(
                        "page {pgno}: node {i}'s key lies outside the range its parent gives"
                    ));
                }
                previous = Some(node.key.to_vec());
            }
            if branch {
                // 64-bit LMDB: the child's page number is lo | hi << 16 | flags << 32.
                let child = node.lo_hi | (u64::from(node.flags) << 32);
                // Child i holds keys from separator i (the parent's bound for the first) up to
                // separator i + 1 (the parent's bound for the last).
                let next = if i + 1 < keys {
                    Some(node_at(&page, i + 1, upper).map_err(|e| format!("page {pgno}: {e}"))?)
                } else {
                    None
                };
                let (child_lo, child_hi) = if free {
                    (None, None)
                } else {
                    (
                        if i == 0 { lo } else { Some(node.key) },
                        next.as_ref().map_or(hi, |n| Some(n.key)),
                    )
                };
                self.page(child, free, depth + 1, child_lo, child_hi)?;
            } else {
                self.leaf_node(pgno, &node, free)?;
            }
        }
        Ok(())
    }

    fn leaf_node(&mut self, pgno: u64, node: &Node<'_>, free: bool) -> Result<(), Damage> {
        self.entries += 1;
        let data_bytes = node.lo_hi as usize;
        if node.flags & F_DUPDATA != 0 || node.flags & !(F_BIGDATA | F_SUBDATA) != 0 {
            return Err(format!(
                "page {pgno}: node flags {:#x} percore never writes",
                node.flags
            ));
        }
        if node.flags & F_BIGDATA != 0 {
            if node.rest.len() < 8 {
                return Err(format!(
                    "page {pgno}: an overflow pointer runs past the page"
                ));
            }
            let first = le64(node.rest);
            let value = self.overflow(first, data_bytes, free)?;
            if free {
                self.free_value(pgno, &value)?;
            }
            return Ok(());
        }
        if data_bytes > node.rest.len() {
            return Err(format!(
                "page {pgno}: a {data_bytes}-byte value runs past the page"
            ));
        }
        let data = &node.rest[..data_bytes];
        if node.flags & F_SUBDATA != 0 {
            if data.len() != DB_RECORD_BYTES {
                return Err(format!(
                    "page {pgno}: a named database record of {} bytes",
                    data.len()
                ));
            }
            // Anywhere in the main tree (its records can take more than its root page), never
            // inside a named database.
            if !self.in_main {
                return Err(format!(
                    "page {pgno}: a named database outside the main tree"
                ));
            }
            self.named.push(Db::parse(data));
            return Ok(());
        }
        if free {
            self.free_value(pgno, data)?;
        }
        Ok(())
    }

    /// Checks an overflow run; returns its value when it belongs to the free list (read to
    /// check the page numbers it names), else an empty vector.
    fn overflow(&mut self, first: u64, data_bytes: usize, free: bool) -> Result<Vec<u8>, Damage> {
        if !self.in_file(first) {
            return Err(format!(
                "an overflow value starts at page {first}, outside the file"
            ));
        }
        if !self.seen.insert(first) {
            return Err(format!("overflow page {first} is reachable twice"));
        }
        let page = self.read(first)?;
        if le16(&page[10..12]) & P_OVERFLOW == 0 {
            return Err(format!("page {first} should be an overflow page"));
        }
        let pages = u64::from(le32(&page[12..16]));
        let last = first.checked_add(pages).and_then(|e| e.checked_sub(1));
        if pages == 0 || last.is_none_or(|l| !self.in_file(l)) {
            return Err(format!(
                "overflow run of {pages} pages at {first} runs past the file"
            ));
        }
        if data_bytes as u64 > pages * self.page_bytes as u64 - PAGE_HEADER_BYTES as u64 {
            return Err(format!(
                "a {data_bytes}-byte value does not fit its {pages} overflow pages at {first}"
            ));
        }
        for p in first + 1..first + pages {
            self.seen.insert(p);
        }
        if !free {
            return Ok(Vec::new());
        }
        if data_bytes > FREE_VALUE_BYTES_MAX {
            return Err(format!("a free-list value of {data_bytes} bytes"));
        }
        let mut value = vec![0u8; data_bytes];
        let offset = first * self.page_bytes as u64 + PAGE_HEADER_BYTES as u64;
        (self.read_page)(offset, &mut value)
            .map_err(|e| format!("reading overflow page {first}: {e}"))?;
        Ok(value)
    }

    /// A free-list value is an ID list: count u64, then that many page numbers.
    fn free_value(&mut self, pgno: u64, value: &[u8]) -> Result<(), Damage> {
        if value.len() < 8 || !value.len().is_multiple_of(8) {
            return Err(format!(
                "page {pgno}: a free-list value of {} bytes",
                value.len()
            ));
        }
        let count = le64(value);
        let room = (value.len() / 8 - 1) as u64;
        if count > room {
            return Err(format!(
                "page {pgno}: a free-list value counts {count} pages in {room}"
            ));
        }
        self.free_list
            .extend(value[8..].chunks_exact(8).take(count as usize).map(le64));
        Ok(())
    }
}

/// The `i`-th node of a branch or leaf page, every offset checked against the page.
fn node_at(page: &[u8], i: usize, upper: usize) -> Result<Node<'_>, Damage> {
    let at = le16(&page[PAGE_HEADER_BYTES + 2 * i..]) as usize;
    if at < upper || at + 8 > page.len() || !at.is_multiple_of(2) {
        return Err(format!("node {i} at offset {at} is outside the node area"));
    }
    let lo_hi = u64::from(le16(&page[at..])) | (u64::from(le16(&page[at + 2..])) << 16);
    let flags = le16(&page[at + 4..]);
    let key_bytes = le16(&page[at + 6..]) as usize;
    let key_end = at + 8 + key_bytes;
    if key_end > page.len() {
        return Err(format!(
            "node {i}: a {key_bytes}-byte key runs past the page"
        ));
    }
    Ok(Node {
        lo_hi,
        flags,
        key: &page[at + 8..key_end],
        rest: &page[key_end..],
    })
}

/// Checks the LMDB data file under `dir` (`data.mdb`), if there is one. `Ok(None)`: no file
/// yet (LMDB creates it).
pub fn check_dir(dir: &std::path::Path, map_bytes: u64) -> Result<Option<Summary>, Damage> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("data.mdb");
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("opening {}: {e}", path.display())),
    };
    let file_bytes = file
        .metadata()
        .map_err(|e| format!("reading the size of {}: {e}", path.display()))?
        .len();
    if file_bytes == 0 {
        // LMDB initializes an empty file (a crash right after it was created).
        return Ok(None);
    }
    check(file_bytes, map_bytes, |offset, buf| {
        file.read_exact_at(buf, offset)
    })
    .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{MetaMutation, MetaStore};
    use bytes::Bytes;
    use rand::{Rng, SeedableRng};

    /// The checkpoint mark of `sample_file`'s last state (as if a checkpoint's file said it).
    const SAMPLE_MARK: u64 = 3 * 3000 + 1;

    /// A metadata store with enough entries for a 3-level tree, values on overflow pages and
    /// a free list (overwrites and deletes), closed; returns the bytes of its data.mdb. Each
    /// round of 3,000 mutations ends as a checkpoint does: committed with its mark (the log
    /// sequence number after its records), the last one `SAMPLE_MARK`.
    fn sample_file(dir: &std::path::Path) -> Vec<u8> {
        let m = MetaStore::open(dir).unwrap();
        for round in 0..3u64 {
            let muts: Vec<MetaMutation> = (0..3000u64)
                .map(|i| {
                    let key = Bytes::from(format!("bucket/key-{i:06}"));
                    if round == 2 && i % 3 == 0 {
                        MetaMutation::Delete {
                            key,
                            hlc: 10 + round,
                        }
                    } else {
                        let len = if i % 100 == 0 {
                            9000
                        } else {
                            40 + (i % 50) as usize
                        };
                        let value = Bytes::from(vec![(i + round) as u8; len]);
                        MetaMutation::Put {
                            key,
                            value,
                            hlc: 10 + round,
                        }
                    }
                })
                .collect();
            let refs: Vec<&MetaMutation> = muts.iter().collect();
            m.apply(&refs).unwrap();
            m.commit_marked((round + 1) * 3000 + 1).unwrap();
        }
        m.force_sync().unwrap();
        drop(m);
        std::fs::read(dir.join("data.mdb")).unwrap()
    }

    fn check_bytes(bytes: &[u8]) -> Result<Summary, Damage> {
        check(bytes.len() as u64, 64 << 30, |offset, buf| {
            let start = usize::try_from(offset).unwrap();
            match bytes.get(start..start + buf.len()) {
                Some(src) => {
                    buf.copy_from_slice(src);
                    Ok(())
                }
                None => Err(std::io::ErrorKind::UnexpectedEof.into()),
            }
        })
    }

    /// Opens a copy of `bytes` as a store (which checks it) and, when that succeeds, reads
    /// every entry: nothing may crash the process. The store must hold the state of
    /// `SAMPLE_MARK` or a newer one, as `Store::open` checks against its checkpoint file.
    fn open_and_read_all(bytes: &[u8]) -> Result<usize, String> {
        read_all(bytes).map(|v| v.len())
    }

    type Entries = Vec<(Bytes, crate::meta::MetaValue, bool)>;

    fn read_all(bytes: &[u8]) -> Result<Entries, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data.mdb"), bytes).unwrap();
        let m = MetaStore::open(dir.path()).map_err(|e| e.to_string())?;
        m.check_mark(SAMPLE_MARK).map_err(|e| e.to_string())?;
        let mut all = Vec::new();
        let mut cursor: Option<Bytes> = None;
        loop {
            let page = m
                .scan_versioned(b"bucket/", cursor.as_deref(), 500)
                .map_err(|e| e.to_string())?;
            for (k, v, deleted) in page.entries {
                let again = m.get_versioned(&k).map_err(|e| e.to_string())?;
                assert_eq!(again, Some((v.clone(), deleted)), "get and scan agree");
                all.push((k, v, deleted));
            }
            match page.next_start_after {
                Some(c) => cursor = Some(c),
                None => return Ok(all),
            }
        }
    }

    #[test]
    fn a_sound_file_passes() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = sample_file(dir.path());
        let s = check_bytes(&bytes).unwrap();
        // The main tree's nodes (a split store's named databases `format` and its 28 trees,
        // and its guard key `meta`), the two format markers and the checkpoint mark
        // (`meta.rs`) and the 3000 keys.
        assert_eq!(s.entries - 33 - free_entries(&bytes), 3000, "{s:?}");
        assert!(s.pages_visited > 10);
        assert_eq!(open_and_read_all(&bytes).unwrap(), 3000);
    }

    /// Entries of the free list (the check counts them as entries too).
    fn free_entries(bytes: &[u8]) -> u64 {
        let meta0 = parse_meta(&bytes[..152], 0).unwrap();
        let p = meta0.page_bytes as usize;
        let meta1 = parse_meta(&bytes[p..p + 152], 1).unwrap();
        let meta = if meta1.txnid > meta0.txnid {
            meta1
        } else {
            meta0
        };
        meta.free.entries
    }

    #[test]
    fn a_zeroed_page_a_short_file_and_a_wild_last_page_are_damage() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = sample_file(dir.path());
        let original = read_all(&bytes).unwrap();
        let mut refused = 0;
        let p = 4096;
        for page in 2..bytes.len() / p {
            let mut b = bytes.clone();
            b[page * p..(page + 1) * p].fill(0);
            // A zeroed page in a tree is found at open; one inside a value's overflow run by
            // the value's checksum; a free page is harmless.
            if check_bytes(&b).is_ok() {
                if let Ok(entries) = read_all(&b) {
                    assert!(entries == original, "a zeroed page read back as data");
                }
            } else {
                refused += 1;
            }
        }
        assert!(refused > 10, "{refused} zeroed pages found");
        let short = &bytes[..bytes.len() / 2];
        let e = check_bytes(short).unwrap_err();
        assert!(e.contains("outside the file"), "{e}");
        assert!(open_and_read_all(short)
            .unwrap_err()
            .contains("damaged metadata store"));
        // Both meta pages claiming a last page far past the file: a tree page past the end.
        let mut wild = bytes.clone();
        for meta in [0, p] {
            wild[meta + 16 + 120..meta + 16 + 128].copy_from_slice(&(1u64 << 30).to_le_bytes());
        }
        let e = check_bytes(&wild).unwrap_err();
        assert!(e.contains("past the"), "{e}");
        assert!(open_and_read_all(&wild).is_err());
        assert!(check_bytes(&[]).is_err());
        assert!(check_bytes(&bytes[..3000]).is_err());
    }

    /// Random damage anywhere in the file: the check refuses it, or a read fails its value
    /// checksum, or every entry reads back as written; the process never crashes (a SIGBUS or
    /// an LMDB assert would kill the test).
    #[test]
    fn random_damage_never_crashes() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = sample_file(dir.path());
        let seed = std::env::var("PERCORE_SIM_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| rand::thread_rng().gen::<u64>());
        eprintln!("seed {seed} (PERCORE_SIM_SEED replays it)");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let original = read_all(&bytes).unwrap();
        let (mut refused, mut read, mut failed) = (0, 0, 0);
        for _ in 0..150 {
            let mut b = bytes.clone();
            // A few bytes in one page, or a burst of garbage over one page.
            let page = rng.gen_range(0..b.len() / 4096);
            if rng.gen_bool(0.5) {
                for _ in 0..rng.gen_range(1..4) {
                    let at = page * 4096 + rng.gen_range(0..4096);
                    b[at] ^= 1 << rng.gen_range(0..8);
                }
            } else {
                rng.fill(&mut b[page * 4096..(page + 1) * 4096]);
            }
            match check_bytes(&b) {
                Err(_) => refused += 1,
                Ok(_) => match read_all(&b) {
                    Ok(entries) => {
                        assert!(entries == original, "damage read back as data");
                        read += 1;
                    }
                    Err(_) => failed += 1,
                },
            }
        }
        eprintln!(
            "{refused} damaged files refused at open, {failed} failed a read, {read} read back \
             intact (damage in free pages or unused bytes)"
        );
        assert!(refused > 0);
    }

    /// One flipped bit in the older meta page's transaction id (bit 40: the id grows past the
    /// newer one's) leaves every page sound, and LMDB opens the tree before the last commit.
    /// The checkpoint mark sees it; an older copy of the file put back is seen the same way.
    #[test]
    fn a_store_rolled_back_to_an_older_state_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let older_copy = {
            let early = tempfile::tempdir().unwrap();
            let m = MetaStore::open(early.path()).unwrap();
            m.commit_marked(SAMPLE_MARK - 3000).unwrap();
            m.force_sync().unwrap();
            drop(m);
            std::fs::read(early.path().join("data.mdb")).unwrap()
        };
        let bytes = sample_file(dir.path());
        assert_eq!(read_all(&bytes).unwrap().len(), 3000);
        let p = PAGE_HEADER_BYTES;
        let page = |b: &[u8], at: usize| -> (u32, u64) {
            let psize = u32::from_le_bytes(b[p + 24..p + 28].try_into().unwrap());
            let off = at * psize as usize + p + 128;
            (
                psize,
                u64::from_le_bytes(b[off..off + 8].try_into().unwrap()),
            )
        };
        let (psize, t0) = page(&bytes, 0);
        let (_, t1) = page(&bytes, 1);
        let older = usize::from(t1 < t0);
        let mut flipped = bytes.clone();
        flipped[older * psize as usize + p + 128 + 5] ^= 1;
        check_bytes(&flipped).expect("every page is sound");
        for rolled_back in [flipped, older_copy] {
            match read_all(&rolled_back) {
                Err(e) => assert!(e.contains("rolled back"), "{e}"),
                Ok(entries) => panic!("{} entries read from an older state", entries.len()),
            }
        }
        // A damaged mark is damage too.
        let mut marks = 0;
        let mut damaged = bytes.clone();
        let needle = b"checkpoint-lsn";
        for at in
            (0..damaged.len() - needle.len()).filter(|&i| &bytes[i..i + needle.len()] == needle)
        {
            damaged[at + needle.len()] ^= 0x10;
            marks += 1;
        }
        assert!(marks > 0);
        check_bytes(&damaged).expect("a byte of a value: the structure is sound");
        match read_all(&damaged) {
            Err(e) => assert!(e.contains("checksum"), "{e}"),
            Ok(entries) => panic!("{} entries read past a damaged mark", entries.len()),
        }
    }
}
