//! `percore layout check|show|diff|apply` as an operator runs them: the real binary on layout
//! files in a temp dir. The placement logic itself is tested in `placement/tests/`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

use tests::percore_bin;

fn layout(version: u32, nodes: &[(u32, &str)]) -> String {
    // 256 PGs keep the debug-build rebalance short; the figures at 4096 are placement's.
    let mut text = format!("format = 1\nversion = {version}\nplacement_groups = 256\n");
    for (id, zone) in nodes {
        let _ = write!(
            text,
            "[[node]]\nid = {id}\naddress = \"127.0.0.1\"\nbase_port = {}\nzone = \"{zone}\"\n\
             cores = 4\n",
            7000 + id * 100
        );
    }
    text
}

fn percore(args: &[&str]) -> Output {
    Command::new(percore_bin())
        .args(["layout"])
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("percore runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().expect("utf-8 temp path").to_owned()
}

#[test]
fn check_show_apply_and_refusals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (v1, v2, state) = (
        path(dir.path(), "v1.toml"),
        path(dir.path(), "v2.toml"),
        path(dir.path(), "cluster.table"),
    );
    std::fs::write(&v1, layout(1, &[(1, "a"), (2, "b"), (3, "c")])).expect("write");
    std::fs::write(&v2, layout(2, &[(1, "a"), (2, "b"), (3, "c"), (4, "a")])).expect("write");

    let check = percore(&["check", &v1]);
    assert!(check.status.success(), "{}", text(&check));
    assert!(
        text(&check).contains("3 zones, 3 nodes, 12 cores"),
        "{}",
        text(&check)
    );

    // With three zones, the first three fragments of a PG are in three different zones.
    let show = percore(&["show", &v1, "--bucket", "photos", "--key", "cat.jpg"]);
    assert!(show.status.success(), "{}", text(&show));
    let zones: Vec<String> = text(&show)
        .lines()
        .filter(|l| l.trim_start().starts_with("fragment "))
        .take(3)
        .filter_map(|l| l.rsplit_once("zone ").map(|(_, z)| z.trim().to_owned()))
        .collect();
    assert_eq!(zones.len(), 3, "{}", text(&show));
    assert!(zones[0] != zones[1] && zones[1] != zones[2] && zones[0] != zones[2]);

    let first = percore(&["apply", "--state", &state, &v1, "--limit", "0"]);
    assert!(first.status.success(), "{}", text(&first));
    let written = std::fs::read(&state).expect("state written");

    // A dry run prints the plan and leaves the state alone.
    let dry = percore(&["apply", "--state", &state, &v2, "--dry-run", "--limit", "0"]);
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(text(&dry).contains("layout 1 -> 2"), "{}", text(&dry));
    assert_eq!(std::fs::read(&state).expect("state"), written);

    let second = percore(&["apply", "--state", &state, &v2, "--limit", "0"]);
    assert!(second.status.success(), "{}", text(&second));
    assert_ne!(std::fs::read(&state).expect("state"), written);

    // Going back to an older version is refused, and the state is kept.
    let back = percore(&["apply", "--state", &state, &v1]);
    assert!(!back.status.success());
    assert!(text(&back).contains("newer"), "{}", text(&back));

    // A damaged state file is refused by name, never used.
    let mut damaged = std::fs::read(&state).expect("state");
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    let bad_state = path(dir.path(), "damaged.table");
    std::fs::write(&bad_state, damaged).expect("write");
    let refused = percore(&["diff", &bad_state, &v2]);
    assert!(!refused.status.success(), "{}", text(&refused));

    std::fs::write(&v1, "format = 1\nversion = 1\n").expect("write");
    let empty = percore(&["check", &v1]);
    assert!(!empty.status.success(), "{}", text(&empty));
}
