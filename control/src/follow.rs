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
pub async fn follow(voters: Voters, mut on_map: impl FnMut(u64, Arc<ClusterMap>) + Send) {
    assert!(
        !voters.list.is_empty(),
        "a follower needs at least one voter"
    );
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

/// The committed map as of now (the leader confirms it leads), through any voter.
pub async fn read_any(voters: &Voters) -> Result<ClusterMap, ProposeError> {
    any_voter(voters, |peer| {
        Box::pin(async move { peer.read_map(0).await })
    })
    .await
}
