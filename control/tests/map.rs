//! The map's apply function, without Raft: layouts in order and valid, the change's phases
//! forward only, users well-formed with their own access keys.

use control::{Applied, ClusterMap, Command, GroupPhase, LayoutVersion, Refusal, User};
use placement::Layout;
use std::fmt::Write as _;

/// A layout of `nodes` nodes of 2 cores, one zone each, 64 PGs, at `version`.
fn layout_toml(version: u64, nodes: u64) -> String {
    let mut text = format!("format = 1\nversion = {version}\nplacement_groups = 64\n");
    for id in 1..=nodes {
        write!(
            text,
            "[[node]]\nid = {id}\naddress = \"127.0.0.1\"\nbase_port = {}\nzone = \"z{id}\"\ncores = 2\n",
            7000 + id * 10
        )
        .expect("writing to a String");
    }
    text
}

/// Version 1 of `nodes` nodes (stateless tables), or `version` rebalanced from `previous`.
fn version(version: u64, nodes: u64, previous: Option<&LayoutVersion>) -> LayoutVersion {
    let text = layout_toml(version, nodes);
    let state = previous.map(|p| placement::State::decode(&p.state).expect("state"));
    let layout = Layout::from_toml_str_and_state(&text, state.as_ref()).expect("layout");
    LayoutVersion::of(&text, &layout)
}

fn user(name: &str, access: &str) -> User {
    User {
        name: name.to_owned(),
        access_key: access.to_owned(),
        secret_key: "s3cr3t-s3cr3t-s3cr3t-s3cr3t".to_owned(),
        policy_json: None,
    }
}

#[test]
fn layouts_commit_in_order_and_a_stale_version_is_refused_with_the_reason() {
    let mut map = ClusterMap::default();
    let v1 = version(1, 3, None);
    assert_eq!(
        map.apply(&Command::ProposeLayout(v1.clone())),
        Ok(Applied::LayoutCommitted {
            version: 1,
            groups_moving: 0
        })
    );
    assert_eq!(map.current, 1);
    assert!(map.change.is_none());
    let before = map.clone();
    let refused = map.apply(&Command::ProposeLayout(v1.clone())).unwrap_err();
    assert_eq!(
        refused,
        Refusal::StaleLayoutVersion {
            proposed: 1,
            current: 1
        }
    );
    assert_eq!(
        refused.to_string(),
        "layout version 1 is refused: the current version is 1, so the next must be 2"
    );
    let skipped = version(3, 3, Some(&v1));
    assert!(matches!(
        map.apply(&Command::ProposeLayout(skipped)),
        Err(Refusal::StaleLayoutVersion { proposed: 3, .. })
    ));
    assert_eq!(map, before, "a refusal leaves the map as it was");
}

#[test]
fn a_layout_whose_tables_or_file_disagree_is_refused() {
    let mut map = ClusterMap::default();
    let mut wrong_tables = version(1, 3, None);
    wrong_tables.state = version(1, 4, None).state;
    assert!(matches!(
        map.apply(&Command::ProposeLayout(wrong_tables)),
        Err(Refusal::InvalidLayout { version: 1, .. })
    ));
    let mut flipped = version(1, 3, None);
    let at = flipped.state.len() / 2;
    flipped.state[at] ^= 0x40;
    assert!(matches!(
        map.apply(&Command::ProposeLayout(flipped)),
        Err(Refusal::InvalidLayout { version: 1, .. })
    ));
    let mut file_says_2 = version(1, 3, None);
    file_says_2.layout_toml = layout_toml(2, 3);
    assert!(matches!(
        map.apply(&Command::ProposeLayout(file_says_2)),
        Err(Refusal::InvalidLayout { version: 1, .. })
    ));
    assert_eq!(map, ClusterMap::default());
}

