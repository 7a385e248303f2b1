//! `cross_postback_urls`: the configured cross-postback URLs of each offer (SPEC §3).

use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;

use super::{Result, StoreError};
use crate::event::Event;
use crate::macros::{Escape, Template};

/// One cross-postback URL as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UrlRow {
    pub id: i64,
    pub offer_id: String,
    pub url: String,
    pub method: String,
    pub goal: Option<String>,
    pub statuses: Vec<String>,
    pub body: Option<String>,
    pub content_type: String,
    pub follow_redirects: bool,
    pub enabled: bool,
    /// The templates, parsed once when the row is read (every attempt renders from them), or
    /// why they do not parse.
    #[serde(skip)]
    pub templates: std::result::Result<Templates, String>,
}

/// A URL's parsed templates.
#[derive(Debug, Clone, PartialEq)]
pub struct Templates {
    pub url: Template,
    /// A POST's body template, when it has one (validated by `urls add`).
    pub body: Option<Template>,
}

impl Templates {
    fn parse(url: &str, method: &str, body: Option<&str>) -> std::result::Result<Templates, String> {
        let body = match body {
            Some(text) if method == "POST" => Some(Template::parse(text).map_err(|e| e.to_string())?),
            _ => None,
        };
        Ok(Templates {
            url: Template::parse_url(url).map_err(|e| e.to_string())?,
            body,
        })
    }
}

pub(crate) const COLUMNS: &str =
    "id, offer_id, url, method, goal, statuses, body, content_type, follow_redirects, enabled";

impl UrlRow {
    pub(crate) fn from_row(row: &Row) -> UrlRow {
        let url: String = row.get("url");
        let method: String = row.get("method");
        let body: Option<String> = row.get("body");
        let templates = Templates::parse(&url, &method, body.as_deref());
        UrlRow {
            id: row.get("id"),
            offer_id: row.get("offer_id"),
            url,
            method,
            goal: row.get("goal"),
            statuses: row.get("statuses"),
            body,
            content_type: row.get("content_type"),
            follow_redirects: row.get("follow_redirects"),
            enabled: row.get("enabled"),
            templates,
        }
    }

    /// Whether an announced event fires to this URL: goal compared case-insensitively, status
    /// within the URL's filter.
    pub fn matches(&self, event: &Event) -> bool {
        let goal_ok = match &self.goal {
            None => true,
            Some(want) => event.field("goal").is_some_and(|g| lowercase_eq(g, want)),
        };
        goal_ok && self.statuses.iter().any(|s| s == event.status.as_str())
    }

    /// The `host:port` its requests go to, the key of the per-host limit (empty when the
    /// template does not parse: such a URL sends nothing).
    pub fn host(&self) -> &str {
        self.templates.as_ref().map_or("", |t| t.url.host_port())
    }

    pub fn body_escape(&self) -> Escape {
        Escape::for_content_type(&self.content_type)
    }
}

/// A URL to add, checked by [`crate::url_spec::validate`] (the only way to make one).
pub use crate::url_spec::NewUrl;

pub async fn add(client: &impl GenericClient, new: &NewUrl) -> Result<i64> {
    let statuses: Vec<&str> = new.statuses().iter().map(|s| s.as_str()).collect();
    let row = client
        .query_one(
            "INSERT INTO cross_postback_urls
                (offer_id, url, method, goal, statuses, body, content_type, follow_redirects)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            &[
                &new.offer_id(),
                &new.url(),
                &new.method().as_str(),
                &new.goal(),
                &statuses,
                &new.body(),
                &new.content_type().as_str(),
                &new.follow_redirects(),
            ],
        )
        .await?;
    Ok(row.get(0))
}

pub async fn list(client: &impl GenericClient, offer: Option<&str>) -> Result<Vec<UrlRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM cross_postback_urls
         WHERE removed_at IS NULL AND ($1::text IS NULL OR offer_id = $1) ORDER BY id"
    );
    let rows = client.query(&sql, &[&offer]).await?;
    Ok(rows.iter().map(UrlRow::from_row).collect())
}

/// The key space of the advisory locks on offers (the second key is `hashtext(offer_id)`).
/// Intake holds its batch's offers shared until it commits; disabling or removing a URL takes
/// the URL's offer exclusively first, so it waits for a batch that may have read the URL as
/// enabled, and then cancels what that batch logged. Locking writes no row.
pub(crate) const OFFER_LOCKS: i32 = 0x7870_626f; // "xpbo"

/// Waits for the intake batches that may be logging deliveries to this URL (see
/// [`OFFER_LOCKS`]); held until the transaction ends.
async fn lock_offer_of(tx: &impl GenericClient, url_id: i64) -> Result<()> {
    tx.execute(
        "SELECT pg_advisory_xact_lock($2::int4, hashtext(offer_id))
         FROM cross_postback_urls WHERE id = $1",
        &[&url_id, &OFFER_LOCKS],
    )
    .await?;
    Ok(())
}

/// Enables or disables a URL. Disabling cancels its pending deliveries; enabling revives none.
/// Returns how many deliveries were cancelled.
pub async fn set_enabled(client: &mut deadpool_postgres::Client, id: i64, enabled: bool) -> Result<u64> {
    let tx = client.transaction().await?;
    lock_offer_of(&tx, id).await?;
    let n = tx
        .execute(
            "UPDATE cross_postback_urls SET enabled = $2, updated_at = now()
             WHERE id = $1 AND removed_at IS NULL",
            &[&id, &enabled],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::Invalid(format!("no cross-postback URL with id {id}")));
    }
    let cancelled = if enabled {
        0
    } else {
        cancel_pending(&tx, id).await?
    };
    tx.commit().await?;
    Ok(cancelled)
}

/// Removes a URL: hidden from lists, pending deliveries cancelled, attempts kept.
pub async fn remove(client: &mut deadpool_postgres::Client, id: i64) -> Result<u64> {
    let tx = client.transaction().await?;
    lock_offer_of(&tx, id).await?;
    let n = tx
        .execute(
            "UPDATE cross_postback_urls SET enabled = false, removed_at = now(), updated_at = now()
             WHERE id = $1 AND removed_at IS NULL",
            &[&id],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::Invalid(format!("no cross-postback URL with id {id}")));
    }
    let cancelled = cancel_pending(&tx, id).await?;
    tx.commit().await?;
    Ok(cancelled)
}

async fn cancel_pending(tx: &impl GenericClient, url_id: i64) -> Result<u64> {
    Ok(tx
        .execute(
            "UPDATE deliveries SET state = 'cancelled', updated_at = now()
             WHERE url_id = $1 AND state = 'pending'",
            &[&url_id],
        )
        .await?)
}

/// Case-insensitive equality (Unicode lower case), without allocating.
fn lowercase_eq(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

#[cfg(test)]
mod tests {
    use super::lowercase_eq;

    #[test]
    fn goals_compare_case_insensitively() {
        assert!(lowercase_eq("Sale", "sALE"));
        assert!(lowercase_eq("ÉTÉ", "été"));
        assert!(!lowercase_eq("sale", "sales"));
        assert!(!lowercase_eq("sale", "lead"));
    }
}
