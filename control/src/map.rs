//! The cluster map and its commands: what the control plane replicates, and the one pure,
//! deterministic function ([`ClusterMap::apply`]) every voter runs on every committed command.
//!
//! It owns the rules a command must meet to change the map (a layout is the next version and
//! valid, a placement group's phase only moves forward, a user's keys are well-formed and its
//! access key is its own). It deliberately knows nothing of Raft, disks or the network: the
//! same command on the same map gives the same map and the same answer in every process, and a
//! refusal is an answer, not an error, so every voter refuses alike.

use std::collections::BTreeMap;
use std::sync::Arc;

use placement::{Layout, State};
use serde::{Deserialize, Serialize};

use crate::limits;

/// One layout version as percore stores it today: the layout file and its PG tables (the
/// state file of `percore layout apply`, format 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutVersion {
    pub version: u64,
    /// The layout file (TOML), as an operator wrote it.
    pub layout_toml: String,
    /// The PG tables of this version (`placement::State::encode`).
    pub state: Vec<u8>,
}

impl LayoutVersion {
    /// The stored form of a built layout and the text it was parsed from.
    pub fn of(layout_toml: &str, layout: &Layout) -> LayoutVersion {
        LayoutVersion {
            version: layout.version(),
            layout_toml: layout_toml.to_owned(),
            state: State::of(layout).encode(),
        }
    }

    /// The layout with its stored tables (what a node would route by).
    pub fn layout(&self) -> Result<Layout, String> {
        let state = State::decode(&self.state).map_err(|e| e.to_string())?;
        Layout::from_toml_str_and_state(&self.layout_toml, Some(&state)).map_err(|e| e.to_string())
    }
}

/// Where one placement group stands in a layout change. Only forward, one step at a time:
/// the data movement of issue 14 item 2 drives it (copy, verify, hand over, cut over, retire).
///
/// The variants are encoded by their place in this declaration (bincode), so `Handoff`, added
/// later, comes last here and keeps maps and log entries written before it readable; the
/// order of the phases is `rank`'s, not the declaration's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupPhase {
    /// Nothing copied yet: readers and writers use the old placement.
    Pending,
    /// Copying to the new cores: reads consult the new placement and fall back to the old,
    /// writes go where both will find them.
    Moving,
    /// New fragments verified; the new placement is authoritative, old fragments not retired.
    CutOver,
    /// Old fragments retired: the group lives under the new version only.
    Done,
    /// Between `Moving` and `CutOver`: routed as Moving, while the role of serializing the
    /// group's conditional writes passes from the old placement's first core to the new one's.
    Handoff,
}

impl GroupPhase {
    /// The phase after this one, if any.
    pub fn next(self) -> Option<GroupPhase> {
        match self {
            GroupPhase::Pending => Some(GroupPhase::Moving),
            GroupPhase::Moving => Some(GroupPhase::Handoff),
            GroupPhase::Handoff => Some(GroupPhase::CutOver),
            GroupPhase::CutOver => Some(GroupPhase::Done),
            GroupPhase::Done => None,
        }
    }

    /// The phase's place in a change.
    fn rank(self) -> u8 {
        match self {
            GroupPhase::Pending => 0,
            GroupPhase::Moving => 1,
            GroupPhase::Handoff => 2,
            GroupPhase::CutOver => 3,
            GroupPhase::Done => 4,
        }
    }
}

impl PartialOrd for GroupPhase {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for GroupPhase {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

/// One placement group a change moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupChange {
    pub phase: GroupPhase,
    /// Fragment positions of this PG whose core changes, all tiers together.
    pub fragment_moves: u32,
}

/// The change from one layout version to the next: every PG with at least one fragment
/// position on another core, and its phase. PGs not listed do not move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub from_version: u64,
    pub to_version: u64,
    pub groups: BTreeMap<u32, GroupChange>,
}

impl Change {
    /// Groups in `phase`.
    pub fn groups_in(&self, phase: GroupPhase) -> usize {
        self.groups.values().filter(|g| g.phase == phase).count()
    }

    /// Groups not yet `Done`.
    pub fn groups_left(&self) -> usize {
        self.groups
            .values()
            .filter(|g| g.phase != GroupPhase::Done)
            .count()
    }

    pub fn is_done(&self) -> bool {
        self.groups_left() == 0
    }
}

