//! How the retry layer learns which token the auth layer attached.

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
