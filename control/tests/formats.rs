//! Golden fixtures of the persisted formats (STYLE 7): the bytes of a map (a snapshot's data)
//! and of a log entry in record format 1 are kept in tests/fixtures/ and must still decode to
//! the same values. `PERCORE_WRITE_FIXTURES=1` rewrites them, only for a new format version.

use std::fmt::Write as _;
use std::path::PathBuf;

use control::codec::{self, Kind};
use control::{ClusterMap, Command, GroupPhase, LayoutVersion, TypeConfig, User};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use placement::Layout;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn layout(version: u64, nodes: u64, previous: Option<&LayoutVersion>) -> LayoutVersion {
    let mut text = format!("format = 1\nversion = {version}\nplacement_groups = 16\n");
    for id in 1..=nodes {
        write!(
            text,
            "[[node]]\nid = {id}\naddress = \"10.0.0.{id}\"\nbase_port = 7100\nzone = \"z{id}\"\ncores = 1\n"
        )
        .expect("writing to a String");
    }
    let state = previous.map(|p| placement::State::decode(&p.state).unwrap());
    LayoutVersion::of(
        &text,
        &Layout::from_toml_str_and_state(&text, state.as_ref()).unwrap(),
    )
}

fn user() -> User {
    User {
        name: "alice".into(),
        access_key: "AKIAALICE0000000001".into(),
        secret_key: "s3cr3t-s3cr3t-s3cr3t-s3cr3t".into(),
        policy_json: Some(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}]}"#
                .into(),
        ),
    }
}

/// A map with two layout versions, a change one group into it, and a user.
fn sample_map() -> ClusterMap {
    let mut map = ClusterMap::default();
    let v1 = layout(1, 4, None);
    let v2 = layout(2, 5, Some(&v1));
    map.apply(&Command::ProposeLayout(v1)).unwrap();
    map.apply(&Command::ProposeLayout(v2)).unwrap();
    let pg = *map.change.as_ref().unwrap().groups.keys().next().unwrap();
    map.apply(&Command::UpdateChange {
        to_version: 2,
        pg,
        phase: GroupPhase::Moving,
    })
    .unwrap();
    map.apply(&Command::PutUser(user())).unwrap();
    map
}

fn sample_entry() -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(7, 3), 42),
        payload: EntryPayload::Normal(Command::PutUser(user())),
    }
}

fn check(name: &str, kind: Kind, bytes: &[u8]) -> Vec<u8> {
    let path = fixture(name);
    if std::env::var_os("PERCORE_WRITE_FIXTURES").is_some() {
        std::fs::write(&path, bytes).unwrap();
    }
    let stored = std::fs::read(&path).expect("the fixture is in the repository");
    assert_eq!(&stored[..4], b"PCCT");
    assert_eq!(u16::from_le_bytes([stored[6], stored[7]]), kind as u16);
    stored
}

/// Format 1 is no longer written: its fixture is only read.
fn stored(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("the fixture is in the repository")
}

#[test]
fn format_1_map_still_decodes() {
    let map = sample_map();
    let stored = stored("map-format-1.bin");
    assert_eq!(codec::format_in(&stored), 1);
    // Read as format 1 (no user has more keys), never as the current format.
    assert!(codec::decode::<ClusterMap>(Kind::Map, &stored).is_err());
    let decoded = control::decode_map(&stored).unwrap();
    assert!(decoded.keys.is_empty());
    assert_eq!(decoded, map);
    assert_eq!(decoded.current, 2);
    assert_eq!(
        decoded
            .current_layout()
            .unwrap()
            .layout()
            .unwrap()
            .nodes()
            .len(),
        5
    );
}

/// Format 2: a user with a retired first key and one more key.
#[test]
fn format_2_map_still_decodes() {
    let mut map = sample_map();
    map.apply(&Command::AddUserKey {
        name: "alice".into(),
        key: control::Key {
            access_key: "AKIAALICE0000000002".into(),
            secret_key: "m0r3-s3cr3t-m0r3-s3cr3t".into(),
        },
    })
    .unwrap();
    map.apply(&Command::DeleteUserKey {
        access_key: "AKIAALICE0000000001".into(),
    })
    .unwrap();
    // Format 2 is no longer written: its fixture is only read (as format 2, no node demoted).
    let stored = stored("map-format-2.bin");
    assert_eq!(codec::format_in(&stored), 2);
    assert!(codec::decode::<ClusterMap>(Kind::Map, &stored).is_err());
    let decoded = control::decode_map(&stored).unwrap();
    assert!(decoded.demoted.is_empty());
    assert_eq!(decoded, map);
    let keys: Vec<String> = decoded
        .signing_keys("alice")
        .into_iter()
        .map(|k| k.access_key)
        .collect();
    assert_eq!(keys, ["AKIAALICE0000000002"]);
}

/// Format 3: a demoted node, and one on its way back.
#[test]
fn format_3_map_still_decodes() {
    let mut map = sample_map();
    map.apply(&Command::Demote { node: 3 }).unwrap();
    map.apply(&Command::Demote { node: 4 }).unwrap();
    map.apply(&Command::Restore { node: 4 }).unwrap();
    let stored = check(
        "map-format-3.bin",
        Kind::Map,
        &codec::encode(Kind::Map, &map).unwrap(),
    );
    assert_eq!(codec::format_in(&stored), 3);
    let decoded = control::decode_map(&stored).unwrap();
    assert_eq!(decoded, map);
    assert_eq!(
        decoded.demoted.into_iter().collect::<Vec<_>>(),
        [
            (3, control::Demotion::Demoted),
            (4, control::Demotion::Restoring)
        ]
    );
}

#[test]
fn format_1_log_entry_still_decodes() {
    let entry = sample_entry();
    let stored = check(
        "entry-format-1.bin",
        Kind::LogEntry,
        &codec::encode(Kind::LogEntry, &entry).unwrap(),
    );
    let decoded: Entry<TypeConfig> = codec::decode(Kind::LogEntry, &stored).unwrap();
    assert_eq!(decoded.log_id, entry.log_id);
    match decoded.payload {
        EntryPayload::Normal(Command::PutUser(u)) => assert_eq!(u, user()),
        other => panic!("{other:?}"),
    }
}
