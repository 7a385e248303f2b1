//! The checks the types alone cannot make: every number and duration within its range, and
//! values that must agree. The maxima keep every `now() + duration` the daemon computes (a
//! retry with its jitter, a lease) far from overflowing an `Instant`, a chrono time or a
//! Postgres `interval`.

use std::str::FromStr;
use std::time::Duration;

use super::{Config, Dur};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3_600);
const DAY: Duration = Duration::from_secs(86_400);

/// Longest step of `delivery.retry_schedule`.
pub const MAX_RETRY_STEP: Duration = Duration::from_secs(30 * 86_400);
/// Longest `delivery.lease`.
pub const MAX_LEASE: Duration = DAY;
/// Longest retention, link lifetime or disabling delay (ten years).
const MAX_RETENTION: Duration = Duration::from_secs(3_650 * 86_400);
/// Most steps of `delivery.retry_schedule`.
const MAX_RETRY_STEPS: usize = 100;

/// A value out of bounds: its key and what is allowed.
#[derive(Debug)]
pub(super) struct Invalid {
    pub key: &'static str,
    pub message: String,
}

fn invalid(key: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        key,
        message: message.into(),
    }
}

/// `key` within `min..=max`.
fn within(key: &'static str, d: Dur, min: Duration, max: Duration) -> Result<(), Invalid> {
    if d.0 < min || d.0 > max {
        return Err(invalid(
            key,
            format!("{d} is out of range: allowed from {} to {}", Dur(min), Dur(max)),
        ));
    }
    Ok(())
}

const MIB: usize = 1024 * 1024;

impl Config {
    pub(super) fn check(&self) -> Result<(), Invalid> {
        self.check_counts()?;
        self.check_durations()?;
        tokio_postgres::Config::from_str(&self.database.url).map_err(|e| {
            let cause = crate::report::one_line(&e);
            invalid("database.url", format!("not a Postgres URL: {cause}"))
        })?;
        if !(self.amqp.url.starts_with("amqp://") || self.amqp.url.starts_with("amqps://")) {
            return Err(invalid("amqp.url", "must start with amqp:// or amqps://"));
        }
        check_log_level(&self.log.level).map_err(|m| invalid("log.level", m))?;
        check_http_url(&self.web.public_url).map_err(|m| invalid("web.public_url", m))?;
        check_http_url(&self.alerts.webhook_url).map_err(|m| invalid("alerts.webhook_url", m))?;
        let ratio = self.alerts.failure_ratio;
        if !(0.0..=1.0).contains(&ratio) {
            return Err(invalid(
                "alerts.failure_ratio",
                format!("{ratio} is out of range: allowed from 0 to 1"),
            ));
        }
        self.check_retention()
    }

    fn check_retention(&self) -> Result<(), Invalid> {
        let r = &self.retention;
        // Zero keeps forever; otherwise at least a day (attempts are dropped a day at a time).
        for (key, d) in [
            ("retention.attempts", r.attempts),
            ("retention.deliveries", r.deliveries),
            ("retention.conversions", r.conversions),
            ("retention.rejected", r.rejected),
        ] {
            if !d.0.is_zero() {
                within(key, d, DAY, MAX_RETENTION)?;
            }
        }
        within("retention.interval", r.interval, MINUTE, DAY)?;
        // A delivery's attempts must not outlive it.
        let forever = |d: Dur| d.0.is_zero();
        if !forever(r.deliveries) && (forever(r.attempts) || r.deliveries < r.attempts) {
            return Err(invalid(
                "retention.deliveries",
                format!(
                    "{} is shorter than `retention.attempts` ({}): deliveries are kept at least as long as their attempts",
                    r.deliveries,
                    if forever(r.attempts) {
                        "0, forever".to_owned()
                    } else {
                        r.attempts.to_string()
                    }
                ),
            ));
        }
        Ok(())
    }

