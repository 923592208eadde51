//! The control plane's clients in every process, voter or not: following the committed map
//! ([`follow`]) and an administrator's proposals and reads ([`propose_any`], [`read_any`]).
//!
//! Both speak the voters' authenticated transport (`network`), so nothing here opens a port
//! or answers anyone: a process that holds the cluster secret asks a voter. Following is a
//! long poll: "the map after log index N", answered when the voter has applied more, or after
//! `limits::WATCH_WAIT` with what it has. A follower never goes back: a voter behind the index
//! it already has holds the answer until it catches up, and an older map is not delivered.
//! A voter that fails (down, restarting), answers with an older map than the follower has, or
//! knows no leader (cut off from the majority, or an election) is left for the next one after
//! a pause that doubles from `FOLLOW_BACKOFF_MIN` up to `FOLLOW_BACKOFF_MAX`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::map::{ClusterMap, Command, Outcome};
use crate::network::{Peer, ProposeError, Secret};
use crate::{limits, NodeId};

/// The voters a client may ask, in the order it tries them, and the cluster secret.
#[derive(Debug, Clone)]
pub struct Voters {
    pub list: Vec<(NodeId, String)>,
    pub secret: Secret,
}

impl Voters {
    fn peers(&self) -> Vec<Peer> {
        self.list
            .iter()
            .map(|(id, address)| Peer::new(*id, address.clone(), self.secret.clone()))
            .collect()
    }
}

