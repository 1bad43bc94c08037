//! `report`: the results of one run as Markdown tables, every figure next to its baseline from
//! the same run and the target of issue 8.
//!
//! The results file has one tab-separated record per line, written by `run.sh`:
//!
//! ```text
//! info    <name> <value>
//! crypto  <start|end|sqlite|postgres|layers> <threads|sign|verify|sign_reparsing> <ops/s>
//! server  <backend> <endpoint> <round> <req/s> <p50 µs> <p99 µs> <errors> <requests> <peak RSS KiB>
//! layer   <none|jwthenticator|oauth2> <repeated|new> <round> <req/s> <p50 µs> <p99 µs> <errors> <requests> <reused tokens>
//! client  <plain_us|bare_us|middleware_us|overhead_pct|bare_pct|own_pct|own_cpu_us|own_cpu_pct> <value>
//! ```
//!
//! A load is measured in several slices (one per round), interleaved with the loads it is
//! compared with. Its figures are the sums of its slices (requests, errors, time; so the rate is
//! total requests over total time), the median of the slices' percentiles, and the largest
//! peak RSS. The raw sign and verify rates of a group (a backend, the layers) are the means of
//! those measured in its own rounds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context;

/// One wrk slice, or the sum of several.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Load {
    rate: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
    requests: u64,
    /// Peak RSS (KiB) for the server, tokens presented more than once for the layers.
    extra: u64,
}

