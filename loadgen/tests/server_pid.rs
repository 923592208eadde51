//! End to end: `percore-loadgen --server-pid` charges a real busy process's CPU to the requests.
//!
//! The endpoint is a tiny HTTP/1.1 server in this test (every GET answers 4 KiB, kept alive),
//! the "server" process a shell loop burning CPU. Asserts no timing: only that the run measured
//! requests, that the busy process shows CPU time in the JSON report, and that a pid that does
//! not exist is a configuration error (exit 2).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command};

const BODY_BYTES: usize = 4096;

/// Answers every request on one connection with a 4 KiB body until the client closes it.
fn serve_connection(stream: TcpStream) {
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut writer = write_half;
    let body = vec![b'x'; BODY_BYTES];
    loop {
        // Read the request head; GETs carry no body.
        let mut line = String::new();
        let mut got_any = false;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" && got_any {
                break;
            }
            got_any = true;
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {BODY_BYTES}\r\nContent-Type: application/octet-stream\r\n\r\n"
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&body).is_err() {
            return;
        }
    }
}

fn start_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve_connection(stream));
        }
    });
    format!("http://{addr}")
}

struct Busy(Child);

impl Drop for Busy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn loadgen(endpoint: &str, pid: &str, json: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_percore-loadgen"))
        .args([
            "--endpoint",
            endpoint,
            "--access-key",
            "ak",
            "--secret-key",
            "sk",
        ])
        .args(["--keys", "10", "--size", "4KiB", "--verify", "length"])
        .args(["--rate", "200", "--warmup", "200ms", "--duration", "2s"])
        .args(["--threads", "2", "--quiet", "--server-pid", pid])
        .arg("--json")
        .arg(json)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .expect("percore-loadgen runs")
}

#[test]
fn server_pid_reports_a_busy_process_cpu() {
    let endpoint = start_server();
    // Busy for far longer than the run; killed on drop.
    let busy = Busy(
        Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("sh runs"),
    );
    let dir = std::env::temp_dir().join(format!("loadgen-server-pid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("run.json");
    let output = loadgen(&endpoint, &busy.0.id().to_string(), &json);
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout.contains("µs/request"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("JSON written"))
            .expect("JSON parses");
    let cpu = &report["cpu"];
    assert!(cpu["requests"].as_u64().expect("requests") > 0, "{cpu}");
    assert_eq!(
        cpu["servers"][0]["pid"].as_u64(),
        Some(u64::from(busy.0.id()))
    );
    assert!(
        cpu["server_cpu_s"].as_f64().expect("server cpu") > 0.0,
        "{cpu}"
    );
    assert!(cpu["server_us_per_request"].as_f64().expect("per request") > 0.0);
    assert!(cpu["server_us_per_mib"].as_f64().expect("per MiB") > 0.0);
    assert!(cpu["loadgen_cpu_s"].as_f64().expect("loadgen cpu") > 0.0);
    assert_eq!(report["endpoints"][0]["errors"].as_u64(), Some(0));
    drop(busy);

    // A pid that is not a process: refused before the run.
    let output = loadgen(&endpoint, "4000000000", &json);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--server-pid 4000000000"));
    let _ = std::fs::remove_dir_all(&dir);
}
