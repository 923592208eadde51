//! Pure-CPU benchmarks: CRC-32 (crc32fast), Reed-Solomon (reed-solomon-simd) encode and decode
//! for the storage-class shapes, and the wire protocol's encode/decode.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn crc(c: &mut Criterion) {
    let mut g = c.benchmark_group("crc32");
    for size in [4096usize, 1 << 20] {
        let data = vec![0xa5u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, d| {
            b.iter(|| crc32fast::hash(d));
        });
    }
    g.finish();
}

fn shards(k: usize, size: usize) -> Vec<Vec<u8>> {
    (0..k)
        .map(|i| (0..size).map(|j| (i * 31 + j * 7) as u8).collect())
        .collect()
}

fn erasure(c: &mut Criterion) {
    let mut g = c.benchmark_group("reed_solomon");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    for (k, m) in [(4usize, 2usize), (6, 3), (8, 4), (10, 4)] {
        for size in [64usize << 10, 1 << 20] {
            let data = shards(k, size);
            g.throughput(Throughput::Bytes((k * size) as u64));
            let label = format!("{k}+{m}/{}KiB", size >> 10);
            g.bench_function(BenchmarkId::new("encode", &label), |b| {
                b.iter(|| reed_solomon_simd::encode(k, m, &data).expect("encode"));
            });
            let parity = reed_solomon_simd::encode(k, m, &data).expect("encode");
            g.bench_function(BenchmarkId::new("decode_m_lost", &label), |b| {
                b.iter(|| {
                    // The first m data shards are lost; all parity is present.
                    let original = data.iter().enumerate().skip(m);
                    let recovery = parity.iter().enumerate();
                    reed_solomon_simd::decode(k, m, original, recovery).expect("decode")
                });
            });
            stripe_path(&mut g, &label, (k, m), &data);
        }
    }
    g.finish();
}

/// The data path's own stripe functions (`cluster::ec`) on the same shapes, next to the raw
/// codec above: the difference is what the path adds (cutting, padding, `Bytes` handling).
fn stripe_path(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    label: &str,
    (k, m): (usize, usize),
    data: &[Vec<u8>],
) {
    let stripe = Bytes::from(data.concat());
    let (k8, m8) = (k as u8, m as u8);
    g.bench_function(BenchmarkId::new("path_encode_stripe", label), |b| {
        b.iter(|| cluster::ec::encode_stripe(&stripe, k8, m8).expect("encode"));
    });
    let shards = cluster::ec::encode_stripe(&stripe, k8, m8).expect("encode");
    // The first m data shards are lost, as in the raw decode above.
    let left: Vec<(usize, Bytes)> = shards.into_iter().enumerate().skip(m).collect();
    g.bench_function(BenchmarkId::new("path_decode_stripe_m_lost", label), |b| {
        b.iter(|| cluster::ec::decode_stripe(k8, m8, &left).expect("decode"));
    });
}

fn protocol(c: &mut Criterion) {
    let mut g = c.benchmark_group("proto");
    for size in [4096usize, 1 << 20] {
        let req = proto::Request::PutFragment {
            id: proto::FragmentId::from_u128(42),
            data: Bytes::from(vec![3u8; size]),
        };
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("encode_decode_put", size), &req, |b, r| {
            b.iter(|| {
                let mut buf = BytesMut::new();
                proto::encode_request(1, 1, r, &mut buf);
                proto::decode_frame(&mut buf)
                    .expect("valid")
                    .expect("whole")
            });
        });
    }
    g.finish();
}

criterion_group!(benches, crc, erasure, protocol);
criterion_main!(benches);