fn slice(fields: &[&str]) -> anyhow::Result<Load> {
    let [rate, p50, p99, errors, requests, extra] = fields else {
        anyhow::bail!("expected 6 measurement fields, found {}", fields.len());
    };
    Ok(Load {
        rate: rate.parse()?,
        p50_us: p50.parse()?,
        p99_us: p99.parse()?,
        errors: errors.parse()?,
        requests: requests.parse()?,
        extra: extra.parse()?,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// How the `extra` field of slices adds up.
#[derive(Debug, Clone, Copy)]
enum Extra {
    Max,
    Sum,
}

fn combine(slices: &[Load], extra: Extra) -> Option<Load> {
    if slices.is_empty() {
        return None;
    }
    let requests: u64 = slices.iter().map(|s| s.requests).sum();
    let seconds: f64 = slices
        .iter()
        .filter(|s| s.rate > 0.0)
        .map(|s| s.requests as f64 / s.rate)
        .sum();
    Some(Load {
        rate: if seconds > 0.0 {
            requests as f64 / seconds
        } else {
            0.0
        },
        p50_us: median(slices.iter().map(|s| s.p50_us).collect()),
        p99_us: median(slices.iter().map(|s| s.p99_us).collect()),
        errors: slices.iter().map(|s| s.errors).sum(),
        requests,
        extra: match extra {
            Extra::Max => slices.iter().map(|s| s.extra).max().unwrap_or(0),
            Extra::Sum => slices.iter().map(|s| s.extra).sum(),
        },
    })
}

type Key = (String, String);

#[derive(Debug, Default)]
struct Results {
    info: Vec<(String, String)>,
    crypto: BTreeMap<Key, Vec<f64>>,
    server: BTreeMap<Key, Vec<Load>>,
    layers: BTreeMap<Key, Vec<Load>>,
    client: BTreeMap<String, f64>,
}

fn key(a: &str, b: &str) -> Key {
    (a.to_owned(), b.to_owned())
}

fn parse(text: &str) -> anyhow::Result<Results> {
    let mut results = Results::default();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let context = || format!("results line {}: {line:?}", number + 1);
        match fields.as_slice() {
            ["info", name, value] => results.info.push(key(name, value)),
            ["crypto", when, name, value] => {
                let value = value.parse().with_context(context)?;
                results
                    .crypto
                    .entry(key(when, name))
                    .or_default()
                    .push(value);
            }
            ["server", backend, endpoint, _round, rest @ ..] => {
                let load = slice(rest).with_context(context)?;
                results
                    .server
                    .entry(key(backend, endpoint))
                    .or_default()
                    .push(load);
            }
            ["layer", layer, tokens, _round, rest @ ..] => {
                let load = slice(rest).with_context(context)?;
                results
                    .layers
                    .entry(key(layer, tokens))
                    .or_default()
                    .push(load);
            }
            ["client", name, value] => {
                let value = value.parse().with_context(context)?;
                results.client.insert((*name).to_owned(), value);
            }
            _ => anyhow::bail!("unknown record at {}", context()),
        }
    }
    Ok(results)
}

impl Results {
    /// The mean of a crypto rate's measurements in `context`.
    fn crypto(&self, context: &str, name: &str) -> Option<f64> {
        let values = self.crypto.get(&key(context, name))?;
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    }

    /// The raw sign rate of a backend's rounds, or of the start and end of the run.
    fn sign_rate(&self, backend: &str) -> Option<f64> {
        self.crypto(backend, "sign").or_else(|| {
            let ends: Vec<f64> = ["start", "end"]
                .iter()
                .filter_map(|when| self.crypto(when, "sign"))
                .collect();
            (!ends.is_empty()).then(|| ends.iter().sum::<f64>() / ends.len() as f64)
        })
    }

    /// The raw verify rate of a group's rounds, or of the start and end of the run.
    fn verify_rate(&self, group: &str) -> Option<f64> {
        self.crypto(group, "verify").or_else(|| {
            let ends: Vec<f64> = ["start", "end"]
                .iter()
                .filter_map(|when| self.crypto(when, "verify"))
                .collect();
            (!ends.is_empty()).then(|| ends.iter().sum::<f64>() / ends.len() as f64)
        })
    }

    /// The best ratio a load that does one RS256 verification more than its baseline (of rate
    /// `baseline`) can reach: both use the same cores, so their per-request CPU times add up.
    fn verify_ceiling(&self, group: &str, baseline: Option<f64>) -> Option<f64> {
        let verify = self.verify_rate(group)?;
        Some(verify / (baseline? + verify))
    }

    fn server(&self, backend: &str, endpoint: &str) -> Option<Load> {
        combine(self.server.get(&key(backend, endpoint))?, Extra::Max)
    }

    fn layer(&self, layer: &str, tokens: &str) -> Option<Load> {
        combine(self.layers.get(&key(layer, tokens))?, Extra::Sum)
    }
}

/// A target: at least (or at most) a bound.
#[derive(Debug, Clone, Copy)]
enum Target {
    AtLeast(f64),
    AtMost(f64),
    /// Reported, no target.
    None,
}

impl Target {
    fn describe(self) -> String {
        match self {
            Self::AtLeast(bound) => format!(">= {bound:.2}"),
            Self::AtMost(bound) => format!("<= {bound:.2}"),
            Self::None => "report".to_owned(),
        }
    }

    fn verdict(self, ratio: Option<f64>) -> &'static str {
        match (self, ratio) {
            (Self::None, _) => "",
            (_, None) => "not measured",
            (Self::AtLeast(bound), Some(r)) if r >= bound => "met",
            (Self::AtMost(bound), Some(r)) if r <= bound => "met",
            _ => "**missed**",
        }
    }
}

fn rss_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ratio_text(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"))
}

fn rate_text(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_owned(), |r| format!("{r:.0}"))
}

/// What a server endpoint is divided by.
#[derive(Clone, Copy)]
enum Baseline {
    /// The raw sign rate of the same rounds (one signature is the endpoint's floor).
    Sign,
    /// `/health` of the same server, the same kind of load.
    Health,
    /// `/health` driven like the `_new` loads: every request from wrk's token file (Lua).
    HealthNew,
}

