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
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    BUILD.call_once(|| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "--bin", "percore"]);
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building percore failed");
    });
    dir.join("percore")
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
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("percore did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
