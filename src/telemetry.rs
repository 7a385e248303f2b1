//! Logging through `tracing`: human-readable by default, JSON with `log.format = "json"`.
//!
//! Some libraries log secrets when verbose, so their targets are capped at `info` by a filter
//! of its own, beside the user's (`log.level` or `RUST_LOG`): no filter the user writes, however
//! specific (`tokio_postgres::query=trace`, a span directive), can lift the cap.
//! - `lapin` and `amq_protocol*` log every frame at `trace`, the broker login (the SASL
//!   response with the password) and message bodies among them;
//! - `tokio_postgres` logs every statement with its parameters at `debug`: an attempt's
//!   insert carries the URL as sent, secrets and all.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterFn, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Log, LogFormat};

/// Targets whose events below `info` may carry secrets (prefixes: `amq_protocol` covers
/// `amq_protocol_tcp` and `amq_protocol_uri`).
pub const CAPPED_TARGETS: &[&str] = &["lapin", "amq_protocol", "tokio_postgres"];

/// Installs the global subscriber (once; later calls, as in tests, are ignored). `RUST_LOG`
/// wins over `log.level` when set. Colours only on a terminal: a log file or journal gets
/// plain text.
pub fn init(log: &Log) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(std::env::var("RUST_LOG").ok().as_deref(), &log.level))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .finish()
            .with(caps())
            .with(unmuted())
            .try_init(),
        LogFormat::Pretty => builder.finish().with(caps()).with(unmuted()).try_init(),
    };
}

/// Set by a command that reports every broker error itself (`publish`): lapin's own lines
/// would say the same again in its words, e.g. the expected 404 of a passive declare as an
/// ERROR.
static BROKER_LOGS_MUTED: AtomicBool = AtomicBool::new(false);

/// Silences lapin's log lines from now on, for this process.
pub fn mute_broker_logs() {
    BROKER_LOGS_MUTED.store(true, Ordering::Relaxed);
}

fn unmuted() -> FilterFn {
    FilterFn::new(|meta| !(BROKER_LOGS_MUTED.load(Ordering::Relaxed) && meta.target().starts_with("lapin")))
}

/// The user's filter: `RUST_LOG` (when set and valid) or `log.level`.
fn filter(rust_log: Option<&str>, level: &str) -> EnvFilter {
    let text = rust_log
        .filter(|t| EnvFilter::try_new(t).is_ok())
        .unwrap_or(level);
    EnvFilter::try_new(text).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// lapin warns of each message the broker returns with the message's `Debug`: its body as
/// kilobytes of decimal bytes, secrets and all. The publisher reports the return itself.
const RETURNED: &str = "lapin::returned_messages";

/// Everything passes but the [`CAPPED_TARGETS`] below `info`, and [`RETURNED`] below `error`.
fn caps() -> Targets {
    CAPPED_TARGETS
        .iter()
        .fold(Targets::new().with_default(LevelFilter::TRACE), |t, target| {
            t.with_target(*target, LevelFilter::INFO)
        })
        .with_target(RETURNED, LevelFilter::ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_bearing_targets_are_capped_at_info() {
        let caps = caps();
        for (target, level, shown) in [
            ("lapin::io_loop", tracing::Level::TRACE, false),
            ("lapin", tracing::Level::DEBUG, false),
            ("amq_protocol_tcp", tracing::Level::TRACE, false),
            ("tokio_postgres::query", tracing::Level::DEBUG, false),
            ("tokio_postgres", tracing::Level::INFO, true),
            ("lapin::channel", tracing::Level::WARN, true),
            ("lapin::returned_messages", tracing::Level::WARN, false),
            ("cross_postback::dispatch", tracing::Level::TRACE, true),
            ("hyper", tracing::Level::TRACE, true),
        ] {
            assert_eq!(caps.would_enable(target, &level), shown, "{target} at {level}");
        }
    }
}