/// A user and its keys, as `credentials.toml` and `users.toml` hold them today, with the
/// identity policy attached to it, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub access_key: String,
    pub secret_key: String,
    /// An identity policy document (JSON); `None`: the user has no policy of its own.
    pub policy_json: Option<String>,
}

/// One more key of a user (rotation), beside its first in [`User`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    pub access_key: String,
    pub secret_key: String,
}

/// A user's keys beyond its first (map format 2): the first key is the user's id (what its
/// buckets record as their owner), so deleting it only stops it signing (`retired`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserKeys {
    pub retired: bool,
    pub more: Vec<Key>,
}

/// The map as format 1 stored it (before `keys`): read, then converted.
#[derive(Deserialize)]
struct ClusterMapV1 {
    layouts: BTreeMap<u64, Arc<LayoutVersion>>,
    current: u64,
    change: Option<Change>,
    users: BTreeMap<String, User>,
}

/// The map as format 2 stored it (before `demoted`): read, then converted.
#[derive(Deserialize)]
struct ClusterMapV2 {
    layouts: BTreeMap<u64, Arc<LayoutVersion>>,
    current: u64,
    change: Option<Change>,
    users: BTreeMap<String, User>,
    keys: BTreeMap<String, UserKeys>,
}

/// A map record (`codec::Kind::Map`) of format 3, or of format 2 (no node demoted) or 1 (no
/// user has more keys either).
pub fn decode_map(bytes: &[u8]) -> Result<ClusterMap, crate::codec::CodecError> {
    use crate::codec::{self, Kind};
    match codec::format_in(bytes) {
        1 => {
            let v1: ClusterMapV1 = codec::decode_format(Kind::Map, 1, bytes)?;
            Ok(ClusterMap {
                layouts: v1.layouts,
                current: v1.current,
                change: v1.change,
                users: v1.users,
                keys: BTreeMap::new(),
                demoted: BTreeMap::new(),
            })
        }
        2 => {
            let v2: ClusterMapV2 = codec::decode_format(Kind::Map, 2, bytes)?;
            Ok(ClusterMap {
                layouts: v2.layouts,
                current: v2.current,
                change: v2.change,
                users: v2.users,
                keys: v2.keys,
                demoted: BTreeMap::new(),
            })
        }
        _ => codec::decode(Kind::Map, bytes),
    }
}

/// What the control plane replicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMap {
    /// The kept layout versions, by version: the current one, the one a change in progress
    /// moves from, and the most recent history up to `LAYOUT_VERSIONS_KEPT_MAX`.
    pub layouts: BTreeMap<u64, Arc<LayoutVersion>>,
    /// The current layout version; 0 before the first layout commits.
    pub current: u64,
    /// The last layout change (done or in progress); `None` until a second version commits.
    pub change: Option<Change>,
    /// Users by name.
    pub users: BTreeMap<String, User>,
    /// By user name, the users whose first key is retired or who have more keys (format 2).
    pub keys: BTreeMap<String, UserKeys>,
    /// Nodes whose cores do not serialize conditional writes (format 3): the leader found
    /// one unreachable past any lease it could hold (cluster/DESIGN.md, "Failover of
    /// conditional writes"). Each group's next core on a node not demoted serializes instead;
    /// while a node is `Restoring`, no core of the groups it heads does.
    pub demoted: BTreeMap<u64, Demotion>,
}

/// Where a demoted node stands (`ClusterMap::demoted`); a node not listed serializes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Demotion {
    /// The next core of each of its groups serializes their conditional writes.
    Demoted,
    /// On its way back: none of its groups' conditional writes is served until every node has
    /// applied this (`Command::Reinstate` follows).
    Restoring,
}

