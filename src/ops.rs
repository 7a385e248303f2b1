//! Operations endpoints on `http.listen`: `/healthz` (alive), `/readyz` (broker and database
//! reachable), `/metrics` (Prometheus text).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectReason {
    pub reason: &'static str,
}

/// The code of a message rejected because its conversion's stored history does not decode
/// (beside the event's own codes of [`crate::event::Reason`]).
pub const UNDECODABLE_HISTORY: &str = "undecodable_history";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertKind {
    pub kind: &'static str,
}

/// The kinds of alert sent to `alerts.webhook_url` (each shown at 0 from the start).
pub const ALERT_KINDS: [&str; 3] = ["disabled", "failure_ratio", "recovered"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpClass {
    pub class: &'static str,
}

/// The daemon's counters. Cheap to clone (every metric is shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Events consumed, by outcome: announced, accepted, duplicate, stale, rejected.
    pub events: Family<Outcome, Counter>,
    /// Deliveries by outcome: created, superseded, delivered, failed, retried.
    pub deliveries: Family<Outcome, Counter>,
    /// Attempts by HTTP class (2xx, 3xx, 4xx, 5xx, none).
    pub attempts: Family<HttpClass, Counter>,
    pub attempt_seconds: Histogram,
    /// Messages per intake transaction.
    pub batch_messages: Histogram,
    /// Pending deliveries whose attempt is due, counted up to `store::dispatch::DUE_COUNT_CAP`.
    pub retries_due: Gauge,
    /// Invalid messages stored and dead-lettered, by reason code (a bounded set).
    pub rejected: Family<RejectReason, Counter>,
    /// Intake sessions that ended with an error and reconnected (each requeues what it held).
    pub intake_restarts: Counter,
    /// Bytes of message bodies intake holds (taken, not yet acked), and the most it has held.
    pub intake_bytes: Gauge,
    pub intake_bytes_peak: Gauge,
    /// Scale: messages without `x-conversion-id` in ordered mode, URLs disabled automatically,
    /// alerts sent (by kind) and failed, deliveries put back to wait for their URL's rate,
    /// and the URLs currently disabled automatically.
    pub scale: ScaleMetrics,
}

/// The metrics of ordered mode, automatic disabling, alerts and rate limits.
#[derive(Clone, Default)]
pub struct ScaleMetrics {
    pub unordered_messages: Counter,
    pub urls_auto_disabled: Counter,
    pub alerts_sent: Family<AlertKind, Counter>,
    pub alerts_failed: Counter,
    pub rate_limited: Counter,
    pub urls_disabled: Gauge,
}

impl ScaleMetrics {
    /// Registers each metric (counters get their `_total` suffix from the encoder).
    fn register(&self, registry: &mut Registry) {
        for kind in ALERT_KINDS {
            drop(self.alerts_sent.get_or_create(&AlertKind { kind }));
        }
        registry.register(
            "unordered_messages",
            "Messages without x-conversion-id consumed in ordered mode",
            self.unordered_messages.clone(),
        );
        registry.register(
            "urls_auto_disabled",
            "URLs disabled automatically after failing for delivery.disable_after",
            self.urls_auto_disabled.clone(),
        );
        registry.register(
            "alerts_sent",
            "Alerts sent to alerts.webhook_url, by kind",
            self.alerts_sent.clone(),
        );
        registry.register(
            "alerts_failed",
            "Alerts that alerts.webhook_url did not accept (each try)",
            self.alerts_failed.clone(),
        );
        registry.register(
            "rate_limited",
            "Deliveries put back to wait for their URL's rate limit",
            self.rate_limited.clone(),
        );
        registry.register(
            "urls_disabled",
            "URLs currently disabled automatically",
            self.urls_disabled.clone(),
        );
    }

    pub fn alert_sent(&self, kind: &'static str) {
        self.alerts_sent.get_or_create(&AlertKind { kind }).inc();
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("xpb");
        let events = Family::<Outcome, Counter>::default();
        let deliveries = Family::<Outcome, Counter>::default();
        let attempts = Family::<HttpClass, Counter>::default();
        let attempt_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let retries_due = Gauge::default();
        let batch_messages = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        let rejected = Family::<RejectReason, Counter>::default();
        // Every code is shown from the start (at 0), so an alert on one can be written at once.
        let codes = crate::event::Reason::ALL.map(crate::event::Reason::code);
        for reason in codes.into_iter().chain([UNDECODABLE_HISTORY]) {
            drop(rejected.get_or_create(&RejectReason { reason }));
        }
        let intake_restarts = Counter::default();
        let (intake_bytes, intake_bytes_peak) = (Gauge::default(), Gauge::default());
        registry.register(
            "intake_bytes_in_flight",
            "Message bytes taken and not yet acked",
            intake_bytes.clone(),
        );
        registry.register(
            "intake_bytes_in_flight_peak",
            "The most message bytes held at once",
            intake_bytes_peak.clone(),
        );
        registry.register("events_consumed", "Events consumed, by outcome", events.clone());
        registry.register("deliveries", "Deliveries, by outcome", deliveries.clone());
        registry.register("attempts", "Attempts, by HTTP status class", attempts.clone());
        registry.register(
            "attempt_duration_seconds",
            "Attempt latency",
            attempt_seconds.clone(),
        );
        registry.register(
            "retries_due",
            format!(
                "Pending deliveries whose attempt is due (counted up to {})",
                crate::store::dispatch::DUE_COUNT_CAP
            ),
            retries_due.clone(),
        );
        registry.register(
            "intake_batch_messages",
            "Messages per intake transaction",
            batch_messages.clone(),
        );
        registry.register(
            "rejected_messages",
            "Invalid messages stored and dead-lettered, by reason code",
            rejected.clone(),
        );
        registry.register(
            "intake_restarts",
            "Intake sessions ended by an error and started again",
            intake_restarts.clone(),
        );
        let scale = ScaleMetrics::default();
        scale.register(&mut registry);
        Metrics {
            registry: Arc::new(registry),
            events,
            deliveries,
            attempts,
            attempt_seconds,
            batch_messages,
            retries_due,
            rejected,
            intake_restarts,
            intake_bytes,
            intake_bytes_peak,
            scale,
        }
    }
}

