//! End to end: `percore-loadgen` against a real `percore serve` on 127.0.0.1.
//!
//! A few seconds of load in each mode the tool has (prepare + open-loop GET, compare mode,
//! mixed closed loop, a targets miss, cleanup), checking exit codes and the reports. It asserts
//! no time: only that requests were measured, none failed, and the reports are well formed.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use tests::{loadgen_bin, ServeProcess};

/// One loadgen run with the server's endpoint and credentials plus `extra`.
fn loadgen(server: &ServeProcess, endpoints: usize, extra: &[&str]) -> Output {
    let mut cmd = Command::new(loadgen_bin());
    for _ in 0..endpoints {
        cmd.args(["--endpoint", &server.endpoint]);
    }
    cmd.args(["--access-key", &server.access_key])
        .args(["--secret-key", &server.secret_key])
        .args(["--bucket", "loadgen-e2e", "--keys", "100", "--quiet"])
        .args(["--timeout", "20s", "--threads", "2"])
        .args(extra)
        // Never pick up credentials from the environment of whoever runs the tests.
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let output = cmd.output().expect("percore-loadgen runs");
    eprintln!(
        "percore-loadgen {extra:?}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn exit_code(output: &Output) -> i32 {
    output
        .status
        .code()
        .expect("percore-loadgen exited, not killed")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("JSON report written");
    serde_json::from_str(&text).expect("JSON report parses")
}

/// Every endpoint measured requests and none failed; returns the ops measured on the first.
fn assert_clean(report: &Value, endpoints: usize) -> Vec<String> {
    let list = report["endpoints"].as_array().expect("endpoints");
    assert_eq!(list.len(), endpoints);
    for endpoint in list {
        assert!(endpoint["ok"].as_u64().expect("ok") > 0, "{endpoint}");
        assert_eq!(endpoint["errors"].as_u64(), Some(0), "{endpoint}");
        for op in endpoint["ops"].as_array().expect("ops") {
            assert!(op["latency"]["p99_us"].as_u64().expect("p99") > 0, "{op}");
        }
    }
    assert_eq!(report["outcome"]["exit_code"].as_i64(), Some(0));
    list[0]["ops"]
        .as_array()
        .expect("ops")
        .iter()
        .map(|op| op["op"].as_str().expect("op name").to_owned())
        .collect()
}

#[test]
fn loadgen_against_percore_serve() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServeProcess::start(&dir.path().join("data"), 2, &[]);
    let out = |name: &str| dir.path().join(name);
    let path = |name: &str| out(name).to_str().expect("utf-8 temp path").to_owned();

    // Prepare the key set, then GET it open loop at a modest rate.
    let run = loadgen(
        &server,
        1,
        &[
            "--prepare",
            "--workload",
            "get",
            "--size",
            "4KiB",
            "--rate",
            "200",
            "--warmup",
            "500ms",
            "--duration",
            "2s",
            "--json",
            &path("get.json"),
            "--html",
            &path("get.html"),
        ],
    );
    assert_eq!(exit_code(&run), 0);
    let report = read_json(&out("get.json"));
    assert_eq!(assert_clean(&report, 1), ["get"]);
    assert_eq!(report["settings"]["mode"]["kind"], "open_loop");
    assert!(report["endpoints"][0]["ops"][0]["ttfb"]["p99_us"].as_u64() > Some(0));
    let html = std::fs::read_to_string(out("get.html")).expect("HTML report written");
    assert!(html.contains("<svg"));
    assert!(
        !html.contains(&server.secret_key),
        "secret in the HTML report"
    );
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(text.contains("p99 ms") && text.contains("exit 0"), "{text}");

    // Compare mode with the same endpoint twice: both measured, a ratio row for GET.
    let run = loadgen(
        &server,
        2,
        &[
            "--workload",
            "get",
            "--rate",
            "100",
            "--warmup",
            "0s",
            "--duration",
            "1s",
            "--slice",
            "250ms",
            "--json",
            &path("compare.json"),
        ],
    );
    assert_eq!(exit_code(&run), 0);
    let report = read_json(&out("compare.json"));
    assert_clean(&report, 2);
    assert_eq!(report["compare"][0]["op"], "get");
    assert!(report["compare"][0]["ops_per_s"].as_f64().is_some());

    // A mixed closed-loop run: deletes use their own keys, so GETs never miss.
    let run = loadgen(
        &server,
        1,
        &[
            "--workload",
            "get=70,put=20,delete=5,list=5",
            "--concurrency",
            "4",
            "--warmup",
            "0s",
            "--duration",
            "2s",
            "--json",
            &path("mixed.json"),
        ],
    );
    assert_eq!(exit_code(&run), 0);
    let report = read_json(&out("mixed.json"));
    let ops = assert_clean(&report, 1);
    assert!(
        ops.contains(&"get".to_owned()) && ops.contains(&"put".to_owned()),
        "{ops:?}"
    );
    assert_eq!(report["settings"]["mode"]["kind"], "closed_loop");

    // An impossible target: exit 1, and the verdict is in the report.
    let targets = out("targets.toml");
    std::fs::write(
        &targets,
        "[[target]]\nop = \"put\"\nmax_p50_ms = 0.000001\n",
    )
    .expect("write targets");
    let run = loadgen(
        &server,
        1,
        &[
            "--workload",
            "put",
            "--concurrency",
            "2",
            "--warmup",
            "0s",
            "--duration",
            "500ms",
            "--targets",
            targets.to_str().expect("utf-8 temp path"),
            "--json",
            &path("targets.json"),
        ],
    );
    assert_eq!(exit_code(&run), 1);
    let report = read_json(&out("targets.json"));
    assert_eq!(report["targets"][0]["verdict"], "fail");
    assert_eq!(report["outcome"]["exit_code"].as_i64(), Some(1));

    // A usage error is 2, and sends nothing.
    assert_eq!(exit_code(&loadgen(&server, 1, &["--rate", "0"])), 2);

    // Cleanup: every key deleted, then the (now empty) bucket.
    let run = loadgen(&server, 1, &["--no-run", "--cleanup", "--delete-bucket"]);
    assert_eq!(exit_code(&run), 0);

    assert!(server.terminate().success(), "percore serve stops cleanly");
}
