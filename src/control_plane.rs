//! A clustered node's control plane (control/DESIGN.md): the `[control]` section of its config
//! file, the voter it runs in-process when it is one, and the follower that serves the
//! replicated map's users through the node's gateway.
//!
//! ```toml
//! [control]
//! secret_file = "control.secret"  # the cluster secret (≥ 16 bytes); relative to this file
//! [control.voters]                # every voter: node id = "host:port" of its control port
//! 1 = "10.0.0.1:9300"
//! 2 = "10.0.0.2:9300"
//! 3 = "10.0.0.3:9300"
//! ```
//! A node is a voter when its `node_id` is one of `voters`: it listens on its address there and
//! keeps the Raft log in `DATA/control/raft/`. A node that is not, with `listen = "HOST:PORT"`
//! in `[control]`, runs an empty voter there that bootstraps nothing: `percore control voters`
//! makes it one (it replaces a dead voter, or grows the voters). Every node, voter or not, follows the committed
//! map from the voters (its own first) and serves the map's users beside its users files.
//! The node also writes `DATA/control.toml` (the voters and the secret file), so `percore user
//! … --data DATA` proposes through the control plane instead of editing `DATA/users.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use control::{ClusterMap, ControlNode, NodeId, Secret, Voters};
use s3api::cluster_users::{ClusterUsers, MapUser};
use s3api::live_users::LiveUsers;
use serde::{Deserialize, Serialize};

use crate::layout_follow::LayoutFollower;
use crate::layout_mover::{Applied, MoverTask};

/// The file a node writes in its data directory for `percore user`.
pub const CLIENT_FILE: &str = "control.toml";
/// How long a starting node waits for the map's users before it serves S3 anyway (its
/// voters may all be down: it must still start, with root and its files' users).
const FIRST_MAP_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// Most bytes of a secret file.
const SECRET_FILE_BYTES_MAX: u64 = 4096;

/// The `[control]` section of a config file (and the `control.toml` a node writes).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ControlSection {
    /// The cluster secret's file (relative paths: to the config file's directory).
    pub secret_file: PathBuf,
    /// Node id → the address of its control port.
    pub voters: BTreeMap<String, String>,
    /// This node's control port when it is not one of `voters`: it may be made a voter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

/// A checked `[control]`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub voters: BTreeMap<NodeId, String>,
    /// `listen`: where this node's voter listens when it is not one of `voters`.
    pub listen: Option<String>,
    pub secret: Secret,
    pub secret_file: PathBuf,
}

impl ControlSection {
    /// The voters and the secret, checked; `dir` resolves a relative secret file.
    pub fn resolve(&self, dir: &Path) -> anyhow::Result<Settings> {
        let secret_file = if self.secret_file.is_relative() {
            dir.join(&self.secret_file)
        } else {
            self.secret_file.clone()
        };
        let mut voters = BTreeMap::new();
        for (id, address) in &self.voters {
            let id: NodeId = id
                .parse()
                .with_context(|| format!("[control.voters]: {id:?} is not a node id"))?;
            if address.parse::<std::net::SocketAddr>().is_err() {
                bail!("[control.voters]: node {id}'s address {address:?} is not IP:PORT");
            }
            voters.insert(id, address.clone());
        }
        if ![1, 3, 5].contains(&voters.len()) {
            bail!(
                "[control.voters]: {} voters; a control plane has 1, 3 or 5",
                voters.len()
            );
        }
        if let Some(listen) = &self.listen {
            if listen.parse::<std::net::SocketAddr>().is_err() {
                bail!("[control] listen = {listen:?} is not IP:PORT");
            }
        }
        Ok(Settings {
            voters,
            listen: self.listen.clone(),
            secret: read_secret(&secret_file)?,
            secret_file,
        })
    }
}

/// The cluster secret: the file's bytes without surrounding whitespace.
fn read_secret(path: &Path) -> anyhow::Result<Secret> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(SECRET_FILE_BYTES_MAX + 1).read_to_end(&mut bytes))
        .with_context(|| format!("reading the cluster secret {}", path.display()))?;
    if bytes.len() as u64 > SECRET_FILE_BYTES_MAX {
        bail!(
            "{}: a cluster secret is at most {SECRET_FILE_BYTES_MAX} bytes",
            path.display()
        );
    }
    Secret::new(bytes.trim_ascii()).with_context(|| path.display().to_string())
}

