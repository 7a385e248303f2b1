//! The URL service: add, edit, list, disable, enable, remove and test cross-postback URLs.
//! The CLI, the coming HTTP API and the page call this one module, so they validate, refuse
//! duplicates and send test requests the same way; each returns a typed error.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use deadpool_postgres::Pool;

use crate::config::Config;
use crate::event::{self, Event, Status};
use crate::guard::Guard;
use crate::sender::{self, Sender};
use crate::store::{self, StoreError, urls};
use crate::url_spec::{self, ContentType, Header, Method, RateLimit, UrlSpec, UrlSpecError};

/// Why a URL operation did not happen. Nothing here holds a header value or an unmasked URL.
#[derive(Debug, thiserror::Error)]
pub enum UrlServiceError {
    #[error("invalid URL")]
    Invalid(#[from] UrlSpecError),
    #[error(
        "URL {existing} of offer {offer} is the same and enabled; pass --allow-duplicate to \
         add it anyway"
    )]
    Duplicate { existing: i64, offer: String },
    #[error("no cross-postback URL with id {0}")]
    NotFound(i64),
    #[error("the event file is not a valid event")]
    Event(#[source] event::Invalid),
    #[error("the URL does not render")]
    Render(String),
    #[error("the HTTP client cannot be built")]
    Client(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What to change in a URL; `None` leaves a setting as it is. For an optional setting,
/// `Some(None)` clears it (no goal, all statuses, no body, no own timeout); `headers`
/// replaces the URL's headers as a whole (`Some(vec![])` removes them all).
#[derive(Debug, Clone, Default)]
pub struct UrlPatch {
    pub url: Option<String>,
    pub method: Option<Method>,
    pub goal: Option<Option<String>>,
    pub statuses: Option<Option<Vec<String>>>,
    pub body: Option<Option<String>>,
    pub content_type: Option<ContentType>,
    pub follow_redirects: Option<bool>,
    pub headers: Option<Vec<Header>>,
    pub timeout: Option<Option<Duration>>,
}

/// A request sent by [`UrlService::test`] and what came of it (nothing is recorded).
#[derive(Debug)]
pub struct TestOutcome {
    pub request: sender::Request,
    pub response: sender::Response,
}

/// The URL service over one pool, with the delivery settings that bound and send requests.
pub struct UrlService {
    pool: Pool,
    /// The global `delivery.timeout`: the bound of a URL's own timeout.
    max_timeout: Duration,
    guard: (bool, Vec<ipnet::IpNet>),
    connect_timeout: Duration,
    max_response_bytes: usize,
}

impl UrlService {
    pub fn new(pool: Pool, cfg: &Config) -> UrlService {
        let d = &cfg.delivery;
        UrlService {
            pool,
            max_timeout: d.timeout.0,
            guard: (d.allow_private_networks, cfg.allow_cidrs()),
            connect_timeout: d.connect_timeout.0,
            max_response_bytes: d.max_response_bytes,
        }
    }

    /// Checks a URL as given against the rules and the global timeout.
    pub fn validate(&self, spec: UrlSpec) -> Result<urls::NewUrl, UrlServiceError> {
        Ok(url_spec::validate(spec, self.max_timeout)?)
    }

    /// Adds a URL; refuses one exactly like an enabled URL of the same offer unless
    /// `allow_duplicate`. A bad URL is refused before the database is asked anything.
    pub async fn add(&self, spec: UrlSpec, allow_duplicate: bool) -> Result<i64, UrlServiceError> {
        let new = self.validate(spec)?;
        let client = self.pool.get().await.map_err(StoreError::from)?;
        if !allow_duplicate {
            refuse_duplicate(&client, &new, None).await?;
        }
        Ok(urls::add(&client, &new).await?)
    }

    /// Edits a URL with the same checks as [`add`](Self::add); its offer stays. Pending
    /// deliveries render from the edited row at their next attempt. Returns the edited row.
    pub async fn edit(
        &self,
        id: i64,
        patch: UrlPatch,
        allow_duplicate: bool,
    ) -> Result<urls::UrlRow, UrlServiceError> {
        let client = self.pool.get().await.map_err(StoreError::from)?;
        let row = urls::get(&client, id)
            .await?
            .ok_or(UrlServiceError::NotFound(id))?;
        let new = self.validate(patched(&row, patch))?;
        if !allow_duplicate && row.enabled {
            refuse_duplicate(&client, &new, Some(id)).await?;
        }
        if !urls::update(&client, id, &new).await? {
            return Err(UrlServiceError::NotFound(id));
        }
        urls::get(&client, id).await?.ok_or(UrlServiceError::NotFound(id))
    }

    /// Sets or clears URL `id`'s rate limit (a [`RateLimit`] is valid by construction: see
    /// [`RateLimit::parse`]). Sends over it wait; the rate holds across replicas.
    pub async fn set_rate(&self, id: i64, rate: Option<RateLimit>) -> Result<(), UrlServiceError> {
        let client = self.pool.get().await.map_err(StoreError::from)?;
        if !store::rates::set(&client, id, rate).await? {
            return Err(UrlServiceError::NotFound(id));
        }
        Ok(())
    }

    pub async fn list(&self, offer: Option<&str>) -> Result<Vec<urls::UrlRow>, UrlServiceError> {
        let client = self.pool.get().await.map_err(StoreError::from)?;
        Ok(urls::list(&client, offer).await?)
    }

    /// Disables a URL; returns how many pending deliveries were cancelled.
    pub async fn disable(&self, id: i64) -> Result<u64, UrlServiceError> {
        let mut client = self.existing(id).await?;
        Ok(urls::set_enabled(&mut client, id, false).await?)
    }

    pub async fn enable(&self, id: i64) -> Result<(), UrlServiceError> {
        let mut client = self.existing(id).await?;
        urls::set_enabled(&mut client, id, true).await?;
        Ok(())
    }

    /// Removes a URL; returns how many pending deliveries were cancelled.
    pub async fn remove(&self, id: i64) -> Result<u64, UrlServiceError> {
        let mut client = self.existing(id).await?;
        Ok(urls::remove(&mut client, id).await?)
    }

    /// A connection, once URL `id` is known to exist (not removed), so that a caller gets
    /// [`UrlServiceError::NotFound`] to branch on (the HTTP API answers 404 with it).
    async fn existing(&self, id: i64) -> Result<deadpool_postgres::Client, UrlServiceError> {
        let client = self.pool.get().await.map_err(StoreError::from)?;
        if urls::get(&client, id).await?.is_none() {
            return Err(UrlServiceError::NotFound(id));
        }
        Ok(client)
    }

    /// Parses an event file's bytes as the daemon's intake does.
    pub fn parse_event(bytes: &[u8]) -> Result<Event, UrlServiceError> {
        event::parse(bytes).map_err(UrlServiceError::Event)
    }

    /// Sends one request to URL `id` now (disabled URLs too), rendered from `event` or, without
    /// one, from sample values, through the daemon's sender and network guard. Records nothing.
    pub async fn test(&self, id: i64, event: Option<Event>) -> Result<TestOutcome, UrlServiceError> {
        let row = {
            let client = self.pool.get().await.map_err(StoreError::from)?;
            urls::get(&client, id)
                .await?
                .ok_or(UrlServiceError::NotFound(id))?
        };
        let event = event.unwrap_or_else(|| sample_event(&row));
        let key = format!("test-{}", uuid::Uuid::new_v4());
        let request = sender::render::request(&row, &event, key).map_err(UrlServiceError::Render)?;
        let sender = Sender::new(
            Guard::new(self.guard.0, self.guard.1.clone()),
            self.connect_timeout,
            self.max_timeout,
            self.max_response_bytes,
        )
        .map_err(|e| UrlServiceError::Client(e.into()))?;
        let response = sender.send(&request).await;
        Ok(TestOutcome { request, response })
    }
}

async fn refuse_duplicate(
    client: &deadpool_postgres::Client,
    new: &urls::NewUrl,
    except: Option<i64>,
) -> Result<(), UrlServiceError> {
    match urls::find_duplicate(client, new, except).await? {
        Some(existing) => Err(UrlServiceError::Duplicate {
            existing,
            offer: new.offer_id().to_owned(),
        }),
        None => Ok(()),
    }
}

/// The URL as stored with the patch applied, as a spec to validate again.
fn patched(row: &urls::UrlRow, p: UrlPatch) -> UrlSpec {
    UrlSpec {
        offer_id: row.offer_id.clone(),
        url: p.url.unwrap_or_else(|| row.url.clone()),
        method: p.method.unwrap_or(Method::from_stored(&row.method)),
        goal: p.goal.unwrap_or_else(|| row.goal.clone()),
        statuses: p.statuses.unwrap_or_else(|| Some(row.statuses.clone())),
        body: p.body.unwrap_or_else(|| row.body.clone()),
        content_type: p
            .content_type
            .unwrap_or(ContentType::from_stored(&row.content_type)),
        follow_redirects: p.follow_redirects.unwrap_or(row.follow_redirects),
        headers: p.headers.unwrap_or_else(|| row.headers.clone()),
        timeout: p.timeout.unwrap_or_else(|| row.timeout()),
    }
}

/// An event of the URL's offer that the URL fires on (its goal, its first status), with a
/// `test-<name>` value in every text field.
fn sample_event(row: &urls::UrlRow) -> Event {
    let status = row
        .statuses
        .first()
        .and_then(|s| Status::parse(s))
        .unwrap_or(Status::Approved);
    let mut fields: BTreeMap<String, String> = event::TEXT_FIELDS
        .iter()
        .map(|n| ((*n).to_owned(), format!("test-{n}")))
        .collect();
    if let Some(goal) = &row.goal {
        fields.insert("goal".into(), goal.clone());
    }
    let now = Utc::now();
    Event {
        conversion_id: "test-conversion".into(),
        status,
        updated_at: now,
        sequence: None,
        offer_id: row.offer_id.clone(),
        affiliate_id: "test-affiliate".into(),
        event_id: Some("test-event".into()),
        created_at: Some(now),
        click_time: Some(now),
        payout: event::parse_decimal("1.50"),
        revenue: event::parse_decimal("2.50"),
        fields,
    }
}
