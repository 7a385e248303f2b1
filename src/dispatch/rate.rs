//! Per-URL rate limits at send time: a job of a URL with a rate takes a slot from the URL's
//! shared row (see [`crate::store::rates`]) before it sends; over the rate, the delivery is put
//! back to wait for its slot, with no attempt made or counted, and its lease given back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Dispatch;
use crate::store::dispatch::Job;
use crate::store::{StoreError, rates};
use crate::url_spec::RateLimit;

/// The URLs' rates are read again this often: an edited rate applies within it. (The claim
/// does not read them, so the job's row may not carry them.)
const REFRESH: Duration = Duration::from_secs(1);

/// The rate of every URL that has one, read at most every [`REFRESH`].
#[derive(Default)]
pub struct Rates {
    cache: tokio::sync::Mutex<Option<(Instant, HashMap<i64, RateLimit>)>>,
}

impl Rates {
    async fn of(&self, pool: &deadpool_postgres::Pool, url_id: i64) -> Result<Option<RateLimit>, StoreError> {
        let mut cache = self.cache.lock().await;
        let stale = cache.as_ref().is_none_or(|(at, _)| at.elapsed() >= REFRESH);
        if stale {
            let client = pool.get().await?;
            let all = rates::all(&client).await?;
            *cache = Some((Instant::now(), all.into_iter().collect()));
        }
        Ok(cache.as_ref().and_then(|(_, m)| m.get(&url_id).copied()))
    }
}

/// Whether the job may be sent now. `false`: it was put back to wait for its slot (counted in
/// `xpb_rate_limited_total`), or the rate could not be checked; either way its lease is to be
/// given back.
pub(super) async fn may_send(dispatch: &Dispatch, job: &Job) -> bool {
    let checked = async {
        let Some(rate) = dispatch.rates.of(&dispatch.pool, job.url.id).await? else {
            return Ok(None);
        };
        let client = dispatch.pool.get().await?;
        let Some(slot) = rates::slot(&client, job.url.id, job.delivery_id, &rate).await? else {
            return Ok(None);
        };
        rates::wait_for(&client, job.delivery_id, dispatch.owner, slot).await?;
        Ok::<_, StoreError>(Some(slot))
    };
    match checked.await {
        Ok(None) => true,
        Ok(Some(slot)) => {
            dispatch.metrics.scale.rate_limited.inc();
            tracing::debug!(%slot, "over the URL's rate; waits for its slot");
            false
        }
        Err(e) => {
            tracing::warn!(error = %crate::report::one_line(&e), "cannot check the URL's rate; lease given back");
            false
        }
    }
}
