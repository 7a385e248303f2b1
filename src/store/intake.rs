//! The intake transaction: decide a batch of messages (de-duplication and order) and log the conversions' new state,
//! their `pending` deliveries and the rejected messages, all in one commit.
//!
//! Three steps: read a snapshot, plan the batch ([`crate::plan`], pure), write the plan.
//!
//! Locks, taken before anything is read: one transaction-scoped advisory lock per conversion,
//! in hash order, so two replicas deciding the same conversion serialise and never deadlock
//! each other; and a shared one per offer, so that `urls disable` (which takes it exclusively)
//! waits for this commit and then cancels what it logged. Taking them writes no row (the open
//! deliveries are still read FOR UPDATE, so a poller cannot lease one while this decides).
//!
//! Order: statements that must run in order are prepared first, then sent together in one
//! round trip. A prepared statement's messages are written to the connection on the first
//! poll of its future, and a `biased` join polls its futures in the order written, so they
//! reach Postgres in that order. (An unprepared one would be parsed first and sent a round
//! trip later, after the ones written beside it.)

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::StoreError;
use super::dispatch::HandOff;
use super::urls::{COLUMNS, OFFER_LOCKS, UrlRow};
use crate::dedupe::{Decision, History};
use crate::event::Event;
use crate::plan::{self, OpenDelivery, Snapshot, Target};

mod write;

/// A message as intake hands it to the store.
#[derive(Debug)]
pub enum Message {
    Valid(Arc<Event>),
    Invalid(Rejected),
}

/// An invalid message, kept with its reason (`rejected_messages`).
#[derive(Debug, Clone)]
pub struct Rejected {
    pub body: Vec<u8>,
    pub size: usize,
    pub sha256: Option<Vec<u8>>,
    pub truncated: bool,
    pub routing_key: String,
    pub headers: serde_json::Value,
    pub reason: String,
    /// The reason's code, one of a bounded set (a metric label).
    pub code: &'static str,
}

/// What one batch did.
#[derive(Debug, Default)]
pub struct Logged {
    /// Per message, in order: the decision, or `None` for a rejected one.
    pub decisions: Vec<Option<Decision>>,
    pub deliveries: usize,
    pub superseded: usize,
    /// What dispatch takes over once the batch's messages are acked.
    pub hand_off: HandOff,
}

/// Why a batch was not logged.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Deciding from a guessed (empty) history would announce the event again and overwrite
    /// the stored one: nothing is written, and the caller rejects this conversion's messages
    /// and logs the batch again without them.
    #[error(
        "conversion {conversion_id}: the stored history does not decode ({cause}); no event of this conversion can be decided until the row is fixed"
    )]
    History {
        conversion_id: String,
        cause: serde_json::Error,
    },
}

impl From<tokio_postgres::Error> for LogError {
    fn from(e: tokio_postgres::Error) -> LogError {
        LogError::Store(e.into())
    }
}

impl LogError {
    /// A deadlock or serialisation failure: the batch may simply be run again.
    pub fn is_retryable_conflict(&self) -> bool {
        matches!(self, LogError::Store(e) if e.is_retryable_conflict())
    }
}

impl Target for Arc<UrlRow> {
    fn id(&self) -> i64 {
        self.id
    }
    fn offer_id(&self) -> &str {
        &self.offer_id
    }
    fn matches(&self, event: &Event) -> bool {
        UrlRow::matches(self, event)
    }
}

/// Decides and logs one batch in one transaction: snapshot, plan, writes.
pub async fn log_batch(
    client: &mut deadpool_postgres::Client,
    messages: &[Message],
    owner: Uuid,
    lease: Duration,
) -> Result<Logged, LogError> {
    let lease = write::Lease {
        owner,
        length: lease,
        until: super::dispatch::lease_end(Instant::now(), lease),
    };
    let tx = client.transaction().await?;
    let events: Vec<Option<&Event>> = messages
        .iter()
        .map(|m| match m {
            Message::Valid(e) => Some(&**e),
            Message::Invalid(_) => None,
        })
        .collect();
    let read = read(&tx, &events).await?;
    let snapshot = Snapshot {
        histories: read.histories,
        open: read.open,
        urls: &read.urls,
    };
    let plan = plan::plan(snapshot, &events);
    let logged = write::write_plan(&tx, &plan, &read.urls, messages, &lease).await?;
    tx.commit().await?;
    Ok(logged)
}