/// The endpoints of a backend: name, baseline and target ratio. The `_new` loads present a
/// token the server has not seen before on every request, so its cache of verified tokens
/// never answers; the others present one token again and again, as a client does during its
/// token's lifetime.
fn server_rows(backend: &str) -> [(&'static str, Baseline, Target); 8] {
    let on_postgres = |bound: f64| {
        if backend == "postgres" {
            Target::AtLeast(bound)
        } else {
            Target::None
        }
    };
    let authenticate = if backend == "postgres" { 0.45 } else { 0.30 };
    [
        ("health", Baseline::Health, Target::None),
        (
            "authenticate",
            Baseline::Sign,
            Target::AtLeast(authenticate),
        ),
        ("refresh", Baseline::Sign, on_postgres(0.50)),
        ("validate", Baseline::Health, on_postgres(0.60)),
        ("validate_request", Baseline::Health, on_postgres(0.60)),
        ("jwks", Baseline::Health, on_postgres(0.90)),
        ("health_new", Baseline::HealthNew, Target::None),
        ("validate_request_new", Baseline::HealthNew, Target::None),
    ]
}

const BACKENDS: [&str; 2] = ["sqlite", "postgres"];

fn render(results: &Results) -> anyhow::Result<String> {
    let mut out = String::new();
    for (name, value) in &results.info {
        writeln!(out, "- {name}: {value}")?;
    }

    writeln!(out, "\n### Baselines\n")?;
    writeln!(out, "| baseline | start of run | end of run |")?;
    writeln!(out, "|---|---:|---:|")?;
    for (name, label) in [
        ("sign", "raw RS256 sign, aws-lc-rs, key parsed once (ops/s)"),
        (
            "verify",
            "raw RS256 verify, aws-lc-rs, key parsed once (ops/s)",
        ),
        (
            "sign_reparsing",
            "`jsonwebtoken::crypto::sign`, key parsed per call (ops/s)",
        ),
    ] {
        writeln!(
            out,
            "| {label} | {} | {} |",
            rate_text(results.crypto("start", name)),
            rate_text(results.crypto("end", name)),
        )?;
    }
    writeln!(
        out,
        "\n| rounds of | raw sign (ops/s) | raw verify (ops/s) | `/health` (req/s) |"
    )?;
    writeln!(out, "|---|---:|---:|---:|")?;
    for group in ["sqlite", "postgres", "layers"] {
        if results.crypto(group, "sign").is_some() {
            writeln!(
                out,
                "| {group} | {} | {} | {} |",
                rate_text(results.crypto(group, "sign")),
                rate_text(results.crypto(group, "verify")),
                rate_text(results.server(group, "health").map(|l| l.rate)),
            )?;
        }
    }

    writeln!(out, "\n### Server endpoints\n")?;
    writeln!(
        out,
        "| backend | endpoint | req/s | p50 ms | p99 ms | requests | errors | peak RSS MiB | ratio | of | target | | ceiling |"
    )?;
    writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|---:|"
    )?;
    let mut rss = Vec::new();
    for backend in BACKENDS {
        let health = results.server(backend, "health").map(|l| l.rate);
        let health_new = results.server(backend, "health_new").map(|l| l.rate);
        for (endpoint, baseline, target) in server_rows(backend) {
            let Some(load) = results.server(backend, endpoint) else {
                continue;
            };
            let (base, of) = match baseline {
                Baseline::Sign => (results.sign_rate(backend), "raw sign"),
                Baseline::Health => (health, "/health"),
                Baseline::HealthNew => (health_new, "health_new"),
            };
            let ratio = base.map(|b| load.rate / b);
            // Only a load that verifies every request has the one-verification ceiling.
            let ceiling = match endpoint {
                "validate_request_new" => results.verify_ceiling(backend, base),
                _ => None,
            };
            writeln!(
                out,
                "| {backend} | {endpoint} | {:.0} | {:.2} | {:.2} | {} | {} | {:.1} | {} | {of} | {} | {} | {} |",
                load.rate,
                load.p50_us / 1000.0,
                load.p99_us / 1000.0,
                load.requests,
                load.errors,
                rss_mib(load.extra),
                ratio_text(ratio),
                target.describe(),
                target.verdict(ratio),
                ratio_text(ceiling),
            )?;
            if endpoint == "authenticate" {
                rss.push((backend, load.extra));
            }
        }
    }
    writeln!(out)?;
    for (backend, kib) in rss {
        let mib = rss_mib(kib);
        writeln!(
            out,
            "Peak RSS under the authenticate load on {backend}: {mib:.1} MiB (target <= 64 MiB: {}).  ",
            Target::AtMost(64.0).verdict(Some(mib))
        )?;
    }

    if !results.layers.is_empty() {
        writeln!(
            out,
            "\n### Tower layers over HTTP (same axum handler, same tokens)\n"
        )?;
        writeln!(
            out,
            "| layer | tokens | req/s | p50 ms | p99 ms | requests | errors | tokens reused | x unprotected | target | | ceiling | x other layer | target | |"
        )?;
        writeln!(
            out,
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---|---|"
        )?;
        for (layer, tokens) in [
            ("none", "repeated"),
            ("none", "new"),
            ("jwthenticator", "repeated"),
            ("jwthenticator", "new"),
            ("oauth2", "repeated"),
            ("oauth2", "new"),
        ] {
            let Some(load) = results.layer(layer, tokens) else {
                continue;
            };
            // The unprotected handler under the same kind of load (wrk's per-request script
            // for the "new" tokens costs CPU of its own).
            let unprotected = results.layer("none", tokens).map(|l| l.rate);
            let ratio = unprotected.map(|u| load.rate / u);
            let (target, versus_target) = match (layer, tokens) {
                ("jwthenticator", "repeated") => (Target::AtLeast(0.90), Target::None),
                ("jwthenticator", "new") => (Target::AtLeast(0.50), Target::AtLeast(1.2)),
                _ => (Target::None, Target::None),
            };
            let ceiling = (layer != "none" && tokens == "new")
                .then(|| results.verify_ceiling("layers", unprotected))
                .flatten();
            let versus_ratio = (layer == "jwthenticator")
                .then(|| results.layer("oauth2", tokens))
                .flatten()
                .map(|other| load.rate / other.rate);
            writeln!(
                out,
                "| {layer} | {tokens} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                load.rate,
                load.p50_us / 1000.0,
                load.p99_us / 1000.0,
                load.requests,
                load.errors,
                load.extra,
                ratio_text(ratio),
                target.describe(),
                target.verdict(ratio),
                ratio_text(ceiling),
                ratio_text(versus_ratio),
                versus_target.describe(),
                versus_target.verdict(versus_ratio),
            )?;
        }
    }

    let client = |name: &str| results.client.get(name).copied();
    if let (Some(plain), Some(middleware), Some(overhead)) = (
        client("plain_us"),
        client("middleware_us"),
        client("overhead_pct"),
    ) {
        let text = |value: Option<f64>, unit: &str| {
            value.map_or_else(|| "-".to_owned(), |v| format!("{v:+.2} {unit}"))
        };
        writeln!(
            out,
            "\n### reqwest middleware with a fresh token, loopback\n"
        )?;
        writeln!(
            out,
            "| plain client µs/request | reqwest-middleware client without middleware | with `JwtAuthMiddleware` | overhead over the plain client | target | | of which reqwest-middleware's client | of which `JwtAuthMiddleware` |"
        )?;
        writeln!(out, "|---:|---:|---:|---:|---|---|---:|---:|")?;
        writeln!(
            out,
            "| {plain:.1} | {} | {middleware:.1} | {overhead:+.2} % | <= 2 % | {} | {} | {} |",
            client("bare_us").map_or_else(|| "-".to_owned(), |v| format!("{v:.1}")),
            Target::AtMost(2.0).verdict(Some(overhead)),
            text(client("bare_pct"), "%"),
            text(client("own_pct"), "%"),
        )?;
        if let (Some(cpu_us), Some(cpu_pct)) = (client("own_cpu_us"), client("own_cpu_pct")) {
            writeln!(
                out,
                "\nWithout a network (a stub ends both middleware chains), `JwtAuthMiddleware` adds \
                 {cpu_us:.2} µs of CPU to a request: {cpu_pct:.2} % of a plain loopback request \
                 (target <= 2 %: {}).",
                Target::AtMost(2.0).verdict(Some(cpu_pct))
            )?;
        }
    }
    Ok(out)
}

