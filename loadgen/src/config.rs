//! Command-line arguments, their checks, and the resolved plan of a run.
//!
//! Owns turning what the user typed into [`Settings`] (every setting, serialisable for the
//! reports, no secrets) and a [`Plan`] (the same plus the live objects: endpoints with their
//! signers, the op mix, the key set). Every bound comes from `limits`. It does no I/O except
//! reading the targets file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde::Serialize;

use crate::error::ConfigError;
use crate::limits;
use crate::s3::{Endpoint, PayloadSigning};
use crate::sigv4::{Credentials, Signer};
use crate::targets::TargetsFile;
use crate::units::{format_size_bytes, parse_duration, parse_size_bytes};
use crate::workload::{KeyDist, KeyPicker, KeySpace, OpMix, SizeDist};

/// The exit codes, as `--help` shows them.
const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  the run completed and met every target
  1  a target of --targets was missed
  2  usage or configuration error (bad flag, bad targets file, report file not writable)
  3  the run failed: prepare failed, errors above --max-error-ratio, or a report could not be
     written

Examples:
  percore-loadgen --endpoint http://127.0.0.1:9000 --access-key AK --secret-key SK \\
      --prepare --workload get --size 4KiB --rate 5000 --duration 30s --json run.json
  percore-loadgen --endpoint http://A --endpoint http://B --access-key AK --secret-key SK \\
      --workload get=70,put=20,delete=5,list=5 --concurrency 32 --html compare.html";

