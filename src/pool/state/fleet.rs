//! The fleet's part in the state (feature `fleet`): what a connect's
//! admission cost, and an idle socket given up for another member.
//!
//! The fleet's room itself is taken by the connect step, which holds the
//! request's local room (it counts as connecting) while it waits, so the
//! local limits hold as they are; the state only counts and closes.
//! Pure data like the rest of the state, so the model test covers it in
//! every build; only the `fleet` feature calls it.
#![cfg_attr(not(feature = "fleet"), allow(dead_code))]

use std::time::Duration;

use tokio::time::Instant;

use super::{Actions, CloseReason, Handles, RequestId, State};
use crate::target::Target;

/// How long another member's demand for a key lasts when this manager
/// has no idle socket for it: its waiters ask again every 500 ms.
pub(crate) const WANTED_FOR: Duration = Duration::from_secs(1);

impl<P: Handles> State<P> {
    /// Counts how `request`'s connect was admitted by the fleet: after a
    /// wait of `waited`, and without Redis when `bypassed`.
    pub(crate) fn fleet_admitted(&mut self, request: RequestId, waited: Option<Duration>, bypassed: bool) {
        let Some(slot) = self.live_request(request) else {
            return;
        };
        let key = self.requests[slot].key;
        for counts in [&mut self.counts, &mut self.keys[key].counts] {
            if let Some(waited) = waited {
                counts.fleet_waits += 1;
                counts.fleet_wait_time += waited;
            }
            counts.fleet_bypassed += u64::from(bypassed);
        }
    }

    /// Another member of the fleet waits for `target`'s key: closes the
    /// key's oldest idle socket, or, with none idle, the next one returned
    /// within [`WANTED_FOR`] (instead of keeping it, or handing it to a
    /// later waiter of this manager). Returns whether one was closed now.
    pub(crate) fn release_idle(&mut self, target: &Target, now: Instant, out: &mut Actions<P>) -> bool {
        let Some(&key) = self.key_index.get(target) else {
            return false;
        };
        let Some(idx) = self.keys[key].idle.head() else {
            if self.keys[key].open > 0 {
                self.keys[key].fleet_wanted = Some(now + WANTED_FOR);
            }
            return false;
        };
        let (socket, _) = self.unidle(idx);
        self.close(idx, socket, CloseReason::FleetReleased, out);
        self.serve_waiters(out);
        true
    }
}
