//! A real headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`;
//! `scripts/test` installs them). Each [`Browser`] has its own chromedriver on a free port and
//! its own fresh profile directory, so two browsers in one test share no cookie. The session is
//! closed and chromedriver's whole process group killed when the test body ends, also when it
//! panics.

use std::os::unix::process::CommandExt;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::DEADLINE;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Without the background-networking flags Chromium's own connections (updates, sync) are
/// refused here and slow every start.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

/// One browser: a WebDriver session on its own chromedriver with its own profile.
pub struct Browser {
    pub client: Client,
    driver: Driver,
}

/// The chromedriver process group and the profile directory; both gone when dropped.
struct Driver {
    child: Child,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver leads its own group, so Chromium and its helpers go with it.
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Runs `body` with a fresh browser of `width`×`height`; closes the session and kills the
/// driver afterwards, then lets a panic of `body` through.
pub async fn with_browser<F>(width: u32, height: u32, body: F)
where
    F: AsyncFnOnce(&Browser),
{
    let browser = Browser::start(width, height).await;
    let outcome = AssertUnwindSafe(body(&browser)).catch_unwind().await;
    let Browser { client, driver } = browser;
    let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

impl Browser {
    async fn start(width: u32, height: u32) -> Browser {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists(),
            "{CHROMEDRIVER} is missing: apt-get install -y chromium chromium-driver (scripts/test does)"
        );
        let port = free_port();
        let profile = std::env::temp_dir().join(format!("xpb-browser-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&profile).expect("create the profile directory");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver { child, profile };
        let url = format!("http://127.0.0.1:{port}");
        wait_ready(&url).await;
        let mut args: Vec<String> = FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!("--user-data-dir={}", driver.profile.display()));
        args.push(format!("--window-size={width},{height}"));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": CHROMIUM, "args": args }),
        );
        let client = ClientBuilder::rustls()
            .expect("rustls connector")
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a WebDriver session opens");
        Browser { client, driver }
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Waits (with the deadline) for an element.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(DEADLINE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css:?} within {DEADLINE:?}: {e}"))
    }

    /// Waits until the page's text contains `needle`; returns the text.
    pub async fn wait_text(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            // A click may still be loading the next page: the body just found can go stale
            // before its text is read; that is "not yet", not a failure.
            let text: String = self.find("body").await.text().await.unwrap_or_default();
            if text.contains(needle) {
                return text;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "the page never showed {needle:?}; it shows:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types `value` into the field `css` (cleared first).
    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clear the field");
        field.send_keys(value).await.expect("type into the field");
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Saves a screenshot as `target/browser/<name>.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = target_dir().join("browser");
        std::fs::create_dir_all(&dir).expect("create target/browser");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local address").port()
}

async fn wait_ready(url: &str) {
    let http = reqwest::Client::new();
    super::eventually("chromedriver answers /status", || {
        let http = http.clone();
        async move {
            let r = http.get(format!("{url}/status")).send().await.ok()?;
            r.status().is_success().then_some(())
        }
    })
    .await;
}
