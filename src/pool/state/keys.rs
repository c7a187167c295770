//! A key's life: made the first time a target is asked for, dormant when
//! nothing refers to it (its counts and learned server limit kept), and
//! forgotten once enough newer keys are dormant.

use std::collections::VecDeque;

use super::idle_lists::Ends;
use super::{server_limit, Counts, Handles, Key, State};
use crate::target::Target;

/// How many keys with nothing open or pending are remembered (for
/// `stats_for` and their learned server limits) before the oldest is
/// forgotten, so a crawler's many hosts do not accumulate.
const MAX_DORMANT_KEYS: usize = 1024;

impl<P: Handles> State<P> {
    /// The key index for `target`, created on first use.
    pub(super) fn intern(&mut self, target: &Target) -> usize {
        if let Some(&key) = self.key_index.get(target) {
            if self.keys[key].dormant.take().is_some() {
                self.dormant_count -= 1;
            }
            return key;
        }
        let key = self.keys.insert(Key {
            target: target.clone(),
            dialed: 0,
            open: 0,
            idle: Ends::default(),
            waiters: VecDeque::new(),
            pending: 0,
            eligible: None,
            dormant: None,
            server: server_limit::ServerLimit::default(),
            connecting: 0,
            expect: 1,
            shared: Vec::new(),
            counts: Counts::default(),
            #[cfg(feature = "metrics")]
            meters: super::meters::KeyMeters::new(target, self.name.as_ref()),
            warm: None,
            warm_resolving: 0,
            refresh_at: None,
            #[cfg(feature = "fleet")]
            fleet_wanted: None,
            #[cfg(feature = "fleet")]
            fleet_waiting: VecDeque::new(),
        });
        self.key_index.insert(target.clone(), key);
        key
    }

    /// Turns a key nothing refers to dormant: remembered (its counts and
    /// learned server limit) until [`MAX_DORMANT_KEYS`] newer ones are, so
    /// a crawler's many hosts do not accumulate.
    pub(super) fn forget_key_if_unused(&mut self, key: usize) {
        let k = &mut self.keys[key];
        if k.open != 0 || k.pending != 0 || k.dormant.is_some() || k.warm.is_some() {
            return;
        }
        k.dormant = Some(self.next_dormant);
        self.dormant.push_back((key, self.next_dormant));
        self.next_dormant += 1;
        self.dormant_count += 1;
        if self.dormant.len() > 2 * MAX_DORMANT_KEYS {
            let keys = &self.keys;
            self.dormant
                .retain(|&(key, n)| keys.get(key).is_some_and(|k| k.dormant == Some(n)));
        }
        while self.dormant_count > MAX_DORMANT_KEYS {
            let (key, n) = self
                .dormant
                .pop_front()
                .expect("dormant_count counts its entries");
            if self.keys.get(key).is_some_and(|k| k.dormant == Some(n)) {
                let k = self.keys.remove(key);
                self.key_index.remove(&k.target);
                self.dormant_count -= 1;
            }
        }
    }
}