/// percore-loadgen: an open-loop, coordinated-omission-correct S3 load generator.
///
/// Open loop (--rate) schedules requests at fixed intervals and measures latency from each
/// request's intended send time; closed loop (--concurrency) keeps C requests in flight and
/// measures from the actual send. Give --endpoint twice to compare two endpoints in one run.
#[derive(Debug, Parser)]
#[command(name = "percore-loadgen", version, after_help = EXIT_CODES_HELP)]
#[allow(clippy::struct_excessive_bools)] // command-line switches are bools
pub struct Args {
    /// S3 endpoint, http://host:port or https://host:port. Give it twice (A, then B) for
    /// compare mode.
    #[arg(long = "endpoint", required = true, value_name = "URL")]
    pub endpoints: Vec<String>,
    /// Access key id; once for all endpoints or once per endpoint, in --endpoint order.
    #[arg(long = "access-key", env = "AWS_ACCESS_KEY_ID", value_name = "ID")]
    pub access_keys: Vec<String>,
    /// Secret access key; once for all endpoints or once per endpoint.
    #[arg(
        long = "secret-key",
        env = "AWS_SECRET_ACCESS_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub secret_keys: Vec<String>,
    /// SigV4 region.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// HTTPS: trust the CA certificates in FILE (PEM) instead of the system's, e.g. the CA
    /// of a self-signed test endpoint.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Bucket to use (created by --prepare).
    #[arg(long, default_value = "percore-loadgen")]
    pub bucket: String,
    /// Key prefix; key i is {prefix}{size}-s{seed}/{i:010}, so runs with other sizes or seeds
    /// use other keys.
    #[arg(long, default_value = "loadgen/")]
    pub prefix: String,
    /// Op mix: one of get, put, delete, list, multipart, or weights such as
    /// get=70,put=20,delete=5,list=5.
    #[arg(long, default_value = "get", value_name = "MIX")]
    pub workload: String,
    /// Object size: 4KiB, uniform:1KiB..64KiB, or lognormal:MEDIAN,SIGMA[,MAX].
    #[arg(long, default_value = "4KiB")]
    pub size: String,
    /// Number of distinct keys in the key set.
    #[arg(long, default_value_t = 1000)]
    pub keys: u64,
    /// Key popularity: uniform or zipf[:EXPONENT].
    #[arg(long, default_value = "uniform")]
    pub key_dist: String,
    /// Seed for key sizes, payload bytes and the op/key sequence.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Open loop: requests per second. In compare mode the endpoint whose slice it is gets
    /// them all, so each endpoint sees this rate during its turns.
    #[arg(long, conflicts_with = "concurrency")]
    pub rate: Option<f64>,
    /// Closed loop: requests kept in flight (default 16 when --rate is not given).
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Open loop: most requests in flight; a due request waits for a slot and counts as
    /// delayed, still timed from its intended send time.
    #[arg(long, default_value_t = 1024)]
    pub max_inflight: u32,
    /// Open loop: spin (yield) through the last 60 µs before each due time instead of sleeping
    /// to it. Removes the timer's ~50 µs overshoot from the send lag but keeps a CPU busy: use
    /// it when the generator has cores to spare.
    #[arg(long, requires = "rate")]
    pub pacer_spin: bool,
    /// Warm-up before measuring (run but not counted).
    #[arg(long, default_value = "5s")]
    pub warmup: String,
    /// Measured duration.
    #[arg(long, default_value = "30s")]
    pub duration: String,
    /// Compare mode: length of each endpoint's turn.
    #[arg(long, default_value = "1s")]
    pub slice: String,
    /// Per-request timeout.
    #[arg(long, default_value = "30s")]
    pub timeout: String,
    /// GET body checks: auto (bytes compared for objects up to 1 MiB, length always), full
    /// (bytes of every object), length (length only).
    #[arg(long, value_enum, default_value = "auto")]
    pub verify: VerifyMode,
    /// Before the run: create the bucket and PUT every key of the key set.
    #[arg(long)]
    pub prepare: bool,
    /// Requests in flight during prepare and cleanup.
    #[arg(long, default_value_t = 32)]
    pub prepare_concurrency: u32,
    /// After the run: delete every key of the key set.
    #[arg(long)]
    pub cleanup: bool,
    /// With --cleanup: delete the bucket too.
    #[arg(long, requires = "cleanup")]
    pub delete_bucket: bool,
    /// Skip the measured run (prepare and/or cleanup only).
    #[arg(long, conflicts_with_all = ["json", "html", "targets"])]
    pub no_run: bool,
    /// Write every key of the key set as the file DIR/BUCKET/KEY, with the bytes a PUT sends,
    /// and exit: a static file server rooted at DIR then serves the same GETs, bytes checked
    /// (an HTTP ceiling to measure against with the same generator).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["prepare", "cleanup", "no_run", "json", "html", "targets"])]
    pub write_files: Option<std::path::PathBuf>,
    /// Multipart part size (at least 5MiB).
    #[arg(long, default_value = "8MiB")]
    pub part_size: String,
    /// Keys per list request.
    #[arg(long, default_value_t = 1000)]
    pub list_max_keys: u32,
    /// Payload hash in the signature: unsigned (UNSIGNED-PAYLOAD) or sha256.
    #[arg(long, value_enum, default_value = "unsigned")]
    pub payload_signing: PayloadSigning,
    /// Runtime worker threads (default: available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Exit with code 3 when errors exceed this share of an endpoint's requests.
    #[arg(long, default_value_t = 0.01)]
    pub max_error_ratio: f64,
    /// Targets file (TOML); a miss makes the exit code 1.
    #[arg(long, value_name = "FILE")]
    pub targets: Option<PathBuf>,
    /// Write every setting and figure as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report with SVG charts.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Interval of plain progress lines when stderr is not a terminal.
    #[arg(long, default_value = "5s")]
    pub progress_interval: String,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
    /// A label for this run in the reports.
    #[arg(long)]
    pub label: Option<String>,
    /// Server process to charge CPU time to (repeat it or separate with commas for a cluster):
    /// its utime + stime over the measured phase is reported as server CPU µs per request.
    #[arg(long = "server-pid", value_name = "PID", value_delimiter = ',')]
    pub server_pids: Vec<u32>,
}

