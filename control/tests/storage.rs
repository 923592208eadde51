//! The LMDB storage against openraft's own storage suite, then what only a real directory
//! shows: a reopened store gives back its log, vote and snapshot, and a damaged record is an
//! error, never a wrong answer, and a store LMDB would open at an older commit is refused.

use std::path::Path;

use control::store::{self, LogStore, MapStore};
use control::{ClusterMap, Command, TypeConfig, User};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftLogReader,
    RaftSnapshotBuilder, StorageError, Vote,
};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, MapStore, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, MapStore), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, sm) = store::open(dir.path()).expect("open");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).expect("the suite passes");
}

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn user_entry(index: u64, name: &str, access: &str) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Normal(Command::PutUser(User {
            name: name.into(),
            access_key: access.into(),
            secret_key: "s3cr3t-s3cr3t-s3cr3t-s3cr3t".into(),
            policy_json: None,
        })),
    }
}

async fn append(log: &mut LogStore, entries: Vec<Entry<TypeConfig>>) {
    // The storage traits take a flush callback only openraft can build: go through the
    // extension that waits for it.
    use openraft::storage::RaftLogStorageExt;
    log.blocking_append(entries).await.expect("append");
}

fn membership_entry(index: u64) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Membership(Membership::new(
            vec![[1u64].into_iter().collect()],
            [(1u64, BasicNode::new("127.0.0.1:1"))]
                .into_iter()
                .collect::<std::collections::BTreeMap<_, _>>(),
        )),
    }
}

fn only_record_file(dir: &Path) -> std::path::PathBuf {
    dir.join("raft").join("data.mdb")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_store_has_its_log_vote_and_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let map_after_two;
    {
        let (mut log, mut sm) = store::open(dir.path()).unwrap();
        log.save_vote(&Vote::new(3, 1)).await.unwrap();
        let entries = vec![
            membership_entry(1),
            user_entry(2, "alice", "AKIAALICE0000000001"),
            user_entry(3, "bob", "AKIABOB000000000001"),
        ];
        append(&mut log, entries.clone()).await;
        log.save_committed(Some(log_id(1, 3))).await.unwrap();
        sm.apply(entries[..2].to_vec()).await.unwrap();
        let snapshot = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 2)));
        map_after_two = sm.subscribe().borrow().clone();
        assert_eq!(map_after_two.users.len(), 1);
        log.purge(log_id(1, 1)).await.unwrap();
    }
    let (mut log, mut sm) = store::open(dir.path()).unwrap();
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 1)));
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 3)));
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1)));
    assert_eq!(state.last_log_id, Some(log_id(1, 3)));
    let entries = log.try_get_log_entries(0..10).await.unwrap();
    assert_eq!(
        entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
        [2, 3]
    );
    // The state machine starts from the snapshot; openraft re-applies 3 (committed) on start.
    let (applied, membership) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 2)));
    assert_eq!(membership.log_id(), &Some(log_id(1, 1)));
    assert_eq!(*sm.subscribe().borrow(), map_after_two);
    let current = sm.get_current_snapshot().await.unwrap().expect("snapshot");
    assert_eq!(current.meta.last_log_id, Some(log_id(1, 2)));
    sm.apply(entries[1..].to_vec()).await.unwrap();
    let map: ClusterMap = (**sm.subscribe().borrow()).clone();
    assert!(map.users.contains_key("bob"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_the_log_file_is_an_error_not_a_wrong_entry() {
    let dir = tempfile::tempdir().unwrap();
    let marker = "AKIAFLIPME000000001";
    {
        let (mut log, _sm) = store::open(dir.path()).unwrap();
        append(&mut log, vec![user_entry(1, "flip", marker)]).await;
    }
    let path = only_record_file(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    // Every copy: LMDB's copy-on-write may have left an old page holding the entry too.
    let copies: Vec<usize> = bytes
        .windows(marker.len())
        .enumerate()
        .filter(|(_, w)| *w == marker.as_bytes())
        .map(|(at, _)| at)
        .collect();
    assert!(!copies.is_empty(), "the entry is in the file");
    for at in copies {
        bytes[at + 4] ^= 0x01;
    }
    std::fs::write(&path, &bytes).unwrap();
    let (mut log, _sm) = store::open(dir.path()).unwrap();
    let got = log.try_get_log_entries(0..10).await;
    let err = got.expect_err("the damaged entry is refused");
    assert!(err.to_string().contains("checksum"), "{err}");
}

/// LMDB trusts its file: a damaged structure sent it past the end of the file inside its map
/// (SIGBUS, the whole node gone) or into its asserts. The store checks the file before LMDB
/// maps it (`lmdb_check`): each page of a real store zeroed in turn is refused at open, or
/// was a free page and everything reads back; meta pages that claim pages past the file are
/// refused too. Nothing crashes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_file_structure_is_refused_before_lmdb_maps_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _sm) = store::open(dir.path()).unwrap();
        log.save_vote(&Vote::new(3, 1)).await.unwrap();
        let entries = (1..=60)
            .map(|i| user_entry(i, &format!("user-{i}"), &format!("AKIAUSER{i:011}")))
            .collect();
        append(&mut log, entries).await;
    }
    let path = only_record_file(dir.path());
    let sound = std::fs::read(&path).unwrap();
    let page_bytes = 4096;
    let (mut refused, mut intact) = (0, 0);
    for page in 2..sound.len() / page_bytes {
        let mut bytes = sound.clone();
        bytes[page * page_bytes..(page + 1) * page_bytes].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        match store::open(dir.path()) {
            Err(e) => {
                assert!(e.to_string().contains("is damaged"), "{e}");
                refused += 1;
            }
            Ok((mut log, _sm)) => {
                assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 1)));
                assert_eq!(log.try_get_log_entries(0..100).await.unwrap().len(), 60);
                intact += 1;
            }
        }
    }
    assert!(refused > 0, "{refused} refused, {intact} free pages");
    // Both meta pages' last page (16 + 120 bytes in) far past the file and the map.
    let mut wild = sound.clone();
    for meta in [0, page_bytes] {
        wild[meta + 136..meta + 144].copy_from_slice(&(1u64 << 30).to_le_bytes());
    }
    std::fs::write(&path, &wild).unwrap();
    let e = store::open(dir.path()).map(|_| ()).unwrap_err();
    assert!(e.to_string().contains("past the"), "{e}");
    std::fs::write(&path, &sound).unwrap();
    let (mut log, _sm) = store::open(dir.path()).unwrap();
    assert_eq!(log.try_get_log_entries(0..100).await.unwrap().len(), 60);
}

