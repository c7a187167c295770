//! `refresh_dns`: a key's name looked up again while it has connections,
//! and its connections to addresses that left the answer closed.
//!
//! A key is scheduled when one of its connections is made to a known
//! address (the pool's own dialer says which) of a name; at the time,
//! [`State::expire`] starts a lookup of the name (joining one in flight),
//! unless the key has no connection left, which ends its schedule until
//! the next. Every answer, a refresh's or a request's, replaces the cached
//! one and is checked against the name's connections: an idle one whose
//! address is gone is closed, one on loan is closed as it comes back, a
//! shared one takes no new loan and closes with its last
//! (`Closes::address_gone`). A failed lookup or an empty answer closes
//! nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::time::Instant;

use super::{Actions, CloseReason, Handles, LookupId, State};
use crate::deadline::Deadline;

impl<P: Handles> State<P> {
    /// Schedules `key`'s next lookup, if `refresh_dns` is on, the key
    /// dials a name, and it has none scheduled. Called when one of its
    /// connections is made to a known address.
    pub(super) fn schedule_refresh(&mut self, key: usize, now: Instant, out: &mut Actions<P>) {
        let Some(every) = self.limits.refresh_dns else {
            return;
        };
        let k = &mut self.keys[key];
        if k.refresh_at.is_some() || k.target.dial_literal().is_some() {
            return;
        }
        let Some(at) = Deadline::after(now, every).instant() else {
            return;
        };
        k.refresh_at = Some(at);
        self.refresh_due.insert((at, key));
        self.arm(at, out);
    }

    /// Starts the lookups that are due, rescheduling each key that still
    /// has connections. Returns when the next is due.
    pub(super) fn refresh_names(&mut self, now: Instant, out: &mut Actions<P>) -> Option<Instant> {
        while let Some(&(at, key)) = self.refresh_due.first() {
            if at > now {
                return Some(at);
            }
            self.refresh_due.pop_first();
            let Some(k) = self.keys.get_mut(key).filter(|k| k.refresh_at == Some(at)) else {
                continue; // a key forgotten since
            };
            k.refresh_at = None;
            if k.open > 0 {
                let endpoint = k.target.dial_endpoint();
                let (host, port) = (endpoint.host.clone(), endpoint.port);
                self.refresh_lookup(key, host, port, out);
                self.schedule_refresh(key, now, out);
            }
        }
        None
    }

    /// A lookup of `host` that bypasses the cache: the one in flight, if
    /// any (kept until it answers even if its requests leave), else a new
    /// one with no request waiting.
    fn refresh_lookup(&mut self, key: usize, host: Arc<str>, port: u16, out: &mut Actions<P>) {
        if let Some(&lid) = self.lookup_index.get(&(host.clone(), port)) {
            self.lookups[lid.index].refresh = true;
            return;
        }
        let lid: LookupId = self.new_lookup(host, port, Vec::new(), key, out);
        self.lookups[lid.index].refresh = true;
    }

    /// A fresh answer for `host`: `key`s that dial it close their
    /// connections to addresses no longer in it.
    pub(super) fn addresses_answered(
        &mut self,
        host: &str,
        port: u16,
        addrs: &[SocketAddr],
        out: &mut Actions<P>,
    ) {
        if self.limits.refresh_dns.is_none() {
            return;
        }
        let dials = |t: &crate::target::Target| {
            let e = t.dial_endpoint();
            &*e.host == host && e.port == port
        };
        let gone: Vec<usize> = self
            .sockets
            .iter()
            .filter(|(_, e)| e.peer.is_some_and(|p| !addrs.iter().any(|a| a.ip() == p.ip())))
            .filter(|(_, e)| !e.gone && dials(&self.keys[e.key].target))
            .map(|(idx, _)| idx)
            .collect();
        for idx in gone {
            self.address_gone(idx, out);
        }
    }

    /// Socket `idx`'s address is gone: closed now if idle, else marked to
    /// close as it comes back (a shared one takes no new loan).
    fn address_gone(&mut self, idx: usize, out: &mut Actions<P>) {
        if self.sockets[idx].idle.is_some() {
            let (socket, _) = self.unidle(idx);
            self.close(idx, socket, CloseReason::AddressGone, out);
            return;
        }
        self.sockets[idx].gone = true;
        if self.sockets[idx].kept.is_some() {
            self.retire(idx, CloseReason::AddressGone);
        }
    }
}
