//! The map's apply function checked against a model over random command sequences: which
//! commands are accepted, that a refusal changes nothing, the bounds on kept versions, phases
//! that only go forward, and that a map survives its record encoding.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use control::codec::{self, Kind};
use control::{limits, ClusterMap, Command, GroupPhase, LayoutVersion, User};
use placement::Layout;
use proptest::prelude::*;

/// Versions 1..=5, each rebalanced from the one before, with 3, 4, 4, 5 and 3 nodes.
fn chain() -> &'static [LayoutVersion] {
    static CHAIN: OnceLock<Vec<LayoutVersion>> = OnceLock::new();
    CHAIN.get_or_init(|| {
        let mut out: Vec<LayoutVersion> = Vec::new();
        for (i, nodes) in [3u64, 4, 4, 5, 3].into_iter().enumerate() {
            let version = i as u64 + 1;
            let mut text = format!("format = 1\nversion = {version}\nplacement_groups = 16\n");
            for id in 1..=nodes {
                write!(
                    text,
                    "[[node]]\nid = {id}\naddress = \"10.0.0.{id}\"\nbase_port = 7100\nzone = \"z{id}\"\ncores = 2\n"
                )
                .expect("writing to a String");
            }
            let state = out
                .last()
                .map(|p| placement::State::decode(&p.state).expect("state"));
            let layout = Layout::from_toml_str_and_state(&text, state.as_ref()).expect("layout");
            out.push(LayoutVersion::of(&text, &layout));
        }
        out
    })
}

const NAMES: [&str; 3] = ["alice", "bob", "carol"];
const KEYS: [&str; 5] = [
    "AKIAKEY000000000001",
    "AKIAKEY000000000002",
    "AKIAKEY000000000003",
    "AKIAKEY000000000004",
    "AKIAKEY000000000005",
];
const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
const PHASES: [GroupPhase; 5] = [
    GroupPhase::Pending,
    GroupPhase::Moving,
    GroupPhase::Handoff,
    GroupPhase::CutOver,
    GroupPhase::Done,
];

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (0..5usize).prop_map(|i| Command::ProposeLayout(chain()[i].clone())),
        (1..=6u64, 0..17u32, 0..5usize).prop_map(|(to_version, pg, p)| Command::UpdateChange {
            to_version,
            pg,
            phase: PHASES[p],
        }),
        (
            1..=6u64,
            proptest::collection::vec(0..17u32, 0..4),
            0..5usize
        )
            .prop_map(|(to_version, pgs, p)| Command::UpdateChanges {
                to_version,
                pgs,
                phase: PHASES[p],
            }),
        (0..3usize, 0..3usize).prop_map(|(n, k)| Command::PutUser(User {
            name: NAMES[n].into(),
            access_key: KEYS[k].into(),
            secret_key: "s3cr3t-s3cr3t-s3cr3t-s3cr3t".into(),
            policy_json: None,
        })),
        (0..3usize).prop_map(|n| Command::DeleteUser {
            name: NAMES[n].into()
        }),
        (0..3usize, 0..3usize).prop_map(|(n, k)| Command::CreateUser(User {
            name: NAMES[n].into(),
            access_key: KEYS[k].into(),
            secret_key: "s3cr3t-s3cr3t-s3cr3t-s3cr3t".into(),
            policy_json: None,
        })),
        (0..3usize, 0..5usize).prop_map(|(n, k)| Command::AddUserKey {
            name: NAMES[n].into(),
            key: control::Key {
                access_key: KEYS[k].into(),
                secret_key: "m0r3-s3cr3t-m0r3-s3cr3t".into(),
            },
        }),
        (0..5usize).prop_map(|k| Command::DeleteUserKey {
            access_key: KEYS[k].into()
        }),
        (0..3usize, any::<bool>()).prop_map(|(n, set)| Command::SetUserPolicy {
            name: NAMES[n].into(),
            policy_json: set.then(|| POLICY.to_owned()),
        }),
        (1..=6u64).prop_map(|node| Command::Demote { node }),
        (1..=6u64).prop_map(|node| Command::Restore { node }),
        (1..=6u64).prop_map(|node| Command::Reinstate { node }),
    ]
}

/// What the map should be, kept the simple way.
#[derive(Default)]
struct Model {
    current: u64,
    /// The last change: its target version and each moving PG's phase.
    change: Option<(u64, BTreeMap<u32, GroupPhase>)>,
    /// name → access key
    users: BTreeMap<String, String>,
    /// The users with an identity policy.
    with_policy: std::collections::BTreeSet<String>,
    /// name → the user's more keys; the users whose first key is retired.
    more: BTreeMap<String, Vec<String>>,
    retired: std::collections::BTreeSet<String>,
    /// Demoted nodes, and whether each is on its way back.
    demoted: BTreeMap<u64, bool>,
}