/// A meta page's transaction id damaged so that LMDB would open the commit before the last
/// (the older page's id now the higher one, or equal: LMDB takes page 0 on a tie) gives back a
/// store without its last vote, every page sound: a voter that forgot its vote may vote twice
/// in a term. The two ids must be two consecutive commits, each on the page of its parity
/// (`lmdb_check::check_synced_commits`), or the store is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meta_page_whose_transaction_id_is_damaged_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _sm) = store::open(dir.path()).unwrap();
        for i in 1..=5 {
            append(
                &mut log,
                vec![user_entry(i, &format!("user-{i}"), "AKIAUSER")],
            )
            .await;
        }
        log.save_vote(&Vote::new(7, 1)).await.unwrap();
    }
    let path = only_record_file(dir.path());
    let sound = std::fs::read(&path).unwrap();
    // The transaction id sits 16 (page header) + 128 bytes into each 4 KiB meta page.
    let at = |page: usize| page * 4096 + 16 + 128;
    let id = |page: usize| u64::from_le_bytes(sound[at(page)..at(page) + 8].try_into().unwrap());
    assert_eq!(
        id(0).abs_diff(id(1)),
        1,
        "a sound store's meta pages are its last two commits"
    );
    let (older, newer) = if id(0) < id(1) { (0, 1) } else { (1, 0) };
    let with_id = |page: usize, value: u64| {
        let mut bytes = sound.clone();
        bytes[at(page)..at(page) + 8].copy_from_slice(&value.to_le_bytes());
        bytes
    };
    for bytes in [
        // The older page's id raised past the newer's: LMDB would open the older tree.
        with_id(older, id(older) ^ (1 << 40)),
        with_id(older, id(older) ^ (1 << 5)),
        // The two ids equal.
        with_id(older, id(newer)),
        with_id(newer, id(older)),
        // The newer page's id lowered below the older's, or its parity gone.
        with_id(newer, id(newer) ^ (1 << 2)),
        with_id(newer, id(newer) ^ 1),
    ] {
        std::fs::write(&path, &bytes).unwrap();
        let e = store::open(dir.path()).map(|_| ()).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("is damaged") && text.contains("consecutive commits"),
            "{text}"
        );
    }
    std::fs::write(&path, &sound).unwrap();
    let (mut log, _sm) = store::open(dir.path()).unwrap();
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(7, 1)));
    assert_eq!(log.try_get_log_entries(0..100).await.unwrap().len(), 5);
}
