//! Thread-per-core reads: a replicated fragment read from a core's own thread (a node serving
//! HTTP on its cores) is served by that core's copy, not by the first replica's.

use std::sync::Arc;

use bytes::Bytes;
use cluster::backend::Backend;
use engine::{CoreHandle, Node, NodeConfig};
use proto::{FragmentId, Request, Response};

fn gets(h: &CoreHandle) -> u64 {
    match h.call_blocking(Request::Stats).unwrap() {
        Response::Stats(s) => s.gets,
        other => panic!("{other:?}"),
    }
}

/// Reads `id` through `backend` from a task on `on`'s own executor.
fn read_on(on: &CoreHandle, backend: &Arc<Backend>, id: FragmentId) -> Bytes {
    let (tx, rx) = std::sync::mpsc::channel();
    let backend = Arc::clone(backend);
    on.spawn(move || async move {
        let read = backend.get_fragment(&[0, 1], id, 0, 4096).await;
        tx.send(read).unwrap();
    })
    .unwrap();
    rx.recv().unwrap().unwrap()
}

#[test]
fn a_core_reads_its_own_replica_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NodeConfig::simple(1, dir.path(), 2);
    cfg.segment_bytes = 1 << 20;
    cfg.io_memory_bytes = 1 << 20;
    let node = Node::start(&cfg).unwrap();
    let h = node.handles().to_vec();
    let backend = Arc::new(Backend::new(h.clone()));
    let id = FragmentId::from_u128(7);
    let data = Bytes::from(vec![5u8; 4096]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(backend.put_fragment(&[0usize, 1][..], 2, id, &data))
        .unwrap();
    assert!(
        h.iter().all(|c| !c.is_current()),
        "the test thread is no core"
    );
    // Core 1 is second in the replica order, yet a read on its thread is its own.
    let before = (gets(&h[0]), gets(&h[1]));
    assert_eq!(read_on(&h[1], &backend, id), data);
    assert_eq!((gets(&h[0]), gets(&h[1])), (before.0, before.1 + 1));
    // From the test's thread, the order stands: core 0.
    let before = (gets(&h[0]), gets(&h[1]));
    assert_eq!(
        rt.block_on(backend.get_fragment(&[0, 1], id, 0, 4096))
            .unwrap(),
        data
    );
    assert_eq!((gets(&h[0]), gets(&h[1])), (before.0 + 1, before.1));
    drop(backend);
    node.shutdown();
}
