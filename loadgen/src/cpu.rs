//! CPU time of the server processes (`--server-pid`) and of the generator itself over the
//! measured phase, so a run reports what each request cost the server in CPU, not only how fast
//! it came back.
//!
//! A process's CPU time is utime + stime of `/proc/PID/stat` (fields 14 and 15): the kernel sums
//! them over every thread of the process, live or exited, in clock ticks (`sysconf(_SC_CLK_TCK)`,
//! 100 per second on Linux, so 10 ms resolution: fine over a measured phase of seconds, and the
//! report says how many ticks it saw). The generator reads its own time with
//! `getrusage(RUSAGE_SELF)`, in microseconds. Both are read at the start and at the end of the
//! measured phase by the runner; this module only reads and parses, and turns two readings and a
//! request count into per-request figures.

use std::fs;

use serde::Serialize;

/// CPU time of one process, clock ticks of user and system time (all threads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatTimes {
    pub utime_ticks: u64,
    pub stime_ticks: u64,
}

/// Parses `/proc/PID/stat`: the command name (field 2) is in parentheses and may itself hold
/// spaces and parentheses, so the fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<StatTimes> {
    let after_comm = &text[text.rfind(')')? + 1..];
    // After the name come field 3 (state) onwards; utime and stime are fields 14 and 15.
    let mut fields = after_comm.split_ascii_whitespace().skip(14 - 3);
    let utime_ticks = fields.next()?.parse().ok()?;
    let stime_ticks = fields.next()?.parse().ok()?;
    Some(StatTimes {
        utime_ticks,
        stime_ticks,
    })
}

/// The command name of `/proc/PID/stat` (between the first `(` and the last `)`).
pub fn parse_comm(text: &str) -> Option<&str> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    (open < close).then(|| &text[open + 1..close])
}

/// Clock ticks per second of `/proc/PID/stat`.
#[allow(unsafe_code)] // two libc calls with no pointer of ours kept: see the SAFETY notes
pub fn clock_ticks_per_s() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// One reading of a server process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessReading {
    pub comm: String,
    pub times: StatTimes,
}

/// Reads `/proc/PID/stat`; the error says why (no such process, unreadable, unparsable).
pub fn read_process(pid: u32) -> Result<ProcessReading, String> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let times = parse_stat(&text).ok_or_else(|| format!("cannot parse {path}"))?;
    Ok(ProcessReading {
        comm: parse_comm(&text).unwrap_or("?").to_owned(),
        times,
    })
}

/// The generator's own CPU time (user + system, every thread), microseconds.
#[allow(unsafe_code)] // getrusage fills a struct on our stack
pub fn self_cpu_us() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &raw mut usage) != 0 {
            return 0;
        }
        usage
    };
    let us = |t: libc::timeval| {
        u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(t.tv_usec).unwrap_or(0)
    };
    us(usage.ru_utime) + us(usage.ru_stime)
}

/// Readings of every server process and the generator at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub servers: Vec<(u32, Result<ProcessReading, String>)>,
    pub self_us: u64,
}

impl Snapshot {
    pub fn take(pids: &[u32]) -> Snapshot {
        Snapshot {
            servers: pids.iter().map(|&pid| (pid, read_process(pid))).collect(),
            self_us: self_cpu_us(),
        }
    }
}

/// CPU used by one server process over the measured phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessCpu {
    pub pid: u32,
    pub comm: String,
    /// User + system time over the measured phase, seconds (None when a reading failed).
    pub cpu_s: Option<f64>,
    pub user_s: Option<f64>,
    pub system_s: Option<f64>,
    /// Why there is no figure (the process exited, /proc unreadable).
    pub error: Option<String>,
}

/// CPU per request over the measured phase: the servers' and the generator's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuSummary {
    /// Wall time between the two readings, seconds.
    pub wall_s: f64,
    /// Resolution of the server figures: 1 / clock ticks per second.
    pub server_tick_s: f64,
    pub servers: Vec<ProcessCpu>,
    /// Sum over the server processes (None when any reading failed).
    pub server_cpu_s: Option<f64>,
    /// Server CPU time over wall time: 1.0 is one core busy.
    pub server_cores: Option<f64>,
    /// Requests whose intended (open loop) or actual (closed loop) send time fell in the
    /// measured phase, successful or not, over every endpoint.
    pub requests: u64,
    /// Object bytes moved by the successful ones.
    pub bytes: u64,
    pub server_us_per_request: Option<f64>,
    /// Object payload only; None when no bytes moved (DELETE, LIST).
    pub server_us_per_mib: Option<f64>,
    pub loadgen_cpu_s: f64,
    pub loadgen_cores: f64,
    pub loadgen_us_per_request: Option<f64>,
}