/// Follows the committed map from the voters until the task is dropped: `on_map` gets every
/// newer map (and the log index it is at) in order, the first one as soon as a voter answers.
/// The voters asked follow the membership the answers carry: a voter added since is asked
/// too, one taken out no more, and `on_voters` gets each new list.
pub async fn follow(
    voters: Voters,
    mut on_map: impl FnMut(u64, Arc<ClusterMap>) + Send,
    mut on_voters: impl FnMut(&[(NodeId, String)]) + Send,
) {
    assert!(
        !voters.list.is_empty(),
        "a follower needs at least one voter"
    );
    let mut voters = voters;
    let mut peers = voters.peers();
    let mut at = 0usize;
    let mut seen: Option<u64> = None;
    let mut backoff = limits::FOLLOW_BACKOFF_MIN;
    loop {
        let peer = &mut peers[at];
        let why = match peer.watch_map(seen.unwrap_or(0)).await {
            Ok(w) => {
                let behind = seen.is_some_and(|s| w.index < s);
                if seen.is_none_or(|s| w.index > s) {
                    seen = Some(w.index);
                    on_map(w.index, Arc::new(w.map));
                }
                if !behind && w.leader.is_some() {
                    if let Some(list) = relisted(&voters.list, &w.voters) {
                        let asked = voters.list[at].0;
                        tracing::info!(
                            voters = ?list.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
                            "control plane: the voters changed"
                        );
                        voters.list = list;
                        peers = voters.peers();
                        at = voters
                            .list
                            .iter()
                            .position(|(id, _)| *id == asked)
                            .unwrap_or(0);
                        on_voters(&voters.list);
                    }
                }
                if behind {
                    format!("it is at log index {}, behind this follower", w.index)
                } else if w.leader.is_none() {
                    "it knows no leader".to_owned()
                } else {
                    backoff = limits::FOLLOW_BACKOFF_MIN;
                    continue;
                }
            }
            Err(e) => e.to_string(),
        };
        let (id, _) = &voters.list[at];
        at = (at + 1) % peers.len();
        let (next, _) = &voters.list[at];
        tracing::info!(
            voter = id,
            next,
            "control plane: following the map from another voter: {why}"
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(limits::FOLLOW_BACKOFF_MAX);
    }
}

/// The list to ask once a voter answered with membership `members`: the voters still in it,
/// in the order asked until now, then the new ones; `None` when nothing changed (or the
/// answer names no voter, as an older voter's does).
fn relisted(
    list: &[(NodeId, String)],
    members: &BTreeMap<NodeId, String>,
) -> Option<Vec<(NodeId, String)>> {
    if members.is_empty() {
        return None;
    }
    let mut next: Vec<(NodeId, String)> = list
        .iter()
        .filter(|(id, _)| members.contains_key(id))
        .map(|(id, _)| (*id, members[id].clone()))
        .collect();
    for (id, address) in members {
        if !next.iter().any(|(i, _)| i == id) {
            next.push((*id, address.clone()));
        }
    }
    (next != list).then_some(next)
}

/// Whether asking another voter (or the same one later) may succeed where `e` failed: the
/// voter or the leader it forwarded to was unreachable, or no leader was known yet.
fn worth_retrying(e: &ProposeError) -> bool {
    matches!(
        e,
        ProposeError::NoLeader
            | ProposeError::NotLeader { .. }
            | ProposeError::LeaderUnreachable { .. }
            | ProposeError::Stopped { .. }
            | ProposeError::NoQuorum { .. }
    )
}

type BoxAnswer<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, ProposeError>> + Send + 'a>>;

/// Tries `call` on each voter in turn (each forwards to the leader it knows) until one
/// answers, for up to `limits::ADMIN_RETRY_FOR`; the last error otherwise.
async fn any_voter<T, F>(voters: &Voters, mut call: F) -> Result<T, ProposeError>
where
    F: for<'a> FnMut(&'a mut Peer) -> BoxAnswer<'a, T>,
{
    let deadline = Instant::now() + limits::ADMIN_RETRY_FOR;
    let mut peers = voters.peers();
    let mut pause = limits::FOLLOW_BACKOFF_MIN;
    loop {
        let mut last = ProposeError::NoLeader;
        for peer in &mut peers {
            match call(peer).await {
                Err(e) if worth_retrying(&e) => last = e,
                answer => return answer,
            }
        }
        if Instant::now() + pause > deadline {
            return Err(last);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Commits `command` through any voter (a follower forwards it to the leader). After an
/// unreachable leader the command may have committed all the same: a caller that retries
/// reads the map to tell.
pub async fn propose_any(voters: &Voters, command: Command) -> Result<Outcome, ProposeError> {
    any_voter(voters, |peer| {
        let command = command.clone();
        Box::pin(async move { peer.propose(command, 0).await })
    })
    .await
}

/// Makes `voters` the control plane's voters through any voter (`ControlNode::change_voters`).
pub async fn change_voters_any(
    voters: &Voters,
    wanted: BTreeMap<NodeId, Option<String>>,
) -> Result<BTreeMap<NodeId, String>, ProposeError> {
    any_voter(voters, |peer| {
        let wanted = wanted.clone();
        Box::pin(async move { peer.change_voters(wanted, 0).await })
    })
    .await
}

/// The voters of the membership, as the first voter that answers knows them.
pub async fn voters_any(voters: &Voters) -> Result<BTreeMap<NodeId, String>, ProposeError> {
    any_voter(voters, |peer| {
        Box::pin(async move { peer.watch_map(0).await.map(|w| w.voters) })
    })
    .await
}

/// The committed map as of now (the leader confirms it leads), through any voter.
pub async fn read_any(voters: &Voters) -> Result<ClusterMap, ProposeError> {
    any_voter(voters, |peer| {
        Box::pin(async move { peer.read_map(0).await })
    })
    .await
}

/// What a sealed map's MAC covers first, so that no other MAC made with the cluster secret
/// (the transport's) passes for one.
const SEALED_MAP_DOMAIN: &[u8] = b"percore sealed control map 1";

/// `map` at log `index`, for a node to hand to a process it refused as routed by an old
/// layout (`proto::Request::ControlMap`): its layouts, change and demotions, without users or
/// keys (a core's port is not encrypted, and a process takes its users from the voters
/// alone), MACed with the cluster secret: the MAC, the index, then the map record.
pub fn seal_map(
    secret: &Secret,
    index: u64,
    map: &ClusterMap,
) -> Result<Vec<u8>, crate::codec::CodecError> {
    let layouts_only = ClusterMap {
        layouts: map.layouts.clone(),
        current: map.current,
        change: map.change.clone(),
        users: BTreeMap::new(),
        keys: BTreeMap::new(),
        demoted: map.demoted.clone(),
    };
    let record = crate::codec::encode(crate::codec::Kind::Map, &layouts_only)?;
    let index = index.to_le_bytes();
    let mac = secret.mac(&[SEALED_MAP_DOMAIN, &index, &record]);
    Ok([&mac[..], &index, &record].concat())
}

/// The log index and map of a sealed map ([`seal_map`]), if it was sealed with `secret`.
pub fn open_map(secret: &Secret, sealed: &[u8]) -> Result<(u64, ClusterMap), String> {
    use crate::network::MAC_BYTES;
    if sealed.len() < MAC_BYTES + 8 {
        return Err(format!(
            "a sealed map of {} bytes is too short",
            sealed.len()
        ));
    }
    let (mac, rest) = sealed.split_at(MAC_BYTES);
    let (index, record) = rest.split_at(8);
    if !secret.verify(&[SEALED_MAP_DOMAIN, index, record], mac) {
        return Err("the map is not sealed with this cluster's secret".into());
    }
    let index = u64::from_le_bytes(index.try_into().expect("8 bytes"));
    let map = crate::map::decode_map(record).map_err(|e| e.to_string())?;
    Ok((index, map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_map_opens_with_its_secret_alone_and_carries_no_users() {
        let secret = Secret::new(b"sixteen bytes at least").unwrap();
        let mut map = ClusterMap {
            current: 3,
            ..ClusterMap::default()
        };
        let outcome = map.apply(&Command::CreateUser(crate::map::User {
            name: "ann".into(),
            access_key: "AKIAANN0000000000000".into(),
            secret_key: "a-secret-key-that-must-not-leave".into(),
            policy_json: None,
        }));
        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(map.users.len(), 1);
        map.demoted.insert(2, crate::map::Demotion::Demoted);
        let sealed = seal_map(&secret, 41, &map).unwrap();
        let (index, opened) = open_map(&secret, &sealed).unwrap();
        assert_eq!(index, 41);
        assert_eq!(opened.current, 3);
        assert_eq!(opened.demoted, map.demoted);
        assert!(opened.users.is_empty() && opened.keys.is_empty());
        assert!(
            !sealed
                .windows(b"a-secret-key".len())
                .any(|w| w == b"a-secret-key"),
            "a user's secret key is not in the sealed map"
        );
        let other = Secret::new(b"another secret of sixteen").unwrap();
        assert!(open_map(&other, &sealed).is_err());
        for at in [0, 32, 40, sealed.len() - 1] {
            let mut flipped = sealed.clone();
            flipped[at] ^= 1;
            assert!(open_map(&secret, &flipped).is_err(), "byte {at} flipped");
        }
        assert!(open_map(&secret, &sealed[..39]).is_err());
    }

    fn list(ids: &[(u64, &str)]) -> Vec<(NodeId, String)> {
        ids.iter().map(|(i, a)| (*i, (*a).to_owned())).collect()
    }

    #[test]
    fn the_list_keeps_its_order_drops_old_voters_and_appends_new_ones() {
        let asked = list(&[(2, "b"), (1, "a"), (3, "c")]);
        let same: BTreeMap<_, _> = [(1, "a".into()), (2, "b".into()), (3, "c".into())].into();
        assert_eq!(relisted(&asked, &same), None);
        assert_eq!(relisted(&asked, &BTreeMap::new()), None);
        let replaced: BTreeMap<_, _> = [(1, "a".into()), (2, "b".into()), (5, "e".into())].into();
        assert_eq!(
            relisted(&asked, &replaced),
            Some(list(&[(2, "b"), (1, "a"), (5, "e")]))
        );
        let moved: BTreeMap<_, _> = [(1, "a2".into()), (2, "b".into()), (3, "c".into())].into();
        assert_eq!(
            relisted(&asked, &moved),
            Some(list(&[(2, "b"), (1, "a2"), (3, "c")]))
        );
    }
}
