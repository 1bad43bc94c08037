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
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail};
use aws_lc_rs::aead::LessSafeKey;
use chrono::{DateTime, NaiveDateTime, Utc};
use jwthenticator_core::Algorithm;
use jwthenticator_core::saturating_seconds;

use super::active::{ActiveKeys, VerifierSettings};
use super::material::PrivateKey;
use super::sealing::{
    self, CHECK_SETTING, KDF_SETTING, SEALING_V1, SEALING_V2, derive_once, legacy_key,
    new_kdf_setting, open_row,
};
use super::set::{KeySet, ScheduledKey, SigningWindow};
use crate::config::{Config, Secret};
use crate::store::{SigningKeyMaintenance, SigningKeyRow, Store};

/// The far future, for a key that never stops signing.
const NEVER: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

/// What the shared keys need to know, derived once from the configuration.
#[derive(Debug, Clone)]
pub struct SharedKeySettings {
    /// `KEY_ENCRYPTION_SECRET`.
    pub secret: Secret,
    /// `JWT_ALGORITHM`: new keys are of its type.
    pub algorithm: Algorithm,
    /// `RSA_KEY_SIZE` of new RSA keys.
    pub rsa_bits: u32,
    /// Seconds a key signs (0: never rotate).
    pub period: i64,
    /// Seconds before it signs that the next key is stored and published: at least two
    /// refresh intervals, whatever `KEY_ROTATION_PREPUBLISH` says, since a replica signs only
    /// within a key's window and must have loaded the next key before the current one retires.
    pub prepublish: i64,
    /// Seconds a key stays published after it stops signing: the longest token lifetime, the
    /// leeway, and one refresh interval (a replica may sign with the old key that long).
    pub retention: i64,
    /// How often each replica runs [`SharedKeys::refresh`].
    pub refresh_interval: Duration,
    /// The checks of the verifier over the keys.
    pub verifier: VerifierSettings,
}

impl SharedKeySettings {
    /// The settings `config` gives, with its `KEY_ENCRYPTION_SECRET`.
    pub fn from_config(config: &Config, secret: Secret) -> Self {
        let shared = &config.shared_keys;
        Self {
            secret,
            algorithm: config.jwt_algorithm,
            rsa_bits: config.rsa_key_size,
            period: saturating_seconds(shared.key_rotation_period),
            prepublish: saturating_seconds(shared.key_rotation_prepublish)
                .max(saturating_seconds(shared.key_refresh_interval.max(1)).saturating_mul(2)),
            retention: saturating_seconds(config.jwt_lease_time)
                .saturating_add(saturating_seconds(config.jwt_leeway))
                .saturating_add(saturating_seconds(shared.key_refresh_interval)),
            refresh_interval: Duration::from_secs(shared.key_refresh_interval.max(1)),
            verifier: VerifierSettings::from_config(config),
        }
    }
}

/// The shared keys of one replica: the store and the sealing keys.
pub struct SharedKeys {
    store: Arc<dyn Store>,
    /// Seals and opens rows of the current scheme.
    sealing_key: LessSafeKey,
    /// Opens rows of the first scheme, to re-seal them.
    legacy_key: LessSafeKey,
    settings: SharedKeySettings,
}

impl fmt::Debug for SharedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedKeys")
            .field("algorithm", &self.settings.algorithm)
            .field("period", &self.settings.period)
            .field("prepublish", &self.settings.prepublish)
            .finish_non_exhaustive()
    }
}

/// A row whose private key opened.
struct Opened {
    row: SigningKeyRow,
    key: PrivateKey,
}

fn naive(unix: i64) -> NaiveDateTime {
    DateTime::from_timestamp(unix, 0)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
        .naive_utc()
}

/// What `check-config` reports of the shared keys, read without writing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedKeysReport {
    /// The key that signs now, if one is stored.
    pub signing: Option<SigningKeyRow>,
    /// How many keys are stored and not expired.
    pub stored: usize,
    /// Whether the secret was checked against the stored check value (false: none stored yet).
    pub secret_checked: bool,
}

impl SharedKeys {
    /// Opens the shared keys on a migrated PostgreSQL store, deriving the sealing key from the
    /// secret once. Refuses, before writing anything, a secret other than the one the stored
    /// keys were sealed with.
    pub async fn open(store: Arc<dyn Store>, settings: SharedKeySettings) -> anyhow::Result<Self> {
        let secret = &settings.secret;
        if secret.expose().chars().count() < 16 {
            bail!("KEY_ENCRYPTION_SECRET must be at least 16 characters");
        }
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
            prove_on_stored_keys(store.as_ref(), &legacy_key, current).await?;
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
        Ok(Self {
            store,
            sealing_key: derived.sealing_key,
            legacy_key,
            settings,
        })
    }

    /// The shared keys as they are stored, read without writing: the key that signs now and
    /// whether `secret` gives the stored check value (when there is one).
    pub async fn inspect(store: &dyn Store, secret: &Secret) -> anyhow::Result<SharedKeysReport> {
        let now = naive(Utc::now().timestamp());
        let live = live_rows(store, now).await?;
        let secret_checked = match (
            store.setting(KDF_SETTING).await?,
            store.setting(CHECK_SETTING).await?,
        ) {
            (Some(kdf), Some(check)) => {
                if derive_once(secret, &kdf).await?.check != check {
                    bail!(
                        "KEY_ENCRYPTION_SECRET is not the secret the stored signing keys were \
                         sealed with: every replica needs the same one"
                    );
                }
                true
            }
            _ => false,
        };
        Ok(SharedKeysReport {
            signing: live
                .iter()
                .filter(|row| row.signs_at(now))
                .max_by_key(|row| row.activates_at)
                .cloned(),
            stored: live.len(),
            secret_checked,
        })
    }

