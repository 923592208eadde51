//! Live progress on stderr: a bar with ops/s and p99 on a terminal, plain lines otherwise.
//!
//! Owns presentation only; the figures come from `stats::Recorder::take_live`, called here at
//! the display's own pace so each line covers exactly its interval.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::stats::Recorder;
use crate::units::format_latency_us;

/// The progress display of one phase.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    every: Duration,
    last: Instant,
    warmup_s: f64,
    total_s: f64,
    phase: &'static str,
}

impl Progress {
    /// `total_s` is the length of the phase (warm-up plus measured time for a run).
    pub fn new(
        phase: &'static str,
        total_s: f64,
        warmup_s: f64,
        every: Duration,
        quiet: bool,
    ) -> Progress {
        let terminal = !quiet && std::io::stderr().is_terminal();
        let bar = terminal.then(|| {
            let bar = ProgressBar::with_draw_target(
                Some((total_s * 10.0).ceil() as u64),
                ProgressDrawTarget::stderr(),
            );
            // The template is a constant known to parse.
            let style = ProgressStyle::with_template("{prefix:>8} [{bar:30}] {elapsed:>4} {msg}")
                .expect("valid progress template")
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(phase);
            bar
        });
        Progress {
            bar,
            plain: !quiet && !terminal,
            every: if terminal {
                Duration::from_secs(1)
            } else {
                every
            },
            last: Instant::now(),
            warmup_s,
            total_s,
            phase,
        }
    }

    /// Called about once a second with the time since the phase started.
    pub fn tick(&mut self, elapsed: Duration, recorder: &mut Recorder) {
        let since = self.last.elapsed();
        if since < self.every {
            if let Some(bar) = &self.bar {
                bar.set_position((elapsed.as_secs_f64() * 10.0) as u64);
            }
            return;
        }
        self.last = Instant::now();
        let live = recorder.take_live();
        let ops_per_s = live.ok as f64 / since.as_secs_f64();
        let p99 = live
            .p99_us
            .map_or_else(|| "-".to_owned(), format_latency_us);
        let elapsed_s = elapsed.as_secs_f64();
        // Named after where the interval this line covers began.
        let stage = if elapsed_s - since.as_secs_f64() < self.warmup_s - 1e-3 {
            "warm-up"
        } else {
            "measure"
        };
        let message = format!(
            "{stage}: {ops_per_s:>9.0} ops/s  p99 {p99:>10}  errors {} (total {} done, {} errors)",
            live.errors, live.completed_total, live.errors_total
        );
        if let Some(bar) = &self.bar {
            bar.set_position((elapsed_s * 10.0) as u64);
            bar.set_message(message);
        } else if self.plain {
            eprintln!(
                "[{elapsed_s:>7.1}s/{:.0}s] {} {message}",
                self.total_s, self.phase
            );
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