impl Metrics {
    pub fn reject(&self, reason: &'static str) {
        self.rejected.get_or_create(&RejectReason { reason }).inc();
    }

    pub fn event(&self, outcome: &'static str) {
        self.events.get_or_create(&Outcome { outcome }).inc();
    }

    pub fn delivery(&self, outcome: &'static str, n: u64) {
        if n > 0 {
            self.deliveries.get_or_create(&Outcome { outcome }).inc_by(n);
        }
    }

    pub fn attempt(&self, http_code: Option<u16>, seconds: f64) {
        let class = match http_code {
            Some(100..=199) => "1xx",
            Some(200..=299) => "2xx",
            Some(300..=399) => "3xx",
            Some(400..=499) => "4xx",
            Some(_) => "5xx",
            None => "none",
        };
        self.attempts.get_or_create(&HttpClass { class }).inc();
        self.attempt_seconds.observe(seconds);
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        out
    }
}

/// Readiness: both flags are kept up to date by the parts that talk to each service; a
/// background task that died makes the daemon unready for good (it is stopping).
#[derive(Default)]
pub struct Health {
    pub broker: AtomicBool,
    pub database: AtomicBool,
    /// The first background task that died, if one did.
    failed: std::sync::OnceLock<String>,
}

impl Health {
    pub fn ready(&self) -> bool {
        self.broker.load(Ordering::Relaxed)
            && self.database.load(Ordering::Relaxed)
            && self.failed().is_none()
    }

    /// Records that a background task died (the first one is kept).
    pub fn set_failed(&self, task: &str) {
        let _ = self.failed.set(task.to_owned());
    }

    pub fn failed(&self) -> Option<&str> {
        self.failed.get().map(String::as_str)
    }

    pub fn set_broker(&self, up: bool) {
        self.broker.store(up, Ordering::Relaxed);
    }

    pub fn set_database(&self, up: bool) {
        self.database.store(up, Ordering::Relaxed);
    }
}

#[derive(Clone)]
struct Ops {
    health: Arc<Health>,
    metrics: Metrics,
}

/// Binds the listener (so a bad address fails start-up) and returns its address and the
/// server future, which ends when `shutdown` is cancelled.
pub async fn serve(
    listen: SocketAddr,
    health: Arc<Health>,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, impl Future<Output = ()>)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen} (http.listen): {e}"))?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Ops { health, metrics });
    let server = async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "ops listener failed");
        }
    };
    Ok((addr, server))
}

async fn readyz(State(ops): State<Ops>) -> impl IntoResponse {
    let broker = ops.health.broker.load(Ordering::Relaxed);
    let database = ops.health.database.load(Ordering::Relaxed);
    let mut body = format!("broker: {}\ndatabase: {}\n", up(broker), up(database));
    if let Some(task) = ops.health.failed() {
        body.push_str(&format!("failed: {task}\n"));
    }
    let code = if ops.health.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, body)
}

fn up(b: bool) -> &'static str {
    if b { "up" } else { "down" }
}

async fn metrics_text(State(ops): State<Ops>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ops.metrics.encode(),
    )
}

#[cfg(test)]
mod tests {
    use super::Metrics;

    #[test]
    fn scale_metrics_are_exported_at_zero_under_their_names() {
        let text = Metrics::default().encode();
        for line in [
            "xpb_unordered_messages_total 0",
            "xpb_urls_auto_disabled_total 0",
            "xpb_alerts_sent_total{kind=\"disabled\"} 0",
            "xpb_alerts_sent_total{kind=\"failure_ratio\"} 0",
            "xpb_alerts_sent_total{kind=\"recovered\"} 0",
            "xpb_alerts_failed_total 0",
            "xpb_rate_limited_total 0",
            "xpb_urls_disabled 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
    }
}