/// A change to the map, proposed through Raft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Commit the next layout version (current + 1, valid, tables of that very version).
    ProposeLayout(LayoutVersion),
    /// Move one placement group of the change to `to_version` one phase forward (repeating
    /// the phase it is in is accepted and changes nothing: a mover may resend after a crash).
    UpdateChange {
        to_version: u64,
        pg: u32,
        phase: GroupPhase,
    },
    /// Create a user or replace its keys (its more keys dropped) and policy.
    PutUser(User),
    DeleteUser {
        name: String,
    },
    /// Create a user, refused if one of that name exists (`PutUser` would replace it): two
    /// administrators creating one name at once get one user and one refusal.
    CreateUser(User),
    /// Set (`Some`) or remove (`None`) an existing user's identity policy, keeping its keys:
    /// unlike a read followed by `PutUser`, it cannot bring back a user deleted meanwhile.
    SetUserPolicy {
        name: String,
        policy_json: Option<String>,
    },
    /// Give a user one more key (at most `limits::USER_KEYS_MAX` sign at once).
    AddUserKey {
        name: String,
        key: Key,
    },
    /// Stop a key signing: a user's first key is retired (it stays the id), another removed.
    DeleteUserKey {
        access_key: String,
    },
    /// Demote a node: its cores stop serializing conditional writes (the leader, once any
    /// lease it granted the node must have run out). Repeating it changes nothing.
    Demote {
        node: u64,
    },
    /// A demoted node is back: `Demoted` → `Restoring` (repeating it changes nothing).
    Restore {
        node: u64,
    },
    /// A `Restoring` node serializes again (the leader, once every node applied `Restore`
    /// or holds no lease).
    Reinstate {
        node: u64,
    },
    /// (Last, so that the variants before keep their encoding in stored log entries.) Move
    /// several placement groups of the change to `to_version` to `phase` at once (a
    /// mover's step: one commit, one map for every follower to apply, where one
    /// `UpdateChange` per group made as many). Refused as a whole, the map unchanged, if a
    /// group is not in the change or more than one phase before `phase`; a group at `phase`
    /// or past it already (a mover before this one took it there) stays where it is.
    UpdateChanges {
        to_version: u64,
        pgs: Vec<u32>,
        phase: GroupPhase,
    },
}

/// What an applied command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    LayoutCommitted {
        version: u64,
        groups_moving: u32,
    },
    GroupPhase {
        to_version: u64,
        pg: u32,
        phase: GroupPhase,
        groups_left: u32,
    },
    UserPut {
        name: String,
        replaced: bool,
    },
    UserDeleted {
        name: String,
    },
    UserPolicySet {
        name: String,
        has_policy: bool,
    },
    UserKeyAdded {
        name: String,
    },
    UserKeyDeleted {
        name: String,
    },
    Demoted {
        node: u64,
    },
    Restoring {
        node: u64,
    },
    Reinstated {
        node: u64,
    },
    /// `UpdateChanges`: `moved` of its groups changed phase (the others were there already).
    GroupPhases {
        to_version: u64,
        phase: GroupPhase,
        moved: u32,
        groups_left: u32,
    },
}

/// Why a command left the map unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    #[error(
        "layout version {proposed} is refused: the current version is {current}, so the next \
         must be {next}",
        next = current + 1
    )]
    StaleLayoutVersion { proposed: u64, current: u64 },
    #[error(
        "layout version {proposed} is refused: the change from {from} to {to} is in progress \
         ({groups_left} placement groups not done)"
    )]
    ChangeInProgress {
        proposed: u64,
        from: u64,
        to: u64,
        groups_left: u32,
    },
    #[error("layout version {version} is invalid: {reason}")]
    InvalidLayout { version: u64, reason: String },
    #[error("no change to layout version {to_version} (the last change is {last})")]
    NoSuchChange { to_version: u64, last: String },
    #[error("placement group {pg} does not move in the change to version {to_version}")]
    GroupNotInChange { to_version: u64, pg: u32 },
    #[error(
        "placement group {pg} is {from:?}: it can only go to {allowed}, not {to:?}",
        allowed = match from.next() { Some(p) => format!("{p:?}"), None => "nothing".into() }
    )]
    PhaseOrder {
        pg: u32,
        from: GroupPhase,
        to: GroupPhase,
    },
    #[error("user {name:?} is invalid: {reason}")]
    InvalidUser { name: String, reason: String },
    #[error("the access key of user {name:?} is already user {owner:?}'s")]
    AccessKeyInUse { name: String, owner: String },
    #[error("no user {name:?}")]
    NoSuchUser { name: String },
    #[error("the map holds {max} users already")]
    TooManyUsers { max: usize },
    #[error("a user named {name:?} already exists")]
    UserExists { name: String },
    #[error("user {name:?} has no identity policy")]
    NoPolicy { name: String },
    #[error("user {name:?} already has {max} keys: delete one first")]
    TooManyKeys { name: String, max: usize },
    #[error("no user signs with the access key {access_key:?}")]
    NoSuchKey { access_key: String },
    #[error("node {node} is not in the current layout (node ids start at 1)")]
    NoSuchNode { node: u64 },
    #[error("node {node} is {standing} ({command} needs it {needs})")]
    DemotionOrder {
        node: u64,
        standing: String,
        command: String,
        needs: String,
    },
}

