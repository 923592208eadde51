//! The node's layout gate on a real node with TCP listeners: frames stamped below the floor
//! are refused and newer ones accepted, a floor raised at run time holds on connections
//! already open and on every core, and `MapApplied` answers what the gate was set to, over
//! TCP and through the handle, offline cores included. A refusal names the node's map index,
//! which `ControlMap` answers whatever the stamp. A frame of a kind newer than the build is
//! refused under its id and the connection stays open.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use engine::{Node, NodeConfig};
use proto::{ErrorCode, Frame, Message, Request, Response};

/// A base port with `n` free ports after it (best effort: bind and release).
fn free_ports(n: u16) -> u16 {
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

/// A node of two cores listening from a free base port, its gate starting at `layout_version`.
fn start(dir: &std::path::Path, layout_version: u64) -> (Node, u16) {
    let port = free_ports(2);
    let mut cfg = NodeConfig::simple(1, dir, 2);
    cfg.segment_bytes = 1 << 20;
    cfg.io_memory_bytes = 1 << 20;
    cfg.listen = Some((std::net::Ipv4Addr::LOCALHOST.into(), port));
    cfg.layout_version = layout_version;
    (Node::start(&cfg).unwrap(), port)
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// One request stamped with layout `stamped` on an open connection; the whole answer frame
/// (its stamp included).
fn exchange(s: &mut TcpStream, stamped: u64, request: &Request) -> Frame {
    let mut out = BytesMut::new();
    proto::encode_request(7, stamped, request, &mut out);
    s.write_all(&out).unwrap();
    let mut inbuf = BytesMut::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(f) = proto::decode_frame(&mut inbuf).unwrap() {
            assert_eq!(f.request_id, 7, "{f:?}");
            return f;
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "the core closed the connection");
        inbuf.extend_from_slice(&chunk[..n]);
    }
}

fn answer(f: Frame) -> Response {
    match f.message {
        Message::Response(r) => r,
        Message::Request(r) => panic!("a request back: {r:?}"),
        Message::Unknown(k) => panic!("a frame of unknown kind {k} back"),
    }
}

fn put(hlc: u64) -> Request {
    Request::MetaPut {
        key: Bytes::from_static(b"bucket/k"),
        value: Bytes::from_static(b"v"),
        hlc,
    }
}

fn served(r: &Response) -> bool {
    !matches!(r, Response::Error { .. } | Response::LayoutRefused { .. })
}

/// `Some(message)` if `r` is a refusal of a frame routed by an old layout.
fn refusal(r: &Response) -> Option<&str> {
    match r {
        Response::LayoutRefused { message, .. } => Some(message),
        _ => None,
    }
}

/// The HLC of the version of `put`'s key that core 0 holds.
fn held_hlc(node: &Node) -> u64 {
    let r = node.handles()[0]
        .call_blocking(Request::MetaGet {
            key: Bytes::from_static(b"bucket/k"),
        })
        .unwrap();
    let Response::Meta(Some(entry)) = r else {
        panic!("{r:?}");
    };
    entry.hlc
}

#[test]
fn frames_below_the_floor_are_refused_and_newer_ones_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let (node, port) = start(dir.path(), 3);
    for core in 0..2 {
        let mut s = connect(port + core);
        let f = exchange(&mut s, 2, &put(1));
        assert_eq!(f.layout_version, 3, "answers carry the node's version");
        let r = answer(f);
        let message = refusal(&r).unwrap_or_else(|| panic!("refused: {r:?}"));
        assert!(
            message.contains("layout 2") && message.contains("below 3"),
            "{message}"
        );
        // At the floor, above it (a gateway whose map is ahead) and unstamped: served, on the
        // same connection as the refusal.
        for (stamped, hlc) in [(3, 2), (4, 3), (9, 4), (0, 5)] {
            let r = answer(exchange(&mut s, stamped, &put(hlc)));
            assert_eq!(r, Response::Done, "stamped {stamped}");
        }
    }
    // The refused write was not applied: the last accepted one is what the core holds.
    assert_eq!(held_hlc(&node), 5);
    node.shutdown();
}

