//! `soak`: a fixed-rate mixed load on replicas for a number of minutes, with one line per minute
//! of latency, errors and each replica's resident memory and open file descriptors.
//!
//! Every tick (the rate is fixed: a slow answer does not slow the load down) sends one request,
//! in a cycle of `/authenticate`, `/refresh`, `/validate`, `/validate_request` and `/jwks`, to
//! the replicas in turn (3 replicas and 5 kinds: every kind reaches every replica). A set of
//! clients, each with its own key, keeps its latest JWT and refresh token; with rotation on, a
//! refresh hands in the client's refresh token and keeps the successor, so a refresh token is
//! never presented twice. A request counts as an error unless it answers 2xx within the
//! timeout (and, for `/refresh`, with a successor token). A request belongs to the minute it
//! was sent in; a minute's line waits for its last answers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use uuid::Uuid;

/// Prints a line on stdout (line-buffered, so `soak.sh`'s log follows the run minute by minute).
macro_rules! say {
    ($($arg:tt)*) => {
        say(format_args!($($arg)*))
    };
}

fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    // A closed stdout only loses the report; the load itself goes on to its end.
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// What `soak` is told.
#[derive(Debug)]
pub(crate) struct Settings {
    /// Base URLs of the replicas (`http://127.0.0.1:port`).
    pub(crate) urls: Vec<String>,
    /// Process ids of the replicas, in the order of `urls`, for `/proc`.
    pub(crate) pids: Vec<u32>,
    /// Requests per second, all kinds and replicas together.
    pub(crate) rate: u32,
    /// Minutes of load.
    pub(crate) minutes: u32,
    /// Clients (keys) the load is spread over.
    pub(crate) clients: usize,
    /// Deadline of every request.
    pub(crate) timeout: Duration,
}

/// The kinds of request, in the order of the cycle.
const KINDS: [&str; 5] = [
    "authenticate",
    "refresh",
    "validate",
    "validate_request",
    "jwks",
];

/// At most this many error messages go to stderr, so a failing run stays readable.
const ERRORS_SHOWN: u64 = 20;

struct Client {
    key: String,
    identifier: Uuid,
    jwt: Mutex<String>,
    /// The refresh token; held across a `/refresh`, so one client never refreshes twice at once.
    refresh_token: tokio::sync::Mutex<String>,
}

#[derive(Default)]
struct Minute {
    latencies_us: Vec<u64>,
    errors: u64,
    errors_by_kind: BTreeMap<&'static str, u64>,
    in_flight: u64,
}

/// One minute's line.
struct Line {
    requests: usize,
    errors: u64,
    errors_by_kind: BTreeMap<&'static str, u64>,
    p50_ms: f64,
    p99_ms: f64,
    rss_kib: Vec<u64>,
    fds: Vec<usize>,
}

struct Load {
    http: reqwest::Client,
    urls: Vec<String>,
    clients: Vec<Client>,
    minutes: Mutex<Vec<Minute>>,
    errors_shown: AtomicU64,
}

