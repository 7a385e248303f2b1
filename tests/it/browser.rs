//! The page in a real headless Chromium, without a script of ours (there is none): an
//! operator's flow from sign-in to a partner link, and the partner opening that link in a fresh
//! profile. Screenshots go to `target/browser/`.

use crate::harness::browser::{Browser, with_browser};
use crate::web_page_site::{REVENUE, SECRET, Site, http};

async fn sign_in(b: &Browser, site: &Site) {
    b.goto(&site.base).await;
    b.wait_text("tokens create --name me").await;
    b.fill("#token", &site.token).await;
    b.click("form[action='/signin'] button").await;
    b.wait_text("Sign out").await;
}

/// The text of the table's header row.
async fn header(b: &Browser) -> String {
    b.find("table thead").await.text().await.expect("header text")
}

#[tokio::test]
async fn an_operator_filters_edits_columns_pages_sends_again_and_shares_a_link() {
    let site = Site::start().await;
    with_browser(1280, 800, async |b| {
        sign_in(b, &site).await;
        let all = b.wait_text("conv-a8-0").await;
        assert!(all.contains("conv-a7-0") && !all.contains(SECRET));

        // Filter by affiliate 8.
        b.fill("input[name=affiliate_id]", "8").await;
        b.click("form[action='/'] button[type=submit]").await;
        let text = b.wait_text("(8) Rival").await;
        assert!(!text.contains("conv-a7-0"), "affiliate 7 is filtered out");

        // Edit columns: hide the URL, put the conversion first.
        b.click("details summary").await;
        b.click("#show_postback_url").await;
        b.fill("input[name=pos_conversion_id]", "1").await;
        b.click("form[action='/columns'] button").await;
        b.wait_text("(8) Rival").await;
        let head = header(b).await;
        assert!(
            !head.contains("postback_url") && head.starts_with("conversion_id"),
            "{head}"
        );
        let address = b.client.current_url().await.expect("address").to_string();
        assert!(
            address.contains("affiliate_id=8") && address.contains("columns=conversion_id"),
            "{address}"
        );
        b.screenshot("table").await;

        // The export link carries the view; the file holds every matching row.
        let export = b
            .find("a[href^='/export.csv']")
            .await
            .attr("href")
            .await
            .unwrap()
            .unwrap();
        let cookie = b
            .client
            .get_named_cookie("xpb_session")
            .await
            .expect("session cookie");
        let csv = http()
            .get(format!("{}{export}", site.base))
            .header("cookie", format!("xpb_session={}", cookie.value()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            csv.lines().count(),
            4,
            "header and affiliate 8's three rows:\n{csv}"
        );
        assert!(csv.starts_with("conversion_id,") && !csv.contains("postback_url"));

        // Paging: one row a page, "Older" goes on.
        b.fill("input[name=limit]", "1").await;
        b.click("form[action='/'] button[type=submit]").await;
        b.wait_text("1 rows on this page").await;
        let first = b.find("tbody tr").await.text().await.unwrap();
        b.click("a[rel=next]").await;
        b.wait_text("← Newer").await;
        let second = b.find("tbody tr").await.text().await.unwrap();
        assert_ne!(first, second);

        // A row opens its delivery; "Send again" queues it.
        b.click("tbody a[href^='/deliveries/']").await;
        b.wait_text("Attempts").await;
        b.click("form[action$='/send-again'] button").await;
        b.wait_text("Queued to be sent again as attempt 2").await;

        // /urls: the CLI's validation on the form, then an added URL.
        b.goto(&format!("{}/urls", site.base)).await;
        b.fill("form[action='/urls'] input[name=offer]", "300").await;
        b.fill(
            "form[action='/urls'] input[name=url]",
            "http://x.test/?a={nosuchmacro}",
        )
        .await;
        b.click("form[action='/urls'] button[type=submit]").await;
        b.wait_text("nosuchmacro").await;
        b.fill(
            "form[action='/urls'] input[name=url]",
            "http://127.0.0.1:9/p?c={clickid}",
        )
        .await;
        b.click("form[action='/urls'] button[type=submit]").await;
        b.wait_text("added").await;

        // 390 px wide: the table scrolls inside its box, the page does not.
        b.goto(&format!("{}/?from=4d", site.base)).await;
        b.client.set_window_size(390, 800).await.expect("resize");
        b.wait_text("conv-a7-old").await;
        let page_width = b
            .client
            .execute("return document.documentElement.scrollWidth", vec![])
            .await
            .unwrap();
        assert!(
            page_width.as_u64().unwrap() <= 390,
            "the page is {page_width} px wide at 390"
        );
        b.client
            .execute("document.querySelector('.pager').scrollIntoView(false)", vec![])
            .await
            .expect("scroll to the table");
        b.screenshot("table-390").await;
        b.client.set_window_size(1280, 800).await.expect("resize");
        let view = "/?from=4d&columns=date,conversion_id,affiliate,offer,goal,status,payouts,currency,http_code,error_code,postback_url";
        b.goto(&format!("{}{view}", site.base)).await;
        b.wait_text("conv-a7-old").await;
        b.screenshot("statistics").await;

        // Get link from affiliate 7's view; the address is shown once.
        b.goto(&format!("{}/?affiliate_id=7", site.base)).await;
        b.click("a[href^='/links/new']").await;
        let aff = b
            .find("input[name=affiliate_id]")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(aff, "7", "the form is filled from the view");
        b.fill("input[name=label]", "Acme's postbacks").await;
        b.click("form[action='/links'] button").await;
        let link = b.find("#link-address").await.text().await.unwrap();
        assert!(link.contains("/s/"), "{link}");
        let link = link.replace(&site.env.cfg.web_public_url(), &site.base);

        // The partner, in a fresh profile with no session, sees only the scope.
        with_browser(1280, 800, async |p| {
            p.goto(&link).await;
            let text = p.wait_text("conv-a7-0").await;
            for never in ["conv-a8", "Rival", REVENUE, SECRET, "Sign out", "Send again"] {
                assert!(!text.contains(never), "the partner sees {never:?}:\n{text}");
            }
            assert!(!header(p).await.contains("revenue"));
            p.goto(&format!("{link}?affiliate_id=8&columns=revenue")).await;
            let text = p.wait_text("conv-a7-0").await;
            assert!(!text.contains("conv-a8") && !header(p).await.contains("revenue"));
            p.screenshot("partner").await;

            // Revoked by the operator, the partner's reload gets the 410 page.
            b.goto(&format!("{}/links", site.base)).await;
            b.click("form[action$='/revoke'] button").await;
            b.wait_text("revoked").await;
            p.client.refresh().await.expect("reload");
            let gone = p.wait_text("This link was revoked").await;
            assert!(!gone.contains("conv-a7"));
        })
        .await;
    })
    .await;
}
