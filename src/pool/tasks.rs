//! The tasks that carry out `State`'s decisions: name lookups, connects, and
//! the background task that expires idle sockets and requests and checks
//! idle sockets the reactor reported.
//!
//! Every task holds only a `Weak<Shared>`, so none keeps a manager alive,
//! and each ends with it.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Weak};

use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use super::state::{Addrs, LookupId};
use super::{PooledSocket, Shared, Signal};
use crate::allocation::RequestId;
use crate::error::Error;
use crate::stream::Stream;
use crate::target::Target;

/// Looks `host` up for every request waiting on `lookup`.
pub(super) async fn resolve(shared: Weak<Shared>, lookup: LookupId, host: Arc<str>, port: u16) {
    let Some(resolver) = shared.upgrade().map(|s| s.config.resolver.clone()) else {
        return;
    };
    let answer = resolver.resolve(&host, port).await;
    if let Some(shared) = shared.upgrade() {
        shared.act(|state, out| state.resolved(lookup, answer, out));
    }
}

/// Connects for `request`, trying `addrs` in order.
pub(super) async fn connect(shared: Weak<Shared>, request: RequestId, target: Target, addrs: Addrs) {
    let Some(bind) = shared.upgrade().map(|s| s.config.bind_address) else {
        return;
    };
    let result = connect_any(&target, &addrs, bind).await;
    let Some(shared) = shared.upgrade() else {
        return;
    };
    let now = Instant::now();
    shared.act(|state, out| match result {
        Ok(tcp) => {
            let socket = PooledSocket::new(Stream::Tcp(tcp), shared.signal.clone());
            state.connected(request, &target, socket, now, out);
        }
        Err(error) => state.connect_failed(request, error, out),
    });
}

/// The first address that accepts, or the first failure.
async fn connect_any(
    target: &Target,
    addrs: &[SocketAddr],
    bind: Option<IpAddr>,
) -> Result<TcpStream, Error> {
    let candidates = addrs
        .iter()
        .filter(|a| bind.is_none_or(|b| b.is_ipv4() == a.is_ipv4()));
    let mut first_error = None;
    for &addr in candidates {
        match connect_one(addr, bind).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => {
                first_error.get_or_insert((addr, e));
            }
        }
    }
    let (addr, source) = first_error.map_or_else(
        || {
            let why = format!("no address in the family of the bind address {bind:?}");
            (None, io::Error::new(io::ErrorKind::AddrNotAvailable, why))
        },
        |(a, e)| (Some(a), e),
    );
    Err(Error::Connect {
        target: target.to_string(),
        addr,
        source: Arc::new(source),
    })
}

async fn connect_one(addr: SocketAddr, bind: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(ip) = bind {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let tcp = socket.connect(addr).await?;
    // Request/response protocols lose a round trip to Nagle's algorithm.
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// The background task: sleeps until the next keep-alive expiry or request
/// deadline, or until an idle socket reports an event, and lets `State`
/// act on it. Ends when the manager's shared state is dropped.
pub(super) async fn drive(shared: Weak<Shared>, signal: Arc<Signal>) {
    let mut wake_at = None;
    loop {
        match wake_at {
            Some(at) => tokio::select! {
                () = signal.notify.notified() => {}
                () = tokio::time::sleep_until(at) => {}
            },
            None => signal.notify.notified().await,
        }
        if signal.is_closed() {
            return;
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let ready = signal.take_ready();
        let now = Instant::now();
        wake_at = shared.act(|state, out| {
            for token in ready {
                state.idle_event(token, out);
            }
            state.expire(now, out)
        });
    }
}