/// The answer to a command: what it did, or why it did nothing.
pub type Outcome = Result<Applied, Refusal>;

impl ClusterMap {
    /// Where routing by this map stands, as one number that only grows from map to map: the
    /// change's new layout version in the high 32 bits and 1 + the sum of its groups' phase
    /// ranks in the low ones (every step of the change raises it, and a new change starts
    /// above the last one's end), or the current version alone before any change (0: no
    /// layout). A node refuses frames a pure gateway stamped with a lower epoch than its
    /// map's (cluster/DESIGN.md, "Across processes").
    pub fn routing_epoch(&self) -> u64 {
        match &self.change {
            Some(c) => {
                let steps: u64 = c.groups.values().map(|g| u64::from(g.phase.rank())).sum();
                (c.to_version << 32) | (1 + steps)
            }
            None => self.current << 32,
        }
    }

    /// The current layout version, if one has committed.
    pub fn current_layout(&self) -> Option<&Arc<LayoutVersion>> {
        self.layouts.get(&self.current)
    }

    /// The user whose first access key is `access_key`.
    pub fn user_by_access_key(&self, access_key: &str) -> Option<&User> {
        self.users.values().find(|u| u.access_key == access_key)
    }

    /// The name of the user an access key belongs to (its first key, retired or not, or one
    /// of its more keys).
    pub fn owner_of_key(&self, access_key: &str) -> Option<&str> {
        if let Some(u) = self.user_by_access_key(access_key) {
            return Some(&u.name);
        }
        self.keys
            .iter()
            .find(|(_, k)| k.more.iter().any(|m| m.access_key == access_key))
            .map(|(name, _)| name.as_str())
    }

    /// The keys a user signs with now: its first (unless retired), then its more keys.
    pub fn signing_keys(&self, name: &str) -> Vec<Key> {
        let Some(u) = self.users.get(name) else {
            return Vec::new();
        };
        let extra = self.keys.get(name);
        let first = Key {
            access_key: u.access_key.clone(),
            secret_key: u.secret_key.clone(),
        };
        (!extra.is_some_and(|k| k.retired))
            .then_some(first)
            .into_iter()
            .chain(extra.iter().flat_map(|k| k.more.iter().cloned()))
            .collect()
    }

    /// Applies one command: the map changes only when the answer is `Ok`.
    pub fn apply(&mut self, command: &Command) -> Outcome {
        match command {
            Command::ProposeLayout(proposed) => self.propose_layout(proposed),
            Command::UpdateChange {
                to_version,
                pg,
                phase,
            } => self.update_change(*to_version, *pg, *phase),
            Command::UpdateChanges {
                to_version,
                pgs,
                phase,
            } => self.update_changes(*to_version, pgs, *phase),
            Command::PutUser(user) => self.put_user(user, false),
            Command::DeleteUser { name } => match self.users.remove(name) {
                Some(_) => {
                    self.keys.remove(name);
                    Ok(Applied::UserDeleted { name: name.clone() })
                }
                None => Err(Refusal::NoSuchUser { name: name.clone() }),
            },
            Command::AddUserKey { name, key } => self.add_user_key(name, key),
            Command::DeleteUserKey { access_key } => self.delete_user_key(access_key),
            Command::CreateUser(user) => {
                if self.users.contains_key(&user.name) {
                    return Err(Refusal::UserExists {
                        name: user.name.clone(),
                    });
                }
                self.put_user(user, false)
            }
            Command::SetUserPolicy { name, policy_json } => {
                self.set_user_policy(name, policy_json.as_deref())
            }
            Command::Demote { node } => self.demote(*node),
            Command::Restore { node } => self.restore(*node),
            Command::Reinstate { node } => self.reinstate(*node),
        }
    }

    /// A node of the current layout, or any node before the map holds a layout (the nodes
    /// route by their layout files then, which the map does not know).
    fn demote(&mut self, node: u64) -> Outcome {
        let known = match self.layouts.get(&self.current) {
            None => node > 0,
            Some(l) => l
                .layout()
                .ok()
                .is_some_and(|l| l.nodes().iter().any(|n| n.id == node)),
        };
        if !known {
            return Err(Refusal::NoSuchNode { node });
        }
        self.demoted.insert(node, Demotion::Demoted);
        Ok(Applied::Demoted { node })
    }

