//! `tokens`: the JWKS of the server's signing key and many distinct RS256 tokens signed with it,
//! exactly as the server signs them (its own key loading and signer), on every core, so that the
//! "every token new" loads never present a token twice, and the server and the tower layers can
//! verify the same tokens.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use jwthenticator_core::Claims;
use jwthenticator_server::Config;
use jwthenticator_server::keys::MissingKeyFiles;
use jwthenticator_server::keys::source::LocalKeys;
use uuid::Uuid;

/// Writes the JWKS of the key in `private_key` (a PEM file, as `RSA_PRIVATE_KEY_PATH` takes it)
/// to `jwks_out` and `count` tokens it signed to `tokens_out`.
pub(crate) fn run(
    count: usize,
    private_key: &Path,
    tokens_out: &Path,
    jwks_out: &Path,
    lifetime: i64,
) -> anyhow::Result<()> {
    let config = Config::try_parse_from([
        "jwthenticator-server".as_ref(),
        "--rsa-private-key-path".as_ref(),
        private_key.as_os_str(),
    ])?;
    let keys = LocalKeys::Configured(MissingKeyFiles::Refuse)
        .key_set(&config)
        .with_context(|| format!("loading {}", private_key.display()))?;
    let signer = keys.signer().context("the key file holds no private key")?;
    fs::write(jwks_out, serde_json::to_vec(keys.jwks())?)
        .with_context(|| format!("writing {}", jwks_out.display()))?;

    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())?;
    let identifier = Uuid::new_v4();
    let threads = std::thread::available_parallelism()?.get();
    let per_thread = count.div_ceil(threads);
    let chunks = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                let mine = per_thread.min(count.saturating_sub(thread * per_thread));
                scope.spawn(move || -> anyhow::Result<Vec<String>> {
                    (0..mine)
                        .map(|_| {
                            let claims = Claims {
                                token_id: Uuid::new_v4(),
                                identifier,
                                iat: now,
                                exp: now + lifetime,
                                aud: None,
                                iss: None,
                                nbf: None,
                                extra: serde_json::Map::new(),
                            };
                            Ok(signer.sign(&claims)?)
                        })
                        .collect()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .map_err(|_| anyhow::anyhow!("a signing thread panicked"))?
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let file = fs::File::create(tokens_out)
        .with_context(|| format!("creating {}", tokens_out.display()))?;
    let mut out = BufWriter::new(file);
    for token in chunks.iter().flatten() {
        writeln!(out, "{token}")?;
    }
    out.flush()?;
    Ok(())
}
