//! Browser tests: the page's flows in a real headless Chromium.

use crate::harness::browser::with_browser;

/// The harness itself: typing, clicking, waiting for text, a screenshot.
#[tokio::test]
async fn harness_drives_a_page() {
    let page = "data:text/html,<input id=i><button id=b onclick=\"o.textContent='got '%2Bi.value\">go</button><p id=o></p>";
    with_browser(390, 800, async |b| {
        b.goto(page).await;
        b.fill("#i", "hello").await;
        b.click("#b").await;
        assert!(b.wait_text("got hello").await.contains("go"));
        assert!(b.screenshot("harness").await.exists());
    })
    .await;
}
