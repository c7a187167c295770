//! Positive name-lookup answers kept for `Builder::dns_ttl`. Errors are
//! never kept, so a name that failed is looked up again at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::inputs::Addrs;
use crate::deadline::Deadline;

/// Answers by (host, port), each with the time it expires.
#[derive(Debug)]
pub(crate) struct DnsCache {
    /// `None`: caching is off.
    ttl: Option<Duration>,
    answers: HashMap<(Arc<str>, u16), (Addrs, Deadline)>,
    /// Expired entries are swept when the map grows to this size, so a
    /// crawler's many names do not accumulate; amortised O(1).
    sweep_at: usize,
}

/// The fewest entries at which a sweep is worth it.
const MIN_SWEEP: usize = 64;

impl DnsCache {
    pub(crate) fn new(ttl: Option<Duration>) -> DnsCache {
        DnsCache {
            ttl,
            answers: HashMap::new(),
            sweep_at: MIN_SWEEP,
        }
    }

    /// A fresh answer for `host` and `port`, if one is kept.
    pub(crate) fn get(&self, host: &Arc<str>, port: u16, now: Instant) -> Option<Addrs> {
        self.ttl?;
        let (addrs, expires) = self.answers.get(&(host.clone(), port))?;
        (!expires.is_reached(now)).then(|| addrs.clone())
    }

    /// Keeps a positive answer, when caching is on.
    pub(crate) fn insert(&mut self, host: Arc<str>, port: u16, addrs: Addrs, now: Instant) {
        let Some(ttl) = self.ttl else {
            return;
        };
        if self.answers.len() >= self.sweep_at {
            self.answers.retain(|_, (_, expires)| !expires.is_reached(now));
            self.sweep_at = (self.answers.len() * 2).max(MIN_SWEEP);
        }
        self.answers
            .insert((host, port), (addrs, Deadline::after(now, ttl)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn addrs() -> Addrs {
        Arc::from([SocketAddr::from(([127, 0, 0, 1], 80))])
    }

    #[test]
    fn answers_expire_after_the_ttl_and_are_swept() {
        let now = Instant::now();
        let mut cache = DnsCache::new(Some(Duration::from_secs(10)));
        let host: Arc<str> = "a.example".into();
        cache.insert(host.clone(), 80, addrs(), now);
        assert!(cache.get(&host, 80, now + Duration::from_secs(9)).is_some());
        assert!(cache.get(&host, 81, now).is_none(), "keyed by port too");
        assert!(cache.get(&host, 80, now + Duration::from_secs(10)).is_none());
        let later = now + Duration::from_secs(11);
        for i in 0..MIN_SWEEP {
            cache.insert(format!("h{i}.example").into(), 80, addrs(), later);
        }
        assert_eq!(cache.answers.len(), MIN_SWEEP, "the expired entry was swept");
    }

    #[test]
    fn nothing_is_kept_when_caching_is_off() {
        let now = Instant::now();
        let mut cache = DnsCache::new(None);
        cache.insert("a.example".into(), 80, addrs(), now);
        assert!(cache.get(&"a.example".into(), 80, now).is_none());
        assert!(cache.answers.is_empty());
    }
}
