//! Real voters on 127.0.0.1 with real directories: elections, commits, a stopped leader,
//! restarts from disk, catching up by log and by snapshot, forwarding, the shared secret.
//! Every wait is bounded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use control::network::Peer;
use control::{
    Applied, Command, ControlNode, LayoutVersion, NodeConfig, ProposeError, Refusal, Secret,
    Timing, User,
};
use placement::Layout;

const SECRET: &[u8] = b"control-plane-test-secret";

fn free_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").to_string()
}

fn fast() -> Timing {
    Timing {
        heartbeat: Duration::from_millis(50),
        election_min: Duration::from_millis(300),
        election_max: Duration::from_millis(600),
        propose_timeout: Duration::from_secs(2),
        ..Timing::default()
    }
}

fn config(id: u64, voters: &BTreeMap<u64, String>, root: &Path, timing: &Timing) -> NodeConfig {
    NodeConfig {
        id,
        listen: voters[&id].clone(),
        voters: voters.clone(),
        secret: Secret::new(SECRET).unwrap(),
        dir: root.join(format!("node-{id}")),
        timing: timing.clone(),
    }
}

async fn start_all(
    n: u64,
    root: &Path,
    timing: &Timing,
) -> (BTreeMap<u64, String>, BTreeMap<u64, ControlNode>) {
    let voters: BTreeMap<u64, String> = (1..=n).map(|id| (id, free_address())).collect();
    let mut nodes = BTreeMap::new();
    for id in 1..=n {
        let node = ControlNode::start(config(id, &voters, root, timing))
            .await
            .expect("start");
        nodes.insert(id, node);
    }
    (voters, nodes)
}

/// Polls `f` every 50 ms for at most 20 s.
async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within 20 s: {what}");
}

/// The leader every running voter agrees on.
async fn agreed_leader(nodes: &BTreeMap<u64, ControlNode>) -> u64 {
    agreed_leader_but(nodes, None).await
}

/// The leader every running voter agrees on, other than `old`.
async fn agreed_leader_but(nodes: &BTreeMap<u64, ControlNode>, old: Option<u64>) -> u64 {
    wait_until("the voters agree on a leader", || {
        let leaders: Vec<_> = nodes.values().map(ControlNode::leader).collect();
        leaders[0].is_some() && leaders[0] != old && leaders.iter().all(|l| *l == leaders[0])
    })
    .await;
    nodes.values().next().unwrap().leader().unwrap()
}

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

fn layout(version: u64, nodes: u64, previous: Option<&LayoutVersion>) -> LayoutVersion {
    let text = layout_toml(version, nodes);
    let state = previous.map(|p| placement::State::decode(&p.state).unwrap());
    LayoutVersion::of(
        &text,
        &Layout::from_toml_str_and_state(&text, state.as_ref()).unwrap(),
    )
}

fn user(i: u32) -> User {
    User {
        name: format!("user-{i}"),
        access_key: format!("AKIATEST{i:012}"),
        secret_key: format!("secret-{i:020}"),
        policy_json: None,
    }
}

