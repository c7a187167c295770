//! The tasks that carry out `State`'s decisions: name lookups, connects, and
//! the background task that expires idle sockets and requests and checks
//! idle sockets the reactor reported.
//!
//! Every task holds only a `Weak<Shared>`, so none keeps a manager alive,
//! and each ends with it.

use std::sync::{Arc, Weak};

use tokio::time::Instant;

use super::pipeline::Dialing;
use super::state::{Dialed, LookupId, RequestId};
use super::{Make, Shared, Signal, Watched};
use crate::error::Error;
use crate::pooled::Pooled;
#[cfg(feature = "fleet")]
use crate::target::Target;
use crate::trace::event;

/// Looks `host` up for every request waiting on `lookup`.
pub(super) async fn resolve<C: Pooled>(shared: Weak<Shared<C>>, lookup: LookupId, host: Arc<str>, port: u16) {
    let Some(resolver) = shared.upgrade().map(|s| s.config.resolver.clone()) else {
        return;
    };
    let answer = resolver.resolve(&host, port).await;
    if let Some(shared) = shared.upgrade() {
        let now = Instant::now();
        shared.decide(|state, out| state.resolved(lookup, answer, now, out));
    }
}

/// Makes an object for `request`: the transport's stream to the target,
/// then the protocol step on it (after a slot of the fleet, for a member
/// of one).
pub(super) async fn connect<C: Pooled>(shared: Weak<Shared<C>>, request: RequestId, dialing: Dialing) {
    let Some(maker) = shared.upgrade().map(|s| s.maker.clone()) else {
        return;
    };
    let target = &dialing.target;
    event!(DEBUG, target = %target, "connect started");
    #[cfg(feature = "fleet")]
    let Some(slot) = admitted(&shared, request, target).await
    else {
        return;
    };
    let result = make(&*maker, &dialing).await;
    let Some(shared) = shared.upgrade() else {
        return;
    };
    let now = Instant::now();
    shared.decide(|state, out| match result {
        Ok(object) => {
            let socket = Watched::new(object, shared.signal.clone());
            #[cfg(feature = "fleet")]
            let socket = socket.with_slot(slot);
            let dialed = Dialed {
                peer: dialing.progress.dialed(),
                handle: dialing.progress.take_handle(),
            };
            state.connected(request, target, (socket, dialed), now, out);
        }
        Err(error) => state.connect_failed(request, error, now, out),
    });
}

/// The object, or why it could not be made; timed for tracing.
async fn make<C: Pooled>(maker: &dyn Make<C>, dialing: &Dialing) -> Result<C, Error> {
    #[cfg(feature = "tracing")]
    let started = Instant::now();
    let result = maker.make(dialing).await;
    event!(
        DEBUG,
        target = %dialing.target,
        elapsed_us = started.elapsed().as_micros() as u64,
        ok = result.is_ok(),
        "connect finished"
    );
    result
}

/// [`admit`], with its failure reported as the request's: `None` when the
/// connect must not go on.
#[cfg(feature = "fleet")]
async fn admitted<C: Pooled>(
    shared: &Weak<Shared<C>>,
    request: RequestId,
    target: &Target,
) -> Option<Option<crate::fleet::Slot>> {
    match admit(shared, request, target).await {
        Ok(slot) => Some(slot),
        Err(error) => {
            if let Some(shared) = shared.upgrade() {
                let now = Instant::now();
                shared.decide(|state, out| state.connect_failed(request, error, now, out));
            }
            None
        }
    }
}

/// A slot of the fleet for `request`'s connect, when the manager is a
/// member of one: it may wait (the request counts as connecting), and
/// comes back when the connection closes, or at once if the connect fails.
#[cfg(feature = "fleet")]
async fn admit<C: Pooled>(
    shared: &Weak<Shared<C>>,
    request: RequestId,
    target: &Target,
) -> Result<Option<crate::fleet::Slot>, Error> {
    let Some(member) = shared.upgrade().and_then(|s| s.fleet.clone()) else {
        return Ok(None);
    };
    // A socket of the key returned while this waits can serve it instead.
    let on_wait = || {
        if let Some(shared) = shared.upgrade() {
            shared.decide(|state, _| state.fleet_waiting(request));
        }
    };
    let admission = member?.admit(target, on_wait).await?;
    if admission.waited.is_some() || admission.bypassed {
        if let Some(shared) = shared.upgrade() {
            let (waited, bypassed) = (admission.waited, admission.bypassed);
            shared.decide(|state, out| state.fleet_admitted(request, waited, bypassed, out));
        }
    }
    Ok(Some(admission.slot))
}

/// The background task: sleeps until the next keep-alive expiry or request
/// deadline, or until an idle socket reports an event, and lets `State`
/// act on it. Ends when the manager's shared state is dropped.
pub(super) async fn drive<C: Pooled>(shared: Weak<Shared<C>>, signal: Arc<Signal>) {
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
