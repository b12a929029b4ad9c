//! The progress bar of streamed operations (install, market install).

use std::time::Duration;

use archy_api::{Progress, Stage};

/// A bar on stderr; hidden when `quiet` (`--json`).
pub fn bar(quiet: bool) -> indicatif::ProgressBar {
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(0)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {prefix:>18} [{bar:30}] {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// One progress event on the bar: bytes while fetching, steps otherwise.
pub fn draw(bar: &indicatif::ProgressBar, p: &Progress) {
    let stage = p.stage.as_str().replace('_', " ");
    bar.set_prefix(stage);
    bar.set_length(p.total.max(1));
    bar.set_position(p.done.min(p.total.max(1)));
    if p.stage == Stage::Fetching {
        bar.set_message(format!(
            "{}: {} of {}",
            p.detail,
            indicatif::HumanBytes(p.done),
            indicatif::HumanBytes(p.total)
        ));
    } else {
        bar.set_message(p.detail.clone());
    }
}

/// Ends the bar: cleared after success, left as it was after a failure it showed progress of.
pub fn finish(bar: &indicatif::ProgressBar, ok: bool) {
    if ok || bar.length() == Some(0) {
        bar.finish_and_clear();
    } else {
        bar.abandon();
    }
}