    fn restore(&mut self, node: u64) -> Outcome {
        match self.demoted.get(&node) {
            Some(Demotion::Demoted | Demotion::Restoring) => {
                self.demoted.insert(node, Demotion::Restoring);
                Ok(Applied::Restoring { node })
            }
            None => Err(self.demotion_order(node, "Restore", "demoted")),
        }
    }

    fn reinstate(&mut self, node: u64) -> Outcome {
        match self.demoted.get(&node) {
            Some(Demotion::Restoring) => {
                self.demoted.remove(&node);
                Ok(Applied::Reinstated { node })
            }
            _ => Err(self.demotion_order(node, "Reinstate", "restoring")),
        }
    }

    fn demotion_order(&self, node: u64, command: &str, needs: &str) -> Refusal {
        let standing = match self.demoted.get(&node) {
            None => "not demoted",
            Some(Demotion::Demoted) => "demoted",
            Some(Demotion::Restoring) => "restoring",
        };
        Refusal::DemotionOrder {
            node,
            standing: standing.into(),
            command: command.into(),
            needs: needs.into(),
        }
    }

    fn set_user_policy(&mut self, name: &str, policy_json: Option<&str>) -> Outcome {
        let Some(old) = self.users.get(name) else {
            return Err(Refusal::NoSuchUser { name: name.into() });
        };
        if policy_json.is_none() && old.policy_json.is_none() {
            return Err(Refusal::NoPolicy { name: name.into() });
        }
        let user = User {
            policy_json: policy_json.map(str::to_owned),
            ..old.clone()
        };
        self.put_user(&user, true)?;
        Ok(Applied::UserPolicySet {
            name: name.into(),
            has_policy: policy_json.is_some(),
        })
    }

    fn propose_layout(&mut self, proposed: &LayoutVersion) -> Outcome {
        if proposed.version != self.current + 1 {
            return Err(Refusal::StaleLayoutVersion {
                proposed: proposed.version,
                current: self.current,
            });
        }
        if let Some(change) = self.change.as_ref().filter(|c| !c.is_done()) {
            return Err(Refusal::ChangeInProgress {
                proposed: proposed.version,
                from: change.from_version,
                to: change.to_version,
                groups_left: change.groups_left() as u32,
            });
        }
        let invalid = |reason: String| Refusal::InvalidLayout {
            version: proposed.version,
            reason,
        };
        let new_state = check_layout(proposed).map_err(invalid)?;
        let change = match self.current_layout() {
            None => None,
            Some(old) => {
                let old_state = State::decode(&old.state)
                    .expect("a committed layout's tables decode: they were checked at commit");
                Some(change_between(&old_state, &new_state).map_err(invalid)?)
            }
        };
        let groups_moving = change.as_ref().map_or(0, |c| c.groups.len() as u32);
        self.layouts
            .insert(proposed.version, Arc::new(proposed.clone()));
        self.current = proposed.version;
        if change.is_some() {
            self.change = change;
        }
        self.prune_layouts();
        Ok(Applied::LayoutCommitted {
            version: proposed.version,
            groups_moving,
        })
    }

    /// Drops the oldest versions past the bound, never the current one nor the one a change
    /// in progress moves from.
    fn prune_layouts(&mut self) {
        let needed = self
            .change
            .as_ref()
            .filter(|c| !c.is_done())
            .map(|c| c.from_version);
        while self.layouts.len() > limits::LAYOUT_VERSIONS_KEPT_MAX {
            let oldest = *self.layouts.keys().next().expect("more than the bound");
            if oldest == self.current || Some(oldest) == needed {
                break;
            }
            self.layouts.remove(&oldest);
        }
        assert!(self.layouts.contains_key(&self.current));
    }

    fn update_change(&mut self, to_version: u64, pg: u32, phase: GroupPhase) -> Outcome {
        let last = match &self.change {
            Some(c) => format!("{} to {}", c.from_version, c.to_version),
            None => "none".to_owned(),
        };
        let Some(change) = self.change.as_mut().filter(|c| c.to_version == to_version) else {
            return Err(Refusal::NoSuchChange { to_version, last });
        };
        let Some(group) = change.groups.get_mut(&pg) else {
            return Err(Refusal::GroupNotInChange { to_version, pg });
        };
        if phase != group.phase && group.phase.next() != Some(phase) {
            return Err(Refusal::PhaseOrder {
                pg,
                from: group.phase,
                to: phase,
            });
        }
        group.phase = phase;
        let groups_left = change.groups_left() as u32;
        Ok(Applied::GroupPhase {
            to_version,
            pg,
            phase,
            groups_left,
        })
    }