impl Settings {
    /// The voters in the order a process asks them: itself first when it is one.
    pub fn voters_from(&self, me: Option<NodeId>) -> Voters {
        let mut list: Vec<(NodeId, String)> =
            self.voters.iter().map(|(i, a)| (*i, a.clone())).collect();
        if let Some(at) = list.iter().position(|(i, _)| Some(*i) == me) {
            list.rotate_left(at);
        }
        Voters {
            list,
            secret: self.secret.clone(),
        }
    }
}

/// A node's running control plane: its voter (if it is one) and its follower.
pub struct Running {
    voter: Option<ControlNode>,
    follower: tokio::task::JoinHandle<()>,
    /// The newest map whose layouts this process applied (when it follows layouts).
    applied: Option<Applied>,
    voters: Voters,
    /// The layout mover (`start_mover`), on a voter that serves.
    mover: Option<tokio::task::JoinHandle<()>>,
    /// Grants leases and demotes nodes while this voter leads (`lease_keeper`).
    keeper: Option<tokio::task::JoinHandle<()>>,
}

/// Starts the voter (when `node_id` is one) and the follower on `runtime`; `users` gets the
/// map's users (`None`: a storage-only node, which follows nothing), and `layouts` brings the
/// gateway's backend to the map's layouts. Writes `DATA/control.toml` for `percore user`.
pub fn start(
    runtime: &tokio::runtime::Runtime,
    settings: &Settings,
    node_id: Option<NodeId>,
    data: &Path,
    users: Option<&Arc<LiveUsers>>,
    cluster_users: Option<Arc<ClusterUsers>>,
    layouts: Option<LayoutFollower>,
) -> anyhow::Result<Running> {
    write_client_file(data, settings)?;
    let voter = match voter_address(settings, node_id)? {
        None => None,
        Some((id, address)) => {
            let config = control::NodeConfig {
                id,
                listen: address,
                voters: settings.voters.clone(),
                secret: settings.secret.clone(),
                dir: data.join("control"),
                timing: control::Timing::default(),
            };
            match runtime.block_on(ControlNode::start(config)) {
                Ok(node) => Some(node),
                // Its Raft state cannot be trusted: it must not vote. The node serves without
                // it, following the map from the other voters, as if the voter were down.
                Err(control::node::NodeError::Store(
                    e @ control::store::StoreError::Damaged { .. },
                )) => {
                    eprintln!(
                        "percore: WARNING: this node's control-plane voter is NOT started: {e}. \
                         The node serves and follows the map from the other voters."
                    );
                    None
                }
                Err(e) => return Err(e).context("starting the control-plane voter"),
            }
        }
    };
    let voters = settings.voters_from(node_id);
    let mut applied = None;
    let follower = match (users, cluster_users) {
        (Some(users), Some(cluster)) => {
            let users = Arc::clone(users);
            let handle = runtime.handle().clone();
            let (loaded, mut first) = tokio::sync::watch::channel(false);
            let maps = layouts
                .map(|layouts| follow_layouts(runtime.handle(), layouts, settings.secret.clone()));
            applied = maps.as_ref().map(|(_, applied)| applied.clone());
            let maps = maps.map(|(maps, _)| maps);
            let (data, mut written) = (data.to_owned(), settings.clone());
            // The users and keys of the last map taken: a layout change commits a map per
            // mover step, and reloading the users (a read of the users files) for each was
            // work for nothing.
            let mut taken: Option<UsersOfMap> = None;
            let follower = runtime.spawn(control::follow::follow(
                voters.clone(),
                move |index, map| {
                    if let Some(maps) = &maps {
                        newer_map(maps, index, map.clone());
                    }
                    if taken
                        .as_ref()
                        .is_some_and(|(users, keys)| *users == map.users && *keys == map.keys)
                    {
                        return;
                    }
                    taken = Some((map.users.clone(), map.keys.clone()));
                    cluster.set(map_users(&map));
                    let users = Arc::clone(&users);
                    let loaded = loaded.clone();
                    handle.spawn(async move {
                        let outcome = tokio::task::spawn_blocking(move || users.reload()).await;
                        if let Ok(outcome) = outcome {
                            s3api::live_users::log_reload(
                                &format!("replicated map at log index {index}"),
                                &outcome,
                            );
                        }
                        loaded.send_replace(true);
                    });
                },
                move |list| {
                    // A list in the middle of a change (both sets at once) is not kept.
                    if ![1, 3, 5].contains(&list.len()) {
                        return;
                    }
                    written.voters = list.iter().cloned().collect();
                    if let Err(e) = write_client_file(&data, &written) {
                        tracing::warn!("control plane: the voters changed: {e:#}");
                    }
                },
            ));
            // Serving before the map's users are in would refuse their keys for a moment;
            // serving before its layouts are applied would route a restarted node by the layout
            // it kept while a change moves groups (writes to a moving group's old cores alone).
            let mut layouts_applied = applied.clone();
            let waited = runtime.block_on(async {
                tokio::time::timeout(FIRST_MAP_WAIT, async {
                    let _ = first.wait_for(|l| *l).await;
                    if let Some(a) = &mut layouts_applied {
                        let _ = a.wait_for(Option::is_some).await;
                    }
                })
                .await
            });
            if waited.is_err() {
                tracing::warn!(
                    "no voter answered within {}s (or the map's layouts are not applied yet): \
                     serving root and the users files, and routing by the layout this node \
                     has, until the replicated map arrives",
                    FIRST_MAP_WAIT.as_secs()
                );
            }
            follower
        }
        _ => runtime.spawn(async {}),
    };
    Ok(Running {
        voter,
        follower,
        applied,
        voters,
        mover: None,
        keeper: None,
    })
}

