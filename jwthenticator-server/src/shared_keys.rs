//! Signing keys shared by every replica through PostgreSQL, and their scheduled rotation.
//!
//! When no key is configured and `KEY_ENCRYPTION_SECRET` is set, the keys live in the
//! `signing_keys` table, sealed with AES-256-GCM under a key derived from that secret. Every
//! replica runs the same maintenance every `KEY_REFRESH_INTERVAL`, serialised by a
//! transaction-scoped advisory lock, so the replicas agree with no coordinator but the
//! database: the first one creates the first key; a key for the next period is created
//! `KEY_ROTATION_PREPUBLISH` before it starts signing (so caches of the JWKS learn it first);
//! a key stays published for the longest token lifetime after it stops signing, then goes. A
//! replica that was down catches up at its next maintenance.

use std::fmt;
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow, bail};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use chrono::{DateTime, NaiveDateTime, Utc};
use clap::Args;
use jwthenticator_core::Algorithm;
use rsa::pkcs8::der::zeroize::Zeroizing;
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::config::{Config, Secret};
use crate::keys::{KeySet, PrivateKey};
use crate::state::ActiveKeys;

/// Settings of the keys shared through the database.
#[derive(Debug, Clone, Args)]
pub struct SharedKeyConfig {
    /// Secret that seals the signing keys stored in PostgreSQL. Set it (the same on every
    /// replica) and configure no key to have the replicas share generated, rotated keys.
    #[arg(long, env = "KEY_ENCRYPTION_SECRET", hide_env_values = true)]
    pub key_encryption_secret: Option<Secret>,

    /// Seconds a shared key signs before the next one takes over (0: never rotate).
    #[arg(long, env = "KEY_ROTATION_PERIOD", default_value_t = 30 * 86_400)]
    pub key_rotation_period: u64,

    /// Seconds before it signs that the next key is published in `/jwks`.
    #[arg(long, env = "KEY_ROTATION_PREPUBLISH", default_value_t = 3600)]
    pub key_rotation_prepublish: u64,

    /// Seconds between two reads of the shared keys by a replica.
    #[arg(long, env = "KEY_REFRESH_INTERVAL", default_value_t = 30)]
    pub key_refresh_interval: u64,
}

/// Keys of different replicas are serialised on this advisory lock id ("JWTK").
const LOCK_ID: i64 = 0x4a57_544b;

/// The far future, for a key that never stops signing.
const NEVER: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

/// The shared keys of one replica: its connection and the sealing key.
pub struct SharedKeys {
    pool: PgPool,
    sealing_key: LessSafeKey,
    algorithm: Algorithm,
    rsa_bits: u32,
    period: i64,
    prepublish: i64,
    /// How long a key stays published after it stops signing: the longest token lifetime,
    /// the leeway, and one refresh interval (a replica may sign with the old key that long).
    retention: i64,
    refresh_interval: Duration,
}

impl fmt::Debug for SharedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedKeys")
            .field("algorithm", &self.algorithm)
            .field("period", &self.period)
            .field("prepublish", &self.prepublish)
            .finish_non_exhaustive()
    }
}

struct Row {
    kid: String,
    algorithm: String,
    sealed: Vec<u8>,
    created_at: NaiveDateTime,
    activates_at: NaiveDateTime,
    retires_at: NaiveDateTime,
}

fn seconds(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX / 4)
}

fn naive(unix: i64) -> NaiveDateTime {
    DateTime::from_timestamp(unix, 0)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
        .naive_utc()
}

impl SharedKeys {
    /// Connects to the (already migrated) database with a small pool of its own.
    pub async fn connect(url: &str, secret: &Secret, config: &Config) -> anyhow::Result<Self> {
        if secret.expose().len() < 16 {
            bail!("KEY_ENCRYPTION_SECRET must be at least 16 characters");
        }
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .context("connecting for the shared signing keys")?;
        let prk = Salt::new(HKDF_SHA256, b"jwthenticator signing keys")
            .extract(secret.expose().as_bytes());
        let okm = prk
            .expand(&[b"aes-256-gcm v1"], &AES_256_GCM)
            .map_err(|_| anyhow!("deriving the key sealing key failed"))?;
        let shared = &config.shared_keys;
        Ok(Self {
            pool,
            sealing_key: LessSafeKey::new(UnboundKey::from(okm)),
            algorithm: config.jwt_algorithm,
            rsa_bits: config.rsa_key_size,
            period: seconds(shared.key_rotation_period),
            prepublish: seconds(shared.key_rotation_prepublish),
            retention: seconds(config.jwt_lease_time)
                .saturating_add(seconds(config.jwt_leeway))
                .saturating_add(seconds(shared.key_refresh_interval)),
            refresh_interval: Duration::from_secs(shared.key_refresh_interval.max(1)),
        })
    }

    /// How often each replica runs [`SharedKeys::refresh`].
    pub fn refresh_interval(&self) -> Duration {
        self.refresh_interval
    }