/// How GET bodies are checked against the bytes the key was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// Bytes compared up to `limits::VERIFY_AUTO_BYTES_MAX` (a memcmp, cheap next to the
    /// network copy); above that the length only.
    Auto,
    /// Bytes compared for every object.
    Full,
    /// The length only.
    Length,
}

impl VerifyMode {
    /// Whether a GET of `size_bytes` compares bytes.
    pub fn compares_bytes(self, size_bytes: u64) -> bool {
        match self {
            VerifyMode::Auto => size_bytes <= limits::VERIFY_AUTO_BYTES_MAX,
            VerifyMode::Full => true,
            VerifyMode::Length => false,
        }
    }
}

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mode {
    OpenLoop { rate_per_s: f64, inflight_max: u32 },
    ClosedLoop { concurrency: u32 },
}

/// One endpoint as the reports show it (no secret).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointSettings {
    pub name: String,
    pub url: String,
    pub access_key_id: String,
}

/// Every setting of a run, as recorded in the reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(clippy::struct_excessive_bools)] // the switches of `Args`, recorded as given
pub struct Settings {
    pub label: Option<String>,
    pub endpoints: Vec<EndpointSettings>,
    pub region: String,
    /// `--ca-file`: the CAs trusted for https:// endpoints (none: the system's).
    pub ca_file: Option<PathBuf>,
    pub bucket: String,
    /// The key set's prefix, seed included.
    pub key_prefix: String,
    pub workload: String,
    pub size: SizeDist,
    pub size_text: String,
    pub keys: u64,
    pub key_dist: KeyDist,
    pub seed: u64,
    pub mode: Mode,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub slice_ms: u64,
    pub timeout_s: f64,
    pub verify: VerifyMode,
    pub pacer_spin: bool,
    pub prepare: bool,
    pub prepare_concurrency: u32,
    pub cleanup: bool,
    pub delete_bucket: bool,
    pub run: bool,
    pub part_size_bytes: u64,
    pub list_keys_max: u32,
    pub payload_signing: PayloadSigning,
    pub threads: usize,
    pub max_error_ratio: f64,
    pub targets: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub html: Option<PathBuf>,
    pub progress_interval_s: f64,
    pub quiet: bool,
    /// `--server-pid`: processes whose CPU time the report charges per request.
    pub server_pids: Vec<u32>,
}

/// The settings plus the objects a run needs.
#[derive(Debug, Clone)]
pub struct Plan {
    pub settings: Settings,
    pub endpoints: Vec<Endpoint>,
    /// The TLS client settings of https:// endpoints.
    pub tls: Arc<rustls::ClientConfig>,
    pub mix: OpMix,
    pub keyspace: KeySpace,
    pub picker: KeyPicker,
    pub targets: Option<TargetsFile>,
    pub warmup: Duration,
    pub duration: Duration,
    pub slice: Duration,
    pub timeout: Duration,
    pub progress_interval: Duration,
}

fn bounded_duration(
    name: &'static str,
    text: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let value = parse_duration(text)?;
    if value < min || value > max {
        return Err(ConfigError::out_of_range(
            name,
            format!("{value:?}"),
            format!("{min:?}"),
            format!("{max:?}"),
        ));
    }
    Ok(value)
}

fn pick(values: &[String], index: usize, count: usize) -> Option<&str> {
    match values.len() {
        1 => values.first().map(String::as_str),
        n if n == count => values.get(index).map(String::as_str),
        _ => None,
    }
}