/// This node's voter and where it listens: a founding voter at its address in `voters`, a
/// node with `listen` there (it joins when the voters add it), else none.
fn voter_address(
    settings: &Settings,
    node_id: Option<NodeId>,
) -> anyhow::Result<Option<(NodeId, String)>> {
    let Some(id) = node_id else {
        return Ok(None);
    };
    match (settings.voters.get(&id), &settings.listen) {
        (Some(at), Some(listen)) if at != listen => {
            bail!("[control] listen = {listen:?} but [control.voters] lists node {id} at {at:?}")
        }
        (Some(at), _) => Ok(Some((id, at.clone()))),
        (None, Some(listen)) => Ok(Some((id, listen.clone()))),
        (None, None) => Ok(None),
    }
}

/// `percore serve`: [`start`] with `settings`, or without `[control]` [`forget`] an earlier
/// run's `control.toml`.
pub fn start_or_forget(
    runtime: &tokio::runtime::Runtime,
    settings: Option<&Settings>,
    node_id: Option<NodeId>,
    data: &Path,
    users: &Arc<LiveUsers>,
    cluster_users: Option<Arc<ClusterUsers>>,
    layouts: Option<LayoutFollower>,
) -> anyhow::Result<Option<Running>> {
    match settings {
        Some(s) => start(
            runtime,
            s,
            node_id,
            data,
            Some(users),
            cluster_users,
            layouts,
        )
        .map(Some),
        None => forget(data).map(|()| None),
    }
}

impl Running {
    /// Starts the layout mover of this node (`layout_mover`) and its lease keeper
    /// (`lease_keeper`), if it is a voter following the map's layouts: they move a change, and
    /// grant leases and demote nodes, while this voter leads.
    pub fn start_mover(
        &mut self,
        runtime: &tokio::runtime::Handle,
        store: &objects::store::Store,
        rate_bytes_per_s: u64,
    ) {
        let (Some(voter), Some(applied)) = (&self.voter, &self.applied) else {
            return;
        };
        let task = MoverTask {
            leadership: voter.leadership(),
            voters: self.voters.clone(),
            store: store.clone(),
            applied: applied.clone(),
            rate_bytes_per_s,
        };
        self.mover = Some(runtime.spawn(task.run()));
        let keeper = crate::lease_keeper::LeaseTask {
            leadership: voter.leadership(),
            confirmer: voter.confirmer(),
            voters: self.voters.clone(),
            backend: store.backend().clone(),
            catalog: Arc::new(objects::move_catalog::ObjectCatalog::new(store)),
            applied: applied.clone(),
        };
        self.keeper = Some(runtime.spawn(keeper.run()));
    }