#[test]
fn a_new_node_makes_a_change_whose_groups_go_forward_one_phase_at_a_time() {
    let mut map = ClusterMap::default();
    let v1 = version(1, 3, None);
    map.apply(&Command::ProposeLayout(v1.clone())).expect("v1");
    let v2 = version(2, 4, Some(&v1));
    let plan = placement::plan_states(
        &placement::State::decode(&v1.state).unwrap(),
        &placement::State::decode(&v2.state).unwrap(),
    )
    .unwrap();
    let Ok(Applied::LayoutCommitted {
        version: 2,
        groups_moving,
    }) = map.apply(&Command::ProposeLayout(v2.clone()))
    else {
        panic!("v2 commits");
    };
    let change = map.change.clone().expect("a change");
    assert_eq!((change.from_version, change.to_version), (1, 2));
    let mut pgs: Vec<u32> = plan.moves.iter().map(|m| m.pg).collect();
    pgs.dedup();
    assert_eq!(change.groups.keys().copied().collect::<Vec<_>>(), pgs);
    assert_eq!(groups_moving as usize, pgs.len());
    assert!(groups_moving > 0);
    assert_eq!(
        change
            .groups
            .values()
            .map(|g| g.fragment_moves as usize)
            .sum::<usize>(),
        plan.moves.len()
    );
    assert!(change
        .groups
        .values()
        .all(|g| g.phase == GroupPhase::Pending));

    // A third version waits for the change.
    let v3 = version(3, 4, Some(&v2));
    assert!(matches!(
        map.apply(&Command::ProposeLayout(v3.clone())),
        Err(Refusal::ChangeInProgress {
            proposed: 3,
            from: 1,
            to: 2,
            ..
        })
    ));

    let pg = pgs[0];
    let step = |phase| Command::UpdateChange {
        to_version: 2,
        pg,
        phase,
    };
    assert!(matches!(
        map.apply(&step(GroupPhase::CutOver)),
        Err(Refusal::PhaseOrder {
            from: GroupPhase::Pending,
            to: GroupPhase::CutOver,
            ..
        })
    ));
    map.apply(&step(GroupPhase::Moving)).expect("moving");
    map.apply(&step(GroupPhase::Moving))
        .expect("the same phase again is accepted: a mover resends after a crash");
    assert!(matches!(
        map.apply(&step(GroupPhase::Pending)),
        Err(Refusal::PhaseOrder { .. })
    ));
    // A PG the change does not move (or past P when every PG moves).
    let unmoved = (0..65).find(|p| !pgs.contains(p)).expect("65 > P");
    assert_eq!(
        map.apply(&Command::UpdateChange {
            to_version: 2,
            pg: unmoved,
            phase: GroupPhase::Moving
        }),
        Err(Refusal::GroupNotInChange {
            to_version: 2,
            pg: unmoved
        })
    );
    assert!(matches!(
        map.apply(&Command::UpdateChange {
            to_version: 3,
            pg,
            phase: GroupPhase::Moving
        }),
        Err(Refusal::NoSuchChange { to_version: 3, .. })
    ));

    // Several groups in one command (a mover's step): all or nothing.
    let steps = |pgs: &[u32], phase| Command::UpdateChanges {
        to_version: 2,
        pgs: pgs.to_vec(),
        phase,
    };
    let before = map.clone();
    assert_eq!(
        map.apply(&steps(&[pgs[1], unmoved], GroupPhase::Moving)),
        Err(Refusal::GroupNotInChange {
            to_version: 2,
            pg: unmoved
        })
    );
    // pgs[1] is Pending: two phases short of Handoff.
    assert!(matches!(
        map.apply(&steps(&[pg, pgs[1]], GroupPhase::Handoff)),
        Err(Refusal::PhaseOrder {
            from: GroupPhase::Pending,
            to: GroupPhase::Handoff,
            ..
        })
    ));
    assert_eq!(map, before, "a refused command changes nothing");
    // pg is Moving already and stays; the others move.
    assert_eq!(
        map.apply(&steps(&pgs, GroupPhase::Moving)),
        Ok(Applied::GroupPhases {
            to_version: 2,
            phase: GroupPhase::Moving,
            moved: pgs.len() as u32 - 1,
            groups_left: pgs.len() as u32,
        })
    );
    map.apply(&steps(&[pg], GroupPhase::Handoff))
        .expect("pg on");
    // A group a mover before took further stays where it is.
    assert!(matches!(
        map.apply(&steps(&pgs, GroupPhase::Moving)),
        Ok(Applied::GroupPhases { moved: 0, .. })
    ));
    assert_eq!(
        map.change.as_ref().unwrap().groups[&pg].phase,
        GroupPhase::Handoff
    );
    assert!(matches!(
        map.apply(&Command::UpdateChanges {
            to_version: 3,
            pgs: vec![pg],
            phase: GroupPhase::Moving
        }),
        Err(Refusal::NoSuchChange { to_version: 3, .. })
    ));

    for &pg in &pgs {
        for phase in [GroupPhase::Handoff, GroupPhase::CutOver, GroupPhase::Done] {
            map.apply(&Command::UpdateChange {
                to_version: 2,
                pg,
                phase,
            })
            .expect("forward");
        }
    }
    assert!(map.change.as_ref().unwrap().is_done());
    assert!(matches!(
        map.apply(&Command::ProposeLayout(v3)),
        Ok(Applied::LayoutCommitted { version: 3, .. })
    ));
}