impl Plan {
    pub fn from_args(args: &Args) -> Result<Plan, ConfigError> {
        let endpoint_count = args.endpoints.len();
        if endpoint_count > limits::ENDPOINTS_MAX {
            return Err(ConfigError::Conflict(format!(
                "at most {} endpoints (compare mode is A against B)",
                limits::ENDPOINTS_MAX
            )));
        }
        for (what, n) in [
            ("--access-key", args.access_keys.len()),
            ("--secret-key", args.secret_keys.len()),
        ] {
            if n > 1 && n != endpoint_count {
                return Err(ConfigError::Conflict(format!(
                    "{what} is given {n} times for {endpoint_count} endpoints: give it once or once per endpoint"
                )));
            }
        }
        let mut endpoints = Vec::with_capacity(endpoint_count);
        let mut endpoint_settings = Vec::with_capacity(endpoint_count);
        for (i, url) in args.endpoints.iter().enumerate() {
            let name = ["A", "B"][i].to_owned();
            let (Some(access), Some(secret)) = (
                pick(&args.access_keys, i, endpoint_count),
                pick(&args.secret_keys, i, endpoint_count),
            ) else {
                return Err(ConfigError::Credentials { endpoint: name });
            };
            let signer = Signer::new(
                Credentials::new(access.to_owned(), secret.to_owned()),
                args.region.clone(),
                "s3".to_owned(),
            );
            endpoints.push(Endpoint::new(
                name.clone(),
                url,
                signer,
                args.payload_signing,
            )?);
            endpoint_settings.push(EndpointSettings {
                name,
                url: url.clone(),
                access_key_id: access.to_owned(),
            });
        }

        let tls = crate::s3::tls_config(
            args.ca_file.as_deref(),
            endpoints.iter().any(Endpoint::is_https),
        )?;
        check_bucket(&args.bucket)?;
        if args.prefix.len() > limits::KEY_PREFIX_BYTES_MAX {
            return Err(ConfigError::out_of_range(
                "--prefix length",
                args.prefix.len(),
                0,
                limits::KEY_PREFIX_BYTES_MAX,
            ));
        }
        let mix = OpMix::parse(&args.workload)?;
        let size = SizeDist::parse(&args.size)?;
        let key_dist = KeyDist::parse(&args.key_dist)?;
        if args.keys == 0 || args.keys > limits::KEYS_MAX {
            return Err(ConfigError::out_of_range(
                "--keys",
                args.keys,
                1,
                limits::KEYS_MAX,
            ));
        }
        let picker = KeyPicker::new(key_dist, args.keys, &mix)?;

        let mode = match (args.rate, args.concurrency) {
            (Some(rate), _) => {
                if !(limits::RATE_OPS_PER_S_MIN..=limits::RATE_OPS_PER_S_MAX).contains(&rate) {
                    return Err(ConfigError::out_of_range(
                        "--rate",
                        rate,
                        limits::RATE_OPS_PER_S_MIN,
                        limits::RATE_OPS_PER_S_MAX,
                    ));
                }
                if args.max_inflight == 0 || args.max_inflight > limits::INFLIGHT_MAX {
                    return Err(ConfigError::out_of_range(
                        "--max-inflight",
                        args.max_inflight,
                        1,
                        limits::INFLIGHT_MAX,
                    ));
                }
                Mode::OpenLoop {
                    rate_per_s: rate,
                    inflight_max: args.max_inflight,
                }
            }
            (None, concurrency) => {
                let concurrency = concurrency.unwrap_or(16);
                check_concurrency("--concurrency", concurrency)?;
                Mode::ClosedLoop { concurrency }
            }
        };
        check_concurrency("--prepare-concurrency", args.prepare_concurrency)?;

        let warmup = bounded_duration(
            "--warmup",
            &args.warmup,
            Duration::ZERO,
            Duration::from_secs(limits::WARMUP_S_MAX),
        )?;
        let duration = bounded_duration(
            "--duration",
            &args.duration,
            Duration::from_millis(100),
            Duration::from_secs(limits::DURATION_S_MAX),
        )?;
        let slice = bounded_duration(
            "--slice",
            &args.slice,
            Duration::from_millis(limits::SLICE_MS_MIN),
            Duration::from_millis(limits::SLICE_MS_MAX),
        )?;
        if endpoint_count > 1 && duration < slice * endpoint_count as u32 {
            return Err(ConfigError::Conflict(format!(
                "compare mode: --duration {duration:?} is shorter than one --slice ({slice:?}) per \
                 endpoint, so an endpoint could get no measured time"
            )));
        }
        let timeout = bounded_duration(
            "--timeout",
            &args.timeout,
            Duration::from_millis(1),
            Duration::from_secs(limits::TIMEOUT_S_MAX),
        )?;
        let progress_interval = bounded_duration(
            "--progress-interval",
            &args.progress_interval,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        )?;

        let part_size_bytes = parse_size_bytes(&args.part_size)?;
        if !(limits::PART_SIZE_BYTES_MIN..=limits::PART_SIZE_BYTES_MAX).contains(&part_size_bytes) {
            return Err(ConfigError::out_of_range(
                "--part-size",
                format_size_bytes(part_size_bytes),
                format_size_bytes(limits::PART_SIZE_BYTES_MIN),
                format_size_bytes(limits::PART_SIZE_BYTES_MAX),
            ));
        }
        if args.list_max_keys == 0 || args.list_max_keys > limits::LIST_KEYS_MAX {
            return Err(ConfigError::out_of_range(
                "--list-max-keys",
                args.list_max_keys,
                1,
                limits::LIST_KEYS_MAX,
            ));
        }
        let threads = args.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
        });
        if threads == 0 || threads > limits::THREADS_MAX {
            return Err(ConfigError::out_of_range(
                "--threads",
                threads,
                1,
                limits::THREADS_MAX,
            ));
        }
        if !(0.0..=1.0).contains(&args.max_error_ratio) {
            return Err(ConfigError::out_of_range(
                "--max-error-ratio",
                args.max_error_ratio,
                0,
                1,
            ));
        }
        if args.no_run && !args.prepare && !args.cleanup {
            return Err(ConfigError::Conflict(
                "--no-run without --prepare or --cleanup does nothing".to_owned(),
            ));
        }
        let mut server_pids = args.server_pids.clone();
        server_pids.sort_unstable();
        server_pids.dedup();
        if server_pids.len() > limits::SERVER_PIDS_MAX {
            return Err(ConfigError::out_of_range(
                "--server-pid count",
                server_pids.len(),
                1,
                limits::SERVER_PIDS_MAX,
            ));
        }
        for &pid in &server_pids {
            crate::cpu::read_process(pid)
                .map_err(|reason| ConfigError::ServerPid { pid, reason })?;
        }
        let targets = match &args.targets {
            Some(path) => Some(TargetsFile::load(path)?),
            None => None,
        };

        // The size distribution is part of the key set's name: key i's bytes depend on it, so
        // two runs with other sizes must not read each other's objects as corrupt.
        let size_tag: String = size
            .describe()
            .chars()
            .map(|c| match c {
                ':' => '-',
                ',' => '_',
                c => c,
            })
            .collect();
        let key_prefix = format!("{}{size_tag}-s{}/", args.prefix, args.seed);
        let keyspace = KeySpace {
            prefix: key_prefix.clone(),
            keys: args.keys,
            sizes: size,
            seed: args.seed,
        };
        let settings = Settings {
            label: args.label.clone(),
            endpoints: endpoint_settings,
            region: args.region.clone(),
            ca_file: args.ca_file.clone(),
            bucket: args.bucket.clone(),
            key_prefix,
            workload: mix.describe(),
            size,
            size_text: size.describe(),
            keys: args.keys,
            key_dist,
            seed: args.seed,
            mode,
            warmup_s: warmup.as_secs_f64(),
            duration_s: duration.as_secs_f64(),
            slice_ms: slice.as_millis() as u64,
            timeout_s: timeout.as_secs_f64(),
            verify: args.verify,
            pacer_spin: args.pacer_spin,
            prepare: args.prepare,
            prepare_concurrency: args.prepare_concurrency,
            cleanup: args.cleanup,
            delete_bucket: args.delete_bucket,
            run: !args.no_run,
            part_size_bytes,
            list_keys_max: args.list_max_keys,
            payload_signing: args.payload_signing,
            threads,
            max_error_ratio: args.max_error_ratio,
            targets: args.targets.clone(),
            json: args.json.clone(),
            html: args.html.clone(),
            progress_interval_s: progress_interval.as_secs_f64(),
            quiet: args.quiet,
            server_pids,
        };
        Ok(Plan {
            settings,
            endpoints,
            tls,
            mix,
            keyspace,
            picker,
            targets,
            warmup,
            duration,
            slice,
            timeout,
            progress_interval,
        })
    }
}

