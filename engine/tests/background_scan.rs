//! A metadata scan sent as background work is read in pieces, the core's task queue yielding
//! between them (`runtime::scan_in_chunks`), and answered as one page: the same entries and the
//! same resume key as the scan read at once, whatever the page's limit against the piece's
//! size, tombstones counted or skipped, and the same refusals.

use bytes::Bytes;
use engine::limits::{BACKGROUND_SCAN_CHUNK_ENTRIES, SCAN_ENTRIES_MAX};
use engine::{Node, NodeConfig};
use proto::{Request, Response};

fn start(dir: &std::path::Path) -> Node {
    let mut cfg = NodeConfig::simple(1, dir, 1);
    cfg.segment_bytes = 1 << 20;
    cfg.io_memory_bytes = 1 << 20;
    Node::start(&cfg).unwrap()
}

fn call(node: &Node, request: Request) -> Response {
    node.handles()[0].call_blocking(request).unwrap()
}

fn scan(versioned: bool, start_after: Option<Bytes>, limit: u32) -> Request {
    let prefix = Bytes::from_static(b"b/");
    if versioned {
        Request::MetaScanVersioned {
            prefix,
            start_after,
            limit,
        }
    } else {
        Request::MetaScan {
            prefix,
            start_after,
            limit,
        }
    }
}

fn background(request: Request) -> Request {
    Request::Background(Box::new(request))
}

#[test]
fn a_background_scan_answers_the_page_a_plain_scan_does() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let chunk = BACKGROUND_SCAN_CHUNK_ENTRIES as usize;
    // More keys than three pieces, every third one deleted (runs of tombstones that a live
    // scan skips across a piece's end), and keys outside the prefix on both sides.
    let keys = 3 * chunk + 37;
    for i in 0..keys {
        let key = Bytes::from(format!("b/{i:05}"));
        let put = Request::MetaPut {
            key: key.clone(),
            value: Bytes::from(vec![b'v'; 40]),
            hlc: 10,
        };
        assert!(matches!(call(&node, put), Response::Done));
        if i % 3 == 0 {
            let delete = Request::MetaDelete { key, hlc: 11 };
            assert!(matches!(call(&node, delete), Response::Done));
        }
    }
    for outside in ["a/1", "c/1"] {
        let put = Request::MetaPut {
            key: Bytes::from(outside),
            value: Bytes::from_static(b"x"),
            hlc: 10,
        };
        assert!(matches!(call(&node, put), Response::Done));
    }
    let limits = [
        1,
        BACKGROUND_SCAN_CHUNK_ENTRIES - 1,
        BACKGROUND_SCAN_CHUNK_ENTRIES,
        BACKGROUND_SCAN_CHUNK_ENTRIES + 1,
        2 * BACKGROUND_SCAN_CHUNK_ENTRIES + 7,
        1000,
    ];
    for versioned in [false, true] {
        for limit in limits {
            // Page through the whole prefix both ways: every page must be the same.
            let mut start_after = None;
            let mut pages = 0;
            loop {
                let plain = call(&node, scan(versioned, start_after.clone(), limit));
                let piecewise = call(
                    &node,
                    background(scan(versioned, start_after.clone(), limit)),
                );
                assert_eq!(
                    piecewise, plain,
                    "versioned {versioned}, limit {limit}, page {pages}"
                );
                assert!(
                    matches!(
                        plain,
                        Response::Scan { .. } | Response::ScanVersioned { .. }
                    ),
                    "{plain:?}"
                );
                pages += 1;
                start_after = plain.next_start_after().cloned();
                if start_after.is_none() {
                    break;
                }
            }
            let entries = if versioned {
                keys
            } else {
                keys - keys.div_ceil(3)
            };
            assert!(
                pages >= entries / limit as usize,
                "versioned {versioned}, limit {limit}: {pages} pages for {entries} entries"
            );
        }
    }
    // A limit the store refuses is refused the same way.
    for limit in [0, SCAN_ENTRIES_MAX + 1] {
        let plain = call(&node, scan(true, None, limit));
        assert!(matches!(plain, Response::Error { .. }), "{plain:?}");
        assert_eq!(call(&node, background(scan(true, None, limit))), plain);
    }
}
