//! The load generator's error types.
//!
//! `ConfigError` is everything a user can get wrong on the command line or in a targets file
//! (exit code 2). `OpError` is one failed S3 request: it is a value that the statistics count by
//! code, never a reason to stop. `LoadgenError` is what ends a run early (exit code 3, or 2 for
//! its `Config` variant).

use std::path::PathBuf;

/// A setting that cannot be used; maps to exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read size {text:?}: use bytes or a unit such as 4KiB, 64MiB, 1GB")]
    Size { text: String },
    #[error("cannot read duration {text:?}: use a number with ms, s, m or h")]
    Duration { text: String },
    #[error("{name} = {value} is outside [{min}, {max}]")]
    OutOfRange {
        name: &'static str,
        value: String,
        min: String,
        max: String,
    },
    #[error("cannot read workload {text:?}: {reason}")]
    Workload { text: String, reason: String },
    #[error("cannot read size distribution {text:?}: {reason}")]
    SizeDist { text: String, reason: String },
    #[error("cannot read key distribution {text:?}: {reason}")]
    KeyDist { text: String, reason: String },
    #[error("cannot use endpoint {url:?}: {reason}")]
    Endpoint { url: String, reason: String },
    #[error("--ca-file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("missing credentials for endpoint {endpoint}: give --access-key and --secret-key (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)")]
    Credentials { endpoint: String },
    #[error("{0}")]
    Conflict(String),
    #[error("cannot read targets file {path}: {reason}")]
    Targets { path: PathBuf, reason: String },
    #[error("cannot create report file {path}: {reason}")]
    ReportFile { path: PathBuf, reason: String },
    #[error("--server-pid {pid}: {reason}")]
    ServerPid { pid: u32, reason: String },
}

impl ConfigError {
    #[allow(clippy::needless_pass_by_value)] // call sites read better with plain values
    pub fn out_of_range(
        name: &'static str,
        value: impl ToString,
        min: impl ToString,
        max: impl ToString,
    ) -> Self {
        ConfigError::OutOfRange {
            name,
            value: value.to_string(),
            min: min.to_string(),
            max: max.to_string(),
        }
    }
}

/// One failed S3 request. `code()` is the key the statistics count it under.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// The server answered with an S3 error document.
    #[error("HTTP {status} {code}: {message}")]
    S3 {
        status: u16,
        code: String,
        message: String,
    },
    /// The server answered with an error status and no readable S3 error document.
    #[error("HTTP {status} without an S3 error body")]
    Status { status: u16 },
    /// Connecting, sending or receiving failed.
    #[error("transport: {0}")]
    Transport(String),
    /// The request did not complete within the per-request timeout.
    #[error("timed out")]
    Timeout,
    /// A GET returned a body of the wrong length.
    #[error("body length {got_bytes}, expected {expected_bytes}")]
    LengthMismatch { expected_bytes: u64, got_bytes: u64 },
    /// A GET returned different bytes than were written (see `--verify`).
    #[error("body differs from what was written at offset {offset_bytes}")]
    ContentMismatch { offset_bytes: u64 },
    /// A success response that cannot be understood (bad XML, missing ETag...).
    #[error("bad response: {0}")]
    BadResponse(String),
    /// Open loop: the request was due but the run ended before a slot freed up.
    #[error("not sent before the run ended")]
    NotSent,
}

impl OpError {
    /// The name errors are counted under: the S3 code when there is one.
    pub fn code(&self) -> String {
        match self {
            OpError::S3 { code, .. } => code.clone(),
            OpError::Status { status } => format!("HTTP{status}"),
            OpError::Transport(_) => "Transport".to_owned(),
            OpError::Timeout => "Timeout".to_owned(),
            OpError::LengthMismatch { .. } => "LengthMismatch".to_owned(),
            OpError::ContentMismatch { .. } => "ContentMismatch".to_owned(),
            OpError::BadResponse(_) => "BadResponse".to_owned(),
            OpError::NotSent => "NotSent".to_owned(),
        }
    }
}

/// What stops a run before it produces a report.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot start the open-loop pacing thread: {0}")]
    Pacer(std::io::Error),
    #[error("prepare failed on endpoint {endpoint}: {failed} of {total} requests failed, first: {first}")]
    Prepare {
        endpoint: String,
        failed: u64,
        total: u64,
        first: OpError,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}
