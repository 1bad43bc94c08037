//! Time as JWTs count it: whole seconds since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// The largest number of seconds [`saturating_seconds`] gives: the most that a millisecond
/// count in an `i64` holds (chrono's `TimeDelta::seconds` panics above it), still far beyond any
/// configured lifetime.
pub const MAX_SECONDS: i64 = i64::MAX / 1000;

/// Seconds since the Unix epoch, now (0 for a clock set before 1970), as `iat`, `exp` and
/// `nbf` count them.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}

/// A configured number of seconds (a lifetime, an expiry) as an `i64` to add to a
/// [`now_unix`] time, capped at [`MAX_SECONDS`] so that no setting can overflow a date.
///
/// ```
/// use jwthenticator_core::{MAX_SECONDS, saturating_seconds};
///
/// assert_eq!(saturating_seconds(900), 900);
/// assert_eq!(saturating_seconds(u64::MAX), MAX_SECONDS);
/// ```
pub fn saturating_seconds(seconds: u64) -> i64 {
    i64::try_from(seconds).map_or(MAX_SECONDS, |seconds| seconds.min(MAX_SECONDS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_after_the_start_of_2025() {
        assert!(now_unix() > 1_735_689_600);
    }

    #[test]
    fn seconds_saturate_below_what_a_millisecond_count_holds() {
        assert_eq!(saturating_seconds(0), 0);
        assert_eq!(saturating_seconds(MAX_SECONDS as u64), MAX_SECONDS);
        assert_eq!(saturating_seconds(MAX_SECONDS as u64 + 1), MAX_SECONDS);
        assert_eq!(saturating_seconds(i64::MAX as u64), MAX_SECONDS);
    }
}
