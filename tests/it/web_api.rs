//! The `/api/v1` API against a real server on a loopback port and a real Postgres: auth,
//! every row's happy path and its errors, keyset paging under inserts, the CSV export.

use std::sync::Arc;

use cross_postback::store::access;
use cross_postback::web;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::harness::*;

/// A web server of its own over a fresh database, with an admin token.
pub struct Web {
    pub env: Env,
    pub base: String,
    pub token: String,
    pub token_id: i64,
    pub http: reqwest::Client,
    stop: CancellationToken,
}

impl Drop for Web {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Web {
    pub async fn start() -> Web {
        let env = Env::new().await;
        let pool = web::pool(&env.cfg).expect("pool");
        let (id, token) = {
            let client = pool.get().await.expect("connect");
            access::create_token(&client, "test", None).await.expect("token")
        };
        let stop = CancellationToken::new();
        let (addr, server) = web::serve(Arc::new(env.cfg.clone()), pool, stop.clone())
            .await
            .expect("web listens");
        tokio::spawn(server);
        Web {
            env,
            base: format!("http://{addr}"),
            token,
            token_id: id,
            http: reqwest::Client::new(),
            stop,
        }
    }

    /// A request with the admin token; returns the status and the body as text.
    pub async fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_owned());
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        (status, res.text().await.expect("body"))
    }

    /// [`Web::call`] with a JSON answer.
    pub async fn json(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let (status, text) = self.call(method, path, body).await;
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"));
        (status, v)
    }

    /// Inserts `n` attempts of a new delivery of URL `url_id` (see [`seed`]).
    pub async fn seed(&self, url_id: i64, conversion: &str, n: i64, newest: &str) -> i64 {
        seed(&self.env.pg().await, url_id, conversion, n, newest).await
    }
}

/// Inserts `n` attempts of a new delivery (state `delivered`) of URL `url_id`, one second
/// apart, the newest at `newest`: affiliate `a{i%3}`, offer `o{i%2}`, HTTP 200, 500 or no
/// answer (`timeout`) by `i%3`, a secret in the URL and the error, a formula in the comment.
/// Returns the delivery's id.
pub async fn seed(pg: &tokio_postgres::Client, url_id: i64, conversion: &str, n: i64, newest: &str) -> i64 {
    attempts_partitions(pg, newest, n as f64).await;
    let row = pg
        .query_one(
            "WITH d AS (INSERT INTO deliveries (conversion_id, url_id, status, event, state, attempts)
                        VALUES ($2, $1, 'approved', '{}', 'delivered', $4::bigint::int) RETURNING id),
                  a AS (INSERT INTO attempts (delivery_id, url_id, url, method, conversion_id,
                        affiliate_id, affiliate_name, offer_id, offer_name, goal, status, payout,
                        revenue, currency, comment, attempt, http_code, error_code, error,
                        duration_ms, sent_at)
                    SELECT d.id, $1, 'http://x.test/p?token=SECRET123&n=' || i, 'GET', $2,
                           'a' || (i % 3), 'Aff', 'o' || (i % 2), 'Off', 'g', 'approved', 1.5,
                           9.75, 'USD', '=HYPERLINK(\"http://evil\")', 1,
                           CASE i % 3 WHEN 0 THEN 200 WHEN 1 THEN 500 END,
                           CASE i % 3 WHEN 2 THEN 'timeout' END,
                           CASE i % 3 WHEN 2 THEN 'timed out: http://x.test/p?token=SECRET123' END,
                           12, $3::text::timestamptz - make_interval(secs => i)
                    FROM d, generate_series(0, $4::bigint - 1) i RETURNING 1)
             SELECT id FROM d",
            &[&url_id, &conversion, &newest, &n],
        )
        .await
        .expect("seed attempts");
    row.get(0)
}

fn page_rows(v: &Value) -> &Vec<Value> {
    v["rows"].as_array().expect("rows")
}