fn check_concurrency(name: &'static str, value: u32) -> Result<(), ConfigError> {
    if value == 0 || value > limits::CONCURRENCY_MAX {
        return Err(ConfigError::out_of_range(
            name,
            value,
            1,
            limits::CONCURRENCY_MAX,
        ));
    }
    Ok(())
}

/// S3 bucket naming rules: 3-63 characters of lowercase letters, digits, '.' and '-'.
fn check_bucket(bucket: &str) -> Result<(), ConfigError> {
    let valid = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && bucket.as_bytes()[0].is_ascii_alphanumeric()
        && bucket.as_bytes()[bucket.len() - 1].is_ascii_alphanumeric();
    if valid {
        Ok(())
    } else {
        Err(ConfigError::Conflict(format!(
            "bucket name {bucket:?} breaks the S3 naming rules (3-63 of a-z 0-9 . -)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec![
            "percore-loadgen",
            "--endpoint",
            "http://127.0.0.1:9000",
            "--access-key",
            "ak",
            "--secret-key",
            "sk",
        ];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).unwrap()
    }

    #[test]
    fn defaults_make_a_closed_loop_get_run() {
        let plan = Plan::from_args(&args(&[])).unwrap();
        assert_eq!(plan.settings.mode, Mode::ClosedLoop { concurrency: 16 });
        assert_eq!(plan.settings.workload, "get=1");
        assert_eq!(plan.settings.key_prefix, "loadgen/4KiB-s1/");
        let plan =
            Plan::from_args(&args(&["--size", "lognormal:64KiB,0.5", "--seed", "7"])).unwrap();
        assert_eq!(
            plan.settings.key_prefix,
            "loadgen/lognormal-64KiB_0.5_4MiB-s7/"
        );
        assert_eq!(plan.endpoints.len(), 1);
        let json = serde_json::to_string(&plan.settings).unwrap();
        assert!(
            !json.contains("\"sk\""),
            "secret leaked into settings: {json}"
        );
    }

    #[test]
    fn open_loop_and_compare_mode() {
        let plan = Plan::from_args(&args(&[
            "--rate",
            "5000",
            "--endpoint",
            "http://127.0.0.1:9001",
            "--workload",
            "get=70,put=30",
        ]))
        .unwrap();
        assert_eq!(
            plan.settings.mode,
            Mode::OpenLoop {
                rate_per_s: 5000.0,
                inflight_max: 1024
            }
        );
        assert_eq!(plan.endpoints.len(), 2);
        assert_eq!(plan.settings.endpoints[1].name, "B");
    }

    #[test]
    fn bad_settings_are_config_errors() {
        for extra in [
            &["--rate", "0"][..],
            &["--rate", "1e9"],
            &["--concurrency", "0"],
            &["--keys", "0"],
            &["--duration", "100d"],
            &["--duration", "48h"],
            &["--size", "2GiB"],
            &["--part-size", "1MiB"],
            &["--bucket", "Bad_Bucket"],
            &["--max-error-ratio", "2"],
            &["--no-run"],
        ] {
            assert!(Plan::from_args(&args(extra)).is_err(), "{extra:?}");
        }
        assert!(Args::try_parse_from(["percore-loadgen"]).is_err());
        assert!(Args::try_parse_from([
            "percore-loadgen",
            "--endpoint",
            "http://x",
            "--rate",
            "1",
            "--concurrency",
            "2"
        ])
        .is_err());
    }
}
