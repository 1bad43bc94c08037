//! `tokens`: a JWKS and many distinct RS256 tokens of the JWThenticator shape, signed on every
//! core, so that the "every token new" runs never present a token twice.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwthenticator_core::{Claims, Jwks};
use uuid::Uuid;

use crate::crypto::RsaKey;

/// The `kid` of the benchmark key.
const KID: &str = "jwthenticator-bench";

/// Writes the JWKS of a new key to `jwks_out` and `count` tokens it signed to `tokens_out`.
pub(crate) fn run(
    count: usize,
    tokens_out: &Path,
    jwks_out: &Path,
    lifetime: i64,
) -> anyhow::Result<()> {
    let key = RsaKey::generate()?;
    let jwks = Jwks {
        keys: vec![key.jwk(KID)],
    };
    fs::write(jwks_out, serde_json::to_vec(&jwks)?)
        .with_context(|| format!("writing {}", jwks_out.display()))?;

    let header = serde_json::json!({"alg": "RS256", "kid": KID, "typ": "JWT"});
    let header = URL_SAFE_NO_PAD.encode(header.to_string());
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())?;
    let identifier = Uuid::new_v4();
    let threads = std::thread::available_parallelism()?.get();
    let per_thread = count.div_ceil(threads);
    let chunks = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                let (key, header) = (&key, &header);
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
                            let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?);
                            let input = format!("{header}.{payload}");
                            let signature = key.sign_b64(input.as_bytes())?;
                            Ok(format!("{input}.{signature}"))
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
