//! The store on real O_DIRECT files (glommio, io_uring) under a temp dir: writes, reads,
//! ranges, deletes, restart, reclaim, no-space, superblock ownership, and the Send handle from
//! another thread.

use bytes::Bytes;
use engine::runtime::fragment_id;
use engine::{Node, NodeConfig};
use proto::{ErrorCode, Request, Response};

fn node_config(dir: &std::path::Path) -> NodeConfig {
    let mut cfg = NodeConfig::simple(1, dir, 2);
    cfg.segment_bytes = 1 << 20;
    cfg.io_memory_bytes = 1 << 20;
    cfg.checkpoint_every_records = 100;
    cfg.reclaim_interval = std::time::Duration::from_millis(50);
    cfg
}

fn data(n: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<_>>(),
    )
}

#[test]
fn put_get_delete_restart_on_real_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = node_config(dir.path());
    let node = Node::start(&cfg).unwrap();
    let h = node.handles()[1].clone();
    // From another (non-glommio) thread, as the gateway would.
    let h2 = h.clone();
    std::thread::spawn(move || {
        for i in 0..50u128 {
            let r = h2.call_blocking(Request::PutFragment {
                id: fragment_id(i),
                data: data(5000 + i as usize * 97, i as u8),
            });
            assert_eq!(r.unwrap(), Response::Done);
        }
    })
    .join()
    .unwrap();
    let r = h
        .call_blocking(Request::GetFragment {
            id: fragment_id(7),
            offset_bytes: 100,
            len_bytes: Some(10),
        })
        .unwrap();
    assert_eq!(
        r,
        Response::Fragment(data(5000 + 7 * 97, 7).slice(100..110))
    );
    let r = h
        .call_blocking(Request::DeleteFragment { id: fragment_id(8) })
        .unwrap();
    assert_eq!(r, Response::Done);
    let r = h
        .call_blocking(Request::GetFragment {
            id: fragment_id(8),
            offset_bytes: 0,
            len_bytes: None,
        })
        .unwrap();
    assert!(
        matches!(
            r,
            Response::Error {
                code: ErrorCode::NotFound,
                ..
            }
        ),
        "{r:?}"
    );
    let r = h
        .call_blocking(Request::MetaPut {
            key: Bytes::from_static(b"b/k"),
            value: Bytes::from_static(b"v1"),
            hlc: 3,
        })
        .unwrap();
    assert_eq!(r, Response::Done);
    // A batch shares one group commit.
    let batch = (100..120u128)
        .map(|i| Request::PutFragment {
            id: fragment_id(i),
            data: data(100, 1),
        })
        .collect();
    let Response::Batch(parts) = h.call_blocking(Request::Batch(batch)).unwrap() else {
        panic!()
    };
    assert!(parts.iter().all(|p| *p == Response::Done));
    node.shutdown();

    let node = Node::start(&cfg).unwrap();
    let h = node.handles()[1].clone();
    for i in (0..50u128).filter(|i| *i != 8) {
        let r = h
            .call_blocking(Request::GetFragment {
                id: fragment_id(i),
                offset_bytes: 0,
                len_bytes: None,
            })
            .unwrap();
        assert_eq!(
            r,
            Response::Fragment(data(5000 + i as usize * 97, i as u8)),
            "fragment {i}"
        );
    }
    let r = h
        .call_blocking(Request::MetaGet {
            key: Bytes::from_static(b"b/k"),
        })
        .unwrap();
    assert!(
        matches!(r, Response::Meta(Some(ref e)) if e.value == "v1"),
        "{r:?}"
    );
    // Core 0 saw nothing.
    let Response::Stats(s) = node.handles()[0].call_blocking(Request::Stats).unwrap() else {
        panic!()
    };
    assert_eq!(s.fragments, 0);
    node.shutdown();
}

