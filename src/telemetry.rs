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

use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterFn, LevelFilter, Targets};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
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
            .map_event_format(WithoutLogMetadata)
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

/// Lets lapin's log lines through again (after [`mute_broker_logs`]).
pub fn unmute_broker_logs() {
    BROKER_LOGS_MUTED.store(false, Ordering::Relaxed);
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

/// The JSON format less the `log.*` fields that a record of the `log` crate carries (the file
/// path and line on the build machine, its module and target, the last already shown as
/// `target`): noise at best, the build machine's home directory at worst.
pub struct WithoutLogMetadata<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for WithoutLogMetadata<F>
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
    FormattedFields<N>: Send,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(&strip_log_fields(&line))
    }
}

/// Removes the members whose key starts with `log.` from the top level of a JSON object line.
/// A key is a quote right after `{` or `,` (inside a string a quote is escaped, so `,"log.`
/// there reads `,\"log.`); its value, a string or a number, ends at its closing quote or at
/// the next `,` or `}`.
fn strip_log_fields(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = find_member(rest) {
        // `at` is the `{` or `,` before the key.
        let (head, tail) = rest.split_at(at + 1);
        let after = skip_member(&tail[1..]).map_or("", |end| &tail[1 + end..]);
        if let Some(before) = head.strip_suffix(',') {
            out.push_str(before);
            rest = after;
        } else {
            out.push_str(head);
            rest = after.strip_prefix(',').unwrap_or(after);
        }
    }
    out.push_str(rest);
    out
}

fn find_member(text: &str) -> Option<usize> {
    [",\"log.", "{\"log."].iter().filter_map(|p| text.find(p)).min()
}

/// The length of `"key":value` at the start of `text` (a string or a scalar value).
fn skip_member(text: &str) -> Option<usize> {
    let value_at = text.find("\":")? + 2;
    let value = &text[value_at..];
    let len = if let Some(body) = value.strip_prefix('"') {
        let mut escaped = false;
        let close = body.char_indices().find_map(|(i, c)| {
            let end = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            end.then_some(i)
        })?;
        close + 2
    } else {
        value.find([',', '}']).unwrap_or(value.len())
    };
    Some(value_at + len)
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
    fn log_metadata_is_stripped_from_json_lines() {
        let line = r#"{"timestamp":"t","level":"INFO","message":"say \",\"log.file\":\"x","log.target":"tokio_postgres::connection","log.module_path":"tokio_postgres::connection","log.file":"/root/.cargo/registry/src/x/connection.rs","log.line":57,"target":"tokio_postgres::connection"}"#;
        let stripped = strip_log_fields(line);
        let v: serde_json::Value = serde_json::from_str(&stripped).expect("still JSON");
        assert_eq!(
            v,
            serde_json::json!({"timestamp": "t", "level": "INFO", "message": "say \",\"log.file\":\"x", "target": "tokio_postgres::connection"})
        );
        let first = r#"{"log.line":3,"a":1}"#;
        assert_eq!(strip_log_fields(first), r#"{"a":1}"#);
        assert_eq!(strip_log_fields(r#"{"a":1}"#), r#"{"a":1}"#);
    }

    /// Through the real formatter: an event of the `log` crate has its fields as `log.*`.
    #[test]
    fn the_json_format_leaves_out_the_build_machines_paths() {
        use std::sync::{Arc, Mutex};
        let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = Arc::clone(&buf);
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Sink(Arc::clone(&sink)))
            .json()
            .flatten_event(true)
            .map_event_format(WithoutLogMetadata)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                log.file = "/root/.cargo/registry/src/index/x-1.0/src/lib.rs",
                log.line = 7u32,
                "hello"
            );
        });
        let text = String::from_utf8(buf.lock().map(|b| b.clone()).unwrap_or_default()).unwrap_or_default();
        assert!(text.contains("hello"), "{text}");
        assert!(!text.contains("log.file") && !text.contains(".cargo"), "{text}");
        serde_json::from_str::<serde_json::Value>(text.trim()).expect("one JSON line");
    }

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut b) = self.0.lock() {
                b.extend_from_slice(data);
            }
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

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
