//! Automatic disabling and alerts: a periodic job, one replica at a time.
//!
//! Each run, in one transaction under an advisory lock: URLs whose every attempt failed over
//! `delivery.disable_after` (at least [`DISABLE_MIN_ATTEMPTS`] of them) are disabled with their
//! reason and their pending deliveries cancelled; each URL's 2xx share over the last hour is
//! compared with `alerts.failure_ratio` and its announced state (`url_alert_state`). A change
//! writes its alert to `alert_outbox` in that same transaction, so it is announced once, whatever
//! replica runs the job and however often it restarts. Then the due alerts are POSTed to
//! `alerts.webhook_url` with a bounded timeout, tried again later a few times: a slow or failing
//! endpoint delays nothing but its own alerts.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::ops::Metrics;
use crate::store::{StoreError, alerts as sql};

/// A URL is disabled only after at least this many attempts, all failed.
pub const DISABLE_MIN_ATTEMPTS: i64 = 20;
/// The 2xx share of an hour is judged from this many attempts up.
pub const RATIO_MIN_ATTEMPTS: i64 = 10;
/// How often the job runs.
pub const INTERVAL: Duration = Duration::from_secs(30);
/// One alert request's whole time.
pub const ALERT_TIMEOUT: Duration = Duration::from_secs(5);
/// Tries of one alert before it is given up (each failure counted).
pub const ALERT_TRIES: i32 = 4;

/// What the checks may announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Disabled,
    FailureRatio,
    Recovered,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Disabled => "disabled",
            Kind::FailureRatio => "failure_ratio",
            Kind::Recovered => "recovered",
        }
    }

    fn from_stored(s: &str) -> Kind {
        match s {
            "disabled" => Kind::Disabled,
            "failure_ratio" => Kind::FailureRatio,
            _ => Kind::Recovered,
        }
    }
}

/// The change of a URL's hourly state, if any: falling under `threshold` when not announced as
/// failing, or back at or over it when it was (pure).
pub fn ratio_change(failing: Option<bool>, attempts: i64, ok: i64, threshold: f64) -> Option<Kind> {
    if attempts <= 0 {
        return None;
    }
    let below = (ok as f64) / (attempts as f64) < threshold;
    match (below, failing == Some(true)) {
        (true, false) => Some(Kind::FailureRatio),
        (false, true) => Some(Kind::Recovered),
        _ => None,
    }
}

/// The reason stored on a URL disabled automatically (pure).
pub fn disable_reason(attempts: i64, after: Duration, last_error: Option<&str>) -> String {
    let span = crate::config::Dur(after).to_string();
    match last_error {
        Some(e) => format!("every attempt failed for {span} ({attempts} attempts; last: {e})"),
        None => format!("every attempt failed for {span} ({attempts} attempts)"),
    }
}

/// A JSON body Slack's incoming webhooks take (`text`, with `attachments` fields), with the
/// same facts for machines under `xpb`. The URL is masked (pure).
pub fn payload(kind: Kind, found: &sql::Found, detail: &str, at: DateTime<Utc>) -> serde_json::Value {
    let url = crate::mask::mask_url(&found.url);
    let what = match kind {
        Kind::Disabled => "disabled automatically",
        Kind::FailureRatio => "2xx share under the alert threshold",
        Kind::Recovered => "2xx share recovered",
    };
    let text = format!(
        "cross-postback: URL {} (offer {}) {what}: {detail}",
        found.url_id, found.offer_id
    );
    let field = |title: &str, value: String| json!({"title": title, "value": value, "short": true});
    json!({
        "text": text,
        "attachments": [{
            "color": if kind == Kind::Recovered { "good" } else { "danger" },
            "fields": [
                field("URL id", found.url_id.to_string()),
                field("Offer", found.offer_id.clone()),
                field("URL", url.clone()),
                field("Detail", detail.to_owned()),
            ],
        }],
        "xpb": {
            "kind": kind.as_str(),
            "url_id": found.url_id,
            "offer_id": found.offer_id,
            "url": url,
            "detail": detail,
            "attempts": found.attempts,
            "ok": found.ok,
            "at": at.to_rfc3339(),
        },
    })
}