#[tokio::test]
async fn without_a_valid_token_the_api_answers_401_and_a_revoked_one_stops_at_once() {
    let w = Web::start().await;
    let url = format!("{}/api/v1/attempts", w.base);
    for auth in [None, Some("Bearer nope"), Some("Basic x"), Some("Bearer ")] {
        let mut req = w.http.get(&url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let res = req.send().await.expect("request");
        assert_eq!(res.status().as_u16(), 401, "{auth:?}");
        let body: Value = serde_json::from_str(&res.text().await.expect("body")).expect("JSON");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    assert_eq!(w.call("GET", "/api/v1/attempts", None).await.0, 200);
    let (code, out, err) = w
        .env
        .cli_async(&["tokens", "revoke", &w.token_id.to_string()])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("revoked token {}", w.token_id)), "{out}");
    assert_eq!(
        w.call("GET", "/api/v1/attempts", None).await.0,
        401,
        "revoked: at once"
    );
    // The document needs no token.
    let doc = w
        .http
        .get(format!("{}/api/v1/openapi.json", w.base))
        .send()
        .await
        .expect("doc");
    assert_eq!(doc.status().as_u16(), 200);
    let doc: Value = serde_json::from_str(&doc.text().await.expect("body")).expect("JSON");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/api/v1/attempts",
        "/api/v1/deliveries/{id}/redeliver",
        "/api/v1/links/{id}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
}

#[tokio::test]
async fn tokens_are_stored_only_as_hashes_and_the_cli_prints_one_alone() {
    let w = Web::start().await;
    let (code, out, err) = w
        .env
        .cli_async(&["tokens", "create", "--name", "ops", "--expires", "1d"])
        .await;
    assert_eq!(code, 0, "{err}");
    let raw = out.trim().to_owned();
    assert_eq!(out.lines().count(), 1, "the token alone: {out}");
    assert!(raw.starts_with("xpb_") && raw.len() >= 4 + 22, "≥128 bits: {raw}");
    let pg = w.env.pg().await;
    for t in [&raw, &w.token] {
        let dump = rows(&pg, "SELECT t::text FROM admin_tokens t").await;
        assert!(
            !format!("{dump:?}").contains(t.as_str()),
            "a raw token in the table"
        );
        let hashed = count(
            &pg,
            &format!("SELECT count(*) FROM admin_tokens WHERE token_hash = sha256('{t}'::bytea)"),
        )
        .await;
        assert_eq!(hashed, 1, "stored as its SHA-256");
    }
    let res = w
        .http
        .get(format!("{}/api/v1/links", w.base))
        .bearer_auth(&raw)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 200, "the new token works");
    let (code, out, _) = w.env.cli_async(&["tokens", "list"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("ops") && !out.contains(&raw), "{out}");
}

/// Walking `next_cursor` to the end sees every row present at the start exactly once while
/// newer attempts keep arriving; `prev_cursor` leads back.
#[tokio::test]
async fn keyset_pages_see_each_row_once_while_attempts_arrive() {
    let w = Web::start().await;
    let url_id = w.env.add_url("o0", "http://x.test/p").await;
    w.seed(url_id, "c-old", 250, "2026-01-01T00:00:00Z").await;
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    let mut second: Option<(String, Value)> = None;
    loop {
        let path = match &cursor {
            None => "/api/v1/attempts?limit=37&columns=postback_url,date".to_owned(),
            Some(c) => format!("/api/v1/attempts?limit=37&columns=postback_url,date&cursor={c}"),
        };
        let (status, page) = w.json("GET", &path, None).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        if pages == 2 {
            second = Some((path.clone(), page.clone()));
        }
        seen.extend(
            page_rows(&page)
                .iter()
                .map(|r| r["postback_url"].as_str().unwrap_or("").to_owned()),
        );
        // Newer attempts arrive between pages.
        w.seed(url_id, &format!("c-new-{pages}"), 5, "2026-06-01T00:00:00Z")
            .await;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 50, "no end");
    }
    assert_eq!(pages, 7, "250 rows in pages of 37");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (250, 250), "each row once");
    let (_, page2) = second.expect("a second page");
    let back = page2["prev_cursor"].as_str().expect("prev on page 2");
    let (_, first) = w
        .json(
            "GET",
            &format!("/api/v1/attempts?limit=37&columns=postback_url,date&cursor={back}"),
            None,
        )
        .await;
    assert_eq!(page_rows(&first).len(), 37);
    assert_eq!(
        page_rows(&first)[0]["postback_url"],
        seen[0].as_str(),
        "back to page 1"
    );
}

