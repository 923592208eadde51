//! The backend's quorum logic against real cores (three cores of one engine node under a temp
//! dir), reached in-process and over TCP through a layout: newest-wins reads with tombstones,
//! read repair, merged listings that page exactly, and the layout gate (newer layouts served,
//! those below the node's floor refused).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use cluster::backend::{Backend, BackendError, Route};
use engine::{CoreHandle, Node, NodeConfig};
use proto::{MetaVersion, Request, Response};

fn start(dir: &std::path::Path, listen: Option<u16>) -> Node {
    let mut cfg = NodeConfig::simple(1, dir, 3);
    cfg.segment_bytes = 1 << 20;
    cfg.io_memory_bytes = 1 << 20;
    if let Some(port) = listen {
        cfg.listen = Some(("127.0.0.1".parse().unwrap(), port));
        cfg.layout_version = 1;
    }
    Node::start(&cfg).unwrap()
}

fn free_ports(n: u16) -> u16 {
    // A base port with `n` free ports after it (best effort: bind and release).
    for _ in 0..50 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = l.local_addr().unwrap().port();
        drop(l);
        if base < 60_000
            && (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        {
            return base;
        }
    }
    panic!("no free ports");
}

fn layout(version: u64, port: u16) -> Arc<placement::Layout> {
    let text = format!(
        "format = 1\nversion = {version}\nplacement_groups = 64\n\
         [[node]]\nid = 1\naddress = \"127.0.0.1\"\nbase_port = {port}\ncores = 3\n"
    );
    Arc::new(placement::Layout::from_toml_str(&text).unwrap())
}

fn raw(h: &CoreHandle, r: Request) -> Response {
    h.call_blocking(r).unwrap()
}

fn put(h: &CoreHandle, key: &str, value: &str, hlc: u64) {
    let r = raw(
        h,
        Request::MetaPut {
            key: Bytes::from(key.to_owned()),
            value: Bytes::from(value.to_owned()),
            hlc,
        },
    );
    assert_eq!(r, Response::Done);
}

fn del(h: &CoreHandle, key: &str, hlc: u64) {
    let r = raw(
        h,
        Request::MetaDelete {
            key: Bytes::from(key.to_owned()),
            hlc,
        },
    );
    assert_eq!(r, Response::Done);
}

fn version_on(h: &CoreHandle, key: &str) -> Option<MetaVersion> {
    match raw(
        h,
        Request::MetaGetVersioned {
            key: Bytes::from(key.to_owned()),
        },
    ) {
        Response::MetaVersioned(v) => v,
        other => panic!("{other:?}"),
    }
}

/// Runs `rt` until `f` holds (a repair sent without waiting lands), for at most 2 s.
fn eventually(rt: &tokio::runtime::Runtime, what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        rt.block_on(async { tokio::time::sleep(std::time::Duration::from_millis(10)).await });
    }
    panic!("not within 2 s: {what}");
}