/// Turns the readings at the start and end of the measured phase into the summary.
pub fn summarize(
    start: &Snapshot,
    end: &Snapshot,
    wall_s: f64,
    ticks_per_s: u64,
    requests: u64,
    bytes: u64,
) -> CpuSummary {
    let tick_s = 1.0 / ticks_per_s as f64;
    let mut servers = Vec::new();
    let mut total = Some(0.0);
    for ((pid, before), (_, after)) in start.servers.iter().zip(&end.servers) {
        let row = match (before, after) {
            (Ok(b), Ok(a)) => {
                let user = a.times.utime_ticks.saturating_sub(b.times.utime_ticks) as f64 * tick_s;
                let system =
                    a.times.stime_ticks.saturating_sub(b.times.stime_ticks) as f64 * tick_s;
                ProcessCpu {
                    pid: *pid,
                    comm: a.comm.clone(),
                    cpu_s: Some(user + system),
                    user_s: Some(user),
                    system_s: Some(system),
                    error: None,
                }
            }
            (Err(e), _) | (_, Err(e)) => ProcessCpu {
                pid: *pid,
                comm: before
                    .as_ref()
                    .or(after.as_ref())
                    .map_or_else(|_| "?".to_owned(), |r| r.comm.clone()),
                cpu_s: None,
                user_s: None,
                system_s: None,
                error: Some(e.clone()),
            },
        };
        total = match (total, row.cpu_s) {
            (Some(t), Some(c)) => Some(t + c),
            _ => None,
        };
        servers.push(row);
    }
    let server_cpu_s = if servers.is_empty() { None } else { total };
    let per_request = |cpu_s: f64| (requests > 0).then(|| cpu_s * 1e6 / requests as f64);
    let mib = bytes as f64 / 1_048_576.0;
    let loadgen_cpu_s = end.self_us.saturating_sub(start.self_us) as f64 / 1e6;
    let per_s = |cpu_s: f64| if wall_s > 0.0 { cpu_s / wall_s } else { 0.0 };
    CpuSummary {
        wall_s,
        server_tick_s: tick_s,
        servers,
        server_cpu_s,
        server_cores: server_cpu_s.map(per_s),
        requests,
        bytes,
        server_us_per_request: server_cpu_s.and_then(per_request),
        server_us_per_mib: server_cpu_s.filter(|_| bytes > 0).map(|c| c * 1e6 / mib),
        loadgen_cpu_s,
        loadgen_cores: per_s(loadgen_cpu_s),
        loadgen_us_per_request: per_request(loadgen_cpu_s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real line of /proc/PID/stat, with a command name holding spaces and parentheses.
    const SAMPLE: &str = "4242 (percore (core 1)) S 1 4242 4242 0 -1 4194560 123 0 0 0 \
        1500 250 0 0 20 0 3 0 12345 1234567 890 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 \
        17 1 0 0 0 0 0\n";

    #[test]
    fn stat_fields_14_and_15_after_the_name() {
        let times = parse_stat(SAMPLE).unwrap();
        assert_eq!(
            times,
            StatTimes {
                utime_ticks: 1500,
                stime_ticks: 250
            }
        );
        assert_eq!(parse_comm(SAMPLE), Some("percore (core 1)"));
        assert_eq!(parse_stat("4242 (x) S 1 2"), None);
        assert_eq!(parse_stat("no name here"), None);
        assert_eq!(
            parse_stat("1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 2 0"),
            None,
            "a field that is not a number"
        );
    }

    #[allow(clippy::unnecessary_wraps)] // the shape a Snapshot holds
    fn reading(utime: u64, stime: u64) -> Result<ProcessReading, String> {
        Ok(ProcessReading {
            comm: "percore".to_owned(),
            times: StatTimes {
                utime_ticks: utime,
                stime_ticks: stime,
            },
        })
    }

    #[test]
    fn per_request_and_per_mib() {
        let start = Snapshot {
            servers: vec![(1, reading(100, 50)), (2, reading(0, 0))],
            self_us: 1_000_000,
        };
        let end = Snapshot {
            servers: vec![(1, reading(300, 150)), (2, reading(100, 0))],
            self_us: 1_500_000,
        };
        // 2 + 1 + 1 s of server CPU over 10 s, 100 000 requests moving 10 MiB.
        let s = summarize(&start, &end, 10.0, 100, 100_000, 10 * 1_048_576);
        assert!((s.server_cpu_s.unwrap() - 4.0).abs() < 1e-9);
        assert!((s.server_cores.unwrap() - 0.4).abs() < 1e-9);
        assert!((s.server_us_per_request.unwrap() - 40.0).abs() < 1e-9);
        assert!((s.server_us_per_mib.unwrap() - 400_000.0).abs() < 1e-6);
        assert!((s.servers[0].user_s.unwrap() - 2.0).abs() < 1e-9);
        assert!((s.servers[0].system_s.unwrap() - 1.0).abs() < 1e-9);
        assert!((s.loadgen_us_per_request.unwrap() - 5.0).abs() < 1e-9);
        // A process that vanished: no total, the reason kept.
        let gone = Snapshot {
            servers: vec![(1, reading(300, 150)), (2, Err("gone".to_owned()))],
            self_us: 1_500_000,
        };
        let s = summarize(&start, &gone, 10.0, 100, 100_000, 0);
        assert_eq!(s.server_cpu_s, None);
        assert_eq!(s.servers[1].error.as_deref(), Some("gone"));
        assert_eq!(s.server_us_per_mib, None);
    }

    #[test]
    fn a_busy_child_shows_cpu() {
        // A real process burning CPU: its utime + stime must grow.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 3000000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        let pid = child.id();
        let start = Snapshot::take(&[pid]);
        let mut end = None;
        for _ in 0..200 {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let snap = Snapshot::take(&[pid]);
            let s = summarize(&start, &snap, 1.0, clock_ticks_per_s(), 1, 0);
            if s.server_cpu_s.is_some_and(|c| c > 0.0) {
                end = Some(s);
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        let s = end.expect("a busy child shows CPU time within 10 s");
        assert!(s.server_us_per_request.unwrap() > 0.0);
        assert_eq!(s.servers[0].comm, "sh");
        assert!(self_cpu_us() > 0);
        // After it is reaped the pid reads as an error, not a crash.
        assert!(read_process(pid).is_err());
    }
}