/// What one run of the checks did (counted in metrics by the caller).
#[derive(Debug, Default, PartialEq)]
pub struct Checked {
    /// False when another replica held the lock (nothing was checked).
    pub ran: bool,
    pub disabled: Vec<i64>,
    pub failing: Vec<i64>,
    pub recovered: Vec<i64>,
    pub auto_disabled_now: i64,
}

/// Runs the checks as of `now`, in one transaction, if no other replica is running them.
pub async fn check(pool: &Pool, cfg: &Config, now: DateTime<Utc>) -> Result<Checked, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let mut out = Checked::default();
    if !sql::try_lock(&tx).await? {
        // Another replica checks; the gauge is kept by every replica alike.
        out.auto_disabled_now = sql::auto_disabled(&tx).await?;
        return Ok(out);
    }
    out.ran = true;
    let announce = cfg.alerts_webhook_url().is_some();
    let after = cfg.delivery.disable_after.0;
    if !after.is_zero() {
        let since = now - chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX);
        for found in sql::failing_since(&tx, since, now, DISABLE_MIN_ATTEMPTS).await? {
            let reason = disable_reason(found.attempts, after, found.last_error.as_deref());
            let Some(cancelled) = sql::disable(&tx, found.url_id, &reason, now).await? else {
                continue;
            };
            tracing::warn!(url_id = found.url_id, offer_id = %found.offer_id, cancelled, reason = %reason, "URL disabled automatically");
            if announce {
                let body = payload(Kind::Disabled, &found, &reason, now);
                sql::enqueue(&tx, found.url_id, Kind::Disabled.as_str(), &body, now).await?;
            }
            out.disabled.push(found.url_id);
        }
    }
    let threshold = cfg.alerts.failure_ratio;
    for found in sql::last_hour(&tx, now, RATIO_MIN_ATTEMPTS).await? {
        let Some(kind) = ratio_change(found.failing, found.attempts, found.ok, threshold) else {
            continue;
        };
        sql::set_failing(&tx, found.url_id, kind == Kind::FailureRatio, now).await?;
        let detail = format!(
            "{} of {} attempts in the last hour were 2xx (threshold {:.0}%)",
            found.ok,
            found.attempts,
            threshold * 100.0
        );
        tracing::info!(url_id = found.url_id, kind = kind.as_str(), detail = %detail, "URL success share changed");
        if announce {
            let body = payload(kind, &found, &detail, now);
            sql::enqueue(&tx, found.url_id, kind.as_str(), &body, now).await?;
        }
        match kind {
            Kind::FailureRatio => out.failing.push(found.url_id),
            _ => out.recovered.push(found.url_id),
        }
    }
    out.auto_disabled_now = sql::auto_disabled(&tx).await?;
    tx.commit().await?;
    Ok(out)
}

/// Sends the alerts due at `now`; returns (sent, failed tries). Each failure is counted in
/// `xpb_alerts_failed_total` and tried again later, up to [`ALERT_TRIES`] tries.
pub async fn send_due(
    pool: &Pool,
    http: &reqwest::Client,
    webhook: &str,
    metrics: &Metrics,
    now: DateTime<Utc>,
) -> Result<(usize, usize), StoreError> {
    let client = pool.get().await?;
    let lease = ALERT_TIMEOUT * 4;
    let due = sql::claim_due(&client, now, lease, 20).await?;
    let (mut sent, mut failed) = (0, 0);
    for alert in due {
        let result = http
            .post(webhook)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(alert.payload.to_string())
            .send()
            .await;
        let error = match result {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("HTTP {}", r.status().as_u16())),
            Err(e) if e.is_timeout() => Some("timeout".to_owned()),
            Err(_) => Some("connection failed".to_owned()),
        };
        match error {
            None => {
                sql::sent(&client, alert.id, now).await?;
                metrics.scale.alert_sent(Kind::from_stored(&alert.kind).as_str());
                sent += 1;
            }
            Some(error) => {
                metrics.scale.alerts_failed.inc();
                failed += 1;
                let retry = (alert.tries + 1 < ALERT_TRIES).then(|| now + retry_delay(alert.tries));
                tracing::warn!(alert_id = alert.id, kind = %alert.kind, tries = alert.tries + 1, error = %error, given_up = retry.is_none(), "alert not accepted by alerts.webhook_url");
                sql::try_failed(&client, alert.id, &error, retry, now).await?;
            }
        }
    }
    Ok((sent, failed))
}

