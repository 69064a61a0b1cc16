//! What the browser tests share: headless Chromium driven over WebDriver
//! (fantoccini talking to a chromedriver started here), the skip rule, bounded
//! waits and screenshots.
//!
//! Without Chromium or chromedriver a browser test is skipped with a note on
//! standard error, unless `CI` is set: then it fails. `CHROME_BIN` and
//! `CHROMEDRIVER` name the programs when they are not on `PATH`. Screenshots go
//! to `target/screenshots/`, and also to `docs/images/` with `UPDATE_SCREENSHOTS=1`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{ClientBuilder, Locator};

/// One page to appear, one redirect to land.
pub(crate) const STEP_LIMIT: Duration = Duration::from_secs(15);
/// A phone's viewport.
pub(crate) const PHONE: (u32, u32) = (390, 844);
/// The tallest full-page screenshot.
const MAX_PAGE_HEIGHT: u32 = 4000;

/// `program` on `PATH` (or in `/usr/bin`), or the path in the env var `over`.
fn find_program(over: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(over) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .collect();
    names
        .iter()
        .flat_map(|n| dirs.iter().map(move |d| d.join(n)))
        .find(|p| p.is_file())
}

/// A chromedriver child process, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn spawn(program: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", program.display()));
        Self { child, port }
    }

    /// Waits (bounded) until the driver accepts connections.
    async fn ready(&mut self) {
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("chromedriver exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {} within {STEP_LIMIT:?}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a screenshot to `target/screenshots/` (and `docs/images/` with
/// `UPDATE_SCREENSHOTS=1`).
pub(crate) fn save_screenshot(name: &str, png: &[u8]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("target/screenshots")];
    if std::env::var("UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        dirs.push(root.join("docs/images"));
    }
    for dir in dirs {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }
}

/// A headless Chromium session and the chromedriver it runs under.
pub(crate) struct Chromium {
    browser: fantoccini::Client,
    driver: Driver,
    window: (u32, u32),
    _profile: tempfile::TempDir,
}

impl Chromium {
    /// Starts Chromium with a window of `window` (width, height) pixels; `None`
    /// (after a note on standard error) when Chromium or chromedriver is missing
    /// and `CI` is not set.
    pub(crate) async fn launch(window: (u32, u32)) -> Option<Self> {
        let chromium = find_program(
            "CHROME_BIN",
            &[
                "chromium",
                "chromium-browser",
                "google-chrome",
                "google-chrome-stable",
            ],
        );
        let chromedriver = find_program("CHROMEDRIVER", &["chromedriver"]);
        let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but chromium/chromedriver were not found: install the Debian \
                 packages chromium and chromium-driver (or set CHROME_BIN and CHROMEDRIVER)"
            );
            // Straight to the process's stderr: the test harness would capture eprintln!.
            let _ = writeln!(
                std::io::stderr(),
                "browser tests skipped: chromium/chromedriver not found"
            );
            return None;
        };

        let mut driver = Driver::spawn(&chromedriver);
        driver.ready().await;
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--hide-scrollbars".to_owned(),
            format!("--window-size={},{}", window.0, window.1),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = fantoccini::wd::Capabilities::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({"binary": chromium, "args": args}),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let browser = tokio::time::timeout(
            Duration::from_secs(30),
            ClientBuilder::new(connector)
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{}", driver.port)),
        )
        .await
        .expect("chromedriver did not open a session within 30 s")
        .unwrap_or_else(|e| panic!("could not open a Chromium session: {e}"));
        browser
            .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
                Some(STEP_LIMIT),
                Some(STEP_LIMIT),
                Some(Duration::ZERO),
            ))
            .await
            .unwrap();
        browser.set_window_size(window.0, window.1).await.unwrap();
        Some(Self {
            browser,
            driver,
            window,
            _profile: profile,
        })
    }

    /// Runs `steps` in a task of its own, so that a failed step still closes the
    /// browser; fails when they take longer than `limit`.
    pub(crate) async fn run<F, Fut>(self, limit: Duration, steps: F)
    where
        F: FnOnce(Web) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let web = Web {
            browser: self.browser.clone(),
            window: self.window,
        };
        let outcome = tokio::spawn(tokio::time::timeout(limit, steps(web))).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.browser.close()).await;
        drop(self.driver);
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("the browser steps took longer than {limit:?}"),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// The browser as the steps use it: every wait is bounded by [`STEP_LIMIT`].
#[derive(Clone)]
pub(crate) struct Web {
    pub(crate) browser: fantoccini::Client,
    /// The window size the browser was started with.
    window: (u32, u32),
}

impl Web {
    pub(crate) async fn goto(&self, url: &str) {
        self.browser.goto(url).await.unwrap();
    }

    pub(crate) async fn url(&self) -> String {
        self.browser.current_url().await.unwrap().to_string()
    }

