//! Server-issued DPoP nonces (RFC 9449 sections 8 and 9) and their rotation.

use tokio::time::Instant;

use super::{DpopNoncePolicy, DpopProblem};
use crate::token_store::random_token;

/// The current nonce, the previous one while it is still accepted, and what rotates them.
#[derive(Debug)]
pub(crate) struct Nonces {
    policy: DpopNoncePolicy,
    current: String,
    /// When `current` was issued (tokio clock).
    issued_at: Instant,
    /// How many proofs `current` was accepted in.
    uses: u64,
    /// The nonce `current` replaced, and until when it is still accepted.
    previous: Option<(String, Instant)>,
}

impl Nonces {
    pub(crate) fn new(policy: DpopNoncePolicy) -> Nonces {
        Nonces {
            policy,
            current: random_token(),
            issued_at: Instant::now(),
            uses: 0,
            previous: None,
        }
    }

    /// The nonce clients should use now.
    pub(crate) fn current(&mut self) -> &str {
        self.rotate_if_due();
        &self.current
    }

    /// Whether a proof's `nonce` claim is acceptable: the current nonce, or the previous
    /// one within its grace.
    pub(crate) fn check(&mut self, nonce: Option<&str>) -> Result<(), DpopProblem> {
        self.rotate_if_due();
        let nonce = nonce.ok_or(DpopProblem::MissingNonce)?;
        let previous_ok = self
            .previous
            .as_ref()
            .is_some_and(|(previous, until)| previous == nonce && Instant::now() < *until);
        if nonce == self.current || previous_ok {
            Ok(())
        } else {
            Err(DpopProblem::StaleNonce)
        }
    }

    /// Counts an accepted proof that carried `nonce`; rotates once the current nonce has
    /// been used as often as the policy allows.
    pub(crate) fn record_use(&mut self, nonce: &str) {
        if nonce != self.current {
            return;
        }
        self.uses += 1;
        if self
            .policy
            .rotate_after_uses
            .is_some_and(|limit| self.uses >= limit)
        {
            self.rotate(Instant::now());
        }
    }

    /// Issues a new nonce now; the old one stays accepted for the policy's grace.
    pub(crate) fn rotate_now(&mut self) -> &str {
        self.rotate(Instant::now());
        &self.current
    }

    fn rotate_if_due(&mut self) {
        let Some(period) = self.policy.rotate_every else {
            return;
        };
        let due = self.issued_at + period;
        if Instant::now() >= due {
            // The grace runs from when the rotation was due, not from when someone noticed.
            self.rotate(due);
            self.issued_at = Instant::now();
        }
    }

    fn rotate(&mut self, at: Instant) {
        let next = random_token();
        let old = std::mem::replace(&mut self.current, next);
        self.previous = Some((old, at + self.policy.previous_accepted_for));
        self.issued_at = at;
        self.uses = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_missing_or_unknown_nonce_is_refused() {
        let mut nonces = Nonces::new(DpopNoncePolicy::new());
        let current = nonces.current().to_owned();
        assert_eq!(nonces.check(None), Err(DpopProblem::MissingNonce));
        assert_eq!(nonces.check(Some("made-up")), Err(DpopProblem::StaleNonce));
        assert_eq!(nonces.check(Some(&current)), Ok(()));
        nonces.record_use(&current);
        assert_eq!(nonces.current(), current, "no policy, no rotation");
    }

    #[tokio::test(start_paused = true)]
    async fn rotates_after_uses_and_keeps_the_previous_nonce_briefly() {
        let policy = DpopNoncePolicy::new()
            .rotate_after_uses(2)
            .previous_accepted_for(Duration::from_secs(5));
        let mut nonces = Nonces::new(policy);
        let first = nonces.current().to_owned();
        nonces.record_use(&first);
        assert_eq!(nonces.current(), first);
        nonces.record_use(&first);
        let second = nonces.current().to_owned();
        assert_ne!(second, first);

        assert_eq!(nonces.check(Some(&first)), Ok(()), "within the grace");
        nonces.record_use(&first);
        assert_eq!(
            nonces.current(),
            second,
            "uses of the previous nonce do not count"
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(nonces.check(Some(&first)), Err(DpopProblem::StaleNonce));
        assert_eq!(nonces.check(Some(&second)), Ok(()));

        let third = nonces.rotate_now().to_owned();
        assert_eq!(nonces.check(Some(&second)), Ok(()));
        assert_eq!(nonces.check(Some(&first)), Err(DpopProblem::StaleNonce));
        assert_eq!(nonces.check(Some(&third)), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn rotates_with_time_and_the_grace_runs_from_when_it_was_due() {
        let policy = DpopNoncePolicy::new()
            .rotate_every(Duration::from_secs(60))
            .previous_accepted_for(Duration::from_secs(10));
        let mut nonces = Nonces::new(policy);
        let first = nonces.current().to_owned();
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(nonces.current(), first);
        tokio::time::advance(Duration::from_secs(5)).await;
        let second = nonces.current().to_owned();
        assert_ne!(second, first);
        assert_eq!(
            nonces.check(Some(&first)),
            Ok(()),
            "due 4 s ago, grace 10 s"
        );
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(nonces.check(Some(&first)), Err(DpopProblem::StaleNonce));

        // Long idle: the nonce seen an hour ago is stale at once.
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(nonces.check(Some(&second)), Err(DpopProblem::StaleNonce));
    }
}
