//! `cross_postback_urls`: the configured cross-postback URLs of each offer.

use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;

use super::{Result, StoreError};
use crate::event::Event;
use crate::macros::{Escape, Template};
pub use crate::url_spec::Header;

/// One cross-postback URL as stored. Its `Debug` masks the URL's secrets and the body (a
/// template that may carry a key); header values are masked by [`Header`]'s own.
#[derive(Clone, PartialEq, Serialize)]
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
    /// Request headers of this URL's own; their values may be secrets (masked when shown).
    #[serde(skip)]
    pub headers: Vec<Header>,
    /// This URL's request timeout in ms; `None`: the global `delivery.timeout`.
    pub timeout_ms: Option<i32>,
    /// Why the daemon disabled it automatically (`None` when it did not, or once enabled again).
    pub disabled_reason: Option<String>,
    /// Its rate limit, if it has one.
    #[serde(skip)]
    pub rate: Option<crate::url_spec::RateLimit>,
    /// The templates, parsed once when the row is read (every attempt renders from them), or
    /// why they do not parse.
    #[serde(skip)]
    pub templates: std::result::Result<Templates, String>,
}

impl std::fmt::Debug for UrlRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlRow")
            .field("id", &self.id)
            .field("offer_id", &self.offer_id)
            .field("url", &crate::mask::mask_url(&self.url))
            .field("method", &self.method)
            .field("goal", &self.goal)
            .field("statuses", &self.statuses)
            .field("body", &self.body.as_ref().map(|_| "***"))
            .field("content_type", &self.content_type)
            .field("follow_redirects", &self.follow_redirects)
            .field("enabled", &self.enabled)
            .field("headers", &self.headers)
            .field("timeout_ms", &self.timeout_ms)
            .field("templates", &self.templates)
            .finish()
    }
}

/// A URL's parsed templates.
#[derive(Debug, Clone, PartialEq)]
pub struct Templates {
    pub url: Template,
    /// A POST's body template, when it has one (validated by `urls add`).
    pub body: Option<Template>,
    /// Each header's name and value template, in order.
    pub headers: Vec<(String, Template)>,
}

impl Templates {
    fn parse(
        url: &str,
        method: &str,
        body: Option<&str>,
        headers: &[Header],
    ) -> std::result::Result<Templates, String> {
        let body = match body {
            Some(text) if method == "POST" => Some(Template::parse(text).map_err(|e| e.to_string())?),
            _ => None,
        };
        let headers = headers
            .iter()
            .map(|h| {
                Template::parse_header_value(&h.value)
                    .map(|t| (h.name.clone(), t))
                    .map_err(|e| format!("header {}: {e}", h.name))
            })
            .collect::<std::result::Result<_, _>>()?;
        Ok(Templates {
            url: Template::parse_url(url).map_err(|e| e.to_string())?,
            body,
            headers,
        })
    }
}

/// Every column a [`UrlRow`] is read from; a query reading URL rows selects these.
pub(crate) const COLUMNS: &str = "id, offer_id, url, method, goal, statuses, body, content_type, \
     follow_redirects, enabled, headers, timeout_ms, disabled_reason, rate_count, rate_unit, rate_burst";