    /// Polls (bounded) until the browser's URL satisfies `wanted`.
    async fn wait_url_by(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            let url = self.url().await;
            if wanted(&url) {
                return url;
            }
            if Instant::now() >= deadline {
                let body = self.text("body").await;
                panic!("expected {what}, still at {url}: {body}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls (bounded) until the browser's URL starts with `prefix`.
    pub(crate) async fn wait_url(&self, prefix: &str) -> String {
        self.wait_url_by(&format!("a page under {prefix}"), |u| u.starts_with(prefix))
            .await
    }

    /// Polls (bounded) until the browser is at exactly `url`.
    pub(crate) async fn wait_url_is(&self, url: &str) {
        self.wait_url_by(&format!("the page {url}"), |u| u == url)
            .await;
    }

    /// The first element matching `css`, waiting (bounded) for it.
    pub(crate) async fn find(&self, css: &str) -> Element {
        match self
            .browser
            .wait()
            .at_most(STEP_LIMIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => panic!("no {css} at {}: {e}", self.url().await),
        }
    }

    /// Whether an element matches `css` now (no waiting).
    pub(crate) async fn has(&self, css: &str) -> bool {
        !self
            .browser
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .is_empty()
    }

    /// The text of the first element matching `css` now, or a note that there is none.
    pub(crate) async fn text(&self, css: &str) -> String {
        match self.browser.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(e) => format!("<no {css}: {e}>"),
        }
    }

    /// The texts of every element matching `css` now.
    pub(crate) async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = vec![];
        for e in self.browser.find_all(Locator::Css(css)).await.unwrap() {
            out.push(e.text().await.unwrap());
        }
        out
    }

    /// The heading of the page, waiting (bounded) for it.
    pub(crate) async fn h1(&self) -> String {
        self.find("h1").await.text().await.unwrap()
    }

    /// The current value of the form field matching `css`.
    pub(crate) async fn value(&self, css: &str) -> String {
        self.find(css)
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// Replaces what the field matching `css` holds with `value`.
    pub(crate) async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        if !value.is_empty() {
            field.send_keys(value).await.unwrap();
        }
    }

    /// Ticks or unticks the checkbox (or radio button) matching `css`.
    pub(crate) async fn set_checked(&self, css: &str, checked: bool) {
        let field = self.find(css).await;
        if field.is_selected().await.unwrap() != checked {
            field.click().await.unwrap();
        }
        assert_eq!(field.is_selected().await.unwrap(), checked, "{css}");
    }

    /// Clicks the button whose text is `text`.
    pub(crate) async fn click_button(&self, text: &str) {
        self.click_xpath(&format!("//button[normalize-space()='{text}']"))
            .await;
    }

    /// Clicks the link whose text is `text`.
    pub(crate) async fn click_link(&self, text: &str) {
        self.click_xpath(&format!("//a[normalize-space()='{text}']"))
            .await;
    }

    async fn click_xpath(&self, xpath: &str) {
        self.browser
            .wait()
            .at_most(STEP_LIMIT)
            .for_element(Locator::XPath(xpath))
            .await
            .unwrap_or_else(|e| panic!("nothing matches {xpath}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Clicks the button whose text is `text`, then waits (bounded) until the old
    /// page is gone.
    pub(crate) async fn submit(&self, text: &str) {
        self.navigate(|| self.click_button(text)).await;
    }

    /// Clicks the link whose text is `text`, then waits (bounded) until the old
    /// page is gone.
    pub(crate) async fn follow(&self, text: &str) {
        self.navigate(|| self.click_link(text)).await;
    }

    async fn navigate<Fut: Future<Output = ()>>(&self, click: impl FnOnce() -> Fut) {
        let old = self.find("html").await;
        click().await;
        let deadline = Instant::now() + STEP_LIMIT;
        // A stale root element: another document has loaded.
        while old.tag_name().await.is_ok() {
            assert!(
                Instant::now() < deadline,
                "still at {} after {STEP_LIMIT:?}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        self.find("body").await;
    }

    /// Saves a screenshot of the viewport.
    pub(crate) async fn screenshot(&self, name: &str) {
        save_screenshot(name, &self.browser.screenshot().await.unwrap());
    }

    /// Saves a screenshot of the whole page (up to a height), at the width the
    /// window has now; the window's height is restored afterwards.
    pub(crate) async fn screenshot_page(&self, name: &str) {
        let (width, height) = self.browser.get_window_size().await.unwrap();
        let (width, height) = (
            u32::try_from(width).unwrap(),
            u32::try_from(height).unwrap(),
        );
        let sizes = self
            .browser
            .execute(
                "return [document.documentElement.scrollHeight, window.innerHeight];",
                vec![],
            )
            .await
            .unwrap();
        let page = u32::try_from(sizes[0].as_u64().unwrap()).unwrap();
        let viewport = u32::try_from(sizes[1].as_u64().unwrap()).unwrap();
        let tall = (height + page.saturating_sub(viewport)).min(MAX_PAGE_HEIGHT);
        if tall > height {
            self.browser.set_window_size(width, tall).await.unwrap();
        }
        self.screenshot(name).await;
        if tall > height {
            self.browser.set_window_size(width, height).await.unwrap();
        }
    }

    /// Sets the window to a phone's size.
    pub(crate) async fn phone(&self) {
        self.browser
            .set_window_size(PHONE.0, PHONE.1)
            .await
            .unwrap();
    }

    /// Sets the window back to the size it was started with.
    pub(crate) async fn desktop(&self) {
        self.browser
            .set_window_size(self.window.0, self.window.1)
            .await
            .unwrap();
    }
}
