//! The progress bar of streamed operations (install, update, uninstall, watch), and
//! following an operation: Ctrl-C detaches from it, the node carries on.

use std::time::Duration;

use archy_api::{ClientError, OperationResult, Progress, Stage, StartedOperation};

/// The exit status after Ctrl-C (128 + SIGINT), as shells use.
pub const INTERRUPTED: i32 = 130;

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

/// Shows an operation's progress until its result. Ctrl-C (SIGINT) detaches: the operation
/// goes on on the node, the message says how to re-attach, and the process exits with
/// [`INTERRUPTED`].
pub async fn follow(
    quiet: bool,
    started: StartedOperation,
    what: &str,
    app: &str,
) -> Result<OperationResult, ClientError> {
    let bar = bar(quiet);
    let id = started.id;
    let result = {
        let follow = archy_api::follow_operation(started.events, what, app, |p| draw(&bar, p));
        tokio::select! {
            result = follow => result,
            _ = tokio::signal::ctrl_c() => {
                bar.abandon();
                eprintln!("{}", detached(what, app, id));
                std::process::exit(INTERRUPTED);
            }
        }
    };
    finish(&bar, result.is_ok());
    result
}

/// What Ctrl-C says: the operation is the node's, and how to get back to it.
pub fn detached(what: &str, app: &str, id: Option<u64>) -> String {
    match id {
        Some(id) => format!(
            "detached: the {what} of {app} is still running on the node as operation {id}; \
             `archy app watch {id}` re-attaches"
        ),
        None => format!(
            "detached: the {what} of {app} is still running on the node; \
             `archy app watch {app}` re-attaches"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detaching_names_the_operation_and_how_to_re_attach() {
        assert_eq!(
            detached("install", "hello", Some(12)),
            "detached: the install of hello is still running on the node as operation 12; \
             `archy app watch 12` re-attaches"
        );
        assert!(detached("purge", "hello", None).ends_with("`archy app watch hello` re-attaches"));
    }
}