#[test]
fn a_floor_raised_at_run_time_holds_on_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (node, port) = start(dir.path(), 3);
    let gate = node.layout_gate();
    let mut open: Vec<TcpStream> = (0..2).map(|core| connect(port + core)).collect();
    for s in &mut open {
        assert!(served(&answer(exchange(s, 3, &Request::Stats))));
    }
    gate.set_layout(4, 5);
    assert_eq!((gate.floor(), gate.version()), (4, 5));
    for s in &mut open {
        let f = exchange(s, 3, &Request::Stats);
        assert_eq!(f.layout_version, 5);
        let r = answer(f);
        let message = refusal(&r).unwrap_or_else(|| panic!("refused: {r:?}"));
        assert!(
            message.contains("layout 3") && message.contains("below 4") && message.contains('5'),
            "{message}"
        );
        assert!(served(&answer(exchange(s, 4, &Request::Stats))));
        assert!(served(&answer(exchange(s, 5, &Request::Stats))));
    }
    // In-process calls carry no layout version: the gate does not stand in their way.
    let r = node.handles()[1].call_blocking(Request::Stats).unwrap();
    assert!(served(&r), "{r:?}");
    // A lowered floor (a change rolled back) takes effect the same way.
    gate.set_layout(3, 3);
    for s in &mut open {
        assert!(served(&answer(exchange(s, 3, &Request::Stats))));
    }
    node.shutdown();
}

#[test]
fn map_applied_answers_the_gate_over_tcp_and_through_the_handle() {
    let dir = tempfile::tempdir().unwrap();
    let (node, port) = start(dir.path(), 3);
    let gate = node.layout_gate();
    let expect = |index, floor, version| Response::MapApplied {
        index,
        floor,
        version,
    };
    let mut open: Vec<TcpStream> = (0..2).map(|core| connect(port + core)).collect();
    for (h, s) in node.handles().iter().zip(&mut open) {
        assert_eq!(
            h.call_blocking(Request::MapApplied).unwrap(),
            expect(0, 3, 3)
        );
        assert_eq!(
            answer(exchange(s, 3, &Request::MapApplied)),
            expect(0, 3, 3)
        );
    }
    gate.set_layout(4, 6);
    gate.set_applied(17);
    assert_eq!(gate.applied(), 17);
    for (h, s) in node.handles().iter().zip(&mut open) {
        assert_eq!(
            h.call_blocking(Request::MapApplied).unwrap(),
            expect(17, 4, 6)
        );
        // Answered whatever the stamp: a mover asks every node, routed by any layout.
        for stamped in [0, 1, 4, 9] {
            let f = exchange(s, stamped, &Request::MapApplied);
            assert_eq!(f.layout_version, 6);
            assert_eq!(answer(f), expect(17, 4, 6), "stamped {stamped}");
        }
        // A refusal names the map the node applied, and the map is answered to the process
        // it refused (whose frames are stamped below the floor).
        let r = answer(exchange(s, 1, &put(1)));
        assert!(
            matches!(r, Response::LayoutRefused { index: 17, .. }),
            "{r:?}"
        );
        assert_eq!(
            answer(exchange(s, 1, &Request::ControlMap)),
            Response::ControlMap(Bytes::new()),
            "no map sealed yet"
        );
    }
    gate.set_sealed_map(Bytes::from_static(b"the map at 17"));
    for (h, s) in node.handles().iter().zip(&mut open) {
        assert_eq!(
            h.call_blocking(Request::ControlMap).unwrap(),
            Response::ControlMap(Bytes::from_static(b"the map at 17"))
        );
        assert_eq!(
            answer(exchange(s, 1, &Request::ControlMap)),
            Response::ControlMap(Bytes::from_static(b"the map at 17"))
        );
    }
    // About the node: sent alone, never wrapped.
    let h = &node.handles()[0];
    for wrapped in [
        Request::Batch(vec![Request::Stats, Request::MapApplied]),
        Request::Background(Box::new(Request::MapApplied)),
        Request::Batch(vec![Request::Stats, Request::ControlMap]),
    ] {
        let r = h.call_blocking(wrapped).unwrap();
        let bad = |r: &Response| {
            matches!(
                r,
                Response::Error {
                    code: ErrorCode::BadRequest,
                    ..
                }
            )
        };
        match &r {
            Response::Batch(parts) => assert!(bad(&parts[1]) && served(&parts[0]), "{r:?}"),
            other => assert!(bad(other), "{r:?}"),
        }
    }
    node.shutdown();
}

