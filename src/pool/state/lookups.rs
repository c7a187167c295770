//! Name lookups: one per name at a time, shared by every request that
//! waits for it, and its answer for each of them.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::time::Instant;

use super::{Action, Actions, Addrs, Handles, Lookup, LookupId, Phase, RequestId, State};
use crate::error::Error;

impl<P: Handles> State<P> {
    /// A lookup's answer, for every request waiting on it.
    pub(crate) fn resolved(
        &mut self,
        lookup: LookupId,
        answer: std::io::Result<Vec<SocketAddr>>,
        now: Instant,
        out: &mut Actions<P>,
    ) {
        let Some(l) = self
            .lookups
            .get(lookup.index)
            .filter(|l| l.generation == lookup.generation)
        else {
            return;
        };
        self.lookup_index.remove(&(l.host.clone(), l.port));
        let l = self.lookups.remove(lookup.index);
        match answer {
            Ok(addrs) if !addrs.is_empty() => self.lookup_answered(l, addrs.into(), now, out),
            Ok(_) => {
                let error = Error::NoAddress {
                    host: l.host.to_string(),
                    detail: String::new(),
                };
                self.lookup_failed(l, &error, now, out);
            }
            Err(e) => {
                let error = Error::Resolve {
                    host: l.host.to_string(),
                    source: Arc::new(e),
                };
                self.lookup_failed(l, &error, now, out);
            }
        }
        self.serve_waiters(out);
    }

    /// Every request waiting on lookup `l` goes on with its addresses,
    /// which are kept for `dns_ttl`.
    fn lookup_answered(&mut self, l: Lookup<P>, addrs: Addrs, now: Instant, out: &mut Actions<P>) {
        self.dns_cache.insert(l.host.clone(), l.port, addrs.clone(), now);
        self.addresses_answered(&l.host, l.port, &addrs, out);
        for id in l.waiting {
            self.left_resolving(id);
            self.requests[id.slot()].phase = Phase::Queued(addrs.clone());
            self.place(id, now, out);
        }
    }

    /// Every request waiting on lookup `l` fails with `error`.
    fn lookup_failed(&mut self, l: Lookup<P>, error: &Error, now: Instant, out: &mut Actions<P>) {
        for id in l.waiting {
            self.left_resolving(id);
            let req = self.finish(id);
            self.failed(req, error.clone(), now, out);
        }
    }

    pub(super) fn join_lookup(
        &mut self,
        host: Arc<str>,
        port: u16,
        id: RequestId,
        key: usize,
        out: &mut Actions<P>,
    ) -> LookupId {
        if let Some(&lid) = self.lookup_index.get(&(host.clone(), port)) {
            self.lookups[lid.index].waiting.push(id);
            return lid;
        }
        self.new_lookup(host, port, vec![id], key, out)
    }

    /// Starts a lookup of `host` for `waiting`, counted for `key`.
    pub(super) fn new_lookup(
        &mut self,
        host: Arc<str>,
        port: u16,
        waiting: Vec<RequestId>,
        key: usize,
        out: &mut Actions<P>,
    ) -> LookupId {
        self.next_generation = self.next_generation.wrapping_add(1);
        let lid = LookupId {
            index: self.lookups.insert(Lookup {
                generation: self.next_generation,
                host: host.clone(),
                port,
                waiting,
                task: None,
                refresh: false,
            }),
            generation: self.next_generation,
        };
        self.lookup_index.insert((host.clone(), port), lid);
        self.counts.dns_lookups += 1;
        self.keys[key].counts.dns_lookups += 1;
        out.push(Action::Resolve {
            lookup: lid,
            host,
            port,
        });
        lid
    }

    /// Drops `id`'s interest in a lookup; the last one out aborts it.
    pub(super) fn leave_lookup(&mut self, lid: LookupId, id: RequestId, out: &mut Actions<P>) {
        let l = &mut self.lookups[lid.index];
        l.waiting.retain(|w| *w != id);
        if l.waiting.is_empty() && !l.refresh {
            let l = self.lookups.remove(lid.index);
            self.lookup_index.remove(&(l.host, l.port));
            out.list.extend(l.task.map(Action::Abort));
        }
    }
}
