//! The state file (stored PG tables): format 1 pinned by a golden fixture that this test still
//! opens, round trips, and every corruption rejected with the error naming it.
//!
//! `PERCORE_BLESS=1 cargo test -p placement --test state_file` rewrites the fixture: only for a
//! new format version (with a new fixture name), never to make a failing test pass.

mod common;

use placement::state::{MAGIC, STATE_BYTES_MAX};
use placement::{CoreId, Layout, LayoutError, LayoutFile, State, StateError, Tier};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/state-v1.bin");

/// The fixture's layout: two nodes of three nvme cores in two zones, P = 16, version 3, and one
/// core of node 1 with weight 2: default policies give a table of EC 2+2 (depth 4).
fn fixture_file() -> LayoutFile {
    let mut f = common::grid(2, 1, 3);
    f.placement_groups = 16;
    f.version = 3;
    f.nodes[0].cores = None;
    f.nodes[0].core_list = (0..3)
        .map(|i| placement::layout::CoreSpec {
            index: i,
            weight: Some(if i == 0 { 2 } else { 1 }),
            tier: None,
        })
        .collect();
    f
}

#[test]
fn golden_fixture_opens() {
    let layout = Layout::from_file(&fixture_file()).unwrap();
    let bytes = layout.state().encode();
    if std::env::var_os("PERCORE_BLESS").is_some() {
        std::fs::write(FIXTURE, &bytes).unwrap();
    }
    let stored = std::fs::read(FIXTURE).expect("the format-1 fixture is checked in");
    assert_eq!(stored.len(), 40 + 8 + 6 * 16 + 16 * 4 * 2 + 8);
    assert_eq!(&stored[..8], b"PCPGTAB1");
    assert_eq!(u32::from_le_bytes(stored[8..12].try_into().unwrap()), 1);
    let state = State::decode(&stored).unwrap();
    assert_eq!(state.layout_version, 3);
    assert_eq!(state.placement_groups, 16);
    assert_eq!(state.tables.len(), 1);
    let t = &state.tables[0];
    assert_eq!((t.tier, t.depth, t.members.len()), (Tier::Nvme, 4, 6));
    assert_eq!(t.members[0], (CoreId { node: 1, index: 0 }, 2));
    assert_eq!(t.members[5], (CoreId { node: 2, index: 2 }, 1));
    // Decoding then encoding gives the same bytes, and the stateless table of the layout (pinned
    // by `golden_pgs_and_table` in properties.rs for other layouts) is what was stored.
    assert_eq!(state.encode(), stored);
    assert_eq!(bytes, stored, "the stateless table or the encoding changed");
    // The layout adopts the stored tables of its own version.
    let adopted = Layout::from_file_and_state(&fixture_file(), Some(&state)).unwrap();
    assert_eq!(adopted.state(), state);
}

#[test]
fn corruption_is_detected() {
    let layout = Layout::from_file(&fixture_file()).unwrap();
    let good = layout.state().encode();
    assert!(State::is_state(&good));
    assert!(!State::is_state(b"format = 1\n"));
    assert_eq!(
        State::decode(&good[..20]),
        Err(StateError::Truncated { size_bytes: 20 })
    );
    let mut torn = good.clone();
    torn.truncate(good.len() - 2);
    assert!(matches!(
        State::decode(&torn),
        Err(StateError::LengthMismatch { .. })
    ));
    for at in [40, 60, good.len() / 2, good.len() - 9, good.len() - 1] {
        let mut flipped = good.clone();
        flipped[at] ^= 0x10;
        assert!(
            matches!(State::decode(&flipped), Err(StateError::Checksum { .. })),
            "byte {at}"
        );
    }
    let mut magic = good.clone();
    magic[0] = b'X';
    assert_eq!(State::decode(&magic), Err(StateError::BadMagic));
    let mut format = good.clone();
    format[8] = 2;
    assert_eq!(
        State::decode(&format),
        Err(StateError::UnsupportedFormat {
            found: 2,
            supported: 1
        })
    );
    assert!(STATE_BYTES_MAX > good.len() && MAGIC == *b"PCPGTAB1");
}

#[test]
fn states_must_fit_the_layout() {
    let f = fixture_file();
    let state = Layout::from_file(&f).unwrap().state();
    let mut older = f.clone();
    older.version = 2;
    assert_eq!(
        Layout::from_file_and_state(&older, Some(&state)).unwrap_err(),
        LayoutError::StateAhead {
            state: 3,
            layout: 2
        }
    );
    let mut other_p = f.clone();
    other_p.placement_groups = 32;
    other_p.version = 4;
    assert!(matches!(
        Layout::from_file_and_state(&other_p, Some(&state)),
        Err(LayoutError::StatePlacementGroups { .. })
    ));
    // Same version, other cores: the state does not belong to this file.
    let mut same_version = f;
    *same_version.nodes[1].cores.as_mut().unwrap() += 1;
    assert!(matches!(
        Layout::from_file_and_state(&same_version, Some(&state)),
        Err(LayoutError::StateMismatch { version: 3, .. })
    ));
}

/// The placement digest a node keeps to refuse a layout that would move its data: it follows
/// the tables only, and its value is pinned (a new digest function would make every node of an
/// upgraded cluster refuse its own layout).
#[test]
fn placement_digest_follows_the_tables_only() {
    let layout = Layout::from_file(&fixture_file()).unwrap();
    let digest = layout.placement_digest();
    assert_eq!(
        digest, 5_861_986_089_080_426_262,
        "pinned value of the fixture's digest"
    );
    // The next version with nothing changed adopts the same tables: same digest.
    let mut next = fixture_file();
    next.version = 4;
    let same = Layout::from_file_and_state(&next, Some(&layout.state())).unwrap();
    assert_eq!(same.version(), 4);
    assert_eq!(same.placement_digest(), digest);
    // A node added moves placement groups: another digest.
    let mut grown = common::grid(3, 1, 3);
    grown.placement_groups = 16;
    grown.version = 4;
    grown.nodes[0].cores = None;
    grown.nodes[0]
        .core_list
        .clone_from(&fixture_file().nodes[0].core_list);
    let grown = Layout::from_file_and_state(&grown, Some(&layout.state())).unwrap();
    assert_ne!(grown.placement_digest(), digest);
    // A weight changed moves some too.
    let mut reweighted = next.clone();
    reweighted.nodes[0].core_list[0].weight = Some(1);
    let reweighted = Layout::from_file_and_state(&reweighted, Some(&layout.state())).unwrap();
    assert_ne!(reweighted.state().tables, layout.state().tables);
    assert_ne!(reweighted.placement_digest(), digest);
}
