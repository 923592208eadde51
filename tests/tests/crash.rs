//! Crash test: a real `percore node` is killed with SIGKILL while clients append; after a
//! restart every acknowledged fragment reads back byte-identical and nothing torn is returned.
//! Runs 20 kill/restart cycles on one data directory (the "20 runs in a row").

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use engine::client::BlockingClient;
use proto::{ErrorCode, FragmentId, Request, Response};
use tests::{free_ports, NodeProcess};

const CYCLES: u32 = 20;
const WRITERS: u64 = 3;

fn payload(id: u128) -> Bytes {
    let len = 1 + (id % 7) as usize * 2_000 + (id % 13) as usize * 111;
    let mut x = (id as u64) | 1;
    Bytes::from(
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect::<Vec<u8>>(),
    )
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let acked: Arc<Mutex<BTreeMap<u128, u16>>> = Arc::default();
    let mut next_id: u128 = 1;
    for cycle in 0..CYCLES {
        let port = free_ports(2);
        let node = NodeProcess::start(data.path(), 2, port, &["--segment-mib", "4"]);
        // Everything acknowledged so far is intact.
        verify(&node, &acked.lock().unwrap(), cycle);
        // Writers append until the node is killed under them.
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let core = (w % 2) as u16;
            let addr = node.core_addr(core);
            let acked = acked.clone();
            let first = next_id + u128::from(w) * 1_000_000;
            writers.push(std::thread::spawn(move || {
                let Ok(mut c) = BlockingClient::connect(addr, 0) else {
                    return;
                };
                for i in 0..100_000u128 {
                    let id = first + i;
                    let req = Request::PutFragment {
                        id: FragmentId::from_u128(id),
                        data: payload(id),
                    };
                    match c.call(&req) {
                        Ok(Response::Done) => {
                            acked.lock().unwrap().insert(id, core);
                        }
                        Ok(other) => panic!("unexpected response {other:?}"),
                        Err(_) => return, // the node died
                    }
                }
            }));
        }
        next_id += u128::from(WRITERS) * 1_000_000;
        std::thread::sleep(Duration::from_millis(100 + u64::from(cycle) * 37 % 200));
        node.kill9();
        for w in writers {
            w.join().expect("writer thread");
        }
    }
    let port = free_ports(2);
    let node = NodeProcess::start(data.path(), 2, port, &["--segment-mib", "4"]);
    let acked = acked.lock().unwrap();
    assert!(
        acked.len() > 100,
        "the writers made progress: {}",
        acked.len()
    );
    verify(&node, &acked, CYCLES);
    let status = node.terminate();
    assert!(status.success(), "clean stop on SIGTERM: {status}");
}

fn verify(node: &NodeProcess, acked: &BTreeMap<u128, u16>, cycle: u32) {
    let started = Instant::now();
    let mut clients = [
        BlockingClient::connect(node.core_addr(0), 0).unwrap(),
        BlockingClient::connect(node.core_addr(1), 0).unwrap(),
    ];
    for (id, core) in acked {
        let req = Request::GetFragment {
            id: FragmentId::from_u128(*id),
            offset_bytes: 0,
            len_bytes: None,
        };
        match clients[usize::from(*core)].call(&req).unwrap() {
            Response::Fragment(b) => {
                assert!(b == payload(*id), "cycle {cycle}: fragment {id} differs");
            }
            Response::Error {
                code: ErrorCode::NotFound,
                ..
            } => {
                panic!("cycle {cycle}: acknowledged fragment {id} lost")
            }
            other => panic!("cycle {cycle}: fragment {id}: {other:?}"),
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "verification is bounded"
    );
}