/// What a batch reads, under its locks.
#[derive(Default)]
struct Read {
    histories: HashMap<String, History>,
    open: Vec<OpenDelivery>,
    urls: Vec<Arc<UrlRow>>,
}

/// Takes the batch's locks, then reads its conversions, URLs and open deliveries: prepared
/// first, then sent in this order in one round trip.
async fn read(tx: &deadpool_postgres::Transaction<'_>, events: &[Option<&Event>]) -> Result<Read, LogError> {
    let mut ids: Vec<&str> = events
        .iter()
        .flatten()
        .map(|e| e.conversion_id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Read::default());
    }
    let mut offers: Vec<&str> = events.iter().flatten().map(|e| e.offer_id.as_str()).collect();
    offers.sort_unstable();
    offers.dedup();
    let (lock_conversions, lock_offers, conversions, urls, open) = tokio::try_join!(
        tx.prepare_cached(LOCK_CONVERSIONS),
        tx.prepare_cached(LOCK_OFFERS),
        tx.prepare_cached(READ_CONVERSIONS),
        tx.prepare_cached(&READ_URLS),
        tx.prepare_cached(READ_OPEN_DELIVERIES),
    )?;
    let pg: &tokio_postgres::Transaction<'_> = tx;
    let by_ids: &[&(dyn ToSql + Sync)] = &[&ids];
    let by_offers: &[&(dyn ToSql + Sync)] = &[&offers];
    let offer_locks: &[&(dyn ToSql + Sync)] = &[&offers, &OFFER_LOCKS];
    let (_, _, conversions, urls, open) = tokio::try_join!(
        biased;
        pg.execute(&lock_conversions, by_ids),
        pg.execute(&lock_offers, offer_locks),
        pg.query(&conversions, by_ids),
        pg.query(&urls, by_offers),
        pg.query(&open, by_ids),
    )?;
    let mut read = Read::default();
    for row in conversions {
        let conversion_id: String = row.try_get(0)?;
        let stored: serde_json::Value = row.try_get(1)?;
        match serde_json::from_value::<History>(stored) {
            Ok(history) => read.histories.insert(conversion_id, history),
            Err(cause) => return Err(LogError::History { conversion_id, cause }),
        };
    }
    read.urls = urls.iter().map(|row| Arc::new(UrlRow::from_row(row))).collect();
    for row in open {
        read.open.push(OpenDelivery {
            id: row.try_get(0)?,
            conversion_id: row.try_get(1)?,
            url_id: row.try_get(2)?,
            pending: row.try_get(3)?,
            leased: row.try_get(4)?,
        });
    }
    Ok(read)
}

/// Transaction-scoped advisory locks on the batch's conversions, in hash order, so replicas
/// deciding the same conversion serialise and never deadlock.
pub(super) const LOCK_CONVERSIONS: &str = "SELECT pg_advisory_xact_lock(h) FROM
    (SELECT DISTINCT hashtextextended(c, 0) AS h FROM unnest($1::text[]) AS c) AS s
    ORDER BY h";

/// `last_announced` is read from its column. This release still stores it in the history too,
/// with the same value; reading it from the column lets a later release stop storing it twice
/// while replicas of this one still run and decide from its rows right.
const READ_CONVERSIONS: &str = "SELECT conversion_id,
        history || jsonb_build_object('last_announced', last_announced)
    FROM conversions WHERE conversion_id = ANY($1)";

/// Shared advisory locks on the batch's offers (`$2` is the key space), in hash order: a
/// concurrent `urls disable` or `urls remove` takes its URL's offer exclusively, so it waits
/// for this commit and then cancels what this batch logged; and a batch that starts after it
/// reads the URL disabled. Nothing is written to take them.
pub(super) const LOCK_OFFERS: &str = "SELECT pg_advisory_xact_lock_shared($2::int4, h) FROM
    (SELECT DISTINCT hashtext(o) AS h FROM unnest($1::text[]) AS o) AS s
    ORDER BY h";

static READ_URLS: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {COLUMNS} FROM cross_postback_urls WHERE enabled AND offer_id = ANY($1)")
});

/// Locked (FOR UPDATE), so a poller cannot lease one of these between this read and the
/// superseding: it either leased it before (and this sees the lease) or skips it.
const READ_OPEN_DELIVERIES: &str = "SELECT id, conversion_id, url_id, state = 'pending',
        coalesce(lease_until > now(), false)
    FROM deliveries
    WHERE conversion_id = ANY($1) AND (state = 'pending' OR lease_until > now())
    FOR UPDATE";
