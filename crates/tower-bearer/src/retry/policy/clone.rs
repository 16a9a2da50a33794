use super::ReplayPolicy;

/// Replays `Clone` bodies by cloning them before the first send. The default.
#[derive(Clone, Copy, Debug, Default)]
pub struct CloneBody;

impl<B: Clone> ReplayPolicy<B> for CloneBody {
    type Body = B;
    type Saved = B;

    fn prepare(&self, body: B) -> (B, B) {
        (body.clone(), body)
    }

    fn replay(&self, saved: B) -> Option<B> {
        Some(saved)
    }
}
