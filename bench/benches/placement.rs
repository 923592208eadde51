//! Placement benchmarks: the per-object lookup (PG hash, policy, table row and its spread) on a
//! 1000-core layout with P = 4096, and the cost of a layout change on a 100-node cluster: building
//! the new layout's stateless tables, rebalancing the stored tables of the old version into the
//! new one (`percore layout apply`), encoding and decoding the state file, and diffing two
//! versions into a movement plan.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use placement::{plan, Layout, LayoutFile, State};

/// `nodes` nodes of `cores` nvme cores, spread round-robin over `zones` zones.
fn cluster(zones: usize, nodes: usize, cores: u16) -> LayoutFile {
    let mut f = LayoutFile::single_node(cores, "10.0.0.1", 7100);
    let template = f.nodes.remove(0);
    for n in 0..nodes {
        let mut node = template.clone();
        node.id = n as u64 + 1;
        node.address = format!("10.0.{}.{}", n / 250, n % 250 + 1);
        node.zone = format!("z{}", n % zones);
        f.nodes.push(node);
    }
    f
}

fn lookup(c: &mut Criterion) {
    let layout = Layout::from_file(&cluster(5, 100, 10)).expect("valid layout");
    assert_eq!(
        (layout.cores().len(), layout.placement_groups()),
        (1000, 4096)
    );
    let keys: Vec<String> = (0..1024)
        .map(|i| format!("photos/2024/{i:06}.jpg"))
        .collect();
    let mut g = c.benchmark_group("placement_lookup_1000_cores");
    g.bench_function("pg_of", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 1023;
            layout.pg_of(b"bucket", keys[i].as_bytes())
        });
    });
    g.bench_function("pg_policy_cores_ec_4_2", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 1023;
            let pg = layout.pg_of(b"bucket", keys[i].as_bytes());
            let policy = layout.policy_for("STANDARD", 1 << 20).expect("class");
            layout.cores_for(pg, &policy).expect("placed").cores[0]
        });
    });
    g.finish();
}

fn change(c: &mut Criterion) {
    // 100 nodes of 8 cores in 5 zones; the change adds a 101st node.
    let old_file = cluster(5, 100, 8);
    let mut new_file = cluster(5, 101, 8);
    new_file.version = 2;
    let old = Layout::from_file(&old_file).expect("valid layout");
    let new = Layout::from_file(&new_file).expect("valid layout");
    let mut g = c.benchmark_group("placement_change_100_nodes");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("build_layout_808_cores", |b| {
        b.iter_batched(
            || new_file.clone(),
            |f| Layout::from_file(&f),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("plan_diff", |b| {
        b.iter(|| plan(&old, &new).expect("plan").moves.len());
    });
    let old_state = old.state();
    g.bench_function("rebalance_add_node_808_cores", |b| {
        b.iter(|| {
            Layout::from_file_and_state(&new_file, Some(&old_state))
                .expect("valid layout")
                .version()
        });
    });
    let bytes = old_state.encode();
    g.bench_function("state_encode", |b| b.iter(|| old_state.encode().len()));
    g.bench_function("state_decode", |b| {
        b.iter(|| State::decode(&bytes).expect("valid state").placement_groups);
    });
    g.finish();
}

criterion_group!(benches, lookup, change);
criterion_main!(benches);
