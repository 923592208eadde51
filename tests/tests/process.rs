//! What a running `percore serve` process is, as the kernel sees it.

use tests::ServeProcess;

/// mimalloc asks for transparent huge pages on its memory; percore turns them off for its
/// process at start (`no_huge_pages` in src/main.rs), as a fault in fresh memory then zeroes a
/// whole 2 MiB page inside a core's poll. The kernel says so in the process's status.
#[test]
fn percore_runs_without_transparent_huge_pages() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(&dir.path().join("data"), 1, &[]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("THP_enabled:"))
        .expect("the kernel reports THP_enabled (Linux 5.0 and later)");
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    assert!(server.terminate().success());
}
