//! What `State` is given: its limits, the types of the handles it holds
//! (sockets, responders, tasks) and what it needs of them, new requests,
//! and what a loan learned of its socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::deadline::Deadline;
pub(crate) use crate::pooled::Health;

/// The concrete types `State` works with.
pub(crate) trait Handles {
    /// A connected socket.
    type Socket: Poolable;
    /// The sending half that completes one request.
    type Responder;
    /// A handle to an in-flight lookup or connect task, to abort it.
    type Task: Staged;
}

/// What an in-flight task can say about where it is, for a timeout's
/// error.
pub(crate) trait Staged {
    /// Whether a tunnel is being opened now: a timeout is then the proxy
    /// step's ([`Error::function`](crate::Error::function) `"proxy"`).
    fn in_proxy(&self) -> bool {
        false
    }
}

/// What the pool needs to know about a socket.
pub(crate) trait Poolable {
    /// What the kernel knows right now, without waiting for the runtime to
    /// notice: used whenever a socket is handed out.
    fn check(&mut self) -> Health;
    /// Like `check`, and arranges for `token` to reach
    /// [`State::idle_event`] when the socket becomes readable while idle.
    fn watch(&mut self, token: u64) -> Health;
    /// A handle for one more loan of a shared object, which stops
    /// reporting idle events: `None` for an object lent whole.
    fn share(&mut self) -> Option<Self>
    where
        Self: Sized;
    /// How many loans a shared object may serve at once now.
    fn capacity(&self) -> usize;
    /// Whether this is a handle of a shared object (its loan's end is
    /// [`State::end_share`]), not the object itself.
    fn is_share(&self) -> bool;
}

/// What a `Connection` learned about its socket while on loan, handed
/// back with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Hints {
    /// `Connection::set_remaining_uses`: hand it out at most this many more
    /// times.
    pub(crate) remaining_uses: Option<u32>,
    /// `Connection::set_server_idle_timeout`: the server closes it after
    /// this long idle.
    pub(crate) server_idle_timeout: Option<Duration>,
}

/// What the pool's own dialer says of a socket it made: the address it
/// reached (for `refresh_dns`), and a second descriptor of it when the
/// pool lends the stream itself (for a drain to shut it down under its
/// user); both `None` for other transports.
#[derive(Debug, Default)]
pub(crate) struct Dialed {
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) handle: Option<std::os::fd::OwnedFd>,
}

/// The addresses a request connects to, in order of preference.
pub(crate) type Addrs = Arc<[SocketAddr]>;

/// The pool's limits, from the builder.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) max_per_host: usize,
    pub(crate) max_open: usize,
    pub(crate) keep_alive: Duration,
    pub(crate) max_queued: usize,
    /// How long positive lookup answers are kept; `None`: not at all.
    pub(crate) dns_ttl: Option<Duration>,
    /// A socket older than this (from its connect) is not handed out again.
    pub(crate) max_lifetime: Option<Duration>,
    /// Each socket's lifetime is shortened by up to this fraction of
    /// `max_lifetime`, drawn from `jitter_seed` and its generation.
    pub(crate) max_lifetime_jitter: f64,
    pub(crate) jitter_seed: u64,
    /// Learn each key's server idle limit from the closes it makes.
    pub(crate) learn_idle_timeouts: bool,
    /// New connections of a key take the resolved addresses in turn.
    pub(crate) spread_addresses: bool,
    /// How often a key with connections has its name looked up again.
    pub(crate) refresh_dns: Option<Duration>,
}

impl Limits {
    /// The lifetime of the socket of `generation`: `max_lifetime`
    /// shortened by a part drawn uniformly from 0 to `max_lifetime_jitter`
    /// of it, from the manager's seed and the generation (splitmix64), so
    /// that the decision is still a function of the state.
    pub(crate) fn lifetime(&self, generation: u32) -> Option<Duration> {
        let max = self.max_lifetime?;
        if self.max_lifetime_jitter <= 0.0 {
            return Some(max);
        }
        let unit = draw(self.jitter_seed, u64::from(generation));
        Some(max.mul_f64(1.0 - self.max_lifetime_jitter * unit))
    }
}