#[test]
fn old_versions_are_pruned_but_never_the_one_a_change_moves_from() {
    let mut map = ClusterMap::default();
    let mut prev = version(1, 3, None);
    map.apply(&Command::ProposeLayout(prev.clone())).unwrap();
    // Same nodes, new versions: nothing moves, so every change is done at once.
    for v in 2..=6 {
        let next = version(v, 3, Some(&prev));
        map.apply(&Command::ProposeLayout(next.clone())).unwrap();
        prev = next;
    }
    assert_eq!(map.layouts.keys().copied().collect::<Vec<_>>(), [4, 5, 6]);
    // A change from 6 to 7 keeps 6 while it runs, whatever the history.
    let v7 = version(7, 4, Some(&prev));
    map.apply(&Command::ProposeLayout(v7)).unwrap();
    assert_eq!(map.change.as_ref().unwrap().from_version, 6);
    assert!(map.layouts.contains_key(&6) && map.layouts.contains_key(&7));
    assert!(map.layouts.len() <= control::limits::LAYOUT_VERSIONS_KEPT_MAX);
    assert_eq!(map.current_layout().unwrap().layout().unwrap().version(), 7);
}

#[test]
fn users_are_checked_and_own_their_access_keys() {
    let mut map = ClusterMap::default();
    assert_eq!(
        map.apply(&Command::PutUser(user("alice", "AKIAALICE0000000001"))),
        Ok(Applied::UserPut {
            name: "alice".into(),
            replaced: false
        })
    );
    assert_eq!(
        map.apply(&Command::PutUser(user("bob", "AKIAALICE0000000001"))),
        Err(Refusal::AccessKeyInUse {
            name: "bob".into(),
            owner: "alice".into()
        })
    );
    let mut rotated = user("alice", "AKIAALICE0000000002");
    rotated.policy_json = Some(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}]}"#
            .into(),
    );
    assert_eq!(
        map.apply(&Command::PutUser(rotated.clone())),
        Ok(Applied::UserPut {
            name: "alice".into(),
            replaced: true
        })
    );
    assert_eq!(
        map.user_by_access_key("AKIAALICE0000000002"),
        Some(&rotated)
    );
    assert_eq!(map.user_by_access_key("AKIAALICE0000000001"), None);

    let mut bad_policy = user("carol", "AKIACAROL0000000001");
    bad_policy.policy_json =
        Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Maybe"}]}"#.into());
    assert!(matches!(
        map.apply(&Command::PutUser(bad_policy)),
        Err(Refusal::InvalidUser { .. })
    ));
    for bad in [
        user("", "AKIACAROL0000000001"),
        user("carol", "short"),
        user("carol", "AKIA-CAROL-000000001"),
        User {
            secret_key: "tiny".into(),
            ..user("carol", "AKIACAROL0000000001")
        },
    ] {
        assert!(
            matches!(
                map.apply(&Command::PutUser(bad.clone())),
                Err(Refusal::InvalidUser { .. })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        map.apply(&Command::DeleteUser {
            name: "carol".into()
        }),
        Err(Refusal::NoSuchUser {
            name: "carol".into()
        })
    );
    assert_eq!(
        map.apply(&Command::DeleteUser {
            name: "alice".into()
        }),
        Ok(Applied::UserDeleted {
            name: "alice".into()
        })
    );
    assert!(map.users.is_empty());
}