/// Prints the tables of the results file at `path`.
pub(crate) fn run(path: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let table = render(&parse(&text)?)?;
    std::io::stdout().lock().write_all(table.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "info\tnproc\t2\n\
        crypto\tstart\tsign\t9000\ncrypto\tstart\tverify\t60000\ncrypto\tend\tverify\t40000\n\
        crypto\tpostgres\tsign\t4000\ncrypto\tpostgres\tsign\t6000\n\
        server\tpostgres\thealth\t1\t30000\t1000\t3000\t0\t60000\t20000\n\
        server\tpostgres\thealth\t2\t10000\t1000\t5000\t0\t20000\t20000\n\
        server\tpostgres\tauthenticate\t1\t2000\t30000\t60000\t0\t4000\t40960\n\
        server\tpostgres\tjwks\t1\t19000\t1000\t3000\t0\t38000\t20000\n\
        server\tpostgres\tvalidate\t1\t12000\t1000\t3000\t0\t24000\t20000\n\
        server\tpostgres\thealth_new\t1\t20000\t1000\t3000\t0\t40000\t20000\n\
        server\tpostgres\tvalidate_request_new\t1\t10000\t1000\t3000\t0\t20000\t20000\n\
        layer\tnone\trepeated\t1\t30000\t1000\t2000\t0\t60000\t0\n\
        layer\tnone\tnew\t1\t20000\t1000\t2000\t0\t40000\t0\n\
        layer\tjwthenticator\tnew\t1\t12000\t1000\t2000\t0\t24000\t0\n\
        layer\toauth2\tnew\t1\t8000\t1000\t2000\t0\t16000\t0\n\
        client\tplain_us\t50\nclient\tmiddleware_us\t50.5\nclient\toverhead_pct\t1.0\n";

    #[test]
    fn slices_add_up_to_total_requests_over_total_time() {
        let results = parse(SAMPLE).expect("parses");
        let health = results.server("postgres", "health").expect("health");
        // 80,000 requests in 2 s + 2 s.
        assert_eq!(health.rate, 20_000.0);
        assert_eq!(health.requests, 80_000);
        assert_eq!(health.p99_us, 4_000.0);
    }

    #[test]
    fn ratios_use_the_baselines_of_the_same_rounds_and_judge_the_targets() {
        let table = render(&parse(SAMPLE).expect("parses")).expect("renders");
        // authenticate: 2000 / mean(4000, 6000) = 0.40 < 0.45 (the start-of-run 9000 is not used).
        assert!(
            table.contains("| 0.40 | raw sign | >= 0.45 | **missed** |"),
            "{table}"
        );
        // jwks: 19000 / 20000 = 0.95 >= 0.90.
        assert!(
            table.contains("| 0.95 | /health | >= 0.90 | met |"),
            "{table}"
        );
        assert!(
            table.contains("40.0 MiB (target <= 64 MiB: met)"),
            "{table}"
        );
        // every token new: 0.60 of unprotected with tokens, 1.50 of the other layer; the
        // ceiling is 50000 / (20000 + 50000) = 0.71.
        assert!(
            table.contains("| 0.60 | >= 0.50 | met | 0.71 | 1.50 | >= 1.20 | met |"),
            "{table}"
        );
        assert!(table.contains("| +1.00 % | <= 2 % | met |"), "{table}");
    }

    #[test]
    fn the_ceiling_adds_one_raw_verification_to_the_baseline_of_the_new_token_loads() {
        let table = render(&parse(SAMPLE).expect("parses")).expect("renders");
        // validate, a repeated token the server answers from its cache: 12000 / 20000 = 0.60,
        // no ceiling.
        assert!(
            table.contains("| 0.60 | /health | >= 0.60 | met | - |"),
            "{table}"
        );
        // validate_request_new: 10000 / 20000 (health_new) = 0.50; ceiling
        // 50000 / (20000 + 50000) = 0.71.
        assert!(
            table.contains("| 0.50 | health_new | report |  | 0.71 |"),
            "{table}"
        );
    }

    #[test]
    fn an_unknown_record_is_an_error_naming_its_line() {
        let error = parse("info\tx\t1\nbogus\t1\n").expect_err("refused");
        assert!(format!("{error:#}").contains("line 2"), "{error:#}");
    }
}
