//! What a segment roll costs with and without recycled files, on the real disk (O_DIRECT,
//! glommio), through the engine's `Disk` seam: evidence for engine/DESIGN.md ("Recycled
//! segment files"), compared as ratios within one run. Not a test: nothing asserts a time.
//!
//! ```sh
//! cargo run -p engine --example segment_roll            # 8 rolls of 64 MiB segments
//! PERCORE_BENCH_DIR=/mnt/nvme cargo run -p engine --example segment_roll -- 16
//! ```
//!
//! Each roll, as the store does it: open the next segment (`create_segment`: create,
//! fallocate, fdatasync, directory fsync; or `reuse_free`: rename, directory fsync), fill it
//! with 1 MiB writes each followed by an fdatasync (a group commit), and give up the segment
//! two rolls older (`remove_segment`: unlink, directory fsync; or `retire_segment`: rename,
//! directory fsync). Filling matters too: writes into fallocated (unwritten) extents make
//! each fdatasync journal their conversion; a reused file's blocks are already written.

use std::time::{Duration, Instant};

use engine::disk::{Disk, DiskBuf};
use engine::io::GlommioDisk;
use engine::limits::SEGMENT_BYTES_DEFAULT;

const WRITE_BYTES: usize = 1 << 20;

#[derive(Default)]
struct Costs {
    open: Vec<Duration>,
    first_write: Vec<Duration>,
    fill: Vec<Duration>,
    release: Vec<Duration>,
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn max(v: &[Duration]) -> Duration {
    v.iter().copied().max().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Writes the whole segment in 1 MiB writes, each made durable; returns (first, all).
async fn fill(disk: &GlommioDisk, file: &<GlommioDisk as Disk>::File) -> (Duration, Duration) {
    let started = Instant::now();
    let mut first = Duration::ZERO;
    for i in 0..SEGMENT_BYTES_DEFAULT / WRITE_BYTES as u64 {
        let t = Instant::now();
        let mut buf = disk.alloc(WRITE_BYTES);
        buf.as_mut_slice().fill(i as u8 | 1);
        disk.write_at(file, buf, i * WRITE_BYTES as u64)
            .await
            .expect("write");
        disk.sync(file).await.expect("fdatasync");
        if i == 0 {
            first = t.elapsed();
        }
    }
    (first, started.elapsed())
}

async fn rolls(disk: &GlommioDisk, recycle: bool, first_segment: u32, rolls: u32) -> Costs {
    let mut costs = Costs::default();
    let mut free: Vec<u32> = Vec::new();
    for n in 0..rolls + 2 {
        let segment = first_segment + n;
        let t = Instant::now();
        let file = match free.pop() {
            Some(f) if recycle => disk
                .reuse_free(f, segment, SEGMENT_BYTES_DEFAULT)
                .await
                .expect("reuse"),
            _ => disk
                .create_segment(segment, SEGMENT_BYTES_DEFAULT)
                .await
                .expect("create"),
        };
        let open = t.elapsed();
        let (first, all) = fill(disk, &file).await;
        let t = Instant::now();
        if n >= 2 {
            let old = segment - 2;
            if recycle {
                disk.retire_segment(old).await.expect("retire");
                free.insert(0, old);
            } else {
                disk.remove_segment(old).await.expect("remove");
            }
        }
        let release = t.elapsed();
        // The first two rolls only make the files the others reuse or delete.
        if n >= 2 {
            costs.open.push(open);
            costs.first_write.push(first);
            costs.fill.push(all);
            costs.release.push(release);
        }
    }
    for seg in first_segment + rolls..first_segment + rolls + 2 {
        disk.remove_segment(seg).await.expect("cleanup");
    }
    for f in free {
        disk.remove_free(f).await.expect("cleanup");
    }
    costs
}

fn report(name: &str, c: &Costs) {
    println!(
        "{name:>9}: open {:>7.2} ms (max {:>7.2}) | first 1 MiB write+fdatasync {:>6.2} ms \
         (max {:>6.2}) | fill 64 MiB {:>7.1} ms (max {:>7.1}) | release {:>6.2} ms (max {:>6.2})",
        ms(median(&c.open)),
        ms(max(&c.open)),
        ms(median(&c.first_write)),
        ms(max(&c.first_write)),
        ms(median(&c.fill)),
        ms(max(&c.fill)),
        ms(median(&c.release)),
        ms(max(&c.release)),
    );
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .map_or(8, |a| a.parse().expect("rolls: a number"));
    let base = std::env::var_os("PERCORE_BENCH_DIR").map_or("/var/tmp".into(), Into::into);
    let tmp = tempfile::tempdir_in::<std::path::PathBuf>(base).expect("temp dir");
    let dir = tmp.path().join("core-0");
    let _partition =
        engine::partition::open_partition(&dir, 1, 0, SEGMENT_BYTES_DEFAULT).expect("partition");
    glommio::LocalExecutorBuilder::default()
        .io_memory(4 << 20)
        .spawn(move || async move {
            let q = glommio::executor().create_task_queue(
                glommio::Shares::Static(10),
                glommio::Latency::NotImportant,
                "bg",
            );
            let disk = GlommioDisk::open(&dir, q).await.expect("disk");
            println!(
                "{n} rolls of {} MiB segments in {}",
                SEGMENT_BYTES_DEFAULT >> 20,
                dir.display()
            );
            // Alternating, so both see the same device and page-cache weather.
            let mut fresh = Costs::default();
            let mut recycled = Costs::default();
            for round in 0..2u32 {
                let c = rolls(&disk, false, 1 + round * 1000, n / 2).await;
                merge(&mut fresh, c);
                let c = rolls(&disk, true, 500 + round * 1000, n / 2).await;
                merge(&mut recycled, c);
            }
            report("fresh", &fresh);
            report("recycled", &recycled);
            let roll = |c: &Costs| median(&c.open) + median(&c.release) + median(&c.first_write);
            println!(
                "roll (open + release + first write), medians: fresh / recycled = {:.1}x",
                roll(&fresh).as_secs_f64() / roll(&recycled).as_secs_f64()
            );
        })
        .expect("executor")
        .join()
        .expect("run");
}

fn merge(into: &mut Costs, c: Costs) {
    into.open.extend(c.open);
    into.first_write.extend(c.first_write);
    into.fill.extend(c.fill);
    into.release.extend(c.release);
}