#[tokio::test]
async fn filters_narrow_and_bad_parameters_get_400_naming_them() {
    let w = Web::start().await;
    let url_id = w.env.add_url("o0", "http://x.test/p").await;
    let delivery = w.seed(url_id, "c1", 30, "2026-01-01T00:00:00Z").await;
    w.seed(url_id, "c2", 6, "2025-06-01T00:00:00Z").await;
    let n = |v: &Value| page_rows(v).len();
    for (q, want) in [
        ("", 36),
        ("offer_id=o0", 18),
        ("offer=o0&offer_id=o1", 36),
        ("affiliate_id=a1", 12),
        ("affiliate_id[]=a1,a2", 24),
        ("conversion_id=c2", 6),
        ("http_class=2xx", 12),
        ("http_class=none&http_class=5xx", 24),
        ("error_code=timeout", 12),
        ("state=delivered", 36),
        ("state=failed", 0),
        (&format!("url_id={url_id}") as &str, 36),
        ("from=2025-12-01&to=2026-01-01T00:00:01Z", 30),
        ("to=2025-12-01", 6),
        ("goal=g&status=approved", 36),
        ("status=declined", 0),
        ("limit=5", 5),
    ] {
        let (status, v) = w.json("GET", &format!("/api/v1/attempts?{q}"), None).await;
        assert_eq!((status, n(&v)), (200, want), "{q}: {v}");
    }
    let (_, v) = w
        .json(
            "GET",
            "/api/v1/attempts?limit=1&columns=delivery_id,http_code,payouts,date",
            None,
        )
        .await;
    let row = &page_rows(&v)[0];
    assert_eq!(row["delivery_id"], delivery);
    assert_eq!(row["http_code"], 200);
    assert_eq!(row["payouts"], 1.5);
    assert_eq!(row["date"], "2026-01-01T00:00:00Z");
    for (q, param) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("from=someday", "from"),
        ("status=won", "status"),
        ("http_class=6xx", "http_class"),
        ("columns=password", "columns"),
        ("cursor=AAAA", "cursor"),
        ("url_id=one", "url_id"),
        ("state=lost", "state"),
        ("wat=1", "wat"),
    ] {
        let (status, v) = w.json("GET", &format!("/api/v1/attempts?{q}"), None).await;
        assert_eq!(status, 400, "{q}");
        assert_eq!(v["error"]["code"], "invalid_parameter", "{q}");
        let message = v["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.starts_with(&format!("parameter `{param}`")),
            "{q}: {message}"
        );
    }
    let (status, v) = w.json("GET", "/api/v1/nothing/here", None).await;
    assert_eq!((status, v["error"]["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn csv_streams_every_matching_row_neutralised_and_masked() {
    let w = Web::start().await;
    let url_id = w.env.add_url("o0", "http://x.test/p").await;
    w.seed(url_id, "c1", 2_500, "2026-01-01T00:00:00Z").await;
    for (path, accept) in [
        ("/api/v1/attempts?format=csv&offer_id=o1", None),
        ("/api/v1/attempts?offer_id=o1&limit=10", Some("text/csv")),
    ] {
        let mut req = w.http.get(format!("{}{path}", w.base)).bearer_auth(&w.token);
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let res = req.send().await.expect("export");
        assert_eq!(res.status().as_u16(), 200);
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap_or("")
                .starts_with("text/csv")
        );
        let text = res.text().await.expect("body");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], cross_postback::store::stats::STATS_COLUMNS.join(","));
        assert_eq!(lines.len(), 1 + 1_250, "every matching row, not a page: {path}");
        assert!(
            lines[1].contains(",\"'=HYPERLINK(\"\"http://evil\"\")\","),
            "{}",
            lines[1]
        );
        assert!(!text.contains("SECRET123"), "a secret in the export");
        assert!(text.contains("token=***"));
    }
    let (_, json) = w
        .call(
            "GET",
            "/api/v1/attempts?limit=1000&columns=postback_url,error",
            None,
        )
        .await;
    assert!(
        !json.contains("SECRET123") && json.contains("token=***"),
        "a secret in JSON"
    );
}