    fn update_changes(&mut self, to_version: u64, pgs: &[u32], phase: GroupPhase) -> Outcome {
        let last = match &self.change {
            Some(c) => format!("{} to {}", c.from_version, c.to_version),
            None => "none".to_owned(),
        };
        let Some(change) = self.change.as_mut().filter(|c| c.to_version == to_version) else {
            return Err(Refusal::NoSuchChange { to_version, last });
        };
        // Every group checked before any moves: refused as a whole.
        for &pg in pgs {
            let Some(group) = change.groups.get(&pg) else {
                return Err(Refusal::GroupNotInChange { to_version, pg });
            };
            if group.phase < phase && group.phase.next() != Some(phase) {
                return Err(Refusal::PhaseOrder {
                    pg,
                    from: group.phase,
                    to: phase,
                });
            }
        }
        let mut moved = 0;
        for pg in pgs {
            let group = change.groups.get_mut(pg).expect("checked above");
            if group.phase < phase {
                group.phase = phase;
                moved += 1;
            }
        }
        let groups_left = change.groups_left() as u32;
        Ok(Applied::GroupPhases {
            to_version,
            phase,
            moved,
            groups_left,
        })
    }

    fn add_user_key(&mut self, name: &str, key: &Key) -> Outcome {
        let Some(user) = self.users.get(name) else {
            return Err(Refusal::NoSuchUser { name: name.into() });
        };
        let probe = User {
            access_key: key.access_key.clone(),
            secret_key: key.secret_key.clone(),
            ..user.clone()
        };
        check_user(&probe).map_err(|reason| Refusal::InvalidUser {
            name: name.into(),
            reason,
        })?;
        if let Some(owner) = self.owner_of_key(&key.access_key) {
            return Err(Refusal::AccessKeyInUse {
                name: name.into(),
                owner: owner.into(),
            });
        }
        if self.signing_keys(name).len() >= limits::USER_KEYS_MAX {
            return Err(Refusal::TooManyKeys {
                name: name.into(),
                max: limits::USER_KEYS_MAX,
            });
        }
        self.keys
            .entry(name.to_owned())
            .or_default()
            .more
            .push(key.clone());
        Ok(Applied::UserKeyAdded { name: name.into() })
    }

    fn delete_user_key(&mut self, access_key: &str) -> Outcome {
        let not_found = || Refusal::NoSuchKey {
            access_key: access_key.into(),
        };
        let name = self
            .owner_of_key(access_key)
            .ok_or_else(not_found)?
            .to_owned();
        let first = self.users[&name].access_key == access_key;
        let keys = self.keys.entry(name.clone()).or_default();
        if first {
            if keys.retired {
                return Err(not_found());
            }
            keys.retired = true;
        } else {
            keys.more.retain(|k| k.access_key != access_key);
        }
        if *keys == UserKeys::default() {
            self.keys.remove(&name);
        }
        Ok(Applied::UserKeyDeleted { name })
    }

    /// Creates or replaces `user`; a replaced user keeps its more keys only with `keep_keys`
    /// (its policy changed, not its key).
    fn put_user(&mut self, user: &User, keep_keys: bool) -> Outcome {
        check_user(user).map_err(|reason| Refusal::InvalidUser {
            name: user.name.clone(),
            reason,
        })?;
        if let Some(owner) = self
            .owner_of_key(&user.access_key)
            .filter(|owner| *owner != user.name)
        {
            return Err(Refusal::AccessKeyInUse {
                name: user.name.clone(),
                owner: owner.to_owned(),
            });
        }
        let replaced = self.users.contains_key(&user.name);
        if !replaced && self.users.len() >= limits::USERS_MAX {
            return Err(Refusal::TooManyUsers {
                max: limits::USERS_MAX,
            });
        }
        if !keep_keys {
            // A new first key that was one of the user's more keys must not sign twice.
            self.keys.remove(&user.name);
        }
        self.users.insert(user.name.clone(), user.clone());
        Ok(Applied::UserPut {
            name: user.name.clone(),
            replaced,
        })
    }
}

