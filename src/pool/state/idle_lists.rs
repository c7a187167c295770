//! Intrusive doubly linked lists threaded through a slab.
//!
//! Idle sockets sit on two lists at once: the manager-wide least recently
//! used list (for eviction under `max_open` and keep-alive expiry) and their
//! key's list (for checkout). Both are ordered by the time the socket went
//! idle, oldest first, and every operation is O(1): push at the back, take
//! from the back (most recently used, the likeliest to still be alive) or
//! front, and unlink from the middle when a socket turns out to be stale.

use slab::Slab;

/// Which of the two lists an operation is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Chain {
    /// Every idle socket of the manager.
    Lru = 0,
    /// The idle sockets of one connection key.
    ByKey = 1,
}

/// A node's neighbours on one list.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Links {
    prev: Option<usize>,
    next: Option<usize>,
}

/// The first and last node of one list.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Ends {
    head: Option<usize>,
    tail: Option<usize>,
}

impl Ends {
    /// The oldest node.
    pub(crate) fn head(&self) -> Option<usize> {
        self.head
    }

    /// The newest node.
    pub(crate) fn tail(&self) -> Option<usize> {
        self.tail
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_none()
    }
}

/// A slab entry that can be on both lists.
pub(crate) trait Linked {
    fn links(&mut self) -> &mut [Links; 2];
}

/// The node after `idx` on `chain` (the next newer one).
pub(crate) fn next<T: Linked>(slab: &mut Slab<T>, idx: usize, chain: Chain) -> Option<usize> {
    slab[idx].links()[chain as usize].next
}

/// Appends `idx` at the back of the list `ends`.
pub(crate) fn push_back<T: Linked>(slab: &mut Slab<T>, ends: &mut Ends, idx: usize, chain: Chain) {
    let c = chain as usize;
    slab[idx].links()[c] = Links {
        prev: ends.tail,
        next: None,
    };
    match ends.tail {
        Some(tail) => slab[tail].links()[c].next = Some(idx),
        None => ends.head = Some(idx),
    }
    ends.tail = Some(idx);
}

/// Removes `idx`, which must be on the list `ends`.
pub(crate) fn unlink<T: Linked>(slab: &mut Slab<T>, ends: &mut Ends, idx: usize, chain: Chain) {
    let c = chain as usize;
    let Links { prev, next } = std::mem::take(&mut slab[idx].links()[c]);
    match prev {
        Some(p) => slab[p].links()[c].next = next,
        None => ends.head = next,
    }
    match next {
        Some(n) => slab[n].links()[c].prev = prev,
        None => ends.tail = prev,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Node([Links; 2]);
    impl Linked for Node {
        fn links(&mut self) -> &mut [Links; 2] {
            &mut self.0
        }
    }

    fn order(slab: &mut Slab<Node>, ends: &Ends, chain: Chain) -> Vec<usize> {
        let mut out = vec![];
        let mut at = ends.head();
        while let Some(i) = at {
            out.push(i);
            at = slab[i].links()[chain as usize].next;
        }
        out
    }

    #[test]
    fn two_lists_through_one_slab() {
        let mut slab = Slab::new();
        let (mut lru, mut odd) = (Ends::default(), Ends::default());
        for i in 0..5 {
            let idx = slab.insert(Node(Default::default()));
            push_back(&mut slab, &mut lru, idx, Chain::Lru);
            if i % 2 == 1 {
                push_back(&mut slab, &mut odd, idx, Chain::ByKey);
            }
        }
        assert_eq!(order(&mut slab, &lru, Chain::Lru), [0, 1, 2, 3, 4]);
        assert_eq!(order(&mut slab, &odd, Chain::ByKey), [1, 3]);
        unlink(&mut slab, &mut lru, 3, Chain::Lru);
        unlink(&mut slab, &mut odd, 3, Chain::ByKey);
        unlink(&mut slab, &mut lru, 0, Chain::Lru);
        unlink(&mut slab, &mut lru, 4, Chain::Lru);
        assert_eq!(order(&mut slab, &lru, Chain::Lru), [1, 2]);
        assert_eq!((lru.head(), lru.tail()), (Some(1), Some(2)));
        assert_eq!(order(&mut slab, &odd, Chain::ByKey), [1]);
        unlink(&mut slab, &mut odd, 1, Chain::ByKey);
        assert!(odd.is_empty());
    }
}