async fn map_current(node: &ControlNode, version: u64) {
    let mut map = node.map();
    wait_until(
        &format!("node {} applies layout {version}", node.id()),
        || map.borrow_and_update().current == version,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_voter_commits_refuses_a_stale_version_and_restarts_from_its_directory() {
    let root = tempfile::tempdir().unwrap();
    let (voters, mut nodes) = start_all(1, root.path(), &fast()).await;
    assert_eq!(agreed_leader(&nodes).await, 1);
    let node = &nodes[&1];
    let v1 = layout(1, 3, None);
    assert_eq!(
        node.propose(Command::ProposeLayout(v1.clone())).await,
        Ok(Ok(Applied::LayoutCommitted {
            version: 1,
            groups_moving: 0
        }))
    );
    let refused = node
        .propose(Command::ProposeLayout(v1.clone()))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        refused,
        Refusal::StaleLayoutVersion {
            proposed: 1,
            current: 1
        }
    );
    node.propose(Command::PutUser(user(1)))
        .await
        .unwrap()
        .unwrap();
    let before = node.map().borrow().clone();

    nodes.remove(&1).unwrap().stop().await;
    let node = ControlNode::start(config(1, &voters, root.path(), &fast()))
        .await
        .unwrap();
    assert_eq!(
        *node.map().borrow().clone(),
        *before,
        "the committed map is back at start"
    );
    let mut nodes = BTreeMap::from([(1, node)]);
    agreed_leader(&nodes).await;
    let v2 = layout(2, 4, Some(&v1));
    assert!(matches!(
        nodes[&1].propose(Command::ProposeLayout(v2)).await,
        Ok(Ok(Applied::LayoutCommitted { version: 2, .. }))
    ));
    nodes.remove(&1).unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_survive_their_leader_and_it_catches_up_from_its_directory() {
    let root = tempfile::tempdir().unwrap();
    let (voters, mut nodes) = start_all(3, root.path(), &fast()).await;
    let leader = agreed_leader(&nodes).await;
    let follower = *nodes.keys().find(|id| **id != leader).unwrap();
    for node in nodes.values() {
        assert_eq!(node.voters(), [1, 2, 3].into_iter().collect());
    }

    // A follower forwards to the leader; asked not to, it names it.
    let v1 = layout(1, 3, None);
    assert!(matches!(
        nodes[&follower]
            .propose(Command::ProposeLayout(v1.clone()))
            .await,
        Ok(Ok(Applied::LayoutCommitted { version: 1, .. }))
    ));
    match nodes[&follower]
        .propose_here(Command::PutUser(user(1)))
        .await
    {
        Err(ProposeError::NotLeader {
            leader: named,
            address,
        }) => {
            assert_eq!(named, leader);
            assert_eq!(address, voters[&leader]);
        }
        other => panic!("expected 'the leader is {leader}', got {other:?}"),
    }
    for node in nodes.values() {
        // A read through any voter is confirmed by the leader and holds the commit.
        assert_eq!(node.read_map().await.unwrap().current, 1);
        map_current(node, 1).await;
    }

    // The leader stops: its task ends and its port closes.
    nodes.remove(&leader).unwrap().stop().await;
    assert!(
        std::net::TcpStream::connect(&voters[&leader]).is_err(),
        "the old leader's port is closed"
    );
    let new_leader = agreed_leader_but(&nodes, Some(leader)).await;
    assert!(nodes.contains_key(&new_leader));
    let v2 = layout(2, 4, Some(&v1));
    let any = nodes.values().next().unwrap();
    assert!(matches!(
        any.propose(Command::ProposeLayout(v2.clone())).await,
        Ok(Ok(Applied::LayoutCommitted { version: 2, .. }))
    ));
    any.propose(Command::PutUser(user(2)))
        .await
        .unwrap()
        .unwrap();

    // The old leader restarts from its directory and catches up by log.
    let back = ControlNode::start(config(leader, &voters, root.path(), &fast()))
        .await
        .unwrap();
    // From its own directory (the new leader may already be replicating v2 to it).
    assert!(
        back.map().borrow().current >= 1,
        "it starts from what it had"
    );
    map_current(&back, 2).await;
    let mut map = back.map();
    wait_until("the restarted voter has the second user", || {
        map.borrow_and_update().users.contains_key("user-2")
    })
    .await;
    assert_eq!(
        back.map()
            .borrow()
            .change
            .as_ref()
            .map(|c| (c.from_version, c.to_version)),
        Some((1, 2))
    );
    nodes.insert(leader, back);
    agreed_leader(&nodes).await;
    for (_, node) in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_behind_the_purged_log_catches_up_by_snapshot() {
    let root = tempfile::tempdir().unwrap();
    let timing = Timing {
        snapshot_every_entries: 5,
        entries_kept_after_snapshot: 0,
        ..fast()
    };
    let (voters, mut nodes) = start_all(3, root.path(), &timing).await;
    let leader = agreed_leader(&nodes).await;
    let behind = *nodes.keys().find(|id| **id != leader).unwrap();
    nodes[&leader]
        .propose(Command::PutUser(user(0)))
        .await
        .unwrap()
        .unwrap();
    wait_until("every voter has user 0", || {
        nodes
            .values()
            .all(|n| n.map().borrow().users.contains_key("user-0"))
    })
    .await;
    let stopped_at = nodes[&behind]
        .raft()
        .metrics()
        .borrow()
        .last_log_index
        .unwrap();
    nodes.remove(&behind).unwrap().stop().await;

    for i in 1..=20 {
        nodes[&leader]
            .propose(Command::PutUser(user(i)))
            .await
            .unwrap()
            .unwrap();
    }
    let metrics = nodes[&leader].raft().metrics();
    wait_until("the leader purged past the stopped voter's log", || {
        metrics
            .borrow()
            .purged
            .is_some_and(|p| p.index > stopped_at + 1)
    })
    .await;

    let back = ControlNode::start(config(behind, &voters, root.path(), &timing))
        .await
        .unwrap();
    let mut map = back.map();
    wait_until("the stopped voter has all 21 users", || {
        map.borrow_and_update().users.len() == 21
    })
    .await;
    assert_eq!(
        *back.map().borrow().clone(),
        *nodes[&leader].map().borrow().clone()
    );
    let snapshot = back.raft().metrics().borrow().snapshot;
    assert!(
        snapshot.is_some_and(|s| s.index > stopped_at),
        "caught up by a snapshot: {snapshot:?}"
    );
    nodes.insert(behind, back);
    for (_, node) in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_the_cluster_secret_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let (voters, nodes) = start_all(1, root.path(), &fast()).await;
    agreed_leader(&nodes).await;
    let wrong = Secret::new(b"not-the-cluster-secret").unwrap();
    let answer = Peer::new(1, voters[&1].clone(), wrong)
        .propose(Command::PutUser(user(9)), 1)
        .await;
    assert!(
        matches!(answer, Err(ProposeError::LeaderUnreachable { .. })),
        "{answer:?}"
    );
    // With the secret, the same path commits.
    let right = Secret::new(SECRET).unwrap();
    assert!(matches!(
        Peer::new(1, voters[&1].clone(), right)
            .propose(Command::PutUser(user(9)), 1)
            .await,
        Ok(Ok(Applied::UserPut { .. }))
    ));
    assert_eq!(nodes[&1].map().borrow().users.len(), 1);
    for (_, node) in nodes {
        node.stop().await;
    }
}

/// Relays one connection to `target`, keeping every byte the client sent.
async fn recording_relay(target: String) -> (String, tokio::task::JoinHandle<Vec<u8>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let relay = tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = tokio::net::TcpStream::connect(target).await.unwrap();
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let back = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        });
        let mut sent = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    sent.extend_from_slice(&buf[..n]);
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        back.abort();
        sent
    });
    (address, relay)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_proposal_replayed_on_a_new_connection_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let root = tempfile::tempdir().unwrap();
    let (voters, nodes) = start_all(1, root.path(), &fast()).await;
    agreed_leader(&nodes).await;
    let (relay_address, relay) = recording_relay(voters[&1].clone()).await;
    {
        let mut peer = Peer::new(1, relay_address, Secret::new(SECRET).unwrap());
        assert!(matches!(
            peer.propose(Command::PutUser(user(5)), 1).await,
            Ok(Ok(Applied::UserPut { .. }))
        ));
    }
    let recorded = tokio::time::timeout(Duration::from_secs(10), relay)
        .await
        .expect("the relay ends with the connection")
        .unwrap();
    assert!(!recorded.is_empty());
    nodes[&1]
        .propose(Command::DeleteUser {
            name: "user-5".into(),
        })
        .await
        .unwrap()
        .unwrap();

    // The same bytes on a new connection (a new nonce) must not bring the user back.
    let mut raw = tokio::net::TcpStream::connect(&voters[&1]).await.unwrap();
    let mut hello = [0u8; 24];
    raw.read_exact(&mut hello).await.unwrap();
    raw.write_all(&recorded).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut answer)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "the node closes the connection without an answer: {read:?}"
    );
    // A later commit proves the replay did not sit in the log ahead of it.
    nodes[&1]
        .propose(Command::PutUser(user(6)))
        .await
        .unwrap()
        .unwrap();
    let users: Vec<String> = nodes[&1].map().borrow().users.keys().cloned().collect();
    assert_eq!(users, ["user-6"]);
    for (_, node) in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_voters_commit_with_two_down_and_refuse_to_commit_with_three_down() {
    let root = tempfile::tempdir().unwrap();
    let (_voters, mut nodes) = start_all(5, root.path(), &fast()).await;
    let leader = agreed_leader(&nodes).await;
    let v1 = layout(1, 3, None);
    nodes[&leader]
        .propose(Command::ProposeLayout(v1.clone()))
        .await
        .unwrap()
        .unwrap();

    // The leader and one follower stop: three of five are a majority.
    let other = *nodes.keys().find(|id| **id != leader).unwrap();
    nodes.remove(&leader).unwrap().stop().await;
    nodes.remove(&other).unwrap().stop().await;
    agreed_leader_but(&nodes, Some(leader)).await;
    let v2 = layout(2, 4, Some(&v1));
    assert!(matches!(
        nodes
            .values()
            .next()
            .unwrap()
            .propose(Command::ProposeLayout(v2))
            .await,
        Ok(Ok(Applied::LayoutCommitted { version: 2, .. }))
    ));

    // A third stops: two of five commit nothing, and say so within the bound.
    let third = *nodes.keys().next().unwrap();
    nodes.remove(&third).unwrap().stop().await;
    for node in nodes.values() {
        let answer = node.propose(Command::PutUser(user(1))).await;
        assert!(
            matches!(
                answer,
                Err(ProposeError::TimedOut { .. }
                    | ProposeError::NoLeader
                    | ProposeError::LeaderUnreachable { .. })
            ),
            "{answer:?}"
        );
        assert!(node.map().borrow().users.is_empty());
        let read = node.read_map().await;
        assert!(read.is_err(), "no majority confirms a read: {read:?}");
    }
    for (_, node) in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_dropped_without_stop_closes_its_port_and_directory() {
    let root = tempfile::tempdir().unwrap();
    let (voters, mut nodes) = start_all(1, root.path(), &fast()).await;
    agreed_leader(&nodes).await;
    nodes[&1]
        .propose(Command::PutUser(user(1)))
        .await
        .unwrap()
        .unwrap();
    drop(nodes.remove(&1));
    wait_until("the dropped voter's port closes", || {
        std::net::TcpStream::connect(&voters[&1]).is_err()
    })
    .await;
    // Its store closes too: the directory opens again, with what was committed.
    let node = ControlNode::start(config(1, &voters, root.path(), &fast()))
        .await
        .expect("the directory is free again");
    assert!(node.map().borrow().users.contains_key("user-1"));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_set_raft_cannot_run_is_refused_at_start() {
    let root = tempfile::tempdir().unwrap();
    let two: BTreeMap<u64, String> = (1..=2).map(|id| (id, free_address())).collect();
    let err = ControlNode::start(config(1, &two, root.path(), &fast()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("1, 3 or 5"), "{err}");
    let one: BTreeMap<u64, String> = BTreeMap::from([(2, free_address())]);
    let mut moved = config(2, &one, root.path(), &fast());
    moved.listen = free_address();
    let err = ControlNode::start(moved).await.unwrap_err();
    assert!(
        err.to_string().contains("but the voters list it at"),
        "{err}"
    );
}

/// A follower that is no voter (a node beyond the voters, a gateway): it gets every committed
/// change in order, moves to another voter when the one it follows is stopped, and never
/// delivers an older map than it already has (the stopped voter, started again behind the
/// others, is not followed backwards).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_gets_each_change_and_moves_on_when_its_voter_stops() {
    let dir = tempfile::tempdir().unwrap();
    let timing = fast();
    let (voters, mut nodes) = start_all(3, dir.path(), &timing).await;
    agreed_leader(&nodes).await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(u64, Vec<String>)>::new()));
    let follower = {
        let seen = seen.clone();
        let voters = control::Voters {
            list: voters.iter().map(|(i, a)| (*i, a.clone())).collect(),
            secret: Secret::new(SECRET).unwrap(),
        };
        tokio::spawn(control::follow::follow(
            voters,
            move |index, map| {
                let names = map.users.keys().cloned().collect();
                seen.lock().unwrap().push((index, names));
            },
            |_| {},
        ))
    };
    let has = |name: &str| {
        let seen = seen.clone();
        let name = name.to_owned();
        move || {
            seen.lock()
                .unwrap()
                .last()
                .is_some_and(|(_, names)| names.contains(&name))
        }
    };
    let voters_list = control::Voters {
        list: voters.iter().map(|(i, a)| (*i, a.clone())).collect(),
        secret: Secret::new(SECRET).unwrap(),
    };
    let put = |i: u32| Command::CreateUser(user(i));
    assert!(control::follow::propose_any(&voters_list, put(1))
        .await
        .unwrap()
        .is_ok());
    wait_until("the follower sees user-1", has("user-1")).await;

    // Voter 1, the one it follows first, stops: it moves on.
    nodes.remove(&1).unwrap().stop().await;
    assert!(control::follow::propose_any(&voters_list, put(2))
        .await
        .unwrap()
        .is_ok());
    wait_until("the follower sees user-2 from another voter", has("user-2")).await;

    // Refusals are answers: a second create of one name commits nothing new.
    assert!(matches!(
        control::follow::propose_any(&voters_list, put(2))
            .await
            .unwrap(),
        Err(control::Refusal::UserExists { .. })
    ));

    // Voter 1 back: the follower keeps a single, increasing history.
    nodes.insert(
        1,
        ControlNode::start(config(1, &voters, dir.path(), &timing))
            .await
            .unwrap(),
    );
    assert!(control::follow::propose_any(&voters_list, put(3))
        .await
        .unwrap()
        .is_ok());
    wait_until("the follower sees user-3", has("user-3")).await;
    follower.abort();
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "indexes go up: {seen:?}"
    );
    assert!(seen.iter().all(|(_, names)| names.len() <= 3));
    for node in nodes.into_values() {
        node.stop().await;
    }
}

