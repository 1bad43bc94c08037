//! The docs page in a real browser: the server binary serves Swagger UI at `/docs`, headless
//! Chromium (driven through chromedriver, over WebDriver) renders every operation of
//! `/openapi.json`, and "Try it out" → "Execute" on `GET /health` shows the 200 answer.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/setup` installs them). A screenshot of the
//! page after the call is saved as `docs-page.png` in the target directory, for a person to look at.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use jwthenticator_tests::{TestServer, free_port};
use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_jwthenticator-server-e2e");
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The bound on every wait: for a process to come up, a page to render, an element to appear.
const WAIT: Duration = Duration::from_secs(30);
const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
/// The `GET /health` operation block of Swagger UI.
const HEALTH_BLOCK: &str =
    r#".opblock.opblock-get:has(.opblock-summary-path[data-path="/health"])"#;

/// A chromedriver process in a process group of its own, with the Chromium it starts; the whole
/// group is killed when this is dropped, also when the test fails.
struct ChromeDriver {
    child: Child,
    port: u16,
    log_path: PathBuf,
    /// Chromium's profile (`--user-data-dir`) and the driver's log; removed after the kill.
    dir: tempfile::TempDir,
}

impl ChromeDriver {
    /// Starts chromedriver on a free loopback port and waits until it reports ready.
    async fn start() -> Self {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: run .ci/setup or apt-get install chromium chromium-driver"
            );
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = free_port();
        let log_path = dir.path().join("chromedriver.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log_path.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            // A group of its own, so that Drop can kill Chromium's processes with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("starting {CHROMEDRIVER}: {err}: run .ci/setup or apt-get install chromium chromium-driver")
            });
        let mut driver = Self {
            child,
            port,
            log_path,
            dir,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("HTTP client");
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("chromedriver exited with {status}:\n{}", driver.logs());
            }
            let ready = match http.get(format!("{}/status", driver.url())).send().await {
                Ok(response) => response
                    .json::<Value>()
                    .await
                    .is_ok_and(|status| status["value"]["ready"] == json!(true)),
                Err(_) => false,
            };
            if ready {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "chromedriver was not ready within {WAIT:?}:\n{}",
            driver.logs()
        );
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Headless Chromium that works as root in a sandboxed container and makes no network call
    /// of its own.
    fn capabilities(&self) -> Capabilities {
        let profile = self.dir.path().join("profile");
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            "--window-size=1280,1600".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        });
        match capabilities {
            Value::Object(map) => map,
            _ => unreachable!("a JSON object"),
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The group id is chromedriver's pid (process_group(0)); Chromium runs in that group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `step`, bounded by [`WAIT`], with its error (or the timeout) as a message naming `what`.
async fn within<T, E: Debug>(
    what: &str,
    step: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(WAIT, step).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(format!("{what}: {err:?}")),
        Err(_) => Err(format!("{what}: no answer within {WAIT:?}")),
    }
}

