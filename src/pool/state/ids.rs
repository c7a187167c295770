//! The ids `State` hands out: a request's (public, for `deallocate`), a
//! socket's (its readiness token) and a lookup's, each with a generation
//! so that a stale id is not confused with a later occupant of its slot.

/// Identifies one request, for [`Manager::deallocate`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let manager = keepalive::Manager::new();
/// let a = manager.allocate(keepalive::Target::new("http", "127.0.0.1", 9));
/// let b = manager.allocate(keepalive::Target::new("http", "127.0.0.1", 9));
/// assert_ne!(a.id(), b.id());
/// # }
/// ```
///
/// [`Manager::deallocate`]: crate::Manager::deallocate
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(u64);

/// Slot number of requests the pool never stored.
pub(crate) const NO_SLOT: usize = u32::MAX as usize;

impl RequestId {
    /// The id of a request that failed before the pool saw it.
    pub(crate) const NONE: RequestId = RequestId(NO_SLOT as u64);

    /// The id for the pool's request slot `slot`: the slot in the low half,
    /// a generation in the high half, so that an id is not confused with a
    /// later request in the same slot.
    pub(crate) fn new(slot: usize, generation: u32) -> RequestId {
        let slot = u32::try_from(slot).unwrap_or(u32::MAX);
        RequestId((u64::from(generation) << 32) | u64::from(slot))
    }

    pub(crate) fn slot(self) -> usize {
        self.0 as u32 as usize
    }

    pub(crate) fn raw(self) -> u64 {
        self.0
    }

    pub(crate) fn from_raw(raw: u64) -> RequestId {
        RequestId(raw)
    }
}

/// A socket's place in the pool: its slab index and a generation, so that
/// a stale readiness report for a reused index is recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SocketId {
    pub(super) index: u32,
    pub(super) generation: u32,
}

impl SocketId {
    /// The value a socket's readiness report carries.
    pub(crate) fn token(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    pub(super) fn from_token(token: u64) -> SocketId {
        SocketId {
            index: token as u32,
            generation: (token >> 32) as u32,
        }
    }
}

/// A name lookup's place in the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LookupId {
    pub(super) index: usize,
    pub(super) generation: u32,
}
