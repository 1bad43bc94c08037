//! Signing keys shared by every replica through PostgreSQL, and their scheduled rotation.
//!
//! When no key is configured and `KEY_ENCRYPTION_SECRET` is set, the keys live in the
//! `signing_keys` table, sealed with AES-256-GCM. Every replica runs the same maintenance every
//! `KEY_REFRESH_INTERVAL`, serialised by a transaction-scoped advisory lock, so the replicas
//! agree with no coordinator but the database: the first one creates the first key; a key for
//! the next period is created `KEY_ROTATION_PREPUBLISH` before it starts signing (so caches of
//! the JWKS learn it first); a key stays published for the longest token lifetime after it
//! stops signing, then goes. A replica that was down catches up at its next maintenance.
//!
//! **Sealing.** The secret is stretched once per start by Argon2id (64 MiB, 3 passes, 1 lane:
//! RFC 9106's second recommended setting with a single lane), with a random salt that the first
//! replica stores in `server_settings` together with the parameters, as a PHC string; an HKDF
//! of the result gives the AES-256-GCM key and a check value, also stored. The associated data
//! of every sealed key is every other column of its row (kid, algorithm, creation, activation,
//! retirement, expiry), so a row edited in the database no longer opens. Rows of the first
//! scheme (an HKDF of the secret, the kid alone as associated data) are opened with that and
//! re-sealed at the next maintenance.
//!
//! **A misconfigured replica writes nothing.** A replica whose secret does not give the stored
//! check value refuses to start before it writes; on a database of the first scheme (no check
//! value yet) it must open one of the keys that sign now (or, when none does, any stored key).
//! A stored key that a correct replica cannot open (corrupt, or sealed by a misconfigured
//! replica of an earlier version) is skipped with an error log and
//! `jwthenticator_shared_key_unreadable_total`, and the schedule goes on without it. A replica
//! signs with a key only within its window: when the next key is loaded it takes over at its
//! activation, and after the last one retires (the database unreachable meanwhile) the replica
//! stops issuing tokens rather than sign with a retired key.

use std::fmt;
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow, bail};
use argon2::password_hash::{ParamsString, PasswordHash, SaltString};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Prk, Salt};
use chrono::{DateTime, NaiveDateTime, Utc};
use clap::Args;
use jwthenticator_core::Algorithm;
use jwthenticator_core::saturating_seconds;
use rsa::pkcs8::der::zeroize::Zeroizing;
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::config::{Config, Secret};
use crate::keys::{KeySet, PrivateKey, ScheduledKey, SigningWindow};
use crate::state::ActiveKeys;
use crate::store::Store;

/// Settings of the keys shared through the database.
#[derive(Debug, Clone, Args)]
pub struct SharedKeyConfig {
    /// Secret that seals the signing keys stored in PostgreSQL (16 characters or more,
    /// stretched by Argon2id). Set it (the same on every replica) and configure no key to have
    /// the replicas share generated, rotated keys.
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

/// `server_settings` row of the Argon2id parameters and salt (a PHC string without a hash).
const KDF_SETTING: &str = "key_encryption_kdf";

/// `server_settings` row of the check value of the derived sealing key.
const CHECK_SETTING: &str = "key_encryption_check";

/// Argon2id cost for new deployments (existing ones keep the parameters they stored).
const ARGON2_MEMORY_KIB: u32 = 64 * 1024;
const ARGON2_PASSES: u32 = 3;
const ARGON2_LANES: u32 = 1;

/// The first sealing scheme: HKDF-SHA-256 of the secret, the kid as associated data.
const SEALING_V1: i16 = 1;
/// The current one: Argon2id of the secret, every column as associated data.
const SEALING_V2: i16 = 2;

/// The shared keys of one replica: its connection and the sealing keys.
pub struct SharedKeys {
    pool: PgPool,
    /// Seals and opens rows of the current scheme.
    sealing_key: LessSafeKey,
    /// Opens rows of the first scheme, to re-seal them.
    legacy_key: LessSafeKey,
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

/// A row of `signing_keys`.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    id: i64,
    kid: String,
    algorithm: String,
    #[sqlx(rename = "private_key")]
    sealed: Vec<u8>,
    sealing: i16,
    created_at: NaiveDateTime,
    activates_at: NaiveDateTime,
    retires_at: NaiveDateTime,
    expires_at: NaiveDateTime,
}

impl Row {
    fn signs_at(&self, now: NaiveDateTime) -> bool {
        self.activates_at <= now && now < self.retires_at
    }