/// Polls `script` in the page until `done` accepts its value; bounded by [`WAIT`].
async fn wait_for_script(
    browser: &Client,
    what: &str,
    script: &str,
    done: impl Fn(&Value) -> bool,
) -> Result<Value, String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let value = within(what, browser.execute(script, Vec::new())).await?;
        if done(&value) {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(format!("{what}: not within {WAIT:?}; last seen {value}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every `(METHOD, path)` operation of an OpenAPI document.
fn operations(spec: &Value) -> BTreeSet<(String, String)> {
    let paths = spec["paths"]
        .as_object()
        .expect("paths in the OpenAPI document");
    paths
        .iter()
        .flat_map(|(path, item)| {
            HTTP_METHODS
                .iter()
                .filter(|method| item.get(**method).is_some())
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

/// Where the screenshot goes: the target directory in use (`CARGO_TARGET_DIR`, or the
/// workspace's `target/`).
fn screenshot_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("docs-page.png")
}

/// The browser part of the test; an error says which step failed.
async fn drive(
    browser: &Client,
    server: &TestServer,
    expected: &BTreeSet<(String, String)>,
) -> Result<(), String> {
    within("opening /docs", browser.goto(&server.url("/docs"))).await?;

    // Every operation of the document appears as an operation block, and nothing else does.
    let rendered = wait_for_script(
        browser,
        "Swagger UI rendering the operations",
        "return Array.from(document.querySelectorAll('.opblock')).map(block => [\
             block.querySelector('.opblock-summary-method').textContent.trim(),\
             block.querySelector('.opblock-summary-path').getAttribute('data-path')])",
        |blocks| blocks.as_array().is_some_and(|b| b.len() >= expected.len()),
    )
    .await?;
    let rendered: Vec<(String, String)> =
        serde_json::from_value(rendered).map_err(|err| format!("operation blocks: {err}"))?;
    let rendered_set: BTreeSet<_> = rendered.iter().cloned().collect();
    if &rendered_set != expected || rendered.len() != expected.len() {
        return Err(format!(
            "operation blocks {rendered:?} do not match the operations of /openapi.json {expected:?}"
        ));
    }

    // The page came from the binary alone: no script, style or font from anywhere else.
    let resources = within(
        "listing the page's resources",
        browser.execute(
            "return performance.getEntriesByType('resource').map(entry => entry.name)",
            Vec::new(),
        ),
    )
    .await?;
    let foreign: Vec<&Value> = resources
        .as_array()
        .into_iter()
        .flatten()
        .filter(|url| {
            !url.as_str()
                .is_some_and(|u| u.starts_with(server.base_url()))
        })
        .collect();
    if !foreign.is_empty() {
        return Err(format!(
            "/docs loaded resources from elsewhere: {foreign:?}"
        ));
    }

    // GET /health: expand, "Try it out", "Execute", and read the live response.
    let summary = within(
        "the GET /health operation",
        browser.find(Locator::Css(&format!("{HEALTH_BLOCK} .opblock-summary"))),
    )
    .await?;
    within("expanding GET /health", summary.click()).await?;
    let try_it_out = within(
        "the \"Try it out\" button",
        browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(&format!("{HEALTH_BLOCK} .try-out__btn"))),
    )
    .await?;
    let label = within("the button's label", try_it_out.text()).await?;
    if label.trim() != "Try it out" {
        return Err(format!("expected a \"Try it out\" button, found {label:?}"));
    }
    within("clicking \"Try it out\"", try_it_out.click()).await?;
    let execute = within(
        "the \"Execute\" button",
        browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(&format!("{HEALTH_BLOCK} button.execute"))),
    )
    .await?;
    within("clicking \"Execute\"", execute.click()).await?;
    let response = wait_for_script(
        browser,
        "the live response of GET /health",
        &format!(
            "const table = document.querySelector('{HEALTH_BLOCK} .live-responses-table');\
             if (!table) return null;\
             const status = table.querySelector('.response .response-col_status');\
             const body = table.querySelector('.response .response-col_description pre');\
             return status && body && body.textContent\
                 ? [status.textContent.trim(), body.textContent] : null;"
        ),
        |value| !value.is_null(),
    )
    .await?;
    let (status, body): (String, String) =
        serde_json::from_value(response).map_err(|err| format!("live response: {err}"))?;
    if status != "200" {
        return Err(format!("GET /health rendered status {status:?}, not 200"));
    }
    let body: Value = serde_json::from_str(&body)
        .map_err(|err| format!("GET /health rendered body {body:?} is not JSON: {err}"))?;
    if body["result"] != json!(true) {
        return Err(format!(
            "GET /health rendered body {body}, not {{\"result\": true, ...}}"
        ));
    }

    // The screenshot shows the answer.
    within(
        "scrolling to GET /health",
        browser.execute(
            &format!("document.querySelector('{HEALTH_BLOCK}').scrollIntoView({{block: 'start'}})"),
            Vec::new(),
        ),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn swagger_ui_renders_every_operation_and_try_it_out_on_health_shows_200() {
    let server = TestServer::builder(BINARY).start().await;
    let spec: Value = reqwest::get(server.url("/openapi.json"))
        .await
        .expect("GET /openapi.json")
        .json()
        .await
        .expect("an OpenAPI document");
    let expected = operations(&spec);
    assert!(
        expected.contains(&("GET".to_owned(), "/health".to_owned())),
        "GET /health is in the document: {expected:?}"
    );

    let driver = ChromeDriver::start().await;
    let browser = within(
        "starting headless Chromium",
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(driver.capabilities())
            .connect(&driver.url()),
    )
    .await
    .unwrap_or_else(|err| panic!("{err}\nchromedriver log:\n{}", driver.logs()));

    let outcome = drive(&browser, &server, &expected).await;

    // The screenshot is taken whatever happened, so a failure can be looked at too.
    let path = screenshot_path();
    let saved = match within("taking a screenshot", browser.screenshot()).await {
        Ok(png) => std::fs::create_dir_all(path.parent().expect("a parent directory"))
            .and_then(|()| std::fs::write(&path, png))
            .map_err(|err| format!("writing {}: {err}", path.display())),
        Err(err) => Err(err),
    };
    let _ = within("closing the browser", browser.close()).await;
    drop(driver);

    if let Err(err) = outcome {
        panic!(
            "{err}\n(screenshot: {}; server log:\n{})",
            path.display(),
            server.logs()
        );
    }
    saved.expect("the screenshot is saved");
    eprintln!("screenshot of /docs saved to {}", path.display());
}