/// Replicas that disagree: the newest wins, tombstones included, and stale replicas are
/// repaired by the read; listings merge every replica and page exactly.
fn check_quorum_reads(backend: &Backend, h: &[CoreHandle]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let placed = backend.meta_cores(Route::Object("b", "k"));
    assert_eq!(placed.cores().len(), 3, "three replicas on three cores");
    // Core 2 missed the newer write.
    put(&h[0], "t/stale", "new", 5);
    put(&h[1], "t/stale", "new", 5);
    put(&h[2], "t/stale", "old", 3);
    let got = rt
        .block_on(backend.meta_get(&[0, 1, 2], &Bytes::from_static(b"t/stale")))
        .unwrap()
        .unwrap();
    assert_eq!((got.hlc, &got.value[..]), (5, &b"new"[..]));
    // Two of three hold the newest, a write quorum: the repair of core 2 is sent without
    // delaying the answer, and lands once the runtime runs it.
    eventually(&rt, "read repair", || {
        version_on(&h[2], "t/stale").unwrap().hlc == 5
    });
    // Only core 0 holds the newest (a write that reached one replica): the read returns it
    // only once the repair made it a write quorum, so no later read returns the older one.
    put(&h[0], "t/lone", "new", 5);
    put(&h[1], "t/lone", "old", 3);
    put(&h[2], "t/lone", "old", 3);
    let got = rt
        .block_on(backend.meta_get(&[0, 1, 2], &Bytes::from_static(b"t/lone")))
        .unwrap()
        .unwrap();
    assert_eq!(got.hlc, 5);
    for c in &h[1..] {
        assert_eq!(
            version_on(c, "t/lone").unwrap().hlc,
            5,
            "repaired before the answer"
        );
    }
    // Core 2 missed a delete: the key stays deleted, in reads and in listings.
    for c in h {
        put(c, "t/gone", "v", 1);
    }
    del(&h[0], "t/gone", 2);
    del(&h[1], "t/gone", 2);
    let got = rt
        .block_on(backend.meta_get(&[2, 1, 0], &Bytes::from_static(b"t/gone")))
        .unwrap();
    assert_eq!(got, None, "a missed delete does not resurrect the key");
    eventually(&rt, "the missed delete repaired", || {
        version_on(&h[2], "t/gone").unwrap().deleted
    });
    // Listing: each replica holds a different subset; the merge is their union, newest wins.
    put(&h[0], "l/a", "1", 1);
    put(&h[1], "l/b", "1", 1);
    put(&h[2], "l/c", "1", 1);
    put(&h[0], "l/d", "1", 1);
    put(&h[1], "l/d", "2", 2);
    put(&h[2], "l/e", "1", 1);
    del(&h[0], "l/e", 2);
    let prefix = Bytes::from_static(b"l/");
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = rt
            .block_on(backend.meta_scan(&[0, 1, 2], &prefix, cursor, 2))
            .unwrap();
        assert!(page.len() <= 2);
        for (k, e) in &page {
            seen.push((String::from_utf8(k.to_vec()).unwrap(), e.hlc));
        }
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let want = [("l/a", 1), ("l/b", 1), ("l/c", 1), ("l/d", 2)];
    let want: Vec<(String, u64)> = want.iter().map(|(k, h)| ((*k).to_owned(), *h)).collect();
    assert_eq!(seen, want);
    // Quorum writes land on every reachable replica.
    rt.block_on(backend.meta_put(
        &[0, 1, 2],
        &Bytes::from_static(b"t/w"),
        &Bytes::from_static(b"v"),
        backend.hlc(),
    ))
    .unwrap();
    assert!(h.iter().all(|c| version_on(c, "t/w").is_some()));
    // Background work (lifecycle, repair) reaches the cores' low-share queue and back.
    let bg = rt
        .block_on(cluster::backend::in_background(
            backend.meta_get(&[0, 1, 2], &Bytes::from_static(b"t/w")),
        ))
        .unwrap();
    assert_eq!(bg.map(|e| e.value), Some(Bytes::from_static(b"v")));
}

#[test]
fn in_process_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), None);
    let handles = node.handles().to_vec();
    let backend = Backend::new(handles.clone());
    check_quorum_reads(&backend, &handles);
    drop(backend);
    node.shutdown();
}

#[test]
fn remote_replicas_through_a_layout() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_ports(3);
    let node = start(dir.path(), Some(port));
    let handles = node.handles().to_vec();
    // Every core over TCP: this process is a pure gateway of the layout.
    let backend = Backend::cluster(layout(1, port), None, Vec::new()).unwrap();
    assert_eq!(backend.core_count(), 3);
    assert!(backend.local_cores().is_empty());
    check_quorum_reads(&backend, &handles);
    // A gateway on a newer layout is served (its map may be ahead of the node's); once the
    // node's floor passes a gateway's layout, that gateway is refused with a clear error.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let newer = Backend::cluster(layout(2, port), None, Vec::new()).unwrap();
    let r = rt.block_on(newer.call(0, Request::Stats)).unwrap();
    assert!(matches!(r, Response::Stats(_)), "{r:?}");
    node.layout_gate().set_layout(2, 2);
    let stale = Backend::cluster(layout(1, port), None, Vec::new()).unwrap();
    let err = rt
        .block_on(stale.call(0, Request::Stats))
        .expect_err("layout mismatch");
    assert!(
        matches!(err, BackendError::Remote(_)) && err.to_string().contains("layout"),
        "{err}"
    );
    // A local node id must match the layout and the cores started.
    assert!(Backend::cluster(layout(1, port), Some(9), Vec::new()).is_err());
    assert!(Backend::cluster(layout(1, port), Some(1), handles[..2].to_vec()).is_err());
    drop((backend, newer, stale));
    node.shutdown();
}

fn start_node(dir: &std::path::Path, id: u64, cores: u32, port: u16) -> Node {
    let mut cfg = NodeConfig::simple(id, dir, cores);
    cfg.segment_bytes = 1 << 20;
    cfg.io_memory_bytes = 1 << 20;
    cfg.listen = Some(("127.0.0.1".parse().unwrap(), port));
    cfg.layout_version = 1;
    Node::start(&cfg).unwrap()
}