/// The stored `headers` (a JSON array of `[name, value]`) as headers; an entry of another shape
/// (written by hand) is skipped.
fn headers_from_json(json: &serde_json::Value) -> Vec<Header> {
    json.as_array()
        .map(|pairs| {
            pairs
                .iter()
                .filter_map(|pair| match pair.as_array().map(Vec::as_slice) {
                    Some([n, v]) => Some(Header {
                        name: n.as_str()?.to_owned(),
                        value: v.as_str()?.to_owned(),
                    }),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn headers_to_json(headers: &[Header]) -> serde_json::Value {
    headers
        .iter()
        .map(|h| serde_json::json!([h.name, h.value]))
        .collect()
}

impl UrlRow {
    pub(crate) fn from_row(row: &Row) -> UrlRow {
        let url: String = row.get("url");
        let method: String = row.get("method");
        let body: Option<String> = row.get("body");
        let headers = headers_from_json(&row.get::<_, serde_json::Value>("headers"));
        let templates = Templates::parse(&url, &method, body.as_deref(), &headers);
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
            headers,
            timeout_ms: row.get("timeout_ms"),
            // Not every query that reads URL rows selects it (the claim does not need it).
            disabled_reason: row.try_get("disabled_reason").ok().flatten(),
            rate: super::rates::of_row(row),
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

    /// This URL's own request timeout, if it has one.
    pub fn timeout(&self) -> Option<std::time::Duration> {
        self.timeout_ms
            .and_then(|ms| u64::try_from(ms).ok())
            .map(std::time::Duration::from_millis)
    }

    pub fn body_escape(&self) -> Escape {
        Escape::for_content_type(&self.content_type)
    }
}

/// A URL to add, checked by [`crate::url_spec::validate`] (the only way to make one).
pub use crate::url_spec::NewUrl;

/// A stored timeout: whole milliseconds (validation bounds it by the global timeout).
fn timeout_ms(new: &NewUrl) -> Option<i32> {
    new.timeout()
        .map(|t| i32::try_from(t.as_millis()).unwrap_or(i32::MAX))
}

pub async fn add(client: &impl GenericClient, new: &NewUrl) -> Result<i64> {
    let statuses: Vec<&str> = new.statuses().iter().map(|s| s.as_str()).collect();
    let row = client
        .query_one(
            "INSERT INTO cross_postback_urls
                (offer_id, url, method, goal, statuses, body, content_type, follow_redirects,
                 headers, timeout_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            &[
                &new.offer_id(),
                &new.url(),
                &new.method().as_str(),
                &new.goal(),
                &statuses,
                &new.body(),
                &new.content_type().as_str(),
                &new.follow_redirects(),
                &headers_to_json(new.headers()),
                &timeout_ms(new),
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// Replaces a URL's settings (its offer stays). Pending deliveries render from the new row at
/// their next attempt: dispatch reads the URL's row again before each one. Returns whether a
/// URL (not removed) had that id.
pub async fn update(client: &impl GenericClient, id: i64, new: &NewUrl) -> Result<bool> {
    let statuses: Vec<&str> = new.statuses().iter().map(|s| s.as_str()).collect();
    let n = client
        .execute(
            "UPDATE cross_postback_urls
             SET url = $2, method = $3, goal = $4, statuses = $5, body = $6, content_type = $7,
                 follow_redirects = $8, headers = $9, timeout_ms = $10, updated_at = now()
             WHERE id = $1 AND removed_at IS NULL",
            &[
                &id,
                &new.url(),
                &new.method().as_str(),
                &new.goal(),
                &statuses,
                &new.body(),
                &new.content_type().as_str(),
                &new.follow_redirects(),
                &headers_to_json(new.headers()),
                &timeout_ms(new),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// One URL that is not removed.
pub async fn get(client: &impl GenericClient, id: i64) -> Result<Option<UrlRow>> {
    let sql = format!("SELECT {COLUMNS} FROM cross_postback_urls WHERE id = $1 AND removed_at IS NULL");
    let rows = client.query(&sql, &[&id]).await?;
    Ok(rows.first().map(UrlRow::from_row))
}

/// An enabled URL of the same offer with exactly these settings, other than `except`.
pub async fn find_duplicate(
    client: &impl GenericClient,
    new: &NewUrl,
    except: Option<i64>,
) -> Result<Option<i64>> {
    let statuses: Vec<&str> = new.statuses().iter().map(|s| s.as_str()).collect();
    let row = client
        .query_opt(
            "SELECT id FROM cross_postback_urls
             WHERE enabled AND removed_at IS NULL AND offer_id = $1 AND url = $2 AND method = $3
               AND goal IS NOT DISTINCT FROM $4
               AND (SELECT array_agg(s ORDER BY s) FROM unnest(statuses) s)
                   = (SELECT array_agg(s ORDER BY s) FROM unnest($5::text[]) s)
               AND body IS NOT DISTINCT FROM $6 AND content_type = $7
               AND follow_redirects = $8 AND headers = $9
               AND timeout_ms IS NOT DISTINCT FROM $10
               AND ($11::bigint IS NULL OR id <> $11)
             ORDER BY id LIMIT 1",
            &[
                &new.offer_id(),
                &new.url(),
                &new.method().as_str(),
                &new.goal(),
                &statuses,
                &new.body(),
                &new.content_type().as_str(),
                &new.follow_redirects(),
                &headers_to_json(new.headers()),
                &timeout_ms(new),
                &except,
            ],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
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
pub(crate) async fn lock_offer_of(tx: &impl GenericClient, url_id: i64) -> Result<()> {
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
            // Enabling clears what an automatic disabling left.
            "UPDATE cross_postback_urls SET enabled = $2, updated_at = now(),
                 auto_disabled = auto_disabled AND NOT $2,
                 disabled_reason = CASE WHEN $2 THEN NULL ELSE disabled_reason END,
                 disabled_at = CASE WHEN $2 THEN NULL ELSE disabled_at END
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

pub(crate) async fn cancel_pending(tx: &impl GenericClient, url_id: i64) -> Result<u64> {
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
    use super::*;

    #[test]
    fn a_url_row_debugs_without_its_secrets() {
        // Regression (review): a derived Debug printed the URL's token, the body template's
        // key and each header value (in the parsed templates too).
        let url = "https://p.test/pb?token=URLT0KEN&c={clickid}";
        let body = r#"{"api_key":"B0DYKEY","c":"{clickid}"}"#;
        let headers = vec![Header {
            name: "Authorization".into(),
            value: "Bearer HEADERT0KEN".into(),
        }];
        let row = UrlRow {
            id: 1,
            offer_id: "7".into(),
            url: url.into(),
            method: "POST".into(),
            goal: None,
            statuses: vec![],
            body: Some(body.into()),
            content_type: "json".into(),
            follow_redirects: false,
            enabled: true,
            templates: Templates::parse(url, "POST", Some(body), &headers),
            headers,
            timeout_ms: None,
            disabled_reason: None,
            rate: None,
        };
        assert!(row.templates.is_ok(), "{:?}", row.templates);
        let shown = format!("{row:?}");
        for secret in ["URLT0KEN", "B0DYKEY", "HEADERT0KEN"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("Authorization"), "names stay: {shown}");
    }

    #[test]
    fn goals_compare_case_insensitively() {
        assert!(lowercase_eq("Sale", "sALE"));
        assert!(lowercase_eq("ÉTÉ", "été"));
        assert!(!lowercase_eq("sale", "sales"));
        assert!(!lowercase_eq("sale", "lead"));
    }
}
