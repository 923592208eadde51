//! The crate graph, enforced: dependencies between workspace crates point down the layers
//! (ARCHITECTURE.md), never up, and the pure and standalone crates stay so. Read from
//! `cargo metadata`, so a `Cargo.toml` edit that breaks a rule fails here, whatever the code
//! does with the dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Each workspace crate and the workspace crates it may depend on (normal and build
/// dependencies; dev-dependencies are the tests' own business and are not counted).
/// `bench` and `tests` measure and drive everything, so they may use any crate.
const ALLOWED: &[(&str, &[&str])] = &[
    ("proto", &[]),
    ("lmdb-check", &[]),
    ("placement", &[]),
    ("policy", &[]),
    ("engine", &["lmdb-check", "proto"]),
    ("cluster", &["engine", "placement", "proto"]),
    ("control", &["lmdb-check", "placement", "policy"]),
    ("objects", &["cluster", "placement", "proto"]),
    (
        "s3api",
        &["cluster", "objects", "placement", "policy", "proto"],
    ),
    (
        "percore",
        &[
            "cluster",
            "control",
            "engine",
            "s3api",
            "objects",
            "placement",
            "proto",
        ],
    ),
    ("loadgen", &[]),
    ("tuning", &[]),
    (
        "bench",
        &[
            "cluster",
            "engine",
            "s3api",
            "objects",
            "placement",
            "proto",
        ],
    ),
    ("tests", &[]),
];

/// Crates that must not pull in an HTTP or S3 stack, nor an async runtime where they are pure.
const FORBIDDEN_EXTERNAL: &[(&str, &[&str])] = &[
    ("engine", &["s3s", "hyper", "tokio"]),
    ("cluster", &["s3s", "hyper", "glommio", "heed"]),
    ("objects", &["s3s", "hyper", "http", "glommio", "heed"]),
    ("proto", &["s3s", "hyper", "glommio", "heed"]),
    ("placement", &["s3s", "hyper", "tokio", "glommio", "heed"]),
    ("control", &["s3s", "hyper", "glommio"]),
    ("policy", &["s3s", "hyper", "tokio", "glommio", "heed"]),
    // Sans-I/O: pages come from a callback; no LMDB binding either.
    ("lmdb-check", &["s3s", "hyper", "tokio", "glommio", "heed"]),
];

struct Graph {
    /// crate → (dependency name, kind) for every declared dependency.
    deps: BTreeMap<String, Vec<(String, Option<String>)>>,
}

fn graph() -> Graph {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--locked"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let mut deps = BTreeMap::new();
    for package in meta["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().expect("name").to_owned();
        let list = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .map(|d| {
                (
                    d["name"].as_str().expect("dependency name").to_owned(),
                    d["kind"].as_str().map(str::to_owned),
                )
            })
            .collect();
        deps.insert(name, list);
    }
    Graph { deps }
}

/// Every edge between workspace crates that ALLOWED does not list. Panics on a member missing
/// from ALLOWED: a new crate must say where it sits.
fn upward_edges(graph: &Graph) -> Vec<String> {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(c, deps)| (*c, deps.iter().copied().collect()))
        .collect();
    let members: BTreeSet<&str> = graph.deps.keys().map(String::as_str).collect();
    let mut violations = Vec::new();
    for (krate, deps) in &graph.deps {
        let Some(may) = allowed.get(krate.as_str()) else {
            panic!("crate {krate} is not in ALLOWED: say where it sits in the layers");
        };
        for (dep, kind) in deps {
            let internal = members.contains(dep.as_str());
            if internal && kind.as_deref() != Some("dev") && !may.contains(dep.as_str()) {
                violations.push(format!("{krate} -> {dep}"));
            }
        }
    }
    violations
}

#[test]
fn workspace_dependencies_point_down() {
    let violations = upward_edges(&graph());
    assert!(
        violations.is_empty(),
        "dependencies against the layers: {violations:?}"
    );
}

#[test]
fn pure_crates_stay_pure() {
    let graph = graph();
    let mut violations = Vec::new();
    for (krate, forbidden) in FORBIDDEN_EXTERNAL {
        for (dep, kind) in &graph.deps[*krate] {
            if kind.as_deref() != Some("dev") && forbidden.contains(&dep.as_str()) {
                violations.push(format!("{krate} -> {dep}"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "forbidden dependencies: {violations:?}"
    );
}

#[test]
fn the_rules_catch_an_upward_edge() {
    // The check itself can fail: an engine that named the S3 API, or placement the engine,
    // would be reported (a dev-dependency would not).
    let mut graph = graph();
    let engine = graph.deps.get_mut("engine").expect("engine is a member");
    engine.push(("s3api".to_owned(), None));
    engine.push(("placement".to_owned(), Some("dev".to_owned())));
    let placement = graph
        .deps
        .get_mut("placement")
        .expect("placement is a member");
    placement.push(("engine".to_owned(), Some("build".to_owned())));
    assert_eq!(
        upward_edges(&graph),
        ["engine -> s3api", "placement -> engine"]
    );
}