#[test]
fn overwrites_are_reclaimed_and_full_partition_says_no_space() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = node_config(dir.path());
    cfg.cores.truncate(1);
    cfg.capacity_bytes_per_core = 8 << 20;
    let node = Node::start(&cfg).unwrap();
    let h = node.handles()[0].clone();
    // Overwrite the same 4 fragments many times: the live set stays small, so reclaim keeps
    // the partition from filling.
    for round in 0..60u32 {
        for i in 0..4u128 {
            let r = h.call_blocking(Request::PutFragment {
                id: fragment_id(i),
                data: data(60_000, round as u8),
            });
            match r.unwrap() {
                Response::Done => {}
                Response::Error {
                    code: ErrorCode::NoSpace,
                    ..
                } => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                other => panic!("{other:?}"),
            }
        }
    }
    let Response::Stats(s) = h.call_blocking(Request::Stats).unwrap() else {
        panic!()
    };
    assert!(s.segments <= 8, "reclaim keeps segments bounded: {s:?}");
    // Now fill it with distinct fragments until NoSpace; nothing acknowledged is lost.
    let mut stored = Vec::new();
    for i in 1000..1400u128 {
        match h
            .call_blocking(Request::PutFragment {
                id: fragment_id(i),
                data: data(60_000, 9),
            })
            .unwrap()
        {
            Response::Done => stored.push(i),
            Response::Error {
                code: ErrorCode::NoSpace,
                ..
            } => break,
            other => panic!("{other:?}"),
        }
    }
    assert!(stored.len() < 400, "the partition filled up");
    for i in &stored {
        let r = h
            .call_blocking(Request::GetFragment {
                id: fragment_id(*i),
                offset_bytes: 0,
                len_bytes: None,
            })
            .unwrap();
        assert_eq!(r, Response::Fragment(data(60_000, 9)));
    }
    node.shutdown();
}

#[test]
fn a_partition_of_another_core_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = node_config(dir.path());
    cfg.cores.truncate(1);
    Node::start(&cfg).unwrap().shutdown();
    cfg.node_id = 2;
    let err = Node::start(&cfg).err().expect("wrong owner");
    assert!(err.to_string().contains("belongs to node 1"), "{err}");
}

/// A damaged partition takes its core offline, not the node: a flipped superblock byte on
/// core 0 and a truncated LMDB file on core 1; core 2 serves, the others answer `Offline` with
/// the reason (through the handle and through their port).
#[test]
fn a_damaged_partition_starts_its_core_offline() {
    use engine::client::BlockingClient;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = node_config(dir.path());
    cfg.cores.truncate(3);
    let node = Node::start(&cfg).unwrap();
    for h in node.handles() {
        let put = Request::MetaPut {
            key: Bytes::from_static(b"k"),
            value: Bytes::from(vec![7u8; 20_000]),
            hlc: 1,
        };
        assert_eq!(h.call_blocking(put).unwrap(), Response::Done);
    }
    node.shutdown();
    let superblock = dir.path().join("core-0").join("superblock");
    let mut sb = std::fs::read(&superblock).unwrap();
    sb[20] ^= 0x40;
    std::fs::write(&superblock, sb).unwrap();
    let mdb = dir.path().join("core-1").join("meta").join("data.mdb");
    let len = std::fs::metadata(&mdb).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&mdb)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    cfg.listen = Some((std::net::Ipv4Addr::LOCALHOST.into(), port));
    let node = Node::start(&cfg).expect("the node starts with two damaged cores");
    let offline: Vec<u32> = node.offline().iter().map(|(c, _)| *c).collect();
    assert_eq!(offline, vec![0, 1], "{:?}", node.offline());
    assert!(
        node.offline()[0].1.contains("superblock"),
        "{:?}",
        node.offline()
    );
    assert!(node.offline()[1].1.contains("LMDB"), "{:?}", node.offline());
    let get = || Request::MetaGet {
        key: Bytes::from_static(b"k"),
    };
    for (i, h) in node.handles().iter().enumerate() {
        let r = h.call_blocking(get()).unwrap();
        if i == 2 {
            assert!(matches!(r, Response::Meta(Some(_))), "{r:?}");
        } else {
            assert!(
                matches!(&r, Response::Error { code: ErrorCode::Offline, message } if message.contains("offline")),
                "{r:?}"
            );
        }
    }
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port + 1));
    let mut client = BlockingClient::connect(addr, 0).unwrap();
    let r = client.call(&Request::Stats).unwrap();
    assert!(
        matches!(&r, Response::Error { code: ErrorCode::Offline, message } if message.contains("LMDB")),
        "{r:?}"
    );
    node.shutdown();
}

