//! A real browser for tests: Debian's Chromium driven over WebDriver
//! (chromedriver), headless, with screenshots under `target/`. Included by
//! the tests that use it (`#[path] mod browser;`), not by every test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{wait_until, Harness};

/// The password of every console user the tests add.
pub const PASSWORD: &str = "a long enough password";

/// Add a console user with [`PASSWORD`].
pub fn add_user(h: &Harness, name: &str, role: &str, restricted: bool) {
    use std::io::Write;
    let mut args = vec!["user", "add", name, "--role", role, "--password-stdin"];
    if restricted {
        args.push("--restricted");
    }
    let mut child = h.cmd(&args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "user add {name}: {}", String::from_utf8_lossy(&out.stderr));
}

pub struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole process group: Chromium too, even after a failed test
        // that never closed its session.
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) with a negative pid signals that process group.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn chromedriver() -> Option<Driver> {
    let exe = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"].into_iter().find(|p| Path::new(p).exists());
    let Some(exe) = exe else {
        if std::env::var("BODYCAMD_TEST_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            panic!("BODYCAMD_TEST_REQUIRE_BROWSER=1 but chromedriver is not installed (scripts/deps.sh installs it)");
        }
        eprintln!("SKIPPED: no chromedriver (run scripts/deps.sh to install chromium and chromium-driver)");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child =
        Command::new(exe).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let d = Driver { child, port };
    wait_until("chromedriver to listen", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Some(d)
}

pub struct Browser {
    pub c: fantoccini::Client,
    pub base: String,
    pub shots: PathBuf,
}

impl Browser {
    pub async fn start(driver: &Driver, addr: std::net::SocketAddr) -> Browser {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--no-first-run", "--window-size=1400,1000", "--autoplay-policy=no-user-gesture-required"]
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let c = fantoccini::ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("a Chromium session");
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../console-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Browser { c, base: format!("http://{addr}"), shots }
    }

    pub async fn go(&self, path: &str) {
        self.c.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    pub async fn source(&self) -> String {
        self.c.source().await.unwrap()
    }

    pub async fn shot(&self, name: &str) {
        let png = self.c.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// Find `css` and act on it; when the page replaced the element between
    /// finding and acting (a live update re-rendered it: a stale element),
    /// find it again.
    async fn on_element<F, Fut>(&self, css: &str, act: F)
    where
        F: Fn(fantoccini::elements::Element) -> Fut,
        Fut: std::future::Future<Output = Result<(), fantoccini::error::CmdError>>,
    {
        let mut tries = 0;
        loop {
            let e = match self.c.find(fantoccini::Locator::Css(css)).await {
                Ok(e) => e,
                Err(e) => panic!("{css}: {e}\non the page:\n{}", self.source().await),
            };
            match act(e).await {
                Ok(()) => return,
                // A live update replaced the element between finding and
                // using it: ChromeDriver says so as a stale reference, or
                // (when the node went during the command) as an inspector
                // error that the node "does not belong to the document".
                Err(fantoccini::error::CmdError::Standard(w))
                    if (w.error == fantoccini::error::ErrorStatus::StaleElementReference
                        || w.message.contains("does not belong to the document"))
                        && tries < 20 =>
                {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("{css}: {e}"),
            }
        }
    }

    pub async fn fill(&self, css: &str, text: &str) {
        self.on_element(css, |e| async move {
            e.clear().await?;
            e.send_keys(text).await
        })
        .await;
    }

    pub async fn click(&self, css: &str) {
        self.on_element(css, |e| async move { e.click().await }).await;
    }

    pub async fn login(&self, name: &str) {
        self.go("/console/login").await;
        self.fill("input[name=username]", name).await;
        self.fill("input[name=password]", PASSWORD).await;
        self.click("button[type=submit]").await;
        let me = format!("{name} · ");
        self.settle(&format!("logged in as {name}"), |s| s.contains(&me)).await;
    }

    pub async fn logout(&self) {
        self.go("/console/").await;
        self.click("form.who button").await;
        self.settle("the login page", |s| s.contains("You are logged out")).await;
    }

    /// Wait (without reloading) until the page satisfies `f`: a click on a
    /// submit button returns before the next page has loaded.
    pub async fn settle(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.source().await;
            if f(&s) {
                return s;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {what}; the page:\n{s}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Reload `path` until its source satisfies `f`.
    pub async fn until(&self, what: &str, path: &str, limit: Duration, f: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            self.go(path).await;
            let s = self.source().await;
            if f(&s) {
                return s;
            }
            assert!(start.elapsed() < limit, "timed out waiting for {what}; last page:\n{s}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}
