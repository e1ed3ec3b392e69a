//! A token bucket (time is a parameter): what the boot event writer's budgets are made of.

use std::time::Instant;

/// Up to `burst` tokens at once, `per_second` more each second.
#[derive(Debug)]
pub struct TokenBucket {
    burst: u64,
    per_second: u64,
    /// Tokens now, in thousandths of a token.
    milli_tokens: u64,
    refilled: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(burst: u32, per_second: u32, now: Instant) -> Self {
        TokenBucket {
            burst: u64::from(burst),
            per_second: u64::from(per_second),
            milli_tokens: u64::from(burst) * 1_000,
            refilled: now,
        }
    }

    /// Whole tokens at `now` (time going backwards earns nothing).
    pub fn available(&mut self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.refilled);
        let earned = elapsed
            .as_micros()
            .saturating_mul(u128::from(self.per_second))
            .checked_div(1_000)
            .and_then(|m| u64::try_from(m).ok())
            .unwrap_or(u64::MAX);
        if earned > 0 {
            self.milli_tokens = self
                .milli_tokens
                .saturating_add(earned)
                .min(self.burst * 1_000);
            self.refilled = now;
        }
        self.milli_tokens / 1_000
    }

    /// Spends `n` tokens (at most those there are).
    pub fn take(&mut self, n: u64) {
        self.milli_tokens = self.milli_tokens.saturating_sub(n.saturating_mul(1_000));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn refills_at_its_rate_up_to_its_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 4, start);
        assert_eq!(bucket.available(start), 10);
        bucket.take(25);
        assert_eq!(bucket.available(start), 0, "no debt past empty");
        assert_eq!(bucket.available(start + Duration::from_millis(200)), 0);
        assert_eq!(bucket.available(start + Duration::from_millis(250)), 1);
        assert_eq!(bucket.available(start + Duration::from_secs(2)), 8);
        assert_eq!(bucket.available(start + Duration::from_secs(60)), 10);
        assert_eq!(
            bucket.available(start),
            10,
            "backwards: nothing earned or lost"
        );
    }
}