pub(crate) fn run(settings: Settings) -> anyhow::Result<()> {
    if settings.urls.is_empty() || settings.urls.len() != settings.pids.len() {
        bail!("give one --pid per --url");
    }
    if settings.rate == 0 || settings.minutes == 0 || settings.clients == 0 {
        bail!("--rate, --minutes and --clients must be positive");
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(soak(settings))
}

async fn soak(settings: Settings) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .pool_max_idle_per_host(64)
        .build()?;
    let mut clients = Vec::with_capacity(settings.clients);
    for index in 0..settings.clients {
        let url = &settings.urls[index % settings.urls.len()];
        let key = format!("soak-client-key-{index:04}-{}", Uuid::new_v4());
        let identifier = Uuid::new_v4();
        let body = json!({"key": key, "identifier": identifier});
        post(&http, &format!("{url}/register_key"), &body)
            .await
            .context("register_key")?;
        let tokens = post(&http, &format!("{url}/authenticate"), &body)
            .await
            .context("authenticate")?;
        clients.push(Client {
            key,
            identifier,
            jwt: Mutex::new(string(&tokens, "jwt")?),
            refresh_token: tokio::sync::Mutex::new(string(&tokens, "refresh_token")?),
        });
    }
    let load = Arc::new(Load {
        http,
        urls: settings.urls.clone(),
        clients,
        minutes: Mutex::new((0..settings.minutes).map(|_| Minute::default()).collect()),
        errors_shown: AtomicU64::new(0),
    });

    let replicas = settings.urls.len();
    say!(
        "soak: {} req/s for {} min over {replicas} replicas, {} clients",
        settings.rate,
        settings.minutes,
        settings.clients
    );
    let mut header = "| minute | requests | errors | p50 ms | p99 ms |".to_owned();
    let mut rule = "|---:|---:|---:|---:|---:|".to_owned();
    for replica in 1..=replicas {
        header.push_str(&format!(" RSS MiB {replica} |"));
        rule.push_str("---:|");
    }
    for replica in 1..=replicas {
        header.push_str(&format!(" FDs {replica} |"));
        rule.push_str("---:|");
    }
    say!("\n{header}\n{rule}");

    let start = tokio::time::Instant::now();
    let minute = Duration::from_secs(60);
    let end = start + minute * settings.minutes;
    let reporter = {
        let load = load.clone();
        let pids = settings.pids.clone();
        let timeout = settings.timeout;
        tokio::spawn(async move {
            let mut lines = Vec::new();
            for index in 0..settings.minutes as usize {
                tokio::time::sleep_until(start + minute * (index as u32 + 1)).await;
                let rss_kib = pids.iter().map(|pid| rss_kib(*pid)).collect();
                let fds = pids.iter().map(|pid| open_fds(*pid)).collect();
                let waited = Instant::now();
                while load.minutes.lock().expect("minutes")[index].in_flight > 0
                    && waited.elapsed() < timeout + Duration::from_secs(1)
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let line = {
                    let mut minutes = load.minutes.lock().expect("minutes");
                    let stats = &mut minutes[index];
                    stats.latencies_us.sort_unstable();
                    Line {
                        requests: stats.latencies_us.len(),
                        errors: stats.errors + stats.in_flight,
                        errors_by_kind: stats.errors_by_kind.clone(),
                        p50_ms: percentile(&stats.latencies_us, 0.50),
                        p99_ms: percentile(&stats.latencies_us, 0.99),
                        rss_kib,
                        fds,
                    }
                };
                print_line(index + 1, &line);
                lines.push(line);
            }
            lines
        })
    };

    let mut ticker = tokio::time::interval(Duration::from_secs(1) / settings.rate);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let counters: Arc<[AtomicU64; 5]> = Arc::new(Default::default());
    let mut sent: u64 = 0;
    loop {
        let tick = ticker.tick().await;
        if tick >= end {
            break;
        }
        let index = ((tick - start).as_secs() / 60) as usize;
        let kind = (sent % KINDS.len() as u64) as usize;
        let replica = (sent % replicas as u64) as usize;
        sent += 1;
        let client = counters[kind].fetch_add(1, Ordering::Relaxed) as usize % load.clients.len();
        load.minutes.lock().expect("minutes")[index].in_flight += 1;
        let load = load.clone();
        tokio::spawn(async move {
            let began = Instant::now();
            let outcome = load.send(kind, replica, client).await;
            let elapsed = began.elapsed().as_micros() as u64;
            let mut minutes = load.minutes.lock().expect("minutes");
            let stats = &mut minutes[index];
            stats.in_flight -= 1;
            stats.latencies_us.push(elapsed);
            if let Err(err) = outcome {
                stats.errors += 1;
                *stats.errors_by_kind.entry(KINDS[kind]).or_default() += 1;
                if load.errors_shown.fetch_add(1, Ordering::Relaxed) < ERRORS_SHOWN {
                    eprintln!(
                        "minute {}: {} on replica {}: {err:#}",
                        index + 1,
                        KINDS[kind],
                        replica + 1
                    );
                }
            }
        });
    }
    let lines = reporter.await?;
    verdict(&lines);
    Ok(())
}

