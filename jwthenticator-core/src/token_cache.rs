//! [`TokenCache`], a bounded memory of tokens that have passed verification.

use aws_lc_rs::digest::{SHA256, digest};

/// The SHA-256 of a token, the key of a [`TokenCache`].
pub type TokenHash = [u8; 32];

/// A bounded cache of tokens that passed verification, so that a token seen again is answered
/// without checking its signature a second time. `C` is what a hit returns: the token's claims,
/// or `()` when the answer is only "valid".
///
/// Why a hit can be trusted:
///
/// - Only successful verifications go in: the caller inserts a token once the [`Verifier`]
///   (and any check of the caller's own) has accepted it, never a rejected one, so a hit gives
///   the answer a full verification gave.
/// - Entries are keyed by the SHA-256 of the token ([`TokenCache::hash`]): no token is kept in
///   memory, and a lookup matches only the very same bytes (finding another token with the
///   same hash is a second-preimage attack on SHA-256).
/// - A hit re-checks `exp`, with the same leeway as the verifier, so a token is answered from
///   the cache only while a full verification would still accept it. Checks that depend only
///   on the token and the configuration (signature, algorithm, `aud`, `iss`, `nbf`, `iat`)
///   give the same answer later, so they are not repeated.
/// - Every entry records the epoch of the key set that verified it, a number the caller
///   increments whenever the key set loses a key (removed or replaced). A lookup under
///   another epoch misses, so a token signed with a withdrawn key is verified again, and
///   rejected.
///
/// Entries that fail these checks are removed when looked up; beyond that, once the cache
/// holds `capacity` tokens, each insert evicts the entry least likely to be used again.
///
/// [`Verifier`]: crate::Verifier
///
/// # Example
///
/// ```
/// use jwthenticator_core::TokenCache;
///
/// let cache = TokenCache::<()>::new(10_000);
/// let (now, exp, leeway, epoch) = (1_700_000_000, 1_700_000_600, 30, 0);
/// let hash = TokenCache::<()>::hash("header.payload.signature");
/// assert_eq!(cache.get(&hash, epoch, now, leeway), None);
/// // ... the token verified, and its `exp` was read ...
/// cache.insert(hash, (), exp, epoch);
/// assert_eq!(cache.get(&hash, epoch, now, leeway), Some(()));
/// // Past `exp` and the leeway, or once the key set has lost a key, it is verified again.
/// assert_eq!(cache.get(&hash, epoch, exp + leeway, leeway), None);
/// ```
pub struct TokenCache<C> {
    // Entries are cloned out whole: no `Arc` to allocate on an insert nor to count on a hit,
    // and a hit on a `TokenCache<()>` copies two integers.
    entries: quick_cache::sync::Cache<TokenHash, Entry<C>>,
    capacity: usize,
}

#[derive(Clone)]
struct Entry<C> {
    claims: C,
    exp: i64,
    epoch: u64,
}

impl<C> std::fmt::Debug for TokenCache<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the entries: they hold claims, which may be personal data.
        f.debug_struct("TokenCache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<C> TokenCache<C> {
    /// The key of `token` in the cache.
    pub fn hash(token: &str) -> TokenHash {
        let mut hash = [0; 32];
        hash.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
        hash
    }

    /// The most tokens the cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl<C: Clone> TokenCache<C> {
    /// A cache of at most `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(capacity),
            capacity,
        }
    }

    /// How many tokens the cache holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache holds no token.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The claims of the token whose hash is `hash`, if it was inserted under key set `epoch`
    /// and has not expired at `now` (seconds since the Unix epoch), allowing `leeway` seconds of
    /// clock skew as the verifier does. An entry that fails either check is removed.
    pub fn get(&self, hash: &TokenHash, epoch: u64, now: i64, leeway: i64) -> Option<C> {
        let entry = self.entries.get(hash)?;
        if entry.epoch != epoch || now >= entry.exp.saturating_add(leeway) {
            self.entries.remove(hash);
            return None;
        }
        Some(entry.claims)
    }

    /// Remembers a token that has just passed verification with key set `epoch`, with its
    /// `exp` claim (seconds since the Unix epoch) and the claims a hit returns. Never insert a
    /// token that failed any check.
    pub fn insert(&self, hash: TokenHash, claims: C, exp: i64, epoch: u64) {
        self.entries.insert(hash, Entry { claims, exp, epoch });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn a_hit_returns_the_claims_without_looking_at_the_token() {
        let cache = TokenCache::new(8);
        let hash = TokenCache::<&str>::hash("a.b.c");
        cache.insert(hash, "claims", NOW + 60, 0);
        assert_eq!(cache.get(&hash, 0, NOW, 0), Some("claims"));
        assert_eq!(
            cache.get(&TokenCache::<&str>::hash("a.b.d"), 0, NOW, 0),
            None
        );
    }

    #[test]
    fn exp_is_still_enforced_on_a_hit() {
        let cache = TokenCache::new(8);
        let hash = TokenCache::<&str>::hash("a.b.c");
        cache.insert(hash, "claims", NOW + 60, 0);
        assert_eq!(cache.get(&hash, 0, NOW + 89, 30), Some("claims"));
        assert_eq!(cache.get(&hash, 0, NOW + 90, 30), None);
        // The expired entry is gone, not merely hidden.
        assert_eq!(cache.get(&hash, 0, NOW, 30), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn a_key_set_that_lost_a_key_invalidates_earlier_entries() {
        let cache = TokenCache::new(8);
        let hash = TokenCache::<&str>::hash("a.b.c");
        cache.insert(hash, "claims", NOW + 60, 3);
        assert_eq!(cache.get(&hash, 4, NOW, 0), None);
        assert_eq!(cache.get(&hash, 3, NOW, 0), None);
    }

    #[test]
    fn a_cache_without_claims_answers_valid_or_unknown() {
        let cache = TokenCache::<()>::new(8);
        let hash = TokenCache::<()>::hash("a.b.c");
        assert_eq!(cache.get(&hash, 0, NOW, 0), None);
        cache.insert(hash, (), NOW + 60, 0);
        assert_eq!(cache.get(&hash, 0, NOW, 0), Some(()));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_key_is_the_sha256_of_the_token() {
        assert_eq!(
            TokenCache::<()>::hash("abc"),
            [
                0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
                0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61,
                0xf2, 0x00, 0x15, 0xad,
            ]
        );
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = TokenCache::new(16);
        for i in 0..1_000 {
            cache.insert(TokenCache::<u32>::hash(&i.to_string()), i, NOW + 60, 0);
        }
        assert!(cache.len() <= 16, "{}", cache.len());
        assert_eq!(cache.capacity(), 16);
    }
}
