//! A structural check of an LMDB data file (`data.mdb`) before LMDB maps it.
//!
//! Why: LMDB trusts its file. It checks the two meta pages' magic and version at open and that
//! a page number is below the meta page's `last_pg`, and nothing else: a garbled `last_pg`, a
//! node size or an overflow page count sends it (or the caller reading a value it returned)
//! past the end of the file inside its 64 GiB map, and the process dies of SIGBUS; other damage
//! trips its internal asserts (`abort`) or returns garbage. Measured on main: random damage to
//! one core's `data.mdb` killed `percore serve` with SIGBUS on the second GET.
//!
//! Owns: parsing LMDB 0.9 pages (64-bit build, no DUPSORT, as both users use it) and checking,
//! for both meta pages and every page reachable from the newest meta (free list and main tree,
//! named databases included), that every page number, node offset, key, value and overflow run
//! lies inside the file and the page, that every page names itself, and that keys are in order
//! within a page. Free-list entries must name pages that exist. A file that passes cannot make
//! LMDB read outside the file. Does not own: the meaning of values, nor damage that keeps the
//! structure valid (a flipped bit inside a value's bytes, a swapped pair of pages): those read
//! back as wrong values, which both users catch with a checksum in every value. Nor an older
//! state opened whole: a flipped bit in the older meta page's transaction id makes LMDB open
//! the tree before the last commit, every page of it sound. A store synced on every commit
//! has a rule for its two ids (`check_synced_commits`, the control plane's Raft store); the
//! engine's unsynced stores compare their checkpoint's mark (`engine/src/meta.rs`,
//! `check_mark`).
//!
//! Sans-I/O: pages come from a `read_page` callback, so tests feed it damaged files. Used by
//! the engine's metadata stores (its tests, against real store files, are `engine::lmdb_check`)
//! and by the control plane's Raft store.

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
    /// Meta page 0's and meta page 1's transaction ids (`check_synced_commits`).
    pub txnids: [u64; 2],
    pub pages_visited: u64,
    pub entries: u64,
    /// Entries of the free list's tree (of the newest meta page).
    pub free_entries: u64,
}

impl Summary {
    /// The transaction id of the meta page LMDB opens (the higher).
    pub fn txnid(&self) -> u64 {
        self.txnids[0].max(self.txnids[1])
    }
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
        txnids: [m0.txnid, m1.txnid],
        pages_visited: walk.seen.len() as u64,
        entries: walk.entries,
        free_entries: meta.free.entries,
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

/// For a file whose environment syncs every commit (LMDB's default; not `NO_SYNC` or
/// `NO_META_SYNC`): that its two meta pages are the last two commits. LMDB writes commit `t`
/// to meta page `t & 1`, so page 0 holds an even id, page 1 an odd one, and they differ by one
/// (both 0 before the first commit). Anything else is a damaged id, and most damaged ids roll
/// the store back: an older page whose id became the higher one, or equal to the newer's (LMDB
/// takes page 0 on a tie), is opened instead of the last commit, a tree sound in every page
/// and one commit old. Not caught: an older page's id raised to exactly the newer's plus one
/// (a flip of its bit 1 in half the cases), which looks like a commit that was made. An
/// environment without the syncs may be left with any two ids by a crash, so it has no such
/// rule (the engine marks its checkpoints instead, `engine/src/meta.rs`, `check_mark`).
pub fn check_synced_commits(summary: &Summary) -> Result<(), Damage> {
    let [t0, t1] = summary.txnids;
    if t0 == 0 && t1 == 0 {
        return Ok(());
    }
    let parity = t0 % 2 == 0 && t1 % 2 == 1;
    if parity && t0.abs_diff(t1) == 1 {
        return Ok(());
    }
    Err(format!(
        "the meta pages' transaction ids ({t0} and {t1}) are not two consecutive commits, \
         each on the page of its parity: an id is damaged, and LMDB would open the store \
         as it was at commit {}, possibly older than its last commit",
        summary.txnid()
    ))
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

    fn with_ids(t0: u64, t1: u64) -> Summary {
        Summary {
            page_bytes: 4096,
            last_page: 10,
            txnids: [t0, t1],
            pages_visited: 3,
            entries: 0,
            free_entries: 0,
        }
    }

    /// What LMDB leaves when it syncs every commit passes; ids no run of commits leaves do not.
    #[test]
    fn only_two_consecutive_commits_each_on_its_page_pass() {
        for (t0, t1) in [(0, 0), (0, 1), (2, 1), (2, 3), (1_000_000, 999_999)] {
            assert_eq!(check_synced_commits(&with_ids(t0, t1)), Ok(()), "{t0} {t1}");
        }
        for (t0, t1) in [
            (1, 1),
            (2, 2),
            (4, 1),
            (2, 5),
            (1, 2),
            (3, 2),
            (0, 3),
            (6, 1),
        ] {
            let e = check_synced_commits(&with_ids(t0, t1)).unwrap_err();
            assert!(e.contains(&format!("({t0} and {t1})")), "{e}");
        }
    }
}