impl Load {
    async fn send(&self, kind: usize, replica: usize, client: usize) -> anyhow::Result<()> {
        let url = &self.urls[replica];
        let client = &self.clients[client];
        match KINDS[kind] {
            "authenticate" => {
                let body = json!({"key": client.key, "identifier": client.identifier});
                let tokens = post(&self.http, &format!("{url}/authenticate"), &body).await?;
                *client.jwt.lock().expect("jwt") = string(&tokens, "jwt")?;
            }
            "refresh" => {
                let mut refresh_token = client.refresh_token.lock().await;
                let body =
                    json!({"refresh_token": *refresh_token, "identifier": client.identifier});
                let tokens = post(&self.http, &format!("{url}/refresh"), &body).await?;
                *refresh_token = string(&tokens, "refresh_token")
                    .context("no successor: is ROTATE_REFRESH_TOKENS on?")?;
                *client.jwt.lock().expect("jwt") = string(&tokens, "jwt")?;
            }
            "validate" => {
                let jwt = client.jwt.lock().expect("jwt").clone();
                post(&self.http, &format!("{url}/validate"), &json!({"jwt": jwt})).await?;
            }
            "validate_request" => {
                let jwt = client.jwt.lock().expect("jwt").clone();
                let request = self
                    .http
                    .get(format!("{url}/validate_request"))
                    .bearer_auth(jwt);
                answer(request).await?;
            }
            _ => {
                answer(self.http.get(format!("{url}/jwks"))).await?;
            }
        }
        Ok(())
    }
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<Value> {
    answer(http.post(url).json(body)).await
}

/// The JSON body of a 2xx answer (201 from `/register_key`, 200 from the others); anything
/// else is an error.
async fn answer(request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let response = request.send().await?;
    let status = response.status();
    let body = response.bytes().await?;
    if !status.is_success() {
        bail!(
            "{status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        );
    }
    if body.is_empty() {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn string(value: &Value, member: &str) -> anyhow::Result<String> {
    value
        .get(member)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no {member} in the answer"))
}

fn percentile(sorted_us: &[u64], quantile: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((sorted_us.len() as f64 * quantile).ceil() as usize).clamp(1, sorted_us.len());
    sorted_us[rank - 1] as f64 / 1000.0
}

/// `VmRSS` of a process, KiB (0 when it is gone).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Open file descriptors of a process (0 when it is gone).
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

fn print_line(minute: usize, line: &Line) {
    let mut row = format!(
        "| {minute} | {} | {} | {:.2} | {:.2} |",
        line.requests, line.errors, line.p50_ms, line.p99_ms
    );
    for rss in &line.rss_kib {
        row.push_str(&format!(" {:.1} |", *rss as f64 / 1024.0));
    }
    for fds in &line.fds {
        row.push_str(&format!(" {fds} |"));
    }
    if !line.errors_by_kind.is_empty() {
        row.push_str(&format!(" {:?}", line.errors_by_kind));
    }
    say!("{row}");
}

/// The targets of issue 17, item 5, judged on the minutes' lines.
fn verdict(lines: &[Line]) {
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    say!("");
    let first = &lines[0];
    let later = &lines[1..];
    if later.is_empty() {
        say!("(one minute only: no growth to judge)");
    }
    let replicas = if later.is_empty() {
        0
    } else {
        first.rss_kib.len()
    };
    for replica in 0..replicas {
        let base = first.rss_kib[replica] as f64;
        let top = later.iter().map(|l| l.rss_kib[replica]).max().unwrap_or(0) as f64;
        let growth = if base > 0.0 {
            top / base - 1.0
        } else {
            f64::INFINITY
        };
        say!(
            "- replica {}: RSS after minute 1 {:.1} MiB, largest later {:.1} MiB: {:+.1} % (target <= +10 %): {}",
            replica + 1,
            base / 1024.0,
            top / 1024.0,
            growth * 100.0,
            met(growth <= 0.10)
        );
        let fds_base = first.fds[replica];
        let fds_min = later
            .iter()
            .map(|l| l.fds[replica])
            .min()
            .unwrap_or(fds_base);
        let fds_max = later
            .iter()
            .map(|l| l.fds[replica])
            .max()
            .unwrap_or(fds_base);
        let fds_last = lines.last().map_or(fds_base, |l| l.fds[replica]);
        say!(
            "- replica {}: FDs after minute 1 {fds_base}, later {fds_min} to {fds_max}, at the end {fds_last} (target: flat, the end <= after minute 1): {}",
            replica + 1,
            met(fds_last <= fds_base)
        );
    }
    let errors: u64 = lines.iter().map(|l| l.errors).sum();
    let requests: usize = lines.iter().map(|l| l.requests).sum();
    say!(
        "- errors: {errors} of {requests} requests (target 0): {}",
        met(errors == 0)
    );
    if let (Some(second), Some(last)) = (lines.get(1), lines.last()) {
        let ratio = last.p99_ms / second.p99_ms;
        say!(
            "- p99 of the last minute {:.2} ms / of the second {:.2} ms = {ratio:.2} (target <= 1.5): {}",
            last.p99_ms,
            second.p99_ms,
            met(ratio <= 1.5)
        );
    }
}
