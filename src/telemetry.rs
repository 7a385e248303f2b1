//! Logging through `tracing`: human-readable by default, JSON with `log.format = "json"`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

use crate::config::{Log, LogFormat};

/// Installs the global subscriber (once; later calls, as in tests, are ignored). `RUST_LOG`
/// wins over `log.level` when set. Colours only on a terminal: a log file or journal gets
/// plain text.
pub fn init(log: &Log) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(std::env::var("RUST_LOG").ok().as_deref(), &log.level))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// The filter from `RUST_LOG` (when set and valid) or `log.level`.
///
/// tokio-postgres logs every statement with its parameters at `debug`, and an attempt's
/// insert carries the URL as sent, secrets and all; so it stays at `info` unless the filter
/// names it, however verbose the rest is.
fn filter(rust_log: Option<&str>, level: &str) -> EnvFilter {
    let text = rust_log
        .filter(|t| EnvFilter::try_new(t).is_ok())
        .unwrap_or(level);
    let filter = EnvFilter::try_new(text).unwrap_or_else(|_| EnvFilter::new("info"));
    let verbose = filter.max_level_hint().is_none_or(|l| l > LevelFilter::INFO);
    if verbose && !text.contains("tokio_postgres") {
        filter.add_directive("tokio_postgres=info".parse().expect("a valid directive"))
    } else {
        filter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_stay_out_of_verbose_logs_unless_asked_for() {
        for (rust_log, level, quiet) in [
            (None, "debug", true),
            (None, "trace", true),
            (Some("debug"), "info", true),
            (None, "info", false),
            (None, "warn", false),
            (None, "cross_postback=debug,tokio_postgres=debug", false),
            (Some("not a filter ==="), "trace", true),
        ] {
            let f = filter(rust_log, level).to_string();
            assert_eq!(
                f.contains("tokio_postgres=info"),
                quiet,
                "{rust_log:?} / {level:?} gave {f}"
            );
        }
    }
}