    /// Stops following and shuts the voter down (its port closed, its store flushed).
    pub fn stop(self, runtime: &tokio::runtime::Runtime) {
        if let Some(mover) = self.mover {
            mover.abort();
        }
        if let Some(keeper) = self.keeper {
            keeper.abort();
        }
        self.follower.abort();
        if let Some(voter) = self.voter {
            runtime.block_on(voter.stop());
        }
    }
}

/// Where the follower hands each newer map (and its log index) to the layouts' task: from
/// the voters, and from a node that refused a frame of this process (`MapCatchUp`).
type MapSender = Arc<tokio::sync::watch::Sender<Option<(u64, Arc<ClusterMap>)>>>;

/// A map's users and their keys, as the map holds them.
type UsersOfMap = (
    std::collections::BTreeMap<String, control::map::User>,
    std::collections::BTreeMap<String, control::map::UserKeys>,
);

/// Hands `map` at `index` to the layouts' task if it is newer than the last one handed: the
/// voters and a refusing node may hand the same index, or an older one, in any order.
fn newer_map(maps: &MapSender, index: u64, map: Arc<ClusterMap>) {
    maps.send_if_modified(|last| {
        if last.as_ref().is_some_and(|(at, _)| *at >= index) {
            return false;
        }
        *last = Some((index, map));
        true
    });
}

/// A process's `CatchUp`: a node's sealed map is opened with the cluster secret and handed to
/// the layouts' task like one from the voters.
struct MapCatchUp {
    secret: Secret,
    maps: MapSender,
    applied: Applied,
}

impl cluster::backend::CatchUp for MapCatchUp {
    fn applied(&self) -> u64 {
        self.applied
            .borrow()
            .as_ref()
            .map_or(0, |(index, _)| *index)
    }

    fn offer(&self, sealed: &[u8]) -> Result<u64, String> {
        let (index, map) = control::follow::open_map(&self.secret, sealed)?;
        tracing::info!(
            index,
            "control plane: a node refused a frame routed by an older layout; its map is taken"
        );
        newer_map(&self.maps, index, Arc::new(map));
        Ok(index)
    }
}

/// `map` at `index` sealed for the node's gate (`ControlMap`), if it fits a core's frame.
fn sealed_for_gate(secret: &Secret, index: u64, map: &ClusterMap) -> Option<bytes::Bytes> {
    let sealed = match control::follow::seal_map(secret, index, map) {
        Ok(sealed) => sealed,
        Err(e) => {
            tracing::warn!(
                index,
                "control plane: the map is not sealed for refused processes: {e}"
            );
            return None;
        }
    };
    // The answer's length prefix is in the frame's body too.
    if sealed.len() + 4 > proto::limits::FRAME_BODY_BYTES_MAX as usize {
        tracing::warn!(
            index,
            bytes = sealed.len(),
            "control plane: the map is too large for a core's answer: a process this node \
             refuses as routed by an old layout waits for the voters' map"
        );
        return None;
    }
    Some(bytes::Bytes::from(sealed))
}

/// Applies the newest map's layouts, one map at a time, in a task of its own (a layout step
/// may wait for operations in flight; users must not wait for it). A map that cannot be
/// applied is logged and tried again (`apply_each`). On a node, each map applied is sealed
/// with `secret` for its cores' gate; in every process, a frame refused by a node takes that
/// node's map (`MapCatchUp`).
///
/// The sender of the maps to apply, and the newest map applied.
fn follow_layouts(
    runtime: &tokio::runtime::Handle,
    layouts: LayoutFollower,
    secret: Secret,
) -> (MapSender, Applied) {
    layouts.follow_the_map();
    let (maps, newest) = tokio::sync::watch::channel(None::<(u64, Arc<ClusterMap>)>);
    let maps = Arc::new(maps);
    let (done, applied) = tokio::sync::watch::channel(None);
    layouts.catch_up_with(Arc::new(MapCatchUp {
        secret: secret.clone(),
        maps: maps.clone(),
        applied: applied.clone(),
    }));
    let layouts = Arc::new(layouts);
    let done = Arc::new(done);
    runtime.spawn(apply_each(newest, MAP_RETRY_FIRST, move |index, map| {
        let (layouts, secret, done) = (layouts.clone(), secret.clone(), done.clone());
        async move {
            layouts.apply(&map).await?;
            layouts.fence_epoch(&map).await?;
            let sealed = layouts
                .is_node()
                .then(|| sealed_for_gate(&secret, index, &map))
                .flatten();
            layouts.applied(index, sealed);
            record_layout(&map);
            done.send_replace(Some((index, map)));
            Ok(())
        }
    }));
    (maps, applied)
}

