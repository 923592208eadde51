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
/// the data movement of issue 14 item 2 drives it (copy, verify, cut over, retire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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
}

impl GroupPhase {
    /// The phase after this one, if any.
    pub fn next(self) -> Option<GroupPhase> {
        match self {
            GroupPhase::Pending => Some(GroupPhase::Moving),
            GroupPhase::Moving => Some(GroupPhase::CutOver),
            GroupPhase::CutOver => Some(GroupPhase::Done),
            GroupPhase::Done => None,
        }
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
    /// Create a user or replace its keys and policy.
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
}

/// The answer to a command: what it did, or why it did nothing.
pub type Outcome = Result<Applied, Refusal>;

impl ClusterMap {
    /// The current layout version, if one has committed.
    pub fn current_layout(&self) -> Option<&Arc<LayoutVersion>> {
        self.layouts.get(&self.current)
    }

    /// The user whose access key is `access_key`.
    pub fn user_by_access_key(&self, access_key: &str) -> Option<&User> {
        self.users.values().find(|u| u.access_key == access_key)
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
            Command::PutUser(user) => self.put_user(user),
            Command::DeleteUser { name } => match self.users.remove(name) {
                Some(_) => Ok(Applied::UserDeleted { name: name.clone() }),
                None => Err(Refusal::NoSuchUser { name: name.clone() }),
            },
            Command::CreateUser(user) => {
                if self.users.contains_key(&user.name) {
                    return Err(Refusal::UserExists {
                        name: user.name.clone(),
                    });
                }
                self.put_user(user)
            }
            Command::SetUserPolicy { name, policy_json } => {
                self.set_user_policy(name, policy_json.as_deref())
            }
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
        self.put_user(&user)?;
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

    fn put_user(&mut self, user: &User) -> Outcome {
        check_user(user).map_err(|reason| Refusal::InvalidUser {
            name: user.name.clone(),
            reason,
        })?;
        if let Some(owner) = self
            .users
            .values()
            .find(|u| u.access_key == user.access_key && u.name != user.name)
        {
            return Err(Refusal::AccessKeyInUse {
                name: user.name.clone(),
                owner: owner.name.clone(),
            });
        }
        let replaced = self.users.contains_key(&user.name);
        if !replaced && self.users.len() >= limits::USERS_MAX {
            return Err(Refusal::TooManyUsers {
                max: limits::USERS_MAX,
            });
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

/// The rules `gateway/src/creds.rs` applies to users from files, and a valid identity policy.
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
