//! Progress of a long run on a terminal (packets, rate, ETA by bytes) to stderr; nothing at all
//! when stderr is not a terminal.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress display, or nothing.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Progress over `total_bytes` of input, shown only if stderr is a terminal.
    pub fn for_file(total_bytes: u64) -> Self {
        if !std::io::stderr().is_terminal() {
            return Progress::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr_with_hz(4));
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(250));
        Progress { bar: Some(bar) }
    }

    /// No display.
    pub fn hidden() -> Self {
        Progress { bar: None }
    }

    /// Updates the display: bytes of input consumed, packets so far, packets per second.
    pub fn update(&self, bytes: u64, packets: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(bytes);
            let secs = bar.elapsed().as_secs_f64();
            let rate = if secs > 0.0 { packets as f64 / secs } else { 0.0 };
            bar.set_message(format!("{packets} packets, {:.2} Mpkt/s", rate / 1e6));
        }
    }

    /// Removes the display.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