/// The wait before a map that could not be applied is tried again; it doubles after each
/// failure, up to `MAP_RETRY_MAX`.
const MAP_RETRY_FIRST: std::time::Duration = std::time::Duration::from_secs(1);
const MAP_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `step` on the newest map handed, each time a newer one is. A map `step` fails on is
/// tried again after `first`, then after twice as long each time (up to `MAP_RETRY_MAX`),
/// until it is applied or a newer one is handed (tried at once). Without the retry, a node
/// that failed a step (a full disk while it kept the layout, operations still in flight past
/// the fence's bound) routed by the layout before until the control plane's next map, which
/// may never come: it stayed behind a finished change (the others refuse its frames).
/// Ends when the maps' sender is dropped.
async fn apply_each<F, Fut>(
    mut newest: tokio::sync::watch::Receiver<Option<(u64, Arc<ClusterMap>)>>,
    first: std::time::Duration,
    mut step: F,
) where
    F: FnMut(u64, Arc<ClusterMap>) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut retry_in: Option<std::time::Duration> = None;
    loop {
        let handed = match retry_in {
            None => newest.changed().await.is_ok(),
            Some(after) => tokio::select! {
                changed = newest.changed() => changed.is_ok(),
                () = tokio::time::sleep(after) => true,
            },
        };
        if !handed {
            return;
        }
        let Some((index, map)) = newest.borrow_and_update().clone() else {
            continue;
        };
        match step(index, map).await {
            Ok(()) => retry_in = None,
            Err(e) => {
                let after = retry_in.map_or(first, |was| (was * 2).min(MAP_RETRY_MAX));
                tracing::warn!(
                    index,
                    retry_in = ?after,
                    "control plane: the map's layouts are not applied (tried again, or with a \
                     newer map): {e}"
                );
                retry_in = Some(after);
            }
        }
    }
}

/// The map's layout and its change's groups by phase, in `/-/metrics`.
fn record_layout(map: &ClusterMap) {
    use control::map::GroupPhase;
    let count = |p: GroupPhase| map.change.as_ref().map_or(0, |c| c.groups_in(p) as u64);
    let routed = match &map.change {
        Some(c) if !c.is_done() => c.from_version,
        _ => map.current,
    };
    s3api::metrics::global().record_layout(
        routed,
        &[
            ("pending", count(GroupPhase::Pending)),
            ("moving", count(GroupPhase::Moving)),
            ("handoff", count(GroupPhase::Handoff)),
            ("cut_over", count(GroupPhase::CutOver)),
            ("done", count(GroupPhase::Done)),
        ],
    );
}

fn map_users(map: &ClusterMap) -> Vec<MapUser> {
    map.users
        .values()
        .map(|u| {
            let keys = map.keys.get(&u.name);
            MapUser {
                name: u.name.clone(),
                access_key: u.access_key.clone(),
                secret_key: u.secret_key.clone(),
                retired: keys.is_some_and(|k| k.retired),
                more: keys.map_or_else(Vec::new, |k| {
                    k.more
                        .iter()
                        .map(|m| (m.access_key.clone(), m.secret_key.clone()))
                        .collect()
                }),
                policy_json: u.policy_json.clone(),
            }
        })
        .collect()
}

