//! What `/urls` shows: each URL's last 24 hours, a URL as a row (masked), the add and edit
//! form's values, and a test's outcome.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;

use super::view;
use crate::mask::mask_url;
use crate::store::urls::UrlRow;
use crate::url_spec::Method;

/// A URL's last 24 hours.
#[derive(Debug, Default, Clone)]
pub(super) struct Health {
    attempts: i64,
    ok_share: Option<f64>,
    p95_ms: Option<f64>,
    last_error: Option<String>,
}

pub(super) async fn health(
    client: &impl GenericClient,
) -> Result<HashMap<i64, Health>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT url_id, count(*), \
                    avg(CASE WHEN http_code BETWEEN 200 AND 299 THEN 1.0 ELSE 0.0 END)::float8, \
                    percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)::float8, \
                    (array_agg(error_code || ': ' || xpb_mask_secrets(error) ORDER BY sent_at DESC) \
                       FILTER (WHERE error IS NOT NULL))[1] \
             FROM attempts WHERE sent_at > now() - interval '24 hours' GROUP BY url_id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let h = Health {
                attempts: r.get(1),
                ok_share: r.get(2),
                p95_ms: r.get(3),
                last_error: r.get(4),
            };
            (r.get::<_, i64>(0), h)
        })
        .collect())
}

pub struct UrlView {
    pub(super) id: i64,
    pub(super) offer: String,
    pub(super) url: String,
    pub(super) method: String,
    pub(super) goal: String,
    pub(super) statuses: String,
    pub(super) enabled: bool,
    pub(super) attempts: i64,
    pub(super) ok_share: String,
    pub(super) p95: String,
    pub(super) last_error: String,
    /// (path segment, button text, class)
    pub(super) actions: Vec<(&'static str, &'static str, &'static str)>,
}

pub(super) fn url_view(u: &UrlRow, h: Option<&Health>) -> UrlView {
    let h = h.cloned().unwrap_or_default();
    let toggle = if u.enabled {
        ("disable", "Disable", "secondary")
    } else {
        ("enable", "Enable", "secondary")
    };
    UrlView {
        id: u.id,
        offer: u.offer_id.clone(),
        url: mask_url(&u.url),
        method: u.method.clone(),
        goal: u.goal.clone().unwrap_or_default(),
        statuses: if u.statuses.is_empty() {
            "all".into()
        } else {
            u.statuses.join(",")
        },
        enabled: u.enabled,
        attempts: h.attempts,
        ok_share: h.ok_share.map_or("—".into(), |s| format!("{:.0} %", s * 100.0)),
        p95: h.p95_ms.map_or("—".into(), |p| format!("{p:.0}")),
        last_error: h.last_error.unwrap_or_default(),
        actions: vec![
            ("test", "Test", "secondary"),
            toggle,
            ("remove", "Remove", "danger"),
        ],
    }
}

/// The add/edit form's values.
#[derive(Default)]
pub struct UrlForm {
    pub(super) new: bool,
    pub(super) offer: String,
    pub(super) url: String,
    pub(super) method: String,
    pub(super) goal: String,
    pub(super) statuses: String,
    pub(super) body: String,
}

impl UrlForm {
    pub(super) fn from_pairs(p: &[(String, String)], new: bool) -> UrlForm {
        let t = |n: &str| view::value(p, n).unwrap_or("").to_owned();
        UrlForm {
            new,
            offer: t("offer"),
            url: t("url"),
            method: if t("method") == "POST" {
                "POST".into()
            } else {
                "GET".into()
            },
            goal: t("goal"),
            statuses: t("statuses"),
            body: t("body"),
        }
    }

    pub(super) fn from_row(u: &UrlRow) -> UrlForm {
        UrlForm {
            new: false,
            offer: u.offer_id.clone(),
            // The stored URL is never sent to the browser whole: its secrets stay masked, and
            // a form that comes back with the masked text keeps the stored URL.
            url: mask_url(&u.url),
            method: u.method.clone(),
            goal: u.goal.clone().unwrap_or_default(),
            statuses: u.statuses.join(","),
            body: String::new(),
        }
    }

    pub(super) fn method(&self) -> Method {
        if self.method == "POST" {
            Method::Post
        } else {
            Method::Get
        }
    }

    pub(super) fn statuses(&self) -> Option<Vec<String>> {
        let list: Vec<String> = view::values(&[("s".into(), self.statuses.clone())], "s");
        (!list.is_empty()).then_some(list)
    }

    pub(super) fn opt(s: &str) -> Option<String> {
        (!s.trim().is_empty()).then(|| s.trim().to_owned())
    }
}

pub struct TestView {
    pub(super) id: i64,
    pub(super) request: String,
    pub(super) response: String,
    pub(super) duration_ms: u128,
    pub(super) excerpt: String,
}

/// What `urls test` prints, for the page: the URL masked, no header value, no body.
pub(super) fn test_view(id: i64, t: &crate::urls_service::TestOutcome) -> TestView {
    let res = &t.response;
    let response = match (res.http_code, &res.error) {
        (Some(code), None) => format!("HTTP {code}"),
        (Some(code), Some((c, text))) => format!("HTTP {code} ({}: {})", c.as_str(), mask_url(text)),
        (None, Some((c, text))) => format!("no answer ({}: {})", c.as_str(), mask_url(text)),
        (None, None) => "no answer".into(),
    };
    TestView {
        id,
        request: format!("{} {}", t.request.method, mask_url(&t.request.url)),
        response,
        duration_ms: res.duration.as_millis(),
        // A receiver may echo the request, key and all: the one masking rule, as everywhere.
        excerpt: res.excerpt.as_deref().map(mask_url).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sender::{Request, Response};
    use crate::urls_service::TestOutcome;

    /// The Test result once showed the response excerpt unmasked.
    #[test]
    fn a_test_shows_the_url_the_error_and_the_excerpt_masked() {
        let echo = "got http://p.test/pb?token=SECRET123&click=1";
        let t = TestOutcome {
            request: Request {
                method: reqwest::Method::GET,
                url: "http://p.test/pb?token=SECRET123&click=1".into(),
                body: None,
                idempotency_key: "k".into(),
                follow_redirects: false,
                headers: vec![],
                timeout: None,
            },
            response: Response {
                http_code: Some(200),
                error: None,
                excerpt: Some(echo.into()),
                retry_after: None,
                duration: Duration::from_millis(3),
            },
        };
        let v = test_view(1, &t);
        for shown in [&v.request, &v.response, &v.excerpt] {
            assert!(!shown.contains("SECRET123"), "{shown}");
        }
        assert_eq!(v.excerpt, "got http://p.test/pb?token=***&click=1");
    }
}