    fn check_counts(&self) -> Result<(), Invalid> {
        // Upper bounds keep sizes that would exhaust memory (or overflow a sum below) out.
        let counts = [
            ("amqp.prefetch", self.amqp.prefetch as usize, 65_535),
            ("amqp.max_message_bytes", self.amqp.max_message_bytes, 64 * MIB),
            ("amqp.batch_size", self.amqp.batch_size, 10_000),
            ("amqp.lanes", self.amqp.lanes, 64),
            ("amqp.shards", self.amqp.shards, 1_024),
            ("database.pool_size", self.database.pool_size, 1_000),
            ("delivery.concurrency", self.delivery.concurrency, 65_536),
            (
                "delivery.per_host_concurrency",
                self.delivery.per_host_concurrency,
                65_536,
            ),
            (
                "delivery.max_response_bytes",
                self.delivery.max_response_bytes,
                64 * MIB,
            ),
        ];
        for (key, value, max) in counts {
            if !(1..=max).contains(&value) {
                return Err(invalid(key, format!("{value} is outside 1..={max}")));
            }
        }
        // Each lane holds a connection while it commits; dispatch needs at least two more.
        if self.database.pool_size < self.amqp.lanes + 2 {
            return Err(invalid(
                "database.pool_size",
                format!(
                    "{} must be at least `amqp.lanes` ({}) + 2",
                    self.database.pool_size, self.amqp.lanes
                ),
            ));
        }
        Ok(())
    }

    fn check_durations(&self) -> Result<(), Invalid> {
        let d = &self.delivery;
        let ms = Duration::from_millis(1);
        within("delivery.connect_timeout", d.connect_timeout, ms, 5 * MINUTE)?;
        within("delivery.timeout", d.timeout, ms, HOUR)?;
        within("delivery.poll_interval", d.poll_interval, ms, HOUR)?;
        within("delivery.lease", d.lease, ms, MAX_LEASE)?;
        within(
            "run.shutdown_timeout",
            self.run.shutdown_timeout,
            Duration::ZERO,
            HOUR,
        )?;
        if !d.disable_after.0.is_zero() {
            within("delivery.disable_after", d.disable_after, MINUTE, MAX_RETENTION)?;
        }
        within(
            "web.max_link_lifetime",
            self.web.max_link_lifetime,
            Duration::from_secs(1),
            MAX_RETENTION,
        )?;
        if d.retry_schedule.len() > MAX_RETRY_STEPS {
            return Err(invalid(
                "delivery.retry_schedule",
                format!(
                    "has {} steps: at most {MAX_RETRY_STEPS} are allowed",
                    d.retry_schedule.len()
                ),
            ));
        }
        for step in &d.retry_schedule {
            within("delivery.retry_schedule", *step, Duration::ZERO, MAX_RETRY_STEP)?;
        }
        // A claimed delivery may wait for a free slot before it starts, and its attempt may
        // take connect_timeout + timeout: the lease must cover both with room to spare.
        if d.lease.0 < (d.timeout.0 + d.connect_timeout.0) * 2 {
            return Err(invalid(
                "delivery.lease",
                format!(
                    "{} must be at least twice `delivery.timeout` plus `delivery.connect_timeout`",
                    d.lease
                ),
            ));
        }
        Ok(())
    }
}

/// Empty (not set), or an absolute http(s) URL.
fn check_http_url(text: &str) -> Result<(), String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(());
    }
    let url =
        url::Url::parse(text).map_err(|e| format!("not a URL ({e}): use one like https://host/path"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http:// or https:// URL with a host".to_owned());
    }
    Ok(())
}

/// The words of a level filter.
const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// A level, or directives like `cross_postback=debug,info`. A bare word that is not a level
/// (`verbose`) would parse as a target name, enable only that target, and silence the rest:
/// refused, as is a filter that does not parse.
pub(super) fn check_log_level(text: &str) -> Result<(), String> {
    let hint = "use a level (error, warn, info, debug, trace) or a filter like cross_postback=debug,info";
    for part in text.split(',').map(str::trim) {
        let bare = !part.contains(['=', '[']);
        if part.is_empty() || (bare && !LEVELS.contains(&part.to_ascii_lowercase().as_str())) {
            return Err(format!("{text:?} is not a level or filter: {hint}"));
        }
    }
    tracing_subscriber::EnvFilter::try_new(text)
        .map(|_| ())
        .map_err(|e| format!("{text:?} is not a level or filter ({e}): {hint}"))
}
