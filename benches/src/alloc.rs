//! A global allocator that counts allocations, to show the fresh path allocates nothing
//! beyond what the no-op baseline does.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    /// This thread's allocations: other threads (the test harness's, a runtime's) allocate
    /// whenever they like, so a process-wide count compared exactly is flaky.
    static ON_THIS_THREAD: Cell<u64> = const { Cell::new(0) };
}

/// Counts one allocation, in all threads and in this one.
fn count(all: &AtomicU64) {
    all.fetch_add(1, Ordering::Relaxed);
    // `try_with`: during a thread's teardown the slot may be gone; nothing to count then.
    let _ = ON_THIS_THREAD.try_with(|here| here.set(here.get() + 1));
}

/// Counts every allocation made through it, then hands it to the system allocator.
///
/// Install it in a test or bench binary with
/// `#[global_allocator] static ALLOC: Counting = Counting::new();`.
#[derive(Debug)]
pub struct Counting {
    allocations: AtomicU64,
}

impl Counting {
    /// A counter at zero.
    pub const fn new() -> Self {
        Counting {
            allocations: AtomicU64::new(0),
        }
    }

    /// Allocations so far, in all threads.
    pub fn allocations(&self) -> u64 {
        self.allocations.load(Ordering::Relaxed)
    }

    /// Allocations so far made by the calling thread.
    pub fn allocations_on_this_thread(&self) -> u64 {
        ON_THIS_THREAD.with(Cell::get)
    }
}

impl Default for Counting {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the contract; the
// counter has no effect on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(&self.allocations);
        // SAFETY: same layout, same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout, via `alloc` above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(&self.allocations);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(&self.allocations);
        // SAFETY: `ptr` and `layout` are as `System` handed them out; the caller upholds
        // the rest.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