/// A number in 0..1, uniform, the same for the same `seed` and `n`
/// (splitmix64): the state's random draws stay functions of its inputs.
pub(crate) fn draw(seed: u64, n: u64) -> f64 {
    let mut z = seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// `addrs` with each family's addresses rotated left by `k` modulo their
/// number, each family keeping its places in the order, so that Happy
/// Eyeballs' interleaving and fallback go on in the rotated order.
pub(crate) fn rotated(addrs: &Addrs, k: usize) -> Addrs {
    let family =
        |v6: bool| -> Vec<SocketAddr> { addrs.iter().filter(|a| a.is_ipv6() == v6).copied().collect() };
    let (v6, v4) = (family(true), family(false));
    let (mut i6, mut i4) = (0, 0);
    let mut next = |a: &SocketAddr| {
        let (list, i) = match a.is_ipv6() {
            true => (&v6, &mut i6),
            false => (&v4, &mut i4),
        };
        let picked = list[(*i + k) % list.len()];
        *i += 1;
        picked
    };
    addrs.iter().map(&mut next).collect()
}

/// A new request, as `allocate` hands it over.
pub(crate) struct NewRequest<P: Handles> {
    pub(crate) responder: P::Responder,
    /// When `allocate` was called.
    pub(crate) now: Instant,
    pub(crate) deadline: Deadline,
    pub(crate) timeout: Duration,
    /// `None` when the host is a name that must be looked up first.
    pub(crate) addrs: Option<Addrs>,
    /// How many loans a connection of this key is expected to serve at
    /// once, until one has connected (`Protocol::expected_capacity`).
    pub(crate) expect: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_lifetime: Option<Duration>, jitter: f64) -> Limits {
        Limits {
            max_per_host: 4,
            max_open: 128,
            keep_alive: Duration::from_secs(15),
            max_queued: usize::MAX,
            dns_ttl: None,
            max_lifetime,
            max_lifetime_jitter: jitter,
            jitter_seed: 42,
            learn_idle_timeouts: true,
            spread_addresses: false,
            refresh_dns: None,
        }
    }

    #[test]
    fn each_family_is_rotated_in_its_own_places() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let addrs: Addrs = [
            a("[::1]:80"),
            a("127.0.0.1:80"),
            a("[::2]:80"),
            a("127.0.0.2:80"),
            a("127.0.0.3:80"),
        ]
        .into();
        let at = |k| rotated(&addrs, k).to_vec();
        assert_eq!(at(0), addrs.to_vec());
        assert_eq!(
            at(1),
            [
                a("[::2]:80"),
                a("127.0.0.2:80"),
                a("[::1]:80"),
                a("127.0.0.3:80"),
                a("127.0.0.1:80")
            ]
        );
        assert_eq!(
            at(3),
            [
                a("[::2]:80"),
                a("127.0.0.1:80"),
                a("[::1]:80"),
                a("127.0.0.2:80"),
                a("127.0.0.3:80")
            ]
        );
    }

    #[test]
    fn lifetimes_spread_over_the_jitter_and_no_further() {
        let max = Duration::from_secs(100);
        let l = limits(Some(max), 0.25);
        let lives: Vec<Duration> = (0..2000).map(|g| l.lifetime(g).unwrap()).collect();
        let (lo, hi) = (Duration::from_secs(75), max);
        assert!(lives.iter().all(|d| (lo..=hi).contains(d)));
        assert!(lives.iter().min().unwrap() < &Duration::from_secs(76));
        assert!(lives.iter().max().unwrap() > &Duration::from_secs(99));
        let mean = lives.iter().map(Duration::as_secs_f64).sum::<f64>() / lives.len() as f64;
        assert!((mean - 87.5).abs() < 1.0, "uniform: mean {mean}");
        // Each socket its own draw, the same one every time it is asked.
        assert_ne!(l.lifetime(1), l.lifetime(2));
        assert_eq!(l.lifetime(7), l.lifetime(7));
    }

    #[test]
    fn no_jitter_or_no_lifetime_is_as_before() {
        let max = Duration::from_secs(100);
        assert_eq!(limits(Some(max), 0.0).lifetime(3), Some(max));
        assert_eq!(limits(None, 0.5).lifetime(3), None);
    }
}