impl Model {
    fn owner(&self, key: &str) -> Option<String> {
        self.users
            .iter()
            .find(|(_, k)| *k == key)
            .or_else(|| {
                self.more
                    .iter()
                    .find(|(_, ks)| ks.iter().any(|k| k == key))
                    .map(|(n, _)| (n, n))
            })
            .map(|(n, _)| n.clone())
    }

    fn signing(&self, name: &str) -> usize {
        usize::from(!self.retired.contains(name)) + self.more.get(name).map_or(0, Vec::len)
    }
}

fn rank(p: GroupPhase) -> usize {
    PHASES.iter().position(|q| *q == p).unwrap()
}

impl Model {
    fn change_done(&self) -> bool {
        self.change
            .as_ref()
            .is_none_or(|(_, g)| g.values().all(|p| *p == GroupPhase::Done))
    }

    /// Whether the model accepts `command`, and its own state after it.
    fn step(&mut self, command: &Command, map_after: &ClusterMap) -> bool {
        match command {
            Command::ProposeLayout(v) => {
                let ok = v.version == self.current + 1 && self.change_done();
                if ok {
                    self.current = v.version;
                    if let Some(c) = &map_after.change {
                        if c.to_version == v.version {
                            // The moving groups are placement's plan (its own oracle tests);
                            // here: all of them start Pending.
                            assert!(c.groups.values().all(|g| g.phase == GroupPhase::Pending));
                            self.change = Some((
                                v.version,
                                c.groups.iter().map(|(pg, g)| (*pg, g.phase)).collect(),
                            ));
                        }
                    }
                }
                ok
            }
            Command::UpdateChange {
                to_version,
                pg,
                phase,
            } => {
                let Some((to, groups)) = self.change.as_mut() else {
                    return false;
                };
                let Some(now) = groups.get_mut(pg) else {
                    return false;
                };
                let ok = *to == *to_version
                    && (rank(*phase) == rank(*now) || rank(*phase) == rank(*now) + 1);
                if ok {
                    *now = *phase;
                }
                ok
            }
            Command::UpdateChanges {
                to_version,
                pgs,
                phase,
            } => {
                let Some((to, groups)) = self.change.as_mut() else {
                    return false;
                };
                // All or nothing: each group in the change, at most one phase before.
                let ok = *to == *to_version
                    && pgs.iter().all(|pg| {
                        groups
                            .get(pg)
                            .is_some_and(|now| rank(*phase) <= rank(*now) + 1)
                    });
                if ok {
                    for pg in pgs {
                        let now = groups.get_mut(pg).expect("checked");
                        if rank(*now) < rank(*phase) {
                            *now = *phase;
                        }
                    }
                }
                ok
            }
            Command::PutUser(u) => {
                let taken = self.owner(&u.access_key).is_some_and(|o| o != u.name);
                if !taken {
                    self.users.insert(u.name.clone(), u.access_key.clone());
                    self.with_policy.remove(&u.name);
                    self.more.remove(&u.name);
                    self.retired.remove(&u.name);
                }
                !taken
            }
            Command::DeleteUser { name } => {
                self.with_policy.remove(name);
                self.more.remove(name);
                self.retired.remove(name);
                self.users.remove(name).is_some()
            }
            Command::AddUserKey { name, key } => {
                let ok = self.users.contains_key(name)
                    && self.owner(&key.access_key).is_none()
                    && self.signing(name) < limits::USER_KEYS_MAX;
                if ok {
                    self.more
                        .entry(name.clone())
                        .or_default()
                        .push(key.access_key.clone());
                }
                ok
            }
            Command::DeleteUserKey { access_key } => {
                let Some(owner) = self.owner(access_key) else {
                    return false;
                };
                if self.users[&owner] == *access_key {
                    self.retired.insert(owner)
                } else {
                    let more = self.more.get_mut(&owner).unwrap();
                    more.retain(|k| k != access_key);
                    if more.is_empty() {
                        self.more.remove(&owner);
                    }
                    true
                }
            }
            Command::CreateUser(u) => {
                let taken = self.users.contains_key(&u.name) || self.owner(&u.access_key).is_some();
                if !taken {
                    self.users.insert(u.name.clone(), u.access_key.clone());
                }
                !taken
            }
            Command::Demote { node } => {
                // Nodes 1..=n of the current version (the chain's node counts).
                let nodes = [3u64, 4, 4, 5, 3];
                let ok = self.current == 0 || *node <= nodes[self.current as usize - 1];
                if ok {
                    self.demoted.insert(*node, false);
                }
                ok
            }
            Command::Restore { node } => match self.demoted.get_mut(node) {
                Some(restoring) => {
                    *restoring = true;
                    true
                }
                None => false,
            },
            Command::Reinstate { node } => {
                let ok = self.demoted.get(node) == Some(&true);
                if ok {
                    self.demoted.remove(node);
                }
                ok
            }
            Command::SetUserPolicy { name, policy_json } => {
                let ok = self.users.contains_key(name)
                    && (policy_json.is_some() || self.with_policy.contains(name));
                if ok && policy_json.is_some() {
                    self.with_policy.insert(name.clone());
                } else if ok {
                    self.with_policy.remove(name);
                }
                ok
            }
        }
    }
}