/// A dead voter replaced by a node that joins: the joining node starts empty (it bootstraps
/// nothing of its own), catches up as a learner, and becomes a voter in one membership change;
/// the plane then keeps a majority through the loss of another original voter, which it would
/// not have with the dead one still counted. A follower learns the new voter from the answers.
/// Voter sets Raft cannot run, or naming a new node without its address, are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_voter_is_replaced_by_a_joining_node_and_the_plane_survives_another_loss() {
    let root = tempfile::tempdir().unwrap();
    let timing = fast();
    let (founding, mut nodes) = start_all(3, root.path(), &timing).await;
    agreed_leader(&nodes).await;
    let voters_list = control::Voters {
        list: founding.iter().map(|(i, a)| (*i, a.clone())).collect(),
        secret: Secret::new(SECRET).unwrap(),
    };
    let learned = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Vec<u64>>::new()));
    let follower = {
        let learned = learned.clone();
        tokio::spawn(control::follow::follow(
            voters_list.clone(),
            |_, _| {},
            move |list| {
                let ids = list.iter().map(|(id, _)| *id).collect();
                learned.lock().unwrap().push(ids);
            },
        ))
    };
    let put = |i: u32| Command::CreateUser(user(i));
    assert!(control::follow::propose_any(&voters_list, put(1))
        .await
        .unwrap()
        .is_ok());

    // Voter 3 dies; node 4 starts with the founding voters in its config, not being one.
    nodes.remove(&3).unwrap().stop().await;
    let address4 = free_address();
    let joining = NodeConfig {
        id: 4,
        listen: address4.clone(),
        dir: root.path().join("node-4"),
        ..config(1, &founding, root.path(), &timing)
    };
    let joined = ControlNode::start(joining)
        .await
        .expect("a joining node starts");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        joined.voters().is_empty(),
        "it bootstrapped a membership of its own"
    );
    assert!(joined.map().borrow().users.is_empty());

    // Refused: a set of 2, a new node without its address, a member at another address.
    let ask = |pairs: &[(u64, Option<&str>)]| -> BTreeMap<u64, Option<String>> {
        pairs
            .iter()
            .map(|(id, a)| (*id, a.map(str::to_owned)))
            .collect()
    };
    for (wanted, why) in [
        (ask(&[(1, None), (2, None)]), "1, 3 or 5"),
        (
            ask(&[(1, None), (2, None), (4, None)]),
            "give its control address",
        ),
        (
            ask(&[(1, None), (2, Some("127.0.0.1:1")), (4, Some(&address4))]),
            "is a member at",
        ),
    ] {
        match control::follow::change_voters_any(&voters_list, wanted).await {
            Err(ProposeError::VotersRefused { reason }) => {
                assert!(reason.contains(why), "{reason}");
            }
            other => panic!("not refused ({why}): {other:?}"),
        }
    }

    // Through a follower voter: forwarded to the leader.
    let follower_voter = *nodes
        .keys()
        .find(|id| nodes[*id].leader() != Some(**id))
        .unwrap();
    let changed = nodes[&follower_voter]
        .change_voters(ask(&[(1, None), (2, None), (4, Some(&address4))]))
        .await
        .expect("the voters change");
    assert_eq!(changed.keys().copied().collect::<Vec<_>>(), vec![1, 2, 4]);
    assert_eq!(changed[&4], address4);
    wait_until("node 4 is a voter with the users", || {
        joined.voters().into_iter().collect::<Vec<_>>() == vec![1, 2, 4]
            && joined.map().borrow().users.contains_key("user-1")
    })
    .await;
    wait_until("the follower learns voter 4", || {
        learned.lock().unwrap().last() == Some(&vec![1, 2, 4])
    })
    .await;

    // Voter 2 stops too: 1 and 4 are a majority of {1, 2, 4} (of {1, 2, 3} they would not
    // be), so proposals commit and reads are confirmed.
    nodes.remove(&2).unwrap().stop().await;
    let after = control::Voters {
        list: vec![(4, address4.clone())],
        secret: Secret::new(SECRET).unwrap(),
    };
    assert!(control::follow::propose_any(&after, put(2))
        .await
        .unwrap()
        .is_ok());
    let read = control::follow::read_any(&after).await.unwrap();
    assert!(read.users.contains_key("user-2"));
    follower.abort();
    joined.stop().await;
    for (_, node) in nodes {
        node.stop().await;
    }
}
