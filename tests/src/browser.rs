//! A real browser for the web UI's tests: headless Chromium (Debian's
//! `chromium` and `chromium-driver`, installed by `scripts/ensure-browser.sh`)
//! driven over WebDriver by `fantoccini`.
//!
//! Without a browser the tests fail, saying how to install one: a browser
//! test that silently passes would prove nothing.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::process::{Child, Command};

use crate::{eventually, TestApp};

/// How long a page, element or text is waited for.
pub const WAIT: Duration = Duration::from_secs(20);
/// The window of every test; phone layouts resize it.
pub const DESKTOP: (u32, u32) = (1280, 900);

/// chromedriver on a free loopback port, and one Chromium session through it.
pub struct Browser {
    pub client: Client,
    _driver: Child,
    profile: PathBuf,
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}

impl Browser {
    /// A browser asking for English pages.
    pub async fn start() -> Browser {
        Browser::start_in("en-US").await
    }

    /// A browser whose `Accept-Language` is `languages` (`ru`, `ru,en`).
    pub async fn start_in(languages: &str) -> Browser {
        Browser::start_with(languages, None).await
    }

    /// A browser asking for `languages` and living in time zone `tz` (an
    /// IANA name, as `Intl` reports it to pages), or the machine's.
    pub async fn start_with(languages: &str, tz: Option<&str>) -> Browser {
        Browser::launch(languages, tz, true).await
    }

    /// An English browser with JavaScript switched off by its content
    /// settings: what a user without the script gets.
    pub async fn start_without_script() -> Browser {
        Browser::launch("en-US", None, false).await
    }

    async fn launch(languages: &str, tz: Option<&str>, script: bool) -> Browser {
        let missing = "is not installed: run scripts/ensure-browser.sh \
                       (apt-get install chromium chromium-driver)";
        let chromium = which("chromium").unwrap_or_else(|| panic!("chromium {missing}"));
        let chromedriver =
            which("chromedriver").unwrap_or_else(|| panic!("chromedriver {missing}"));
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut driver = Command::new(&chromedriver);
        if let Some(tz) = tz {
            // Chromium inherits chromedriver's environment.
            driver.env("TZ", tz);
        }
        let driver = driver
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", chromedriver.display()));
        let webdriver = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        eventually(WAIT, "chromedriver to answer", || async {
            let status = http.get(format!("{webdriver}/status")).send().await;
            status.ok().filter(|r| r.status().is_success()).map(|_| ())
        })
        .await;
        let profile = std::env::temp_dir().join(format!("webhookd-ui-{}", uuid::Uuid::new_v4()));
        let mut prefs = json!({ "intl.accept_languages": languages });
        if !script {
            prefs["profile.managed_default_content_settings.javascript"] = json!(2);
        }
        let mut capabilities = Capabilities::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-quic",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.display()),
                    format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                    format!("--lang={languages}"),
                ],
                "prefs": prefs,
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&webdriver)
            .await
            .unwrap_or_else(|e| panic!("Chromium did not start through chromedriver: {e}"));
        Browser {
            client,
            _driver: driver,
            profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Waits (bounded) for an element of the page.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        let found = self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await;
        match found {
            Ok(element) => element,
            Err(e) => panic!("no `{css}` on {}: {e}", self.path().await),
        }
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    /// The current URL's path and query.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Waits until the page's main heading contains `text`.
    pub async fn expect_heading(&self, text: &str) {
        eventually(WAIT, &format!("a page titled {text:?}"), || async {
            let h1 = self.client.find(Locator::Css("h1")).await.ok()?;
            h1.text().await.ok().filter(|t| t.contains(text))
        })
        .await;
    }

    /// The texts of the elements matching `css` now, in page order (no
    /// waiting: none is an empty list).
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut texts = Vec::new();
        for element in self.client.find_all(Locator::Css(css)).await.unwrap() {
            texts.push(element.text().await.unwrap());
        }
        texts
    }

    pub async fn body_text(&self) -> String {
        self.text("body").await
    }

    pub async fn js_number(&self, script: &str) -> u64 {
        let value = self.client.execute(script, vec![]).await.unwrap();
        value
            .as_u64()
            .unwrap_or_else(|| panic!("{script} gave {value}"))
    }

    /// A PNG of the whole page (the window is stretched to its height).
    pub async fn screenshot(&self, name: &str) {
        let (width, _) = self.window_size().await;
        let height = self
            .js_number("return document.documentElement.scrollHeight")
            .await;
        // The window is a little taller than the page it shows.
        let height = u32::try_from(height).unwrap_or(4000).clamp(400, 4000) + 120;
        self.client.set_window_size(width, height).await.unwrap();
        self.client
            .execute(
                "window.scrollTo(0, 0); document.activeElement.blur();",
                vec![],
            )
            .await
            .unwrap();
        let png = self.client.screenshot().await.unwrap();
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
        self.client.set_window_size(width, DESKTOP.1).await.unwrap();
    }

    pub async fn window_size(&self) -> (u32, u32) {
        let (w, h) = self.client.get_window_size().await.unwrap();
        (u32::try_from(w).unwrap(), u32::try_from(h).unwrap())
    }

    pub async fn session_cookie(&self) -> String {
        let cookie = self
            .client
            .get_named_cookie("webhookd_session")
            .await
            .unwrap();
        assert!(
            cookie.http_only().unwrap_or(false),
            "the session cookie is HttpOnly"
        );
        format!("webhookd_session={}", cookie.value())
    }

    pub async fn sign_in(&self, app: &TestApp, token: &str) {
        self.goto(&app.url("/webhook/")).await;
        self.expect_heading("Sign in").await;
        assert_eq!(self.path().await, "/login?next=%2Fwebhook%2F");
        self.submit_token(token).await;
        self.expect_heading("Webhooks").await;
    }

    /// Signs in from the webhook list's sign-in page, whatever its language,
    /// and waits for the list.
    pub async fn sign_in_any_language(&self, app: &TestApp, token: &str) {
        self.goto(&app.url("/webhook/")).await;
        self.submit_token(token).await;
        eventually(WAIT, "the webhook list after signing in", || async {
            (self.path().await == "/webhook/").then_some(())
        })
        .await;
    }

    /// Types `token` into the sign-in form of the page shown and sends it.
    pub async fn submit_token(&self, token: &str) {
        self.fill("#token", token).await;
        self.click("form[action='/login'] button[type=submit]")
            .await;
    }

    pub async fn close(self) {
        self.client.close().await.unwrap();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("ui-screenshots")
}