/// Adds commands that walk the current change's groups forward, so sequences get past the
/// first change often.
fn finish_change(map: &ClusterMap) -> Vec<Command> {
    let Some(change) = &map.change else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // Every group one phase on in one command, as a mover's step does, then the rest one by one.
    let pgs: Vec<u32> = change.groups.keys().copied().collect();
    let least = change
        .groups
        .values()
        .map(|g| rank(g.phase))
        .min()
        .unwrap_or(0);
    if let Some(phase) = PHASES.get(least + 1) {
        out.push(Command::UpdateChanges {
            to_version: change.to_version,
            pgs,
            phase: *phase,
        });
    }
    for (pg, g) in &change.groups {
        for phase in &PHASES[rank(g.phase) + 1..] {
            out.push(Command::UpdateChange {
                to_version: change.to_version,
                pg: *pg,
                phase: *phase,
            });
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn apply_matches_the_model(
        commands in proptest::collection::vec((command(), any::<bool>()), 1..60)
    ) {
        let mut map = ClusterMap::default();
        let mut model = Model::default();
        for (command, finish) in commands {
            let mut batch = vec![command];
            if finish {
                batch.extend(finish_change(&map));
            }
            for command in batch {
                let before = map.clone();
                let outcome = map.apply(&command);
                let accepted = model.step(&command, &map);
                prop_assert_eq!(outcome.is_ok(), accepted, "{:?} → {:?}", command, outcome);
                if outcome.is_err() {
                    prop_assert_eq!(&map, &before, "a refusal changed the map");
                }
                prop_assert_eq!(map.current, model.current);
                prop_assert!(map.layouts.len() <= limits::LAYOUT_VERSIONS_KEPT_MAX);
                if map.current > 0 {
                    prop_assert!(map.layouts.contains_key(&map.current));
                }
                if let Some(c) = map.change.as_ref().filter(|c| !c.is_done()) {
                    prop_assert!(map.layouts.contains_key(&c.from_version));
                }
                let users: BTreeMap<String, String> = map
                    .users
                    .iter()
                    .map(|(n, u)| (n.clone(), u.access_key.clone()))
                    .collect();
                prop_assert_eq!(&users, &model.users);
                let more: BTreeMap<String, Vec<String>> = map
                    .keys
                    .iter()
                    .filter(|(_, k)| !k.more.is_empty())
                    .map(|(n, k)| (n.clone(), k.more.iter().map(|m| m.access_key.clone()).collect()))
                    .collect();
                prop_assert_eq!(&more, &model.more);
                let retired: std::collections::BTreeSet<String> = map
                    .keys
                    .iter()
                    .filter(|(_, k)| k.retired)
                    .map(|(n, _)| n.clone())
                    .collect();
                prop_assert_eq!(&retired, &model.retired);
                let demoted: BTreeMap<u64, bool> = map
                    .demoted
                    .iter()
                    .map(|(n, d)| (*n, *d == control::Demotion::Restoring))
                    .collect();
                prop_assert_eq!(&demoted, &model.demoted);
                for name in map.users.keys() {
                    prop_assert!(map.signing_keys(name).len() <= limits::USER_KEYS_MAX);
                }
                if let (Some(c), Some((to, groups))) = (&map.change, &model.change) {
                    prop_assert_eq!(c.to_version, *to);
                    let phases: BTreeMap<u32, GroupPhase> =
                        c.groups.iter().map(|(pg, g)| (*pg, g.phase)).collect();
                    prop_assert_eq!(&phases, groups);
                }
            }
        }
        let bytes = codec::encode(Kind::Map, &map).unwrap();
        prop_assert_eq!(codec::decode::<ClusterMap>(Kind::Map, &bytes).unwrap(), map);
    }
}

#[test]
fn the_chain_moves_data_at_each_node_count_change() {
    // Guards the model's reach: versions whose node count changes have PGs to move.
    let mut map = ClusterMap::default();
    let mut moved = Vec::new();
    for v in chain() {
        map.apply(&Command::ProposeLayout(v.clone())).unwrap();
        moved.push(map.change.as_ref().map_or(0, |c| c.groups.len()));
        for c in finish_change(&map) {
            map.apply(&c).unwrap();
        }
    }
    assert_eq!(moved[0], 0);
    assert!(moved[1] > 0 && moved[3] > 0 && moved[4] > 0, "{moved:?}");
    assert_eq!(map.current, 5);
}
