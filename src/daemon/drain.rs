//! The drain's middle step: the sends in flight get their share of the shutdown timeout, or
//! less when the operator signals again; the rest are abandoned to their leases.

use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::supervisor::Supervisor;

/// Stops consuming and claiming, then waits for the sends in flight until `sends_until` or a
/// second signal (`hurry`), saying how many and for how long; abandons the rest. Returns how
/// many a second signal abandoned.
pub(super) async fn drain_sends(
    sup: &mut Supervisor,
    tracker: &TaskTracker,
    abandon: &CancellationToken,
    hurry: &CancellationToken,
    (started, sends_until): (Instant, Instant),
) -> Option<usize> {
    tracing::info!("stopped consuming; finishing in-flight sends");
    let in_flight = tracker.len();
    if in_flight > 0 {
        let window = crate::config::Dur(sends_until.duration_since(started));
        let sends = plural(in_flight, "send", "sends");
        tracing::info!("waiting up to {window} for {in_flight} {sends}; interrupt again to abandon");
    }
    tokio::select! {
        _ = sup.wait_for(&["intake", "poller", "jobs loop"], sends_until.into()) => {}
        _ = hurry.cancelled() => {}
    }
    tracker.close();
    let finished = tokio::select! {
        done = tokio::time::timeout_at(sends_until.into(), tracker.wait()) => done.is_ok(),
        _ = hurry.cancelled() => false,
    };
    if finished {
        return None;
    }
    let left = tracker.len();
    tracing::warn!(
        after_ms = started.elapsed().as_millis() as u64,
        sends = left,
        "in-flight sends abandoned; their leases expire and they are sent again"
    );
    abandon.cancel();
    tracker.wait().await;
    hurry.is_cancelled().then_some(left)
}

pub(super) fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}