    /// The associated data of a row of the current scheme: every column but the id and the
    /// sealed key itself, each length-prefixed or fixed-size, so no two rows share it.
    fn associated_data(&self) -> Vec<u8> {
        let mut aad = b"jwthenticator signing key v2".to_vec();
        for text in [&self.kid, &self.algorithm] {
            aad.extend_from_slice(&u32::try_from(text.len()).unwrap_or(u32::MAX).to_be_bytes());
            aad.extend_from_slice(text.as_bytes());
        }
        for at in [
            self.created_at,
            self.activates_at,
            self.retires_at,
            self.expires_at,
        ] {
            aad.extend_from_slice(&at.and_utc().timestamp_micros().to_be_bytes());
        }
        aad
    }
}

/// A row whose private key opened.
struct Opened {
    row: Row,
    key: PrivateKey,
}

fn naive(unix: i64) -> NaiveDateTime {
    DateTime::from_timestamp(unix, 0)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
        .naive_utc()
}

/// A key length for HKDF output.
struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// What the secret gives: the key of the current scheme, and its check value.
struct Derived {
    sealing_key: LessSafeKey,
    check: String,
}

/// Stretches the secret by Argon2id with the stored parameters and salt (a PHC string), then
/// expands the result into the sealing key and the check value.
fn derive(secret: &Secret, kdf: &str) -> anyhow::Result<Derived> {
    let phc = PasswordHash::new(kdf).map_err(|e| anyhow!("the stored {KDF_SETTING} {e}"))?;
    if phc.algorithm != argon2::ARGON2ID_IDENT {
        bail!("the stored {KDF_SETTING} is not Argon2id");
    }
    let params = argon2::Params::try_from(&phc)
        .map_err(|e| anyhow!("the stored {KDF_SETTING} parameters: {e}"))?;
    let version = argon2::Version::try_from(phc.version.unwrap_or(0x13))
        .map_err(|e| anyhow!("the stored {KDF_SETTING} version: {e}"))?;
    let mut salt = [0u8; 64];
    let salt = phc
        .salt
        .ok_or_else(|| anyhow!("the stored {KDF_SETTING} has no salt"))?
        .decode_b64(&mut salt)
        .map_err(|e| anyhow!("the stored {KDF_SETTING} salt: {e}"))?;
    let mut stretched = Zeroizing::new([0u8; 32]);
    argon2::Argon2::new(argon2::Algorithm::Argon2id, version, params)
        .hash_password_into(secret.expose().as_bytes(), salt, stretched.as_mut())
        .map_err(|e| anyhow!("Argon2id failed: {e}"))?;
    let prk = Prk::new_less_safe(HKDF_SHA256, stretched.as_ref());
    let expand = |label: &[u8], len: usize| -> anyhow::Result<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(vec![0u8; len]);
        prk.expand(&[label], Len(len))
            .and_then(|okm| okm.fill(&mut out))
            .map_err(|_| anyhow!("deriving the key sealing key failed"))?;
        Ok(out)
    };
    let key = expand(b"jwthenticator signing keys aes-256-gcm v2", 32)?;
    let sealing_key = UnboundKey::new(&AES_256_GCM, &key)
        .map_err(|_| anyhow!("deriving the key sealing key failed"))?;
    Ok(Derived {
        sealing_key: LessSafeKey::new(sealing_key),
        check: hex::encode(expand(b"jwthenticator signing keys check v2", 16)?.as_slice()),
    })
}

/// [`derive`] off the async threads (Argon2id takes a fraction of a second), logged once.
async fn derive_once(secret: &Secret, kdf: &str) -> anyhow::Result<Derived> {
    let started = std::time::Instant::now();
    let (secret, kdf) = (secret.clone(), kdf.to_owned());
    let derived = tokio::task::spawn_blocking(move || derive(&secret, &kdf))
        .await
        .context("deriving the key sealing key")??;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis(),
        "derived the key sealing key from KEY_ENCRYPTION_SECRET (Argon2id)"
    );
    Ok(derived)
}

/// Argon2id parameters and a new random salt, as the PHC string stored in `server_settings`.
fn new_kdf_setting() -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| anyhow!("random generator failed"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow!("encoding the salt: {e}"))?;
    let params = argon2::Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES, None)
        .map_err(|e| anyhow!("Argon2id parameters: {e}"))?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(argon2::Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| anyhow!("{e}"))?,
        salt: Some(salt.as_salt()),
        hash: None,
    };
    Ok(phc.to_string())
}

