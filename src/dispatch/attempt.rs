//! One attempt: render the request from the URL's current row, send it, classify the answer
//! and decide the delivery's next state.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Dispatch;
use crate::retry::{ErrorCode, Verdict, at_least_the_step, classify, jitter};
use crate::sender;
use crate::store::dispatch::{AttemptRecord, DeliveryState, Job, Method};
use crate::store::urls::UrlRow;

/// Renders the request from `url` (the URL's current row) and the delivery's event.
pub(super) fn prepare(job: &Job, url: &UrlRow) -> Result<sender::Request, String> {
    let idempotency_key = match &job.event.event_id {
        Some(event_id) => format!("{event_id}:{}", url.id),
        None => job.delivery_id.to_string(),
    };
    sender::render::request(url, &job.event, idempotency_key)
}

/// Makes one attempt to `url` and decides what comes next.
pub(super) async fn attempt(
    dispatch: &Dispatch,
    job: &Job,
    url: &UrlRow,
    prepared: Result<sender::Request, String>,
) -> AttemptRecord {
    let sent_at = Utc::now();
    let method = Method::from_stored(&url.method);
    let (sent_url, response) = match prepared {
        Ok(req) => {
            let response = dispatch.sender.send(&req).await;
            (req.url, response)
        }
        Err(reason) => {
            let response = sender::Response {
                http_code: None,
                error: Some((
                    ErrorCode::Render,
                    format!("the URL or body does not render: {reason}"),
                )),
                excerpt: None,
                retry_after: None,
                duration: Duration::ZERO,
            };
            (url.url.clone(), response)
        }
    };
    let error_code = response.error.as_ref().map(|(c, _)| *c);
    let verdict = classify(response.http_code, error_code);
    let next_delay = match verdict {
        Verdict::Retry => dispatch.schedule.next_delay(
            job.schedule_attempt(),
            at_least_the_step(response.http_code, error_code, jitter()),
            response.retry_after,
        ),
        _ => None,
    };
    let (state, next_attempt_at) = next_step(verdict, next_delay, Utc::now());
    dispatch
        .metrics
        .attempt(response.http_code, response.duration.as_secs_f64());
    log_attempt(&sent_url, &response, state);
    AttemptRecord {
        delivery_id: job.delivery_id,
        url_id: url.id,
        url: sent_url,
        method,
        event: Arc::clone(&job.event),
        attempt: job.attempt,
        http_code: response.http_code.map(i32::from),
        error_code,
        error: response.error.map(|(_, text)| text),
        response_excerpt: response.excerpt,
        duration_ms: i32::try_from(response.duration.as_millis()).unwrap_or(i32::MAX),
        sent_at,
        state,
        next_attempt_at,
    }
}

/// The delivery's state after an attempt and when its next one is due. A retry whose time
/// cannot be represented (a delay beyond the calendar) is past the schedule's end: the
/// delivery fails rather than waiting for a time that never comes (or panicking).
pub(super) fn next_step(
    verdict: Verdict,
    delay: Option<Duration>,
    now: DateTime<Utc>,
) -> (DeliveryState, Option<DateTime<Utc>>) {
    match (verdict, delay) {
        (Verdict::Delivered, _) => (DeliveryState::Delivered, None),
        (Verdict::Retry, Some(d)) => {
            let at = chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| now.checked_add_signed(d));
            match at {
                Some(at) => (DeliveryState::Pending, Some(at)),
                None => (DeliveryState::Failed, None),
            }
        }
        _ => (DeliveryState::Failed, None),
    }
}

fn log_attempt(url: &str, response: &sender::Response, state: DeliveryState) {
    let masked = crate::mask::mask_url(url);
    let ms = response.duration.as_millis() as u64;
    match &response.error {
        None => tracing::info!(url = %masked, http_code = response.http_code, duration_ms = ms, "delivered"),
        Some((code, text)) => {
            tracing::warn!(url = %masked, http_code = response.http_code, error_code = code.as_str(),
            error = %text, duration_ms = ms, next = state.as_str(), "attempt failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;

    use super::next_step;
    use crate::retry::Verdict;
    use crate::store::dispatch::DeliveryState;

    #[test]
    fn a_retry_delay_beyond_the_calendar_fails_the_delivery_instead_of_panicking() {
        let now = Utc::now();
        for delay in [
            Duration::from_secs(100_000_000 * 86_400), // retry_schedule = ["100000000d"]
            Duration::from_secs(u64::MAX),
            Duration::MAX,
        ] {
            assert_eq!(
                next_step(Verdict::Retry, Some(delay), now),
                (DeliveryState::Failed, None)
            );
        }
    }

    #[test]
    fn a_retry_in_range_is_pending_at_now_plus_the_delay() {
        let now = Utc::now();
        let (state, at) = next_step(Verdict::Retry, Some(Duration::from_secs(30)), now);
        assert_eq!(state, DeliveryState::Pending);
        assert_eq!(at, Some(now + chrono::Duration::seconds(30)));
        assert_eq!(
            next_step(Verdict::Retry, None, now),
            (DeliveryState::Failed, None)
        );
        assert_eq!(
            next_step(Verdict::Fail, Some(Duration::from_secs(1)), now),
            (DeliveryState::Failed, None)
        );
        assert_eq!(
            next_step(Verdict::Delivered, None, now),
            (DeliveryState::Delivered, None)
        );
    }
}
