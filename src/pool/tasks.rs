//! The tasks that carry out `State`'s decisions: name lookups, connects, and
//! the background task that expires idle sockets and requests and checks
//! idle sockets the reactor reported.
//!
//! Every task holds only a `Weak<Shared>`, so none keeps a manager alive,
//! and each ends with it.

use std::sync::{Arc, Weak};

use tokio::time::Instant;

use tokio::net::TcpStream;

use super::happy_eyeballs::{self, Plan};
use super::state::RequestId;
use super::state::{Addrs, LookupId};
use super::{PooledSocket, Shared, Signal};
use crate::config::Config;
use crate::error::Error;
use crate::stream::Stream;
use crate::target::Target;
use crate::trace::event;

/// Looks `host` up for every request waiting on `lookup`.
pub(super) async fn resolve(shared: Weak<Shared>, lookup: LookupId, host: Arc<str>, port: u16) {
    let Some(resolver) = shared.upgrade().map(|s| s.config.resolver.clone()) else {
        return;
    };
    let answer = resolver.resolve(&host, port).await;
    if let Some(shared) = shared.upgrade() {
        let now = Instant::now();
        shared.decide(|state, out| state.resolved(lookup, answer, now, out));
    }
}

/// Connects for `request` to one of `addrs`, with a TLS handshake for
/// `https`.
pub(super) async fn connect(shared: Weak<Shared>, request: RequestId, target: Target, addrs: Addrs) {
    let Some(config) = shared.upgrade().map(|s| s.config.clone()) else {
        return;
    };
    let plan = Plan {
        bind: config.bind_address,
        delay: config.happy_eyeballs_delay,
        tcp: config.tcp,
    };
    event!(DEBUG, target = %target, "connect started");
    #[cfg(feature = "tracing")]
    let started = Instant::now();
    let result = match happy_eyeballs::connect_first(&target, &addrs, plan).await {
        Ok(tcp) => secure(&config, &target, tcp).await,
        Err(e) => Err(e),
    };
    event!(
        DEBUG,
        target = %target,
        elapsed_us = started.elapsed().as_micros() as u64,
        ok = result.is_ok(),
        "connect finished"
    );
    let Some(shared) = shared.upgrade() else {
        return;
    };
    let now = Instant::now();
    shared.decide(|state, out| match result {
        Ok(stream) => {
            let socket = PooledSocket::new(stream, shared.signal.clone());
            state.connected(request, &target, socket, now, out);
        }
        Err(error) => state.connect_failed(request, error, out),
    });
}

/// TLS over the socket for `https` targets; plain TCP for the others.
#[cfg(feature = "tls")]
async fn secure(config: &Config, target: &Target, tcp: TcpStream) -> Result<Stream, Error> {
    if !target.is_tls() {
        return Ok(Stream::Tcp(tcp));
    }
    let tls = config.tls.clone().unwrap_or_else(crate::tls::default_config);
    let stream = crate::tls::handshake(tls, target, tcp).await?;
    Ok(Stream::Tls(Box::new(stream)))
}

/// Plain TCP: `allocate` refuses `https` targets without the `tls` feature.
#[cfg(not(feature = "tls"))]
async fn secure(_: &Config, _: &Target, tcp: TcpStream) -> Result<Stream, Error> {
    Ok(Stream::Tcp(tcp))
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
        wake_at = shared.decide(|state, out| {
            for token in ready {
                state.idle_event(token, now, out);
            }
            state.expire(now, out)
        });
    }
}
