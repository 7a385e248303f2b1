//! Partner links over HTTP: whatever the request says, a link shows only its scope (rows,
//! columns, values); altered tokens are 404 and say nothing; expired and revoked ones 410;
//! failed look-ups are limited per address; every answer is private.

use cross_postback::store::access;
use cross_postback::web::scope::LinkInput;

use crate::harness::eventually;
use crate::web_page_site::{REVENUE, SECRET, Site, http};

/// Affiliate 7 over the last day, the default columns (no revenue).
fn acme() -> LinkInput {
    LinkInput {
        affiliate_ids: vec!["7".into()],
        last: Some("1d".into()),
        label: Some("Acme's postbacks".into()),
        ..LinkInput::default()
    }
}

fn assert_private(r: &reqwest::Response, what: &str) {
    let h = r.headers();
    assert_eq!(h["cache-control"], "no-store", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(h["x-robots-tag"], "noindex", "{what}");
}

/// Asserts a partner answer holds only affiliate 7's last day, without revenue or secrets.
fn assert_in_scope(body: &str, what: &str) {
    assert!(
        body.contains("conv-a7-0"),
        "{what}: the scope's rows show:\n{body}"
    );
    for never in [
        "conv-a8",
        "Rival",
        "conv-a7-old",
        REVENUE,
        SECRET,
        "revenue",
        "/deliveries/",
        "/urls",
        "Send again",
    ] {
        assert!(!body.contains(never), "{what}: {never:?} must not show:\n{body}");
    }
}

#[tokio::test]
async fn no_parameter_widens_a_link() {
    let site = Site::start().await;
    let link = site.link(acme()).await;
    let widening = [
        "",
        "affiliate_id=8",
        "affiliate=8",
        "affiliate_id=7&affiliate_id=8",
        "affiliate_id=7,8",
        "affiliate_id%5B%5D=8",
        "affiliate_id[]=8",
        "affiliates=8",
        "offer_id=200",
        "from=2000-01-01",
        "from=30d",
        "to=2100-01-01",
        "columns=revenue",
        "columns=revenue,conversion_id,postback_url",
        "url_id=1",
        "state=failed",
        "limit=1000",
    ];
    for q in widening {
        for path in ["", "/attempts.csv"] {
            let r = http().get(format!("{link}{path}?{q}")).send().await.unwrap();
            let what = format!("{path}?{q}");
            assert_private(&r, &what);
            assert!(r.status() == 200, "{what}: {}", r.status());
            assert_in_scope(&r.text().await.unwrap(), &what);
        }
    }
    let bad = http()
        .get(format!("{link}/attempts.csv?limit=100000"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_private(&bad, "400");
    assert!(
        bad.text().await.unwrap().contains("limit"),
        "the parameter is named"
    );
    // Narrowing works: one conversion, one column.
    let one = http()
        .get(format!("{link}?conversion_id=conv-a7-1&columns=conversion_id"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(one.contains("conv-a7-1") && !one.contains("conv-a7-0"), "{one}");
    let head = one
        .split("<thead>")
        .nth(1)
        .unwrap()
        .split("</thead>")
        .next()
        .unwrap();
    assert!(
        head.contains("conversion_id") && !head.contains("payouts"),
        "{head}"
    );
}

#[tokio::test]
async fn head_and_post_get_nothing_outside_the_scope() {
    let site = Site::start().await;
    let link = site.link(acme()).await;
    let head = http()
        .head(format!("{link}?affiliate_id=8"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_private(&head, "HEAD");
    assert!(head.text().await.unwrap().is_empty());
    for path in ["", "/attempts.csv", "/columns"] {
        let post = http()
            .post(format!("{link}{path}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("affiliate_id=8")
            .send()
            .await
            .unwrap();
        assert_eq!(post.status(), 405, "POST {path}");
        assert_private(&post, "POST");
        assert!(post.text().await.unwrap().is_empty());
    }
    let deeper = http().get(format!("{link}/deliveries/1")).send().await.unwrap();
    assert_eq!(deeper.status(), 404);
}

#[tokio::test]
async fn an_export_is_refused_when_the_link_does_not_allow_it() {
    let site = Site::start().await;
    let link = site
        .link(LinkInput {
            export: Some(false),
            ..acme()
        })
        .await;
    let page = http().get(&link).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("attempts.csv"), "no export button");
    let r = http().get(format!("{link}/attempts.csv")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(!r.text().await.unwrap().contains("conv-a7"));
}

#[tokio::test]
async fn altered_tokens_are_404_saying_nothing_and_failures_are_limited() {
    let site = Site::start().await;
    let link = site.link(acme()).await;
    let mut altered = link.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    let r = http().get(&altered).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_private(&r, "404");
    assert_eq!(r.text().await.unwrap().trim(), "Not found");
    // 20 failures a minute from one address; then even the right token waits.
    for _ in 0..19 {
        assert_eq!(http().get(&altered).send().await.unwrap().status(), 404);
    }
    let limited = http().get(&link).send().await.unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn expired_and_revoked_links_are_410_saying_which_and_since_when() {
    let site = Site::start().await;
    let short = site
        .link(LinkInput {
            expires: Some("1s".into()),
            ..acme()
        })
        .await;
    let revoked = site.link(acme()).await;
    assert_eq!(http().get(&revoked).send().await.unwrap().status(), 200);
    let pg = site.env.pg().await;
    let id: i64 = pg
        .query_one("SELECT max(id) FROM share_links", &[])
        .await
        .unwrap()
        .get(0);
    let at = access::revoke_link(&site.db().await, id)
        .await
        .unwrap()
        .expect("revoked");
    let r = http().get(&revoked).send().await.unwrap();
    assert_eq!(r.status(), 410);
    assert_private(&r, "410");
    let body = r.text().await.unwrap();
    assert!(
        body.contains("revoked") && body.contains(&at.format("%Y-%m-%d %H:%M:%S").to_string()),
        "{body}"
    );
    assert!(!body.contains("conv-a7"));
    let csv = http()
        .get(format!("{revoked}/attempts.csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 410);

    let body = eventually("the 1 s link expires", || async {
        let r = http().get(&short).send().await.ok()?;
        (r.status() == 410).then_some(())?;
        r.text().await.ok()
    })
    .await;
    assert!(body.contains("expired") && !body.contains("conv-a7"), "{body}");
}
