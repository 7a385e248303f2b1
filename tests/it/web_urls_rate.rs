//! A URL's rate limit and its automatic-disabling reason, through the API and the `/urls` page:
//! shown where URLs are shown, set where they are added and edited, with the CLI's checks.

use chrono::Utc;
use cross_postback::store::alerts;
use serde_json::json;

use crate::web_api::Web;
use crate::web_page_site::Site;

#[tokio::test]
async fn the_api_sets_shows_and_removes_a_rate_and_shows_the_disabling_reason() {
    let w = Web::start().await;
    let body = r#"{"offer_id": "5", "url": "http://x.test/a?c={clickid}", "rate": "20/s", "burst": 5}"#;
    let (status, v) = w.json("POST", "/api/v1/urls", Some(body)).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!((&v["rate"], &v["burst"]), (&json!("20/s"), &json!(5)), "{v}");
    assert!(v["disabled_reason"].is_null(), "{v}");
    let one = format!("/api/v1/urls/{}", v["id"].as_i64().expect("id"));

    // Refused with the CLI's message, and nothing is added.
    let bad = r#"{"offer_id": "6", "url": "http://x.test/b", "rate": "20/h"}"#;
    let (status, v) = w.json("POST", "/api/v1/urls", Some(bad)).await;
    assert_eq!(status, 422, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or("");
    assert!(msg.starts_with("rate \"20/h\": expected N/s or N/m"), "{v}");
    assert_eq!(w.json("GET", "/api/v1/urls?offer_id=6", None).await.1, json!([]));
    let (status, v) = w.json("PATCH", &one, Some(r#"{"burst": 0}"#)).await;
    assert_eq!(status, 422, "{v}");

    let (status, v) = w.json("PATCH", &one, Some(r#"{"rate": "90/m"}"#)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!((&v["rate"], &v["burst"]), (&json!("90/m"), &json!(2)), "{v}");
    let (_, v) = w.json("PATCH", &one, Some(r#"{"burst": 7}"#)).await;
    assert_eq!((&v["rate"], &v["burst"]), (&json!("90/m"), &json!(7)), "{v}");
    let (_, v) = w.json("PATCH", &one, Some(r#"{"goal": "sale"}"#)).await;
    assert_eq!(v["rate"], json!("90/m"), "an edit without rate keeps it: {v}");
    let (_, v) = w.json("PATCH", &one, Some(r#"{"rate": null}"#)).await;
    assert_eq!((&v["rate"], &v["burst"]), (&json!(null), &json!(null)), "{v}");
    let (_, list) = w.json("GET", "/api/v1/urls?offer_id=5", None).await;
    assert!(list[0]["rate"].is_null(), "{list}");

    let id = list[0]["id"].as_i64().expect("id");
    let pool = cross_postback::web::pool(&w.env.cfg).expect("pool");
    let db = pool.get().await.expect("connect");
    alerts::disable(&db, id, "every attempt failed for 3d", Utc::now())
        .await
        .expect("disable");
    let (_, v) = w.json("GET", &one, None).await;
    assert_eq!(v["disabled_reason"], json!("every attempt failed for 3d"), "{v}");
    assert_eq!(v["enabled"], json!(false));
    // The reason is read-only.
    let (status, _) = w.json("PATCH", &one, Some(r#"{"disabled_reason": null}"#)).await;
    assert_eq!(status, 400);
    let (_, v) = w.json("PATCH", &one, Some(r#"{"enabled": true}"#)).await;
    assert!(v["disabled_reason"].is_null(), "enabling clears it: {v}");
}

#[tokio::test]
async fn the_urls_page_shows_and_edits_the_rate_and_shows_the_disabling_reason() {
    let site = Site::start().await;
    let (cookie, csrf) = site.sign_in().await;
    let base = [
        ("csrf", csrf.as_str()),
        ("offer", "300"),
        ("url", "http://127.0.0.1:9/p"),
    ];

    let bad = site
        .post(&cookie, "/urls", &[&base[..], &[("rate", "20/h")]].concat())
        .await;
    assert_eq!(bad.status(), 422);
    let text = bad.text().await.expect("body");
    assert!(text.contains("expected N/s or N/m"), "the CLI's message: {text}");
    assert!(text.contains("value=\"20/h\""), "the form keeps what was typed");
    let added = site
        .post(
            &cookie,
            "/urls",
            &[&base[..], &[("rate", "50/s"), ("burst", "10")]].concat(),
        )
        .await;
    assert_eq!(added.status(), 303);
    let pg = site.env.pg().await;
    let count = |id: i64| {
        let pg = &pg;
        async move {
            pg.query_one(
                "SELECT rate_count, rate_burst FROM cross_postback_urls WHERE id = $1",
                &[&id],
            )
            .await
            .map(|r| (r.get::<_, Option<i32>>(0), r.get::<_, Option<i32>>(1)))
            .expect("row")
        }
    };
    let new_id: i64 = pg
        .query_one("SELECT id FROM cross_postback_urls WHERE offer_id = '300'", &[])
        .await
        .expect("one URL added")
        .get(0);
    assert_eq!(count(new_id).await, (Some(50), Some(10)));
    let list = site.get(&cookie, "/urls").await;
    assert!(list.contains("50/s burst 10"), "the list shows the rate");

    let edit = format!("/urls/{new_id}/edit");
    let form = site.get(&cookie, &edit).await;
    assert!(
        form.contains("name=\"rate\" value=\"50/s\""),
        "the edit form holds the rate"
    );
    assert!(form.contains("name=\"burst\" value=\"10\""));
    let url = [("csrf", csrf.as_str()), ("url", "http://127.0.0.1:9/p")];
    let r = site
        .post(&cookie, &edit, &[&url[..], &[("rate", "6/m")]].concat())
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(count(new_id).await, (Some(6), Some(1)));
    let r = site
        .post(&cookie, &edit, &[&url[..], &[("rate", "x")]].concat())
        .await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        count(new_id).await,
        (Some(6), Some(1)),
        "a bad rate changes nothing"
    );
    let r = site
        .post(&cookie, &edit, &[&url[..], &[("rate", "")]].concat())
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(count(new_id).await, (None, None), "an empty rate removes it");

    alerts::disable(
        &site.db().await,
        new_id,
        "all 25 attempts failed for 3d",
        Utc::now(),
    )
    .await
    .expect("disable");
    let list = site.get(&cookie, "/urls").await;
    assert!(
        list.contains("all 25 attempts failed for 3d"),
        "the list shows the reason"
    );
}
