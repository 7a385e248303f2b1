//! Deliveries as `cross-postback deliveries` reads them (read-only): a filtered list, and one
//! delivery with the delivery that superseded it and every attempt. URLs, errors and response
//! excerpts are masked by the same rule as the statistics view.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::Result;

/// Filters of `deliveries list`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub offer: Option<String>,
    pub conversion: Option<String>,
    pub url_id: Option<i64>,
    pub state: Option<String>,
    pub limit: i64,
}

/// One delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: i64,
    pub conversion_id: String,
    pub url_id: i64,
    pub offer_id: String,
    /// The conversion status it announces.
    pub status: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const SELECT: &str = "SELECT d.id, d.conversion_id, d.url_id, u.offer_id, d.status, d.state, d.attempts,
        d.next_attempt_at, d.created_at, d.updated_at
    FROM deliveries d JOIN cross_postback_urls u ON u.id = d.url_id";

impl Delivery {
    fn from_row(r: &Row) -> Delivery {
        Delivery {
            id: r.get(0),
            conversion_id: r.get(1),
            url_id: r.get(2),
            offer_id: r.get(3),
            status: r.get(4),
            state: r.get(5),
            attempts: r.get(6),
            next_attempt_at: r.get(7),
            created_at: r.get(8),
            updated_at: r.get(9),
        }
    }
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub attempt: i32,
    pub sent_at: DateTime<Utc>,
    pub method: String,
    /// As sent, secrets masked.
    pub url: String,
    pub http_code: Option<i32>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub duration_ms: i32,
    /// The response's first KiB, secrets masked.
    pub response_excerpt: Option<String>,
}

/// A delivery in full.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    pub delivery: Delivery,
    /// The newer delivery of the same conversion and URL, when this one was superseded.
    pub superseded_by: Option<i64>,
    pub attempts: Vec<Attempt>,
}

/// Deliveries, newest first.
pub async fn list(client: &impl GenericClient, f: &Filter) -> Result<Vec<Delivery>> {
    let sql = format!(
        "{SELECT}
         WHERE ($1::text IS NULL OR u.offer_id = $1)
           AND ($2::text IS NULL OR d.conversion_id = $2)
           AND ($3::bigint IS NULL OR d.url_id = $3)
           AND ($4::text IS NULL OR d.state = $4)
         ORDER BY d.id DESC LIMIT $5"
    );
    let rows = client
        .query(&sql, &[&f.offer, &f.conversion, &f.url_id, &f.state, &f.limit])
        .await?;
    Ok(rows.iter().map(Delivery::from_row).collect())
}

/// One delivery with its attempts (oldest first), or `None` when there is no such id.
pub async fn show(client: &impl GenericClient, id: i64) -> Result<Option<Shown>> {
    let Some(row) = client
        .query_opt(&format!("{SELECT} WHERE d.id = $1"), &[&id])
        .await?
    else {
        return Ok(None);
    };
    let delivery = Delivery::from_row(&row);
    let superseded_by = if delivery.state == "superseded" {
        client
            .query_one(
                "SELECT min(id) FROM deliveries WHERE conversion_id = $1 AND url_id = $2 AND id > $3",
                &[&delivery.conversion_id, &delivery.url_id, &delivery.id],
            )
            .await?
            .get(0)
    } else {
        None
    };
    let attempts = client
        .query(
            "SELECT attempt, sent_at, method, xpb_mask_secrets(url), http_code, error_code,
                    xpb_mask_secrets(error), duration_ms, xpb_mask_secrets(response_excerpt)
             FROM attempts WHERE delivery_id = $1 ORDER BY id",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| Attempt {
            attempt: r.get(0),
            sent_at: r.get(1),
            method: r.get(2),
            url: r.get(3),
            http_code: r.get(4),
            error_code: r.get(5),
            error: r.get(6),
            duration_ms: r.get(7),
            response_excerpt: r.get(8),
        })
        .collect();
    Ok(Some(Shown {
        delivery,
        superseded_by,
        attempts,
    }))
}
