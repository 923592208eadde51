//! Server-side encryption's package sealing (`objects::seal`: AES-256-GCM per 64 KiB package,
//! nonce and AAD per package) next to raw AES-256-GCM over the same bytes in one call: the
//! difference is what cutting into packages costs (a tag, a nonce and a cipher call each). And
//! the per-object cost SSE-S3 adds to that: wrapping a data key under the master key (each PUT)
//! and unwrapping it (each GET and HEAD), `objects::keywrap`.

use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use objects::seal;

fn body(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 + i / 251) as u8).collect()
}

fn sealing(c: &mut Criterion) {
    let mut g = c.benchmark_group("seal");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    let key = seal::DataKey::random();
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.key));
    let nonce = Nonce::from_slice(&key.nonce_base);
    for size in [64usize << 10, 1 << 20, 8 << 20] {
        let plain = body(size);
        let label = format!("{}KiB", size >> 10);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::new("seal", &label), |b| {
            b.iter(|| seal::seal(&key, &plain));
        });
        let stored = seal::seal(&key, &plain);
        g.bench_function(BenchmarkId::new("open", &label), |b| {
            b.iter(|| seal::open(&key, &stored).expect("open"));
        });
        g.bench_function(BenchmarkId::new("raw_encrypt", &label), |b| {
            b.iter(|| cipher.encrypt(nonce, plain.as_slice()).expect("encrypt"));
        });
        let sealed = cipher.encrypt(nonce, plain.as_slice()).expect("encrypt");
        g.bench_function(BenchmarkId::new("raw_decrypt", &label), |b| {
            b.iter(|| cipher.decrypt(nonce, sealed.as_slice()).expect("decrypt"));
        });
    }
    g.finish();
}

fn wrapping(c: &mut Criterion) {
    let mut g = c.benchmark_group("keywrap");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    let master = [7u8; objects::keywrap::KEK_BYTES];
    let data_key = seal::DataKey::random();
    g.bench_function("wrap", |b| {
        b.iter(|| objects::keywrap::WrappedKey::wrap(&master, &data_key));
    });
    let wrapped = objects::keywrap::WrappedKey::wrap(&master, &data_key);
    g.bench_function("unwrap", |b| {
        b.iter(|| wrapped.unwrap(&master).expect("unwrap"));
    });
    g.finish();
}

criterion_group!(benches, sealing, wrapping);
criterion_main!(benches);
