//! Output shared by the commands. Everything goes through [`line`], which ends the process
//! quietly (status 0) when stdout is a closed pipe (`archy … | head`), instead of the panic
//! `println!` gives on EPIPE.

use std::io::Write;

use archy_api::AppView;
use serde::Serialize;

/// Prints one line, like `println!`, exiting quietly when the reader has gone.
macro_rules! outln {
    () => {
        $crate::cli::print::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::print::line(format_args!($($arg)*))
    };
}

/// Writes `args` and a newline to stdout. A closed pipe ends the process with status 0 (the
/// reader has what it wanted); any other failure with status 1.
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        let _ = writeln!(std::io::stderr(), "Error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

/// `--json`: the answer as JSON (keys sorted, as the CLI always printed them); otherwise
/// `text` prints it for a person.
pub fn json_or<T: Serialize>(json: bool, value: &T, text: impl FnOnce(&T)) {
    if json {
        let value = serde_json::to_value(value).unwrap_or_default();
        outln!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        text(value);
    }
}

/// An installed app: its line, its URL, containers and warnings.
pub fn app(a: &AppView) {
    outln!(
        "{:<16} {:<10} {:<9} (wanted: {})",
        a.id,
        a.version,
        a.state,
        a.desired
    );
    if let Some(url) = &a.url {
        outln!("  url: {url}");
    }
    for c in &a.containers {
        outln!("  container {:<28} {}", c.name, c.state);
    }
    for h in a.health.iter().filter(|h| {
        h.status != archy_api::HealthStatus::None || h.last_checked.is_some() || h.restarts > 0
    }) {
        outln!("{}", health_line(h));
    }
    if let Some(m) = &a.market {
        outln!("  publisher: {} ({})", m.publisher, m.did);
        if let Some(w) = &m.withdrawn {
            outln!(
                "  WITHDRAWN by its publisher at {} (NIP-09 deletion {}): it keeps running; uninstall it if you no longer trust it",
                unix_time(w.at),
                w.deletion
            );
        }
        if let Some(v) = &m.newer_version {
            outln!("  newer version listed: {v} (`archy app update {}`)", a.id);
        }
    }
    for w in &a.warnings {
        outln!("  WARNING: {w}");
    }
}

/// Unix seconds as RFC 3339 (UTC), or the number when out of range.
pub fn unix_time(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0).map_or_else(
        || at.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// One container's health as `archy app status` shows it.
fn health_line(h: &archy_api::ContainerHealth) -> String {
    let mut line = format!("  health    {:<28} {}", h.container, h.status);
    if let Some(at) = &h.last_checked {
        line.push_str(&format!(", checked {at}"));
    }
    if h.restarts > 0 {
        line.push_str(&format!(
            ", restarted {} time{} for failing its check",
            h.restarts,
            if h.restarts == 1 { "" } else { "s" }
        ));
    }
    if let Some(failure) = &h.last_failure {
        line.push_str(&format!("\n            last failure {failure}"));
    }
    line
}
