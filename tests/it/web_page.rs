//! The page's security rules over HTTP against the real server and Postgres: sign-in and its
//! cookie, sessions that die with their token, CSRF and cross-site POSTs, secrets never shown.

use cross_postback::store::access;

use crate::web_page_site::{REVENUE, SECRET, Site, http};

#[tokio::test]
async fn signed_out_the_page_is_the_sign_in_form_naming_the_command() {
    let site = Site::start().await;
    for path in [
        "/",
        "/urls",
        "/links",
        "/deliveries/1",
        "/links/new",
        "/export.csv",
    ] {
        let r = http().get(format!("{}{path}", site.base)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let body = r.text().await.unwrap();
        assert!(
            body.contains("cross-postback tokens create --name me"),
            "{path}: {body}"
        );
        assert!(!body.contains("conv-a7"), "{path} shows no row signed out");
    }
    let bad = http()
        .post(format!("{}/signin", site.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=xpb_not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert!(bad.headers().get("set-cookie").is_none());
    assert!(bad.text().await.unwrap().contains("not valid"));
}

#[tokio::test]
async fn the_session_cookie_is_httponly_strict_and_stored_only_as_a_hash() {
    let site = Site::start().await;
    let r = http()
        .post(format!("{}/signin", site.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", site.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain http: not Secure ({set})");
    let raw = set
        .split(';')
        .next()
        .unwrap()
        .split('=')
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(raw.len() >= 32 && !raw.contains(&site.token));
    let pg = site.env.pg().await;
    let stored: Vec<Vec<u8>> = pg
        .query("SELECT id_hash FROM web_sessions", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], raw.as_bytes(), "the raw id is not stored");

    let https = Site::start_with(|c| c.web.public_url = "https://stats.example.com".into()).await;
    let r = http()
        .post(format!("{}/signin", https.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", https.token))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["set-cookie"].to_str().unwrap().contains("; Secure"));
}

#[tokio::test]
async fn revoking_the_admin_token_ends_its_session_at_once() {
    let site = Site::start().await;
    let (cookie, _) = site.sign_in().await;
    assert!(site.get(&cookie, "/").await.contains("conv-a7-0"));
    access::revoke_token(&site.db().await, site.token_id)
        .await
        .unwrap();
    let r = http()
        .get(&site.base)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("tokens create"));
}

#[tokio::test]
async fn a_cross_site_or_tokenless_post_is_refused_and_changes_nothing() {
    let site = Site::start().await;
    let (cookie, csrf) = site.sign_in().await;
    let form = [("csrf", csrf.as_str())];
    let post = |origin: Option<&'static str>, fetch: Option<&'static str>, body: String| {
        let mut r = http()
            .post(format!("{}/signout", site.base))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        if let Some(f) = fetch {
            r = r.header("sec-fetch-site", f);
        }
        r.body(body).send()
    };
    let with_token = format!("csrf={csrf}");
    let cases = [
        (Some("https://evil.example"), None, with_token.clone()),
        (None, Some("cross-site"), with_token.clone()),
        (Some("null"), None, with_token.clone()),
        (None, None, String::new()),
        (None, None, format!("csrf={}", "0".repeat(64))),
    ];
    for (origin, fetch, body) in cases {
        let r = post(origin, fetch, body.clone()).await.unwrap();
        assert_eq!(r.status(), 403, "{origin:?} {fetch:?} {body}");
        assert!(
            site.get(&cookie, "/").await.contains("Sign out"),
            "still signed in"
        );
    }
    let r = site.post(&cookie, "/signout", &form).await;
    assert_eq!(r.status(), 303);
    assert!(r.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let after = http()
        .get(&site.base)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        after.status(),
        401,
        "signed out: the session is gone on the server"
    );
}

#[tokio::test]
async fn the_table_filters_orders_columns_pages_and_exports_without_secrets() {
    let site = Site::start().await;
    let (cookie, _) = site.sign_in().await;
    let all = site.get(&cookie, "/").await;
    assert!(all.contains("conv-a7-0") && all.contains("conv-a8-0"));
    assert!(!all.contains("conv-a7-old"), "the default view is the last 24 h");
    assert!(!all.contains(SECRET), "URLs are masked");

    let mine = site
        .get(&cookie, "/?affiliate_id=8&columns=affiliate,conversion_id")
        .await;
    assert!(mine.contains("conv-a8-1") && !mine.contains("conv-a7-1"));
    let head = mine
        .split("<thead>")
        .nth(1)
        .unwrap()
        .split("</thead>")
        .next()
        .unwrap();
    assert!(
        head.find("affiliate").unwrap() < head.find("conversion_id").unwrap(),
        "{head}"
    );
    assert!(!head.contains("postback_url"));

    let edited = http()
        .get(format!(
            "{}/columns?from=4d&show=goal&show=date&pos_goal=2&pos_date=1",
            site.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(edited.status(), 303);
    assert_eq!(edited.headers()["location"], "/?from=4d&columns=date%2Cgoal");

    // Keyset paging: 7 rows in 4 days, 2 a page, each seen once, newest first.
    let mut seen = Vec::new();
    let mut path = "/?from=4d&limit=2&columns=conversion_id".to_owned();
    for _ in 0..10 {
        let page = site.get(&cookie, &path).await;
        seen.extend(
            page.split(">conv-a")
                .skip(1)
                .map(|s| s.split('<').next().unwrap().to_owned()),
        );
        match next_href(&page) {
            Some(next) => path = next,
            None => break,
        }
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 7, "each row once: {seen:?}");

    let csv = http()
        .get(format!(
            "{}/export.csv?from=4d&affiliate_id=7&columns=conversion_id,postback_url,revenue",
            site.base
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "conversion_id,postback_url,revenue");
    assert_eq!(lines.len(), 5, "every matching row, not a page: {csv}");
    assert!(csv.contains(REVENUE) && !csv.contains(SECRET) && !csv.contains("conv-a8"));

    let bad = http()
        .get(format!("{}/?limit=nope", site.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("limit"));
}

#[tokio::test]
async fn a_delivery_shows_its_attempts_and_is_sent_again() {
    let site = Site::start().await;
    let (cookie, csrf) = site.sign_in().await;
    let id = site.attempt("conv-x", "7", "Acme", "100", Some(500), 10).await;
    let page = site.get(&cookie, &format!("/deliveries/{id}")).await;
    assert!(page.contains("conv-x") && page.contains("failed") && page.contains("HTTP 500"));
    assert!(!page.contains(SECRET));
    let r = site
        .post(
            &cookie,
            &format!("/deliveries/{id}/send-again"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        site.get(&cookie, &to)
            .await
            .contains("Queued to be sent again as attempt 2")
    );
    let state: String = site
        .env
        .pg()
        .await
        .query_one("SELECT state FROM deliveries WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "pending");
    let again = site
        .post(
            &cookie,
            &format!("/deliveries/{id}/send-again"),
            &[("csrf", &csrf)],
        )
        .await;
    let to = again.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        site.get(&cookie, &to)
            .await
            .contains("Not sent again: it is already pending")
    );
}

#[tokio::test]
async fn urls_are_managed_with_the_cli_validation_and_shown_masked() {
    let site = Site::start().await;
    let (cookie, csrf) = site.sign_in().await;
    let list = site.get(&cookie, "/urls").await;
    assert!(list.contains("token=***") && !list.contains(SECRET), "masked");
    assert!(
        list.contains("50 %"),
        "the URL's 24 h share of 2xx (3 of 6; the 3-day-old one is out)"
    );

    let bad = site
        .post(
            &cookie,
            "/urls",
            &[
                ("csrf", &csrf),
                ("offer", "300"),
                ("url", "http://x.test/?a={nosuchmacro}"),
            ],
        )
        .await;
    assert_eq!(bad.status(), 422);
    let text = bad.text().await.unwrap();
    assert!(
        text.contains("nosuchmacro"),
        "the CLI's message names the macro: {text}"
    );

    let ok = site
        .post(
            &cookie,
            "/urls",
            &[
                ("csrf", &csrf),
                ("offer", "300"),
                ("url", "http://127.0.0.1:9/p?c={clickid}"),
            ],
        )
        .await;
    assert_eq!(ok.status(), 303);
    let new_id: i64 = site
        .env
        .pg()
        .await
        .query_one("SELECT id FROM cross_postback_urls WHERE offer_id = '300'", &[])
        .await
        .unwrap()
        .get(0);
    for (action, enabled) in [("disable", false), ("enable", true)] {
        let r = site
            .post(&cookie, &format!("/urls/{new_id}/{action}"), &[("csrf", &csrf)])
            .await;
        assert_eq!(r.status(), 303, "{action}");
        let now: bool = site
            .env
            .pg()
            .await
            .query_one(
                "SELECT enabled FROM cross_postback_urls WHERE id = $1",
                &[&new_id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(now, enabled, "{action}");
    }
    // Saving the edit form as shown (URL masked) keeps the stored URL and its secret.
    let r = site
        .post(
            &cookie,
            &format!("/urls/{}/edit", site.url_id),
            &[
                ("csrf", &csrf),
                ("url", "http://127.0.0.1:9/pb?click={clickid}&token=***"),
                ("goal", "sale"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let (url, goal): (String, Option<String>) = {
        let row = site
            .env
            .pg()
            .await
            .query_one(
                "SELECT url, goal FROM cross_postback_urls WHERE id = $1",
                &[&site.url_id],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert!(url.contains(SECRET));
    assert_eq!(goal.as_deref(), Some("sale"));
    let r = site
        .post(&cookie, &format!("/urls/{new_id}/remove"), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), 303);
    assert!(
        !site
            .get(&cookie, "/urls")
            .await
            .contains(&format!("/urls/{new_id}/edit"))
    );
}

/// The address of a page's "Older" link, if it has one.
pub fn next_href(page: &str) -> Option<String> {
    let end = page.find("\" rel=\"next\"")?;
    let start = page[..end].rfind("href=\"")? + 6;
    Some(page[start..end].replace("&amp;", "&").replace("&#38;", "&"))
}