    /// How often each replica runs [`SharedKeys::refresh`].
    pub fn refresh_interval(&self) -> Duration {
        self.settings.refresh_interval
    }

    fn seal(&self, row: &SigningKeyRow, plaintext: &[u8]) -> anyhow::Result<Vec<u8>> {
        sealing::seal(&self.sealing_key, row, plaintext)
    }

    fn open_key(&self, row: &SigningKeyRow) -> anyhow::Result<PrivateKey> {
        open_row(row, &self.legacy_key, Some(&self.sealing_key))
    }

    async fn insert_key(
        &self,
        tx: &mut dyn SigningKeyMaintenance,
        now: i64,
        activates_at: i64,
        retires_at: i64,
    ) -> anyhow::Result<Opened> {
        let key = PrivateKey::generate(self.settings.algorithm, self.settings.rsa_bits)?;
        let mut row = SigningKeyRow {
            id: 0,
            kid: key.public_key().kid(),
            algorithm: format!("{:?}", self.settings.algorithm),
            sealed: Vec::new(),
            sealing: SEALING_V2,
            created_at: naive(now),
            activates_at: naive(activates_at),
            retires_at: naive(retires_at),
            expires_at: naive(retires_at.saturating_add(self.settings.retention)),
        };
        row.sealed = self.seal(&row, key.to_pem()?.as_bytes())?;
        row.id = tx.insert(&row).await?;
        tracing::info!(kid = row.kid, activates_at = %row.activates_at, retires_at = %row.retires_at, "created a shared signing key");
        Ok(Opened { row, key })
    }

    /// Re-seals a row of the first scheme with the current one.
    async fn reseal(
        &self,
        tx: &mut dyn SigningKeyMaintenance,
        opened: &mut Opened,
    ) -> anyhow::Result<()> {
        let mut row = opened.row.clone();
        row.sealing = SEALING_V2;
        row.sealed = self.seal(&row, opened.key.to_pem()?.as_bytes())?;
        tx.reseal(&row, SEALING_V1).await?;
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
    pub async fn refresh(&self) -> anyhow::Result<ActiveKeys> {
        let now = Utc::now().timestamp();
        let mut tx = self.store.lock_signing_keys().await?;
        tx.delete_expired(naive(now)).await?;
        let mut keys = Vec::new();
        for row in tx.rows().await? {
            match self.open_key(&row) {
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
            self.reseal(tx.as_mut(), opened).await?;
        }
        let active_now = keys.iter().any(|k| k.row.signs_at(naive(now)));
        let mut latest = keys
            .iter()
            .map(|k| k.row.retires_at.and_utc().timestamp())
            .max();
        if !active_now {
            // First start, or every replica was down past the last key: a key signs from now.
            let retires_at = if self.settings.period > 0 {
                now.saturating_add(self.settings.period)
            } else {
                NEVER
            };
            keys.push(self.insert_key(tx.as_mut(), now, now, retires_at).await?);
            latest = Some(latest.unwrap_or(now).max(retires_at));
        }
        if self.settings.period > 0 {
            // Keys for every period that starts within the prepublication window.
            while let Some(last) =
                latest.filter(|last| *last <= now.saturating_add(self.settings.prepublish))
            {
                let next = last.max(now);
                keys.push(
                    self.insert_key(
                        tx.as_mut(),
                        now,
                        next,
                        next.saturating_add(self.settings.period),
                    )
                    .await?,
                );
                latest = Some(next.saturating_add(self.settings.period));
            }
        }
        tx.commit().await?;
        self.active_keys(&keys, now)
    }

    /// Every key that has not retired signs in its window, the one signing now first in the
    /// JWKS; retired ones are only published.
    fn active_keys(&self, keys: &[Opened], now: i64) -> anyhow::Result<ActiveKeys> {
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
        let set = KeySet::scheduled(&scheduled, &published, self.settings.algorithm)?;
        let created = SystemTime::UNIX_EPOCH
            + Duration::from_secs(
                u64::try_from(current.row.created_at.and_utc().timestamp()).unwrap_or(0),
            );
        Ok(ActiveKeys::new(&self.settings.verifier, set, created))
    }
}

/// The stored keys that have not expired at `now`, read without the maintenance lock.
async fn live_rows(store: &dyn Store, now: NaiveDateTime) -> anyhow::Result<Vec<SigningKeyRow>> {
    let mut rows = store.signing_keys().await?;
    rows.retain(|row| row.expires_at > now);
    Ok(rows)
}

/// On a database without a check value of the secret (keys stored by an earlier version),
/// proves the secret before anything is written: one of the live keys that sign now opens (or,
/// when none signs now, one of the live keys), those of the first scheme with `legacy_key`,
/// the others with `current` when the parameters to derive it were stored. An empty table
/// proves nothing and needs nothing.
async fn prove_on_stored_keys(
    store: &dyn Store,
    legacy_key: &LessSafeKey,
    current: Option<&LessSafeKey>,
) -> anyhow::Result<()> {
    let now = naive(Utc::now().timestamp());
    let live = live_rows(store, now).await?;
    let signing: Vec<&SigningKeyRow> = live.iter().filter(|row| row.signs_at(now)).collect();
    let candidates: Vec<&SigningKeyRow> = if signing.is_empty() {
        live.iter().collect()
    } else {
        signing
    };
    let opens = |row: &&SigningKeyRow| open_row(row, legacy_key, current).is_ok();
    if !candidates.is_empty() && !candidates.iter().any(opens) {
        bail!(
            "KEY_ENCRYPTION_SECRET opens none of the stored signing keys that sign now: every \
             replica needs the secret the keys were sealed with. This replica wrote nothing"
        );
    }
    Ok(())
}