/// Writes that miss a core that is down are acknowledged by their quorum, leave hints, and the
/// repair pass replays them once the core is back: a metadata record, a replica and an EC
/// shard rebuilt from the others.
#[test]
fn missed_writes_are_repaired_when_the_core_returns() {
    let (dir1, dir2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let p1 = free_ports(3);
    let p2 = p1 + 2;
    let text = format!(
        "format = 1\nversion = 1\nplacement_groups = 64\n\
         [[node]]\nid = 1\naddress = \"127.0.0.1\"\nbase_port = {p1}\ncores = 2\nzone = \"a\"\n\
         [[node]]\nid = 2\naddress = \"127.0.0.1\"\nbase_port = {p2}\ncores = 1\nzone = \"b\"\n"
    );
    let layout = Arc::new(placement::Layout::from_toml_str(&text).unwrap());
    let node1 = start_node(dir1.path(), 1, 2, p1);
    let mut node2 = start_node(dir2.path(), 2, 1, p2);
    let backend = Backend::cluster(layout.clone(), Some(1), node1.handles().to_vec()).unwrap();
    // Layout order: node 1's cores 0 and 1, then node 2's core (index 2).
    assert_eq!(backend.local_cores(), vec![0, 1]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    node2.shutdown();
    let key = Bytes::from_static(b"t/missed");
    let value = Bytes::from_static(b"v1");
    rt.block_on(backend.meta_put(&[0, 1, 2], &key, &value, backend.hlc()))
        .expect("2 of 3 is a write quorum");
    let replica_id = proto::FragmentId([3; 16]);
    let replica = Bytes::from(vec![7u8; 5000]);
    rt.block_on(backend.put_fragment(&[0, 1, 2], 3, replica_id, &replica))
        .expect("2 of 3 replicas");
    let stripe = Bytes::from((0..10_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let shards = cluster::ec::encode_stripe(&stripe, 2, 1).unwrap();
    let mut ec_id = [9u8; 16];
    let placed: Vec<(proto::FragmentId, Bytes)> = (0..3)
        .map(|i| {
            ec_id[15] = i as u8;
            (proto::FragmentId(ec_id), shards[i].clone())
        })
        .collect();
    let ec = cluster::ec::Policy::Ec { k: 2, m: 1 };
    rt.block_on(backend.put_shards(&[0, 1, 2], ec, &placed))
        .expect("k = 2 shards durable");
    let pending = rt.block_on(backend.repair_pass(&[0, 1]));
    assert_eq!(
        pending.pending,
        3 * cluster::hints::HINT_HOLDERS as u64,
        "three hints wait for the core, on each of two holders: {pending:?}"
    );
    node2 = start_node(dir2.path(), 2, 1, p2);
    std::thread::sleep(cluster::limits::CORE_DOWN_FOR);
    // One holder alone repairs everything (the other's hints could have been lost with it).
    let done = rt.block_on(backend.repair_pass(&[1]));
    assert_eq!(done.repaired, 3, "{done:?}");
    let h2 = &node2.handles()[0];
    assert_eq!(version_on(h2, "t/missed").unwrap().value, value);
    let get = |id| match raw(
        h2,
        Request::GetFragment {
            id,
            offset_bytes: 0,
            len_bytes: None,
        },
    ) {
        Response::Fragment(b) => b,
        other => panic!("{other:?}"),
    };
    assert_eq!(get(replica_id), replica);
    assert_eq!(get(placed[2].0), shards[2], "the parity shard was rebuilt");
    // The other holder's copies find the work done (a whole fragment is not rebuilt again).
    let rest = rt.block_on(backend.repair_pass(&[0]));
    assert_eq!(rest.repaired, 3, "{rest:?}");
    let again = rt.block_on(backend.repair_pass(&[0, 1]));
    assert_eq!(
        again,
        cluster::hints::RepairStats::default(),
        "hints are gone"
    );
    drop(backend);
    node2.shutdown();
    node1.shutdown();
}

/// A node whose cores have non-contiguous indices (`[[node.core]]` tables with index 0 and 2)
/// is matched to its local cores by index, not by position.
#[test]
fn local_cores_are_matched_by_index() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_ports(3);
    let mut cfg = NodeConfig::simple(1, dir.path(), 2);
    cfg.segment_bytes = 1 << 20;
    cfg.io_memory_bytes = 1 << 20;
    cfg.cores[1].index = 2;
    cfg.cores[1].dir = dir.path().join("core-2");
    cfg.listen = Some(("127.0.0.1".parse().unwrap(), port));
    cfg.layout_version = 1;
    let node = Node::start(&cfg).unwrap();
    let text = format!(
        "format = 1\nversion = 1\nplacement_groups = 64\n\
         [[node]]\nid = 1\naddress = \"127.0.0.1\"\nbase_port = {port}\n\
         [[node.core]]\nindex = 0\n[[node.core]]\nindex = 2\n"
    );
    let layout = Arc::new(placement::Layout::from_toml_str(&text).unwrap());
    let backend = Backend::cluster(layout, Some(1), node.handles().to_vec()).unwrap();
    assert_eq!(backend.local_cores(), vec![0, 1]);
    assert_eq!(backend.core_name(1), "1/2");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let key = Bytes::from_static(b"t/idx");
    rt.block_on(backend.meta_put(&[0, 1], &key, &Bytes::from_static(b"v"), backend.hlc()))
        .unwrap();
    assert!(version_on(&node.handles()[1], "t/idx").is_some());
    drop(backend);
    node.shutdown();
}

/// Cluster-wide scans (`meta_scan_all`) over three nodes of one core each, reached over TCP:
/// a replica that missed a delete does not resurrect the record and is repaired; one node
/// down still leaves a read quorum; a core still marked down is tried when the quorum needs
/// it (and its answer lifts the mark); with two of three down the scan fails rather than list
/// what one replica holds.
#[test]
fn cluster_wide_scans_hear_a_read_quorum() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let base = free_ports(3);
    let text = format!(
        "format = 1\nversion = 1\nplacement_groups = 64\n\
         [[node]]\nid = 1\naddress = \"127.0.0.1\"\nbase_port = {}\ncores = 1\nzone = \"a\"\n\
         [[node]]\nid = 2\naddress = \"127.0.0.1\"\nbase_port = {}\ncores = 1\nzone = \"b\"\n\
         [[node]]\nid = 3\naddress = \"127.0.0.1\"\nbase_port = {}\ncores = 1\nzone = \"c\"\n",
        base,
        base + 1,
        base + 2
    );
    let layout = Arc::new(placement::Layout::from_toml_str(&text).unwrap());
    let start_i = |i: usize| start_node(dirs[i].path(), i as u64 + 1, 1, base + i as u16);
    let mut nodes: Vec<Node> = (0..3).map(start_i).collect();
    let backend = Backend::cluster(layout, None, Vec::new()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let prefix = Bytes::from_static(b"u/");
    let scan = |b: &Backend| -> Result<Vec<String>, BackendError> {
        let all = rt.block_on(b.meta_scan_all_pages(&prefix))?;
        Ok(all
            .into_iter()
            .map(|(k, _)| String::from_utf8(k.to_vec()).unwrap())
            .collect())
    };
    // `u/a` everywhere; `u/b` deleted on two replicas, the third missed the delete.
    for n in &nodes {
        put(&n.handles()[0], "u/a", "1", 1);
        put(&n.handles()[0], "u/b", "1", 1);
    }
    del(&nodes[0].handles()[0], "u/b", 2);
    del(&nodes[1].handles()[0], "u/b", 2);
    assert_eq!(
        scan(&backend).unwrap(),
        ["u/a"],
        "a missed delete does not resurrect"
    );
    assert!(
        version_on(&nodes[2].handles()[0], "u/b").unwrap().deleted,
        "the stale replica was repaired"
    );
    // Node 3 down: 2 of 3 replicas are a read quorum; its core is now marked down.
    nodes.pop().unwrap().shutdown();
    assert_eq!(scan(&backend).unwrap(), ["u/a"]);
    assert!(backend.is_down(2));
    // An upload acknowledged by cores 0 and 1 (core 2 missed it).
    let key = Bytes::from_static(b"u/c");
    rt.block_on(backend.meta_put(&[0, 1, 2], &key, &Bytes::from_static(b"1"), backend.hlc()))
        .expect("2 of 3 is a write quorum");
    // Node 2 down too: one replica of three is no read quorum, so the scan fails (a gateway
    // answers 503) instead of listing what core 0 holds.
    nodes.remove(1).shutdown();
    let err = scan(&backend).expect_err("one replica of three is no read quorum");
    assert!(matches!(err, BackendError::Quorum { need: 2, .. }), "{err}");
    // Node 3 back, its core still marked down (a call to a closed node may take a timeout, so
    // mark it afresh): without it the scan would hear one replica of three, so it tries core 2
    // anyway and lists `u/c` from core 0.
    let marked = Instant::now();
    assert!(rt.block_on(backend.call(2, Request::Stats)).is_err());
    assert!(backend.is_down(2));
    nodes.push(start_i(2));
    assert!(
        backend.is_down(2) || marked.elapsed() >= cluster::limits::CORE_DOWN_FOR,
        "still within the down mark"
    );
    assert_eq!(scan(&backend).unwrap(), ["u/a", "u/c"]);
    assert!(!backend.is_down(2), "its answer lifted the mark");
    assert!(backend.is_down(1));
    drop(backend);
    for n in nodes {
        n.shutdown();
    }
}

/// How `older_build_core` serves: `upgraded` makes it restart on this build (its connections
/// from before are closed at their next frame; later ones take pairs, counted in `pairs`).
#[derive(Default)]
struct OlderBuild {
    upgraded: std::sync::atomic::AtomicBool,
    pairs: std::sync::atomic::AtomicUsize,
}

/// A core's port as a build from before paired writes (proto kinds 22 and 23) serves it: those
/// frames are answered under request id 0 with the decoder's error text and the connection is
/// closed; every other request goes through to `upstream`. Serves until the test ends.
fn older_build_core(upstream: std::net::SocketAddr, state: Arc<OlderBuild>) -> u16 {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering::SeqCst;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let state = state.clone();
            std::thread::spawn(move || {
                let born_upgraded = state.upgraded.load(SeqCst);
                let mut core = engine::client::BlockingClient::connect(upstream, 1).unwrap();
                let mut inbuf = bytes::BytesMut::new();
                let mut chunk = vec![0u8; 64 * 1024];
                loop {
                    let frame = match proto::decode_frame(&mut inbuf) {
                        Ok(Some(f)) => f,
                        Ok(None) => match conn.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                inbuf.extend_from_slice(&chunk[..n]);
                                continue;
                            }
                        },
                        Err(e) => panic!("{e}"),
                    };
                    let proto::Message::Request(request) = frame.message else {
                        panic!("a request expected");
                    };
                    if state.upgraded.load(SeqCst) && !born_upgraded {
                        return;
                    }
                    let plain = match &request {
                        Request::Fenced { request, .. } => request.as_ref(),
                        r => r,
                    };
                    let unknown = match plain {
                        Request::MetaPair { .. } => Some(proto::K_META_PAIR),
                        Request::PutPaired { .. } => Some(proto::K_PUT_PAIRED),
                        _ => None,
                    };
                    let mut out = bytes::BytesMut::new();
                    if unknown.is_some() && born_upgraded {
                        state.pairs.fetch_add(1, SeqCst);
                    } else if let Some(kind) = unknown {
                        let refusal = Response::Error {
                            code: proto::ErrorCode::BadRequest,
                            message: proto::ProtoError::UnknownKind(kind).to_string(),
                        };
                        proto::encode_response(0, 1, &refusal, &mut out);
                        let _ = conn.write_all(&out);
                        return;
                    }
                    let answer = core.call(&request).unwrap();
                    proto::encode_response(frame.request_id, 1, &answer, &mut out);
                    if conn.write_all(&out).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// A rolling upgrade: a gateway of this build writes pairs (`MetaPair`, `PutPaired`) to cores
/// whose build refuses them as unknown kinds. Those cores get the same writes as separate
/// requests, answer as a pair would, and are never marked down for the refusal; once such a
/// core restarts on this build (its connection fails once), it is asked in pairs again.
#[test]
fn a_core_of_an_older_build_takes_pairs_as_separate_writes() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_ports(3);
    let node = start(dir.path(), Some(port));
    let h = node.handles().to_vec();
    let addr = |i: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port + i));
    // Core 2 of the layout is of the older build; cores 0 and 1 are this build's, reached
    // through plain relays (a layout's node has consecutive ports).
    let state = Arc::new(OlderBuild::default());
    let older = older_build_core(addr(2), state.clone());
    let base = {
        // Three consecutive ports for the layout: two this build's cores, then the older one.
        let base = free_ports(3);
        for (i, target) in [addr(0), addr(1)].into_iter().enumerate() {
            relay(base + i as u16, target);
        }
        relay(
            base + 2,
            std::net::SocketAddr::from(([127, 0, 0, 1], older)),
        );
        base
    };
    let backend = Backend::cluster(layout(1, base), None, Vec::new()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cores = [0usize, 1, 2];
    let head = |v: &str| proto::MetaWrite::Put {
        key: Bytes::from_static(b"h/k"),
        value: Bytes::from(v.to_owned()),
    };
    let entry = |v: &str| proto::MetaWrite::Put {
        key: Bytes::from_static(b"l/k"),
        value: Bytes::from(v.to_owned()),
    };
    // A small object's data with its head and entry.
    let id = proto::FragmentId([7; 16]);
    let data = Bytes::from_static(b"body");
    let hlc1 = backend.hlc();
    let swap = rt
        .block_on(backend.put_paired(&cores[..], 3, id, &data, &head("v1"), &entry("e1"), hlc1))
        .unwrap();
    assert!(swap.won && swap.previous.is_none(), "{swap:?}");
    // A second pair: each core, the older one included, reports what it replaced.
    let hlc2 = backend.hlc();
    let swap = rt
        .block_on(backend.meta_pair(&cores[..], &head("v2"), &entry("e2"), hlc2))
        .unwrap();
    assert!(swap.won, "{swap:?}");
    assert_eq!(swap.previous.map(|p| p.hlc), Some(hlc1));
    for (i, core) in h.iter().enumerate() {
        let got = raw(
            core,
            Request::GetFragment {
                id,
                offset_bytes: 0,
                len_bytes: None,
            },
        );
        assert_eq!(got, Response::Fragment(data.clone()), "core {i}");
        for (key, value) in [("h/k", "v2"), ("l/k", "e2")] {
            let v = version_on(core, key).unwrap_or_else(|| panic!("core {i} lacks {key}"));
            assert_eq!((v.hlc, &v.value[..]), (hlc2, value.as_bytes()), "core {i}");
        }
    }
    // A removal (entry first, then head), and one that an older write cannot beat.
    let gone = |k: &'static [u8]| proto::MetaWrite::Delete {
        key: Bytes::from_static(k),
    };
    let hlc3 = backend.hlc();
    let swap = rt
        .block_on(backend.meta_pair(&cores[..], &gone(b"l/k"), &gone(b"h/k"), hlc3))
        .unwrap();
    assert!(swap.won, "{swap:?}");
    assert_eq!(swap.previous.map(|p| p.hlc), Some(hlc2));
    let swap = rt
        .block_on(backend.meta_pair(&cores[..], &gone(b"l/k"), &gone(b"h/k"), hlc2 - 1))
        .unwrap();
    assert!(!swap.won, "an older removal loses: {swap:?}");
    for (i, core) in h.iter().enumerate() {
        for key in ["h/k", "l/k"] {
            let v = version_on(core, key).unwrap();
            assert!(v.deleted && v.hlc == hlc3, "core {i} {key}: {v:?}");
        }
    }
    for c in cores {
        assert!(!backend.is_down(c), "core {c} was marked down");
    }
    // The older node restarts on this build: its connection fails once (a transport error,
    // the core marked down for a while), and from then on it is asked in pairs again.
    state
        .upgraded
        .store(true, std::sync::atomic::Ordering::SeqCst);
    rt.block_on(backend.meta_pair(&cores[..], &head("v3"), &entry("e3"), backend.hlc()))
        .expect("a write quorum without it");
    std::thread::sleep(std::time::Duration::from_millis(3_500));
    assert!(!backend.is_down(2), "no longer down");
    let hlc4 = backend.hlc();
    rt.block_on(backend.meta_pair(&cores[..], &head("v4"), &entry("e4"), hlc4))
        .unwrap();
    assert_eq!(state.pairs.load(std::sync::atomic::Ordering::SeqCst), 1);
    let v = version_on(&h[2], "l/k").unwrap();
    assert_eq!((v.hlc, &v.value[..]), (hlc4, &b"e4"[..]));
    drop(backend);
    node.shutdown();
}

/// Relays every connection to `port` on to `target`, byte for byte, until the test ends.
fn relay(port: u16, target: std::net::SocketAddr) {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let Ok(up) = std::net::TcpStream::connect(target) else {
                return;
            };
            let _ = conn.set_nodelay(true);
            let _ = up.set_nodelay(true);
            for (mut from, mut to) in [
                (conn.try_clone().unwrap(), up.try_clone().unwrap()),
                (up, conn),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
}