/// `DATA/control.toml`: the voters and the secret file, for `percore user --data DATA`.
fn write_client_file(data: &Path, settings: &Settings) -> anyhow::Result<()> {
    let section = ControlSection {
        secret_file: settings
            .secret_file
            .canonicalize()
            .with_context(|| settings.secret_file.display().to_string())?,
        voters: settings
            .voters
            .iter()
            .map(|(i, a)| (i.to_string(), a.clone()))
            .collect(),
        listen: None,
    };
    let text = format!(
        "# Written by percore at each start and when the voters change: the control plane \
         this node follows. `percore user … --data` proposes there.\n{}",
        toml::to_string(&section).context("control.toml")?
    );
    std::fs::create_dir_all(data).with_context(|| data.display().to_string())?;
    let path = data.join(CLIENT_FILE);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// A node started without `[control]` drops a `control.toml` of an earlier run, so `percore
/// user --data` edits its users file again.
pub fn forget(data: &Path) -> anyhow::Result<()> {
    let path = data.join(CLIENT_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

/// The control plane a data directory's node follows (its `control.toml`), if any.
pub fn client_of(data: &Path) -> anyhow::Result<Option<Settings>> {
    let path = data.join(CLIENT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let section: ControlSection =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(Some(section.resolve(data)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_is_checked() {
        let dir = std::env::temp_dir().join(format!("percore-ctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("s"), "0123456789abcdef0123\n").unwrap();
        let section = |voters: &[(&str, &str)]| ControlSection {
            secret_file: "s".into(),
            voters: voters
                .iter()
                .map(|(i, a)| ((*i).to_owned(), (*a).to_owned()))
                .collect(),
            listen: None,
        };
        let ok = section(&[
            ("1", "127.0.0.1:1"),
            ("2", "127.0.0.1:2"),
            ("3", "127.0.0.1:3"),
        ])
        .resolve(&dir)
        .unwrap();
        let order: Vec<NodeId> = ok.voters_from(Some(2)).list.iter().map(|v| v.0).collect();
        assert_eq!(order, [2, 3, 1]);
        let err = |s: ControlSection| format!("{:#}", s.resolve(&dir).unwrap_err());
        assert!(err(section(&[("1", "127.0.0.1:1"), ("2", "127.0.0.1:2")])).contains("1, 3 or 5"));
        assert!(err(section(&[("x", "127.0.0.1:1")])).contains("node id"));
        assert!(err(section(&[("1", "nowhere")])).contains("IP:PORT"));
        std::fs::write(dir.join("s"), "short").unwrap();
        assert!(err(section(&[("1", "127.0.0.1:1")])).contains("16"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_map_that_fails_is_tried_again_until_applied_or_a_newer_one_is_handed() {
        use std::time::Duration;
        use tokio::time::Instant;
        let (maps, newest) = tokio::sync::watch::channel(None);
        let tries = Arc::new(std::sync::Mutex::new(Vec::<(u64, Instant)>::new()));
        let task = tokio::spawn(apply_each(newest, Duration::from_secs(1), {
            let tries = tries.clone();
            move |index, _map| {
                let tries = tries.clone();
                async move {
                    let mut tries = tries.lock().unwrap();
                    tries.push((index, Instant::now()));
                    let n = tries.iter().filter(|(i, _)| *i == index).count();
                    match index {
                        1 if n <= 3 => Err("no space left on device".to_owned()),
                        2 => Err("operations still in flight".to_owned()),
                        _ => Ok(()),
                    }
                }
            }
        }));
        let hand = |index: u64| maps.send_replace(Some((index, Arc::new(ClusterMap::default()))));
        // Seconds after `from` at which the map at `index` was tried since.
        let seconds_tried = |index: u64, from: Instant| -> Vec<u64> {
            let tries = tries.lock().unwrap();
            tries
                .iter()
                .filter(|(i, at)| *i == index && *at >= from)
                .map(|(_, at)| (*at - from).as_secs())
                .collect()
        };

        // Fails three times: tried again 1, 2 and 4 s later, then applied and left alone.
        let start = Instant::now();
        hand(1);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(seconds_tried(1, start), [0, 1, 3, 7]);

        // Fails every time: the wait doubles up to 30 s and stays there.
        let start = Instant::now();
        hand(2);
        tokio::time::sleep(Duration::from_secs(200)).await;
        assert_eq!(
            seconds_tried(2, start),
            [0, 1, 3, 7, 15, 31, 61, 91, 121, 151, 181]
        );

        // A newer map handed during a wait is tried at once, and applied.
        let start = Instant::now();
        hand(3);
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert_eq!(seconds_tried(3, start), [0]);
        assert_eq!(seconds_tried(2, start), Vec::<u64>::new());

        drop(maps);
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("ends when the sender is dropped")
            .unwrap();
    }
}
