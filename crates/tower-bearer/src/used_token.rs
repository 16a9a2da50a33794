//! How the retry layer learns which token the auth layer attached.
//!
//! Two ways. The cheap one, for bodies that can always be replayed, costs the auth layer
//! nothing per request: cached tokens carry a generation, unique in the process and
//! increasing; the retry layer notes the newest generation when it sends a request, and on
//! a 401 puts a [`RejectedUpTo`] with it on the replay; the auth layer then invalidates its
//! cached token if that token is no newer, which means it is the one that was sent. The
//! other, for bodies that may not be replayable (the token must still be invalidated when
//! the 401 goes back to the caller): a [`UsedTokenSlot`] in the request's extensions that
//! the auth layer fills with the token and its cache.

use std::sync::{Arc, OnceLock};

use crate::{Token, TokenCache};

/// Put into a request's extensions by the retry layer; filled in by the auth layer with the
/// token it attached and the cache it came from, so a 401 can invalidate exactly that token.
#[derive(Clone, Default)]
pub(crate) struct UsedTokenSlot(Arc<OnceLock<UsedToken>>);

pub(crate) struct UsedToken {
    pub(crate) token: Token,
    pub(crate) cache: TokenCache,
}

impl UsedTokenSlot {
    // Out of line: only requests through the retry layer get here, and keeping it out of the
    // auth layer's fresh path leaves room for the header insert to be inlined there.
    #[inline(never)]
    pub(crate) fn record(&self, token: &Token, cache: &TokenCache) {
        let _ = self.0.set(UsedToken {
            token: token.clone(),
            cache: cache.clone(),
        });
    }

    pub(crate) fn get(&self) -> Option<&UsedToken> {
        self.0.get()
    }
}

/// On a replay after a 401 (put there by the retry layer): the rejected token is the cached
/// one if its generation is at most `up_to`, the newest generation any cache had issued
/// when the first attempt was sent. Tokens cached after that have higher generations, so
/// this never invalidates a newer token than the one that was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RejectedUpTo {
    pub(crate) up_to: u64,
}