/// A core's TCP port: requests round-trip; garbage, oversized lengths and wrong layout
/// versions get error frames or a closed connection; the core keeps serving.
#[test]
fn tcp_protocol_rejects_malformed_frames() {
    use engine::client::BlockingClient;
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = node_config(dir.path());
    cfg.cores.truncate(1);
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    cfg.listen = Some((std::net::Ipv4Addr::LOCALHOST.into(), port));
    cfg.layout_version = 5;
    let node = Node::start(&cfg).unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // A second listener on the same port is refused (no silent SO_REUSEPORT sharing).
    let dir2 = tempfile::tempdir().unwrap();
    let mut cfg2 = node_config(dir2.path());
    cfg2.cores.truncate(1);
    cfg2.listen = cfg.listen;
    let err = Node::start(&cfg2).err().expect("port in use");
    assert!(err.to_string().contains("cannot listen"), "{err}");

    for garbage in [b"GET / HTTP/1.1\r\n\r\n".to_vec(), vec![0u8; 100], {
        let mut v = b"PCW1".to_vec();
        v.extend_from_slice(&[1, 0, 1, 0]);
        v.extend_from_slice(&[0; 16]);
        v.extend_from_slice(&u32::MAX.to_le_bytes());
        v.extend_from_slice(&[0; 12]);
        v
    }] {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(&garbage).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let mut b = bytes::BytesMut::from(&buf[..]);
        match proto::decode_frame(&mut b) {
            Ok(Some(f)) => assert!(
                matches!(f.message, proto::Message::Response(Response::Error { .. })),
                "{f:?}"
            ),
            other => assert!(buf.is_empty(), "closed or an error frame, got {other:?}"),
        }
    }
    let mut c = BlockingClient::connect(addr, 4).unwrap();
    let r = c.call(&Request::Stats).unwrap();
    assert!(matches!(r, Response::LayoutRefused { .. }), "{r:?}");
    let mut c = BlockingClient::connect(addr, 5).unwrap();
    let put = Request::PutFragment {
        id: fragment_id(1),
        data: data(70_000, 3),
    };
    assert_eq!(c.call(&put).unwrap(), Response::Done);
    let get = Request::GetFragment {
        id: fragment_id(1),
        offset_bytes: 69_990,
        len_bytes: None,
    };
    assert_eq!(
        c.call(&get).unwrap(),
        Response::Fragment(data(70_000, 3).slice(69_990..))
    );
    for i in 0..30 {
        let key = Bytes::from(format!("bucket/{i:02}"));
        let r = c.call(&Request::MetaPut {
            key,
            value: Bytes::from_static(b"m"),
            hlc: 1,
        });
        assert_eq!(r.unwrap(), Response::Done);
    }
    let mut cursor = None;
    let mut seen = 0;
    loop {
        let scan = Request::MetaScan {
            prefix: Bytes::from_static(b"bucket/"),
            start_after: cursor.clone(),
            limit: 7,
        };
        let Response::Scan {
            entries,
            next_start_after,
        } = c.call(&scan).unwrap()
        else {
            panic!()
        };
        seen += entries.len();
        cursor = next_start_after;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, 30);
    node.shutdown();
}

/// An idle node stops without waiting for its reclaimer's next pass: with an hour between
/// passes, `shutdown` returns long before the 30 s a core waits for its store's last users.
/// Before, the reclaimer held the store through its whole sleep: every stop of an idle node
/// waited for the end of the interval (5.05 s per SIGTERM at the default 5 s).
#[test]
fn an_idle_node_stops_without_waiting_for_its_reclaimer() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = node_config(dir.path());
    cfg.reclaim_interval = std::time::Duration::from_secs(3600);
    let node = Node::start(&cfg).unwrap();
    let r = node.handles()[0].call_blocking(Request::PutFragment {
        id: fragment_id(1),
        data: data(4096, 1),
    });
    assert_eq!(r.unwrap(), Response::Done);
    let started = std::time::Instant::now();
    node.shutdown();
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(20),
        "shutdown took {took:?}: something holds the store until a timeout"
    );
}