/// The wait before try `tries + 2` of an alert: 30 s, 2 min, 8 min.
fn retry_delay(tries: i32) -> chrono::Duration {
    chrono::Duration::seconds(30 * 4_i64.pow(tries.clamp(0, 5) as u32))
}

/// The HTTP client of alerts: bounded, no proxy (the operator's own endpoint).
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(ALERT_TIMEOUT)
        .connect_timeout(ALERT_TIMEOUT)
        .user_agent(concat!("cross-postback/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The periodic job, until `stop`. A database error is logged and the next run tries again.
/// Stopping does not wait for a run: one cut short leaves its alerts leased, sent after the
/// lease by the next run (an alert may then be sent twice, never lost).
pub async fn run(
    pool: Pool,
    cfg: std::sync::Arc<Config>,
    metrics: Metrics,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let http = client()?;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(INTERVAL) => {}
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = once(&pool, &cfg, &metrics, &http) => {}
        }
    }
}

async fn once(pool: &Pool, cfg: &Config, metrics: &Metrics, http: &reqwest::Client) {
    match check(pool, cfg, Utc::now()).await {
        Ok(c) => {
            metrics.scale.urls_auto_disabled.inc_by(c.disabled.len() as u64);
            metrics.scale.urls_disabled.set(c.auto_disabled_now);
        }
        Err(e) => {
            tracing::warn!(error = %crate::report::one_line(&e), "automatic URL checks failed; trying again later")
        }
    }
    if let Some(webhook) = cfg.alerts_webhook_url()
        && let Err(e) = send_due(pool, http, webhook, metrics, Utc::now()).await
    {
        tracing::warn!(error = %crate::report::one_line(&e), "sending alerts failed; trying again later");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hourly_state_changes_once_each_way() {
        let cases = [
            (None, 10, 4, 0.5, Some(Kind::FailureRatio)),
            (Some(false), 10, 4, 0.5, Some(Kind::FailureRatio)),
            (Some(true), 10, 4, 0.5, None),
            (Some(true), 10, 5, 0.5, Some(Kind::Recovered)),
            (None, 10, 5, 0.5, None),
            (Some(false), 10, 9, 0.5, None),
            (None, 0, 0, 0.5, None),
            (None, 10, 0, 0.0, None),
            (None, 10, 9, 1.0, Some(Kind::FailureRatio)),
        ];
        for (failing, n, ok, threshold, want) in cases {
            assert_eq!(
                ratio_change(failing, n, ok, threshold),
                want,
                "{failing:?} {ok}/{n} < {threshold}"
            );
        }
    }

    #[test]
    fn a_payload_has_slack_text_and_fields_and_masks_the_url() {
        let found = sql::Found {
            url_id: 7,
            offer_id: "42".into(),
            url: "https://p.test/pb?token=S3CRET&c={clickid}".into(),
            attempts: 25,
            ok: 0,
            last_error: Some("connect".into()),
            failing: None,
        };
        let at = DateTime::parse_from_rfc3339("2026-05-01T10:00:00Z")
            .expect("time")
            .to_utc();
        let p = payload(Kind::Disabled, &found, "why", at);
        let text = p["text"].as_str().expect("text");
        assert!(
            text.contains("URL 7 (offer 42) disabled automatically: why"),
            "{text}"
        );
        assert_eq!(p["xpb"]["kind"], "disabled");
        assert_eq!(p["attachments"][0]["fields"].as_array().map(Vec::len), Some(4));
        assert!(!p.to_string().contains("S3CRET"), "{p}");
    }

    #[test]
    fn a_reason_names_the_span_the_count_and_the_last_error() {
        let r = disable_reason(24, Duration::from_secs(3 * 86_400), Some("connect"));
        assert_eq!(r, "every attempt failed for 3d (24 attempts; last: connect)");
        assert_eq!(retry_delay(0), chrono::Duration::seconds(30));
        assert_eq!(retry_delay(2), chrono::Duration::seconds(480));
    }
}
