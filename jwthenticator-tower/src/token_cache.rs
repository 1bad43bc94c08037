//! A bounded cache of recently verified tokens, keyed by the SHA-256 of the token so that no
//! token is kept in memory. A hit skips the signature check but still enforces `exp`, and only
//! counts while the key set that verified the token has lost no key.

use std::sync::Arc;

use aws_lc_rs::digest::{SHA256, digest};

/// The SHA-256 of a token.
pub(crate) type TokenHash = [u8; 32];

pub(crate) struct TokenCache<C> {
    entries: quick_cache::sync::Cache<TokenHash, Arc<Entry<C>>>,
}

struct Entry<C> {
    claims: C,
    exp: i64,
    epoch: u64,
}

impl<C> std::fmt::Debug for TokenCache<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("len", &self.entries.len())
            .field("capacity", &self.entries.capacity())
            .finish()
    }
}

impl<C: Clone> TokenCache<C> {
    /// A cache of at most `capacity` tokens.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(capacity),
        }
    }

    pub(crate) fn hash(token: &str) -> TokenHash {
        let mut hash = [0; 32];
        hash.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
        hash
    }

    /// The claims of a token verified by key set `epoch`, if it has not expired at `now`
    /// (seconds since the Unix epoch) give or take `leeway`.
    pub(crate) fn get(&self, hash: &TokenHash, epoch: u64, now: i64, leeway: i64) -> Option<C> {
        let entry = self.entries.get(hash)?;
        if entry.epoch != epoch || now >= entry.exp.saturating_add(leeway) {
            self.entries.remove(hash);
            return None;
        }
        Some(entry.claims.clone())
    }

    pub(crate) fn insert(&self, hash: TokenHash, claims: C, exp: i64, epoch: u64) {
        self.entries
            .insert(hash, Arc::new(Entry { claims, exp, epoch }));
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
    fn the_cache_is_bounded() {
        let cache = TokenCache::new(16);
        for i in 0..1_000 {
            cache.insert(TokenCache::<u32>::hash(&i.to_string()), i, NOW + 60, 0);
        }
        assert!(cache.entries.len() <= 16, "{}", cache.entries.len());
    }
}
