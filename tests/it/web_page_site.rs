//! A running web server (the real `web::serve`) over a fresh database with known attempts, an
//! admin token and helpers to sign in over HTTP: the fixture of the page and browser tests.
//!
//! The attempts: affiliate 7 ("Acme") on offer 100 and affiliate 8 ("Rival") on offer 200,
//! some an hour old and one 3 days old; every URL holds a secret (`token=SECRET…`) and every
//! revenue is 777.77, so a test can look for what must never show.

use std::sync::Arc;

use cross_postback::store::access;
use cross_postback::web;
use tokio_util::sync::CancellationToken;

use crate::harness::{Env, attempts_partitions};

pub const SECRET: &str = "SECRETTOKEN42";
pub const REVENUE: &str = "777.77";

pub struct Site {
    pub env: Env,
    /// `http://127.0.0.1:<port>`
    pub base: String,
    /// A raw admin token.
    pub token: String,
    pub token_id: i64,
    pub url_id: i64,
    stop: CancellationToken,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// An HTTP client that does not follow redirects (the tests look at them) and keeps no cookie.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client")
}

impl Site {
    pub async fn start() -> Site {
        Site::start_with(|_| {}).await
    }

    pub async fn start_with(edit: impl FnOnce(&mut cross_postback::config::Config)) -> Site {
        let mut env = Env::new().await;
        edit(&mut env.cfg);
        let pg = env.pg().await;
        let url_id: i64 = pg
            .query_one(
                "INSERT INTO cross_postback_urls (offer_id, url) VALUES ('100', $1) RETURNING id",
                &[&format!("http://127.0.0.1:9/pb?click={{clickid}}&token={SECRET}")],
            )
            .await
            .expect("insert a URL")
            .get(0);
        let db = env.pool().get().await.expect("a pooled connection");
        let (token_id, token) = access::create_token(&db, "me", None).await.expect("admin token");
        let stop = CancellationToken::new();
        let (addr, server) = web::serve(Arc::new(env.cfg.clone()), env.pool(), stop.clone())
            .await
            .expect("the web server binds");
        tokio::spawn(server);
        let site = Site {
            base: format!("http://{addr}"),
            env,
            token,
            token_id,
            url_id,
            stop,
        };
        for i in 0..3 {
            site.attempt(
                &format!("conv-a7-{i}"),
                "7",
                "Acme",
                "100",
                Some(200),
                3600 + i * 60,
            )
            .await;
            site.attempt(
                &format!("conv-a8-{i}"),
                "8",
                "Rival",
                "200",
                Some(500),
                3600 + i * 60,
            )
            .await;
        }
        site.attempt("conv-a7-old", "7", "Acme", "100", Some(200), 3 * 86_400)
            .await;
        site
    }

    /// A pooled connection to the test database (what the library's store functions take).
    pub async fn db(&self) -> deadpool_postgres::Object {
        self.env.pool().get().await.expect("a pooled connection")
    }

    /// Records one delivery with one attempt sent `ago_s` seconds ago; returns the delivery id.
    pub async fn attempt(
        &self,
        conv: &str,
        aff: &str,
        aff_name: &str,
        offer: &str,
        code: Option<i32>,
        ago_s: i64,
    ) -> i64 {
        let pg = self.env.pg().await;
        attempts_partitions(&pg, "now", ago_s as f64).await;
        let state = if code == Some(200) { "delivered" } else { "failed" };
        let id: i64 = pg
            .query_one(
                "INSERT INTO deliveries (conversion_id, url_id, status, event, state, attempts) \
                 VALUES ($1, $2, 'approved', '{}', $3, 1) RETURNING id",
                &[&conv, &self.url_id, &state],
            )
            .await
            .expect("insert a delivery")
            .get(0);
        let url = format!("http://127.0.0.1:9/pb?click={conv}&token={SECRET}");
        let error = (code != Some(200)).then_some("HTTP 500");
        let error_code = (code != Some(200)).then_some("http");
        pg.execute(
            "INSERT INTO attempts (delivery_id, url_id, url, method, conversion_id, affiliate_id, \
               affiliate_name, offer_id, offer_name, goal, status, payout, revenue, currency, \
               attempt, http_code, error_code, error, duration_ms, sent_at) \
             VALUES ($1, $2, $3, 'GET', $4, $5, $6, $7, 'Offer', 'sale', 'approved', 1.50, 777.77, \
               'USD', 1, $8, $9, $10, 42, now() - make_interval(secs => $11::bigint))",
            &[
                &id,
                &self.url_id,
                &url,
                &conv,
                &aff,
                &aff_name,
                &offer,
                &code,
                &error_code,
                &error,
                &ago_s,
            ],
        )
        .await
        .expect("insert an attempt");
        id
    }

    /// Makes a partner link as the page and the CLI do; returns its full address.
    pub async fn link(&self, input: web::scope::LinkInput) -> String {
        web::links::create(&self.db().await, &self.env.cfg, input)
            .await
            .expect("the link is made")
            .address
            .replace(&self.env.cfg.web_public_url(), &self.base)
    }

    /// Signs in over HTTP; returns the `Cookie` header value and the session's form token.
    pub async fn sign_in(&self) -> (String, String) {
        let r = http()
            .post(format!("{}/signin", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={}", self.token))
            .send()
            .await
            .expect("sign in");
        assert_eq!(r.status(), 303, "sign-in redirects");
        let set = r.headers()["set-cookie"].to_str().expect("cookie").to_owned();
        let cookie = set.split(';').next().expect("name=value").to_owned();
        let page = self.get(&cookie, "/").await;
        let csrf = page
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("a form token on the page")
            .to_owned();
        (cookie, csrf)
    }

    /// A signed-in GET's body (asserting 200).
    pub async fn get(&self, cookie: &str, path: &str) -> String {
        let r = http()
            .get(format!("{}{path}", self.base))
            .header("cookie", cookie)
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), 200, "GET {path}");
        r.text().await.expect("body")
    }

    /// A signed-in form POST from the page itself.
    pub async fn post(&self, cookie: &str, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        http()
            .post(format!("{}{path}", self.base))
            .header("cookie", cookie)
            .header("origin", &self.base)
            .header("sec-fetch-site", "same-origin")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("POST")
    }
}