/// The key of the first scheme.
fn legacy_key(secret: &Secret) -> anyhow::Result<LessSafeKey> {
    let prk =
        Salt::new(HKDF_SHA256, b"jwthenticator signing keys").extract(secret.expose().as_bytes());
    let okm = prk
        .expand(&[b"aes-256-gcm v1"], &AES_256_GCM)
        .map_err(|_| anyhow!("deriving the key sealing key failed"))?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

impl SharedKeys {
    /// Connects to the (already migrated) database with a small pool of its own, and derives
    /// the sealing key from the secret once. Refuses, before writing anything, a secret other
    /// than the one the stored keys were sealed with.
    pub async fn connect(
        url: &str,
        secret: &Secret,
        config: &Config,
        store: &dyn Store,
    ) -> anyhow::Result<Self> {
        if secret.expose().chars().count() < 16 {
            bail!("KEY_ENCRYPTION_SECRET must be at least 16 characters");
        }
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .context("connecting for the shared signing keys")?;
        let legacy_key = legacy_key(secret)?;
        let stored_check = store.setting(CHECK_SETTING).await?;
        let stored_kdf = store.setting(KDF_SETTING).await?;
        let mut derived = match &stored_kdf {
            Some(kdf) => Some(derive_once(secret, kdf).await?),
            None => None,
        };
        if stored_check.is_none() {
            // Keys stored by an earlier version (or a lost check value): prove the secret on
            // them before writing anything.
            let current = derived.as_ref().map(|d| &d.sealing_key);
            prove_on_stored_keys(&pool, &legacy_key, current).await?;
        }
        let derived = match derived.take() {
            Some(derived) => derived,
            None => {
                let kdf = store
                    .insert_setting(KDF_SETTING, &new_kdf_setting()?)
                    .await?;
                derive_once(secret, &kdf).await?
            }
        };
        let check = match stored_check {
            Some(check) => check,
            None => store.insert_setting(CHECK_SETTING, &derived.check).await?,
        };
        if check != derived.check {
            bail!(
                "KEY_ENCRYPTION_SECRET is not the secret the stored signing keys were sealed \
                 with: every replica needs the same one. This replica wrote nothing"
            );
        }
        let shared = &config.shared_keys;
        Ok(Self {
            pool,
            sealing_key: derived.sealing_key,
            legacy_key,
            algorithm: config.jwt_algorithm,
            rsa_bits: config.rsa_key_size,
            period: saturating_seconds(shared.key_rotation_period),
            // A replica signs only within a key's window, so the next key must be stored
            // (and loaded by every replica) before the current one retires: at least two
            // refresh intervals ahead, whatever KEY_ROTATION_PREPUBLISH says.
            prepublish: saturating_seconds(shared.key_rotation_prepublish)
                .max(saturating_seconds(shared.key_refresh_interval.max(1)).saturating_mul(2)),
            retention: saturating_seconds(config.jwt_lease_time)
                .saturating_add(saturating_seconds(config.jwt_leeway))
                .saturating_add(saturating_seconds(shared.key_refresh_interval)),
            refresh_interval: Duration::from_secs(shared.key_refresh_interval.max(1)),
        })
    }

    /// How often each replica runs [`SharedKeys::refresh`].
    pub fn refresh_interval(&self) -> Duration {
        self.refresh_interval
    }

    fn seal(&self, row: &Row, plaintext: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| anyhow!("random generator failed"))?;
        let mut sealed = plaintext.to_vec();
        self.sealing_key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(row.associated_data()),
                &mut sealed,
            )
            .map_err(|_| anyhow!("sealing the signing key failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(&self, row: &Row) -> anyhow::Result<PrivateKey> {
        open_row(row, &self.legacy_key, Some(&self.sealing_key))
    }

    async fn insert_key(
        &self,
        tx: &mut sqlx::PgConnection,
        now: i64,
        activates_at: i64,
        retires_at: i64,
    ) -> anyhow::Result<Opened> {
        let key = PrivateKey::generate(self.algorithm, self.rsa_bits)?;
        let mut row = Row {
            id: 0,
            kid: key.public_key().kid(),
            algorithm: format!("{:?}", self.algorithm),
            sealed: Vec::new(),
            sealing: SEALING_V2,
            created_at: naive(now),
            activates_at: naive(activates_at),
            retires_at: naive(retires_at),
            expires_at: naive(retires_at.saturating_add(self.retention)),
        };
        row.sealed = self.seal(&row, key.to_pem()?.as_bytes())?;
        row.id = sqlx::query_scalar(
            "INSERT INTO signing_keys (kid, algorithm, private_key, sealing, created_at, activates_at, retires_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(&row.kid)
        .bind(&row.algorithm)
        .bind(&row.sealed)
        .bind(row.sealing)
        .bind(row.created_at)
        .bind(row.activates_at)
        .bind(row.retires_at)
        .bind(row.expires_at)
        .fetch_one(&mut *tx)
        .await?;
        tracing::info!(kid = row.kid, activates_at = %row.activates_at, retires_at = %row.retires_at, "created a shared signing key");
        Ok(Opened { row, key })
    }

    /// Re-seals a row of the first scheme with the current one.
    async fn reseal(&self, tx: &mut sqlx::PgConnection, opened: &mut Opened) -> anyhow::Result<()> {
        let mut row = opened.row.clone();
        row.sealing = SEALING_V2;
        row.sealed = self.seal(&row, opened.key.to_pem()?.as_bytes())?;
        sqlx::query(
            "UPDATE signing_keys SET private_key = $1, sealing = $2 WHERE id = $3 AND sealing = $4",
        )
        .bind(&row.sealed)
        .bind(row.sealing)
        .bind(row.id)
        .bind(SEALING_V1)
        .execute(&mut *tx)
        .await?;
        tracing::info!(
            kid = row.kid,
            "re-sealed a shared signing key with the Argon2id key"
        );
        opened.row = row;
        Ok(())
    }

    /// Brings the table up to date (first key, next key before it is needed, expired keys
    /// gone, keys of the first scheme re-sealed) under the advisory lock, and returns the keys
    /// to use now. Keys that do not open are skipped and scheduled around.
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
        let mut keys = Vec::new();
        for row in rows(&mut tx).await? {
            match self.open(&row) {
                Ok(key) => keys.push(Opened { row, key }),
                Err(err) => {
                    tracing::error!(
                        kid = row.kid,
                        error = %format!("{err:#}"),
                        "a stored signing key does not open with KEY_ENCRYPTION_SECRET: skipped"
                    );
                    metrics::counter!("jwthenticator_shared_key_unreadable_total").increment(1);
                }
            }
        }
        for opened in keys.iter_mut().filter(|k| k.row.sealing == SEALING_V1) {
            self.reseal(&mut tx, opened).await?;
        }
        let active_now = keys.iter().any(|k| k.row.signs_at(naive(now)));
        let mut latest = keys
            .iter()
            .map(|k| k.row.retires_at.and_utc().timestamp())
            .max();
        if !active_now {
            // First start, or every replica was down past the last key: a key signs from now.
            let retires_at = if self.period > 0 {
                now.saturating_add(self.period)
            } else {
                NEVER
            };
            keys.push(self.insert_key(&mut tx, now, now, retires_at).await?);
            latest = Some(latest.unwrap_or(now).max(retires_at));
        }
        if self.period > 0 {
            // Keys for every period that starts within the prepublication window.
            while let Some(last) =
                latest.filter(|last| *last <= now.saturating_add(self.prepublish))
            {
                let next = last.max(now);
                keys.push(
                    self.insert_key(&mut tx, now, next, next.saturating_add(self.period))
                        .await?,
                );
                latest = Some(next.saturating_add(self.period));
            }
        }
        tx.commit().await?;
        self.active_keys(config, &keys, now)
    }

    /// Every key that has not retired signs in its window, the one signing now first in the
    /// JWKS; retired ones are only published.
    fn active_keys(
        &self,
        config: &Config,
        keys: &[Opened],
        now: i64,
    ) -> anyhow::Result<ActiveKeys> {
        let mut signing: Vec<&Opened> = keys
            .iter()
            .filter(|k| naive(now) < k.row.retires_at)
            .collect();
        // The one signing now (the latest activated) first, then the next ones.
        signing.sort_by_key(|k| {
            (
                !k.row.signs_at(naive(now)),
                std::cmp::Reverse(k.row.activates_at),
            )
        });
        let current = signing
            .first()
            .filter(|k| k.row.signs_at(naive(now)))
            .ok_or_else(|| anyhow!("no shared signing key is active"))?;
        let scheduled = signing
            .iter()
            .map(|k| {
                let algorithm = k.row.algorithm.parse::<Algorithm>().map_err(|_| {
                    anyhow!(
                        "the stored signing key {} has an unknown algorithm",
                        k.row.kid
                    )
                })?;
                Ok(ScheduledKey {
                    key: &k.key,
                    algorithm,
                    window: SigningWindow {
                        from: k.row.activates_at.and_utc().timestamp(),
                        until: k.row.retires_at.and_utc().timestamp(),
                    },
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let published: Vec<_> = keys
            .iter()
            .filter(|k| k.row.retires_at <= naive(now))
            .map(|k| k.key.public_key().clone())
            .collect();
        let set = KeySet::scheduled(&scheduled, &published, config.jwt_algorithm)?;
        let created = SystemTime::UNIX_EPOCH
            + Duration::from_secs(
                u64::try_from(current.row.created_at.and_utc().timestamp()).unwrap_or(0),
            );
        Ok(ActiveKeys::new(config, set, created))
    }
}

/// The row's private key, opened with the key and associated data of its scheme: `legacy` for
/// the first, `current` (when known) for the current one.
fn open_row(
    row: &Row,
    legacy: &LessSafeKey,
    current: Option<&LessSafeKey>,
) -> anyhow::Result<PrivateKey> {
    match (row.sealing, current) {
        (SEALING_V1, _) => open_sealed(legacy, row.kid.as_bytes().to_vec(), &row.sealed),
        (SEALING_V2, Some(current)) => open_sealed(current, row.associated_data(), &row.sealed),
        (SEALING_V2, None) => bail!("the parameters of its sealing key are not stored"),
        (other, _) => bail!("sealing scheme {other} is unknown"),
    }
}

fn open_sealed(key: &LessSafeKey, aad: Vec<u8>, sealed: &[u8]) -> anyhow::Result<PrivateKey> {
    let (nonce, ciphertext) = sealed
        .split_at_checked(NONCE_LEN)
        .ok_or_else(|| anyhow!("the sealed key is truncated"))?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| anyhow!("bad nonce"))?;
    let mut buffer = Zeroizing::new(ciphertext.to_vec());
    let plaintext = key
        .open_in_place(nonce, Aad::from(aad), &mut buffer)
        .map_err(|_| anyhow!("it was sealed with another secret, or its row was changed"))?;
    let pem = std::str::from_utf8(plaintext).context("the stored signing key is not PEM")?;
    Ok(PrivateKey::from_pem(pem)?)
}

async fn rows(tx: &mut sqlx::PgConnection) -> anyhow::Result<Vec<Row>> {
    Ok(sqlx::query_as(
        "SELECT id, kid, algorithm, private_key, sealing, created_at, activates_at, retires_at, expires_at
         FROM signing_keys ORDER BY activates_at",
    )
    .fetch_all(&mut *tx)
    .await?)
}

/// On a database without a check value of the secret (keys stored by an earlier version),
/// proves the secret before anything is written: one of the live keys that sign now opens (or,
/// when none signs now, one of the live keys), those of the first scheme with `legacy_key`,
/// the others with `current` when the parameters to derive it were stored. An empty table
/// proves nothing and needs nothing.
async fn prove_on_stored_keys(
    pool: &PgPool,
    legacy_key: &LessSafeKey,
    current: Option<&LessSafeKey>,
) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    let now = naive(Utc::now().timestamp());
    let live: Vec<Row> = rows(&mut conn)
        .await?
        .into_iter()
        .filter(|row| row.expires_at > now)
        .collect();
    let signing: Vec<&Row> = live.iter().filter(|row| row.signs_at(now)).collect();
    let candidates: Vec<&Row> = if signing.is_empty() {
        live.iter().collect()
    } else {
        signing
    };
    let opens = |row: &&Row| open_row(row, legacy_key, current).is_ok();
    if !candidates.is_empty() && !candidates.iter().any(opens) {
        bail!(
            "KEY_ENCRYPTION_SECRET opens none of the stored signing keys that sign now: every \
             replica needs the secret the keys were sealed with. This replica wrote nothing"
        );
    }
    Ok(())
}

/// Keeps a replica's keys current: refreshes every interval; on a database error keeps the keys
/// it has (each signs until it retires) and tries again.
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