/// An offline core (its partition damaged) answers every request `Offline`, but `MapApplied`
/// from the node's gate: the mover's question is about the node.
#[test]
fn an_offline_core_answers_map_applied() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = start(dir.path(), 2);
    node.shutdown();
    let superblock = dir.path().join("core-0").join("superblock");
    let mut sb = std::fs::read(&superblock).unwrap();
    sb[20] ^= 0x40;
    std::fs::write(&superblock, sb).unwrap();
    let (node, port) = start(dir.path(), 2);
    assert_eq!(node.offline().len(), 1, "{:?}", node.offline());
    let gate = node.layout_gate();
    gate.set_layout(2, 3);
    gate.set_applied(8);
    let expect = Response::MapApplied {
        index: 8,
        floor: 2,
        version: 3,
    };
    let h = &node.handles()[0];
    assert_eq!(h.call_blocking(Request::MapApplied).unwrap(), expect);
    let r = h.call_blocking(Request::Stats).unwrap();
    assert!(
        matches!(
            r,
            Response::Error {
                code: ErrorCode::Offline,
                ..
            }
        ),
        "{r:?}"
    );
    let mut s = connect(port);
    assert_eq!(answer(exchange(&mut s, 2, &Request::MapApplied)), expect);
    // The floor holds on an offline core's port too.
    let r = answer(exchange(&mut s, 1, &Request::Stats));
    assert!(refusal(&r).is_some(), "{r:?}");
    node.shutdown();
}

/// A fenced request (a pure gateway's) below the node's epoch floor is refused on every core,
/// with the node's map index; at or above it, it is answered as if it came alone; a question
/// about the node is answered whatever the epoch. A raise of the floor is waited out only by
/// fenced frames still being answered: none here once each answer is read.
#[test]
fn fenced_frames_below_the_epoch_floor_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (node, port) = start(dir.path(), 3);
    let gate = node.layout_gate();
    let fenced = |epoch, request| Request::Fenced {
        epoch,
        request: Box::new(request),
    };
    let mut open: Vec<TcpStream> = (0..2).map(|core| connect(port + core)).collect();
    for s in &mut open {
        assert_eq!(answer(exchange(s, 3, &fenced(5, put(1)))), Response::Done);
    }
    gate.set_applied(11);
    let generation = gate.raise_epoch_floor((2 << 32) | 4);
    assert_eq!(
        gate.admitted_under(generation),
        0,
        "every admitted frame was answered"
    );
    for s in &mut open {
        let r = answer(exchange(s, 3, &fenced((2 << 32) | 3, put(9))));
        assert!(
            matches!(r, Response::LayoutRefused { index: 11, .. }),
            "{r:?}"
        );
        assert_eq!(
            answer(exchange(s, 3, &fenced(1, Request::MapApplied))),
            Response::MapApplied {
                index: 11,
                floor: 3,
                version: 3
            }
        );
        for epoch in [(2 << 32) | 4, 3 << 32] {
            let r = answer(exchange(s, 3, &fenced(epoch, put(3))));
            assert_eq!(r, Response::Done, "epoch {epoch:#x}");
        }
        // Plain frames (a node's own gateway) are not fenced by epoch.
        assert_eq!(answer(exchange(s, 3, &put(4))), Response::Done);
    }
    assert_eq!(
        held_hlc(&node),
        4,
        "the refused write (hlc 9) was not applied"
    );
    node.shutdown();
}

/// A frame of a kind this build does not know (a newer peer's) is answered `UnknownKind` under
/// its own request id, and the connection serves the next request: builds before the code
/// answered it under id 0 and closed the connection, which a caller took for a dead core.
#[test]
fn a_frame_of_a_newer_kind_is_refused_and_the_connection_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (node, port) = start(dir.path(), 1);
    let mut s = connect(port);
    let mut frame = BytesMut::new();
    proto::encode_request(7, 1, &Request::Stats, &mut frame);
    // The kind field, then the checksum over the header's first 32 bytes (no body).
    frame[6..8].copy_from_slice(&999u16.to_le_bytes());
    let crc = crc32fast::hash(&frame[0..32]);
    frame[32..36].copy_from_slice(&crc.to_le_bytes());
    s.write_all(&frame).unwrap();
    let mut inbuf = BytesMut::new();
    let mut chunk = [0u8; 4096];
    let refused = loop {
        if let Some(f) = proto::decode_frame(&mut inbuf).unwrap() {
            break f;
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "the core closed the connection");
        inbuf.extend_from_slice(&chunk[..n]);
    };
    assert_eq!(refused.request_id, 7);
    match answer(refused) {
        Response::Error { code, message } => {
            assert_eq!(code, ErrorCode::UnknownKind);
            assert_eq!(
                proto::unknown_kind_refused(code, &message),
                Some(999),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let next = exchange(&mut s, 1, &Request::Stats);
    assert!(matches!(answer(next), Response::Stats(_)));
    drop(s);
    node.shutdown();
}