    fn seal(&self, kid: &str, plaintext: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| anyhow!("random generator failed"))?;
        let mut sealed = plaintext.to_vec();
        self.sealing_key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| anyhow!("sealing the signing key failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(&self, kid: &str, sealed: &[u8]) -> anyhow::Result<PrivateKey> {
        let (nonce, ciphertext) = sealed
            .split_at_checked(NONCE_LEN)
            .ok_or_else(|| anyhow!("the stored signing key {kid} is truncated"))?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| anyhow!("bad nonce"))?;
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        let plaintext = self
            .sealing_key
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut buffer)
            .map_err(|_| {
                anyhow!(
                    "KEY_ENCRYPTION_SECRET does not open the stored signing key {kid}: every replica \
                     needs the secret the keys were sealed with"
                )
            })?;
        let pem = std::str::from_utf8(plaintext).context("the stored signing key is not PEM")?;
        Ok(PrivateKey::from_pem(pem)?)
    }

    async fn insert_key(
        &self,
        tx: &mut sqlx::PgConnection,
        now: i64,
        activates_at: i64,
        retires_at: i64,
    ) -> anyhow::Result<()> {
        let key = PrivateKey::generate(self.algorithm, self.rsa_bits)?;
        let kid = key.public_key().kid();
        let sealed = self.seal(&kid, key.to_pem()?.as_bytes())?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, private_key, created_at, activates_at, retires_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&kid)
        .bind(format!("{:?}", self.algorithm))
        .bind(sealed)
        .bind(naive(now))
        .bind(naive(activates_at))
        .bind(naive(retires_at))
        .bind(naive(retires_at.saturating_add(self.retention)))
        .execute(&mut *tx)
        .await?;
        tracing::info!(kid, activates_at = %naive(activates_at), retires_at = %naive(retires_at), "created a shared signing key");
        Ok(())
    }

    /// Brings the table up to date (first key, next key before it is needed, expired keys gone)
    /// under the advisory lock, and returns the keys to use now.
    pub async fn refresh(&self, config: &Config) -> anyhow::Result<ActiveKeys> {
        let now = Utc::now().timestamp();
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LOCK_ID)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM signing_keys WHERE expires_at <= $1")
            .bind(naive(now))
            .execute(&mut *tx)
            .await?;
        let rows = self.rows(&mut tx).await?;
        let active_now = rows
            .iter()
            .any(|r| r.activates_at <= naive(now) && naive(now) < r.retires_at);
        let mut latest = rows
            .iter()
            .map(|r| r.retires_at.and_utc().timestamp())
            .max();
        if !active_now {
            // First start, or every replica was down past the last key: a key signs from now.
            let retires_at = if self.period > 0 {
                now.saturating_add(self.period)
            } else {
                NEVER
            };
            self.insert_key(&mut tx, now, now, retires_at).await?;
            latest = Some(latest.unwrap_or(now).max(retires_at));
        }
        if self.period > 0 {
            // Keys for every period that starts within the prepublication window.
            while let Some(last) =
                latest.filter(|last| *last <= now.saturating_add(self.prepublish))
            {
                let next = last.max(now);
                self.insert_key(&mut tx, now, next, next.saturating_add(self.period))
                    .await?;
                latest = Some(next.saturating_add(self.period));
            }
        }
        let rows = self.rows(&mut tx).await?;
        tx.commit().await?;
        self.active_keys(config, &rows, now)
    }

    async fn rows(&self, tx: &mut sqlx::PgConnection) -> anyhow::Result<Vec<Row>> {
        let rows: Vec<(
            String,
            String,
            Vec<u8>,
            NaiveDateTime,
            NaiveDateTime,
            NaiveDateTime,
        )> = sqlx::query_as(
            "SELECT kid, algorithm, private_key, created_at, activates_at, retires_at
                 FROM signing_keys ORDER BY activates_at",
        )
        .fetch_all(&mut *tx)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(kid, algorithm, sealed, created_at, activates_at, retires_at)| Row {
                    kid,
                    algorithm,
                    sealed,
                    created_at,
                    activates_at,
                    retires_at,
                },
            )
            .collect())
    }

    /// The key signing now (the latest activated one) and every other stored key published.
    fn active_keys(&self, config: &Config, rows: &[Row], now: i64) -> anyhow::Result<ActiveKeys> {
        let now = naive(now);
        let signing = rows
            .iter()
            .filter(|r| r.activates_at <= now && now < r.retires_at)
            .max_by_key(|r| r.activates_at)
            .ok_or_else(|| anyhow!("no shared signing key is active"))?;
        let private = self.open(&signing.kid, &signing.sealed)?;
        let published = rows
            .iter()
            .filter(|r| r.kid != signing.kid)
            .map(|r| Ok(self.open(&r.kid, &r.sealed)?.public_key().clone()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let algorithm: Algorithm = signing.algorithm.parse().map_err(|_| {
            anyhow!(
                "the stored signing key {} has an unknown algorithm",
                signing.kid
            )
        })?;
        let set = KeySet::with_signer(algorithm, &private, &published)?;
        let created = SystemTime::UNIX_EPOCH
            + Duration::from_secs(
                u64::try_from(signing.created_at.and_utc().timestamp()).unwrap_or(0),
            );
        Ok(ActiveKeys::new(config, set, created))
    }
}

/// Keeps a replica's keys current: refreshes every interval; on a database error keeps the keys
/// it has (they stay valid until they retire) and tries again.
pub async fn keep_current(
    shared: SharedKeys,
    config: Config,
    state: std::sync::Arc<crate::AppState>,
) {
    let mut ticks = tokio::time::interval(shared.refresh_interval());
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match shared.refresh(&config).await {
            Ok(keys) => {
                let changed = keys.signer().map(|s| s.kid().to_owned())
                    != state.keys().signer().map(|s| s.kid().to_owned())
                    || keys.jwks() != state.keys().jwks();
                if changed {
                    tracing::info!(
                        signing_kid = keys.signer().map(|s| s.kid()),
                        published = keys.jwks().keys.len(),
                        "shared signing keys changed"
                    );
                }
                state.set_keys(keys);
            }
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "refreshing the shared signing keys failed; keeping the current ones")
            }
        }
    }
}