#[tokio::test]
async fn a_delivery_is_shown_and_sent_again_or_refused_with_the_reason() {
    let w = Web::start().await;
    let url_id = w.env.add_url("o0", "http://x.test/p").await;
    let id = w.seed(url_id, "c1", 3, "2026-01-01T00:00:00Z").await;
    let (status, v) = w.json("GET", &format!("/api/v1/deliveries/{id}"), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "delivered");
    assert_eq!(v["attempts"].as_array().map(Vec::len), Some(3));
    assert!(!v.to_string().contains("SECRET123"));
    let path = format!("/api/v1/deliveries/{id}/redeliver");
    let (status, v) = w.json("POST", &path, None).await;
    assert_eq!((status, v["next_attempt"].as_i64()), (200, Some(4)), "{v}");
    let (status, v) = w.json("POST", &path, Some(r#"{"force": true}"#)).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("conflict")),
        "pending now: {v}"
    );
    for (path, body, want) in [
        ("/api/v1/deliveries/999999", None, 404),
        ("/api/v1/deliveries/x", None, 400),
        ("/api/v1/deliveries/999999/redeliver", None, 404),
        (path.as_str(), Some(r#"{"force": "yes"}"#), 400),
        (path.as_str(), Some("not json"), 400),
    ] {
        let method = if path.ends_with("redeliver") {
            "POST"
        } else {
            "GET"
        };
        let (status, v) = w.json(method, path, body).await;
        assert_eq!(status, want, "{path} {body:?}: {v}");
        assert!(v["error"]["message"].is_string());
    }
}

#[tokio::test]
async fn urls_are_managed_through_the_url_service_with_its_messages() {
    let w = Web::start().await;
    let new = r#"{"offer_id": "5", "url": "http://x.test/a?c={clickid}&api_key=K3Y"}"#;
    let (status, v) = w.json("POST", "/api/v1/urls", Some(new)).await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_i64().expect("id");
    assert_eq!(v["url"], "http://x.test/a?c={clickid}&api_key=***");
    assert_eq!(
        w.json("POST", "/api/v1/urls", Some(new)).await.0,
        409,
        "duplicate"
    );
    let (status, v) = w
        .json(
            "POST",
            "/api/v1/urls",
            Some(r#"{"offer_id": "5", "url": "http://x.test/{clikid}"}"#),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        v["error"]["message"].as_str().unwrap_or("").contains("clikid"),
        "{v}"
    );
    let (status, v) = w
        .json("POST", "/api/v1/urls", Some(r#"{"offer_id": "5", "url": 3}"#))
        .await;
    assert_eq!(status, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("parameter `url`"),
        "{v}"
    );
    let (_, list) = w.json("GET", "/api/v1/urls?offer_id=5", None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(
        w.json("GET", "/api/v1/urls?offer_id=6", None).await.1,
        serde_json::json!([])
    );
    let one = format!("/api/v1/urls/{id}");
    let (status, v) = w
        .json("PATCH", &one, Some(r#"{"goal": "Sale", "enabled": false}"#))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["goal"].as_str(), v["enabled"].as_bool()),
        (Some("Sale"), Some(false))
    );
    let (_, v) = w
        .json("PATCH", &one, Some(r#"{"goal": null, "enabled": true}"#))
        .await;
    assert_eq!((v["goal"].is_null(), v["enabled"].as_bool()), (true, Some(true)));
    assert!(!w.json("GET", &one, None).await.1.to_string().contains("K3Y"));
    let (status, v) = w.json("DELETE", &one, None).await;
    assert_eq!((status, v["cancelled"].as_i64()), (200, Some(0)));
    for (m, body) in [("DELETE", None), ("GET", None), ("PATCH", Some("{}"))] {
        assert_eq!(w.json(m, &one, body).await.0, 404, "{m} after removal");
    }
}

/// `cross-postback web` serves the API alone, and stops cleanly on SIGTERM; `run` serves it
/// too unless `web.enabled = false`.
#[tokio::test]
async fn the_web_command_and_run_serve_the_api() {
    use std::io::BufRead;
    let env = Env::new().await;
    let mut child = env
        .command()
        .arg("web")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("web starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = eventually("the web listener's address in the log", || {
        let line = lines.try_recv().ok();
        async move {
            let line = line?;
            let at = line.find("addr=")? + 5;
            Some(line[at..].split_whitespace().next()?.to_owned())
        }
    })
    .await;
    let res = reqwest::get(format!("http://{addr}/api/v1/openapi.json"))
        .await
        .expect("doc");
    assert_eq!(res.status().as_u16(), 200);
    let status = child::terminate(&mut child).await;
    assert!(status.success(), "{status:?}");

    let running = env.start().await;
    let addr = running
        .daemon
        .as_ref()
        .and_then(|d| d.web_addr)
        .expect("run serves the web");
    let res = reqwest::get(format!("http://{addr}/api/v1/attempts"))
        .await
        .expect("api");
    assert_eq!(res.status().as_u16(), 401);
    running.stop().await;
    let mut cfg = env.cfg.clone();
    cfg.web.enabled = false;
    let running = env.start_with(cfg).await;
    assert_eq!(running.daemon.as_ref().and_then(|d| d.web_addr), None);
    running.stop().await;
}
