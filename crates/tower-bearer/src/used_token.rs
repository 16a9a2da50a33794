//! How the retry layer learns which token the auth layer attached.
//!
//! Two ways. The cheap one, for bodies that can always be replayed: the auth layer's
//! response future marks a 401 with a [`RejectedToken`] (which cache, which generation of
//! its token: no reference counts), the retry layer copies the mark onto the replay, and
//! the auth layer invalidates that generation before attaching a token to the replay. The
//! other, for bodies that may not be replayable (the token must still be invalidated when
//! the 401 goes back to the caller): a [`UsedTokenSlot`] in the request's extensions that
//! the auth layer fills with the token and its cache.

use std::num::NonZeroU64;
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

/// Which token a 401 rejected: on the 401 response (put there by the auth layer), then on
/// the replay request (put there by the retry layer), where the auth layer invalidates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RejectedToken {
    /// The cached entry's generation: unique across all caches of the process, and never
    /// zero, so that `Option<RejectedToken>` is one word.
    pub(crate) generation: NonZeroU64,
}
