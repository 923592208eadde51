//! Parsing and printing of sizes and durations as people type them (`4KiB`, `64MiB`, `30s`).
//!
//! Owns the text forms only; bounds are checked by the callers against `limits`.

use std::time::Duration;

use crate::error::ConfigError;

/// Parses a byte size: a plain number is bytes; `KiB`/`MiB`/`GiB` (and the shorthands `k`, `m`,
/// `g`, `K`, `M`, `G`) are powers of 1024; `KB`/`MB`/`GB` are powers of 1000.
pub fn parse_size_bytes(text: &str) -> Result<u64, ConfigError> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let bad = || ConfigError::Size {
        text: text.to_owned(),
    };
    let value: u64 = digits.parse().map_err(|_| bad())?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" | "b" => 1,
        "k" | "K" | "KiB" | "kiB" => 1 << 10,
        "m" | "M" | "MiB" => 1 << 20,
        "g" | "G" | "GiB" => 1 << 30,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(bad()),
    };
    value.checked_mul(multiplier).ok_or_else(bad)
}

/// Parses a duration: a plain number is seconds; suffixes `ms`, `s`, `m`, `h`.
pub fn parse_duration(text: &str) -> Result<Duration, ConfigError> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let bad = || ConfigError::Duration {
        text: text.to_owned(),
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(bad()),
    };
    if !seconds.is_finite() || !(0.0..=1e9).contains(&seconds) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Prints a byte count with the largest binary unit that keeps it a whole number when it is one
/// (`4KiB`, `64MiB`, `1000B`).
pub fn format_size_bytes(size_bytes: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if size_bytes >= (1 << shift) && size_bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", size_bytes >> shift);
        }
    }
    format!("{size_bytes}B")
}

/// Prints a latency given in microseconds with a unit people read quickly: µs below 1 ms, ms
/// with up to two decimals below 10 s, s above.
pub fn format_latency_us(latency_us: u64) -> String {
    if latency_us < 1000 {
        format!("{latency_us} µs")
    } else if latency_us < 10_000_000 {
        format!("{:.2} ms", latency_us as f64 / 1000.0)
    } else {
        format!("{:.2} s", latency_us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_both_bases() {
        assert_eq!(parse_size_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_size_bytes("4KiB").unwrap(), 4096);
        assert_eq!(parse_size_bytes("4k").unwrap(), 4096);
        assert_eq!(parse_size_bytes("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size_bytes("2GB").unwrap(), 2_000_000_000);
        assert!(parse_size_bytes("4 parsecs").is_err());
        assert!(parse_size_bytes("").is_err());
        assert!(parse_size_bytes("99999999999999999999G").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn sizes_and_latencies_print() {
        assert_eq!(format_size_bytes(4096), "4KiB");
        assert_eq!(format_size_bytes(64 << 20), "64MiB");
        assert_eq!(format_size_bytes(1000), "1000B");
        assert_eq!(format_latency_us(850), "850 µs");
        assert_eq!(format_latency_us(2500), "2.50 ms");
        assert_eq!(format_latency_us(12_000_000), "12.00 s");
    }
}