/// The tables of a proposed layout, once the file, the tables and their versions agree.
fn check_layout(proposed: &LayoutVersion) -> Result<State, String> {
    if proposed.layout_toml.len() > limits::LAYOUT_TOML_BYTES_MAX {
        return Err(format!(
            "the layout file is {} bytes, more than {}",
            proposed.layout_toml.len(),
            limits::LAYOUT_TOML_BYTES_MAX
        ));
    }
    if proposed.state.len() > limits::LAYOUT_STATE_BYTES_MAX {
        return Err(format!(
            "the PG tables are {} bytes, more than {}",
            proposed.state.len(),
            limits::LAYOUT_STATE_BYTES_MAX
        ));
    }
    let state = State::decode(&proposed.state).map_err(|e| format!("PG tables: {e}"))?;
    if state.layout_version != proposed.version {
        return Err(format!(
            "the PG tables are those of version {}",
            state.layout_version
        ));
    }
    let layout = Layout::from_toml_str_and_state(&proposed.layout_toml, Some(&state))
        .map_err(|e| e.to_string())?;
    if layout.version() != proposed.version {
        return Err(format!("the layout file says version {}", layout.version()));
    }
    Ok(state)
}

/// Every PG whose row changes between two versions' tables, all `Pending`.
fn change_between(old: &State, new: &State) -> Result<Change, String> {
    let plan = placement::plan_states(old, new).map_err(|e| e.to_string())?;
    let mut groups: BTreeMap<u32, GroupChange> = BTreeMap::new();
    for m in &plan.moves {
        groups
            .entry(m.pg)
            .or_insert(GroupChange {
                phase: GroupPhase::Pending,
                fragment_moves: 0,
            })
            .fragment_moves += 1;
    }
    Ok(Change {
        from_version: old.layout_version,
        to_version: new.layout_version,
        groups,
    })
}

/// The rules `s3api/src/creds.rs` applies to users from files, and a valid identity policy.
fn check_user(u: &User) -> Result<(), String> {
    if u.name.is_empty() || u.name.len() > 64 || !u.name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the name must be 1-64 printable ASCII characters".into());
    }
    if !(16..=128).contains(&u.access_key.len())
        || !u.access_key.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err("the access key must be 16-128 letters or digits".into());
    }
    if !(20..=128).contains(&u.secret_key.len())
        || !u.secret_key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err("the secret key must be 20-128 printable characters".into());
    }
    if let Some(doc) = &u.policy_json {
        if doc.len() > limits::USER_POLICY_BYTES_MAX {
            return Err(format!(
                "the policy is {} bytes, more than {}",
                doc.len(),
                limits::USER_POLICY_BYTES_MAX
            ));
        }
        policy::Policy::parse_identity(doc.as_bytes()).map_err(|e| format!("policy: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(to_version: u64, phases: &[GroupPhase]) -> Change {
        Change {
            from_version: to_version - 1,
            to_version,
            groups: phases
                .iter()
                .enumerate()
                .map(|(pg, phase)| {
                    let g = GroupChange {
                        phase: *phase,
                        fragment_moves: 1,
                    };
                    (pg as u32, g)
                })
                .collect(),
        }
    }

    #[test]
    fn the_routing_epoch_rises_with_every_step_and_every_change() {
        use GroupPhase::*;
        let at = |current, c: Option<Change>| {
            ClusterMap {
                current,
                change: c,
                ..ClusterMap::default()
            }
            .routing_epoch()
        };
        let steps = [
            at(0, None),
            at(1, None),
            at(1, Some(change(2, &[Pending, Pending]))),
            at(1, Some(change(2, &[Moving, Pending]))),
            at(1, Some(change(2, &[Moving, Moving]))),
            at(1, Some(change(2, &[Handoff, Moving]))),
            at(1, Some(change(2, &[CutOver, CutOver]))),
            at(2, Some(change(2, &[Done, Done]))),
            // A removal that moves no group, then the next change.
            at(3, Some(change(3, &[]))),
            at(3, Some(change(4, &[Pending]))),
            at(4, Some(change(4, &[Done]))),
        ];
        assert_eq!(steps[0], 0, "no layout: no epoch");
        for w in steps.windows(2) {
            assert!(w[0] < w[1], "{:#x} then {:#x}", w[0], w[1]);
        }
    }
}
