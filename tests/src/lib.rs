//! Helpers for percore's end-to-end tests: locating (building if needed) the `percore` binary,
//! starting it on free loopback ports, and stopping it by pid.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `percore` binary of this workspace, next to the test executable's `deps/` folder.
/// Built (or found up to date) once per test process with the test's own profile, so a test of
/// this crate alone never runs a stale binary.
pub fn percore_bin() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    workspace_bin("percore", &BUILD)
}

/// The binary `name` of this workspace, built with the test's own profile the first time
/// `once` runs.
fn workspace_bin(name: &str, once: &std::sync::Once) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    once.call_once(|| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "--bin", name]);
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building {name} failed");
    });
    dir.join(name)
}

/// A base port with `count` free consecutive ports on 127.0.0.1 (checked, then released: a
/// tiny race with other processes is possible and shows up as a clear bind error).
pub fn free_ports(count: u16) -> u16 {
    for _ in 0..200 {
        let probe = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let base = probe.local_addr().expect("addr").port();
        drop(probe);
        if u32::from(base) + u32::from(count) > 65_000 {
            continue;
        }
        let all_free = (0..count).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no {count} consecutive free ports on 127.0.0.1");
}

/// A `percore node` child process; killed (SIGKILL) when dropped if still running.
pub struct NodeProcess {
    pub child: Child,
    pub base: SocketAddr,
}

impl NodeProcess {
    /// Starts `percore node` and waits until it prints `ready` (bounded: 60 s).
    pub fn start(data: &Path, cores: u32, base_port: u16, extra: &[&str]) -> NodeProcess {
        let base = SocketAddr::from(([127, 0, 0, 1], base_port));
        let mut child = Command::new(percore_bin())
            .arg("node")
            .arg("--data")
            .arg(data)
            .args(["--cores", &cores.to_string(), "--listen", &base.to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("percore starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line == "ready" {
                    let _ = tx.send(());
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if rx.recv_timeout(Duration::from_millis(100)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("percore node exited before it was ready: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "percore node not ready within 60 s"
            );
        }
        NodeProcess { child, base }
    }

    pub fn core_addr(&self, core: u16) -> SocketAddr {
        SocketAddr::new(self.base.ip(), self.base.port() + core)
    }

    /// SIGKILL, as a crash.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait (bounded) for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        terminate_child(&mut self.child)
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        kill_if_running(&mut self.child);
    }
}

/// The `percore-loadgen` binary of this workspace, built (or found up to date) once per test
/// process with the test's own profile, like [`percore_bin`].
pub fn loadgen_bin() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    workspace_bin("percore-loadgen", &BUILD)
}

/// A `percore serve` child process (the S3 gateway) on 127.0.0.1; killed (SIGKILL) when dropped
/// if still running, so a failing test never leaves it behind.
pub struct ServeProcess {
    pub child: Child,
    /// `http://127.0.0.1:PORT`, as the server printed it.
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
}

impl ServeProcess {
    /// Starts `percore serve` on an ephemeral loopback port and waits (bounded: 60 s) for the
    /// `endpoint:`/`access_key:`/`secret_key:`/`cores:` lines it prints once it listens.
    /// `PERCORE_BIN` overrides the binary, as in the Python tests (e.g. a release build).
    pub fn start(data: &Path, cores: u32, extra: &[&str]) -> ServeProcess {
        let bin = std::env::var_os("PERCORE_BIN").map_or_else(percore_bin, PathBuf::from);
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0", "--cores", &cores.to_string()])
            .args(extra)
            .env("RUST_LOG", "warn,s3s::ops=off")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("percore serve starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Keeps reading to the end so the server never blocks on a full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some((name, value)) = line.split_once(": ") {
                    let _ = tx.send((name.to_owned(), value.to_owned()));
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut fields = std::collections::HashMap::new();
        while !fields.contains_key("cores") {
            if let Ok((name, value)) = rx.recv_timeout(Duration::from_millis(100)) {
                fields.insert(name, value);
                continue;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("percore serve exited before printing its endpoint: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "percore serve did not start within 60 s"
            );
        }
        let mut field = |name: &str| {
            fields
                .remove(name)
                .unwrap_or_else(|| panic!("percore serve printed no {name}: line"))
        };
        ServeProcess {
            endpoint: field("endpoint"),
            access_key: field("access_key"),
            secret_key: field("secret_key"),
            child,
        }
    }

    /// SIGTERM by pid and wait (bounded: 30 s) for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        terminate_child(&mut self.child)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        kill_if_running(&mut self.child);
    }
}

/// SIGTERM to `child` by its pid, then wait (bounded: 30 s) for its exit; SIGKILL and panic
/// past that.
fn terminate_child(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("percore (pid {pid}) did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGKILL `child` if it still runs (a failing test never leaves a server behind).
fn kill_if_running(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
        let _ = child.wait();
    }
}
