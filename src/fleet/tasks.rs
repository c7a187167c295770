//! A fleet member's two tasks: the keeper (renews the heartbeat every
//! third of the lease, sends the releases in batches, puts the slots back
//! when Redis lost them, and leaves the fleet at the end) and the
//! listener (the `freed` and `wanted` channels). Both end when the member
//! is dropped or leaves.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::membership::{within, Membership, CALL_TIMEOUT, MAX_BATCH, RETRY};
use crate::lock::lock;
use crate::trace::event;

/// Renews the heartbeat every third of the lease, sends releases as they
/// come, and puts the slots back when Redis lost them.
pub(super) async fn keep(inner: Arc<Membership>, mut releases: mpsc::UnboundedReceiver<(Arc<str>, u64)>) {
    let period = inner.fleet.lease / 3;
    let mut next_renewal = Instant::now();
    loop {
        if inner.closed.load(Ordering::Acquire) {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep_until(next_renewal) => {
                next_renewal = Instant::now() + period;
                renew(&inner).await;
            }
            release = releases.recv() => match release {
                Some(first) => send_releases(&inner, &batch(first, &mut releases)).await,
                None => break,
            },
            () = inner.shutdown.notified() => break,
        }
    }
    leave(&inner, releases).await;
}

/// `first` and the releases queued behind it, `MAX_BATCH` at most.
fn batch(
    first: (Arc<str>, u64),
    releases: &mut mpsc::UnboundedReceiver<(Arc<str>, u64)>,
) -> Vec<(Arc<str>, u64)> {
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match releases.try_recv() {
            Ok(release) => batch.push(release),
            Err(_) => break,
        }
    }
    batch
}

/// Leaves the fleet: what is left to release, then the heartbeat, so the
/// others need not wait for the lease.
async fn leave(inner: &Membership, mut releases: mpsc::UnboundedReceiver<(Arc<str>, u64)>) {
    let mut rest = Vec::new();
    while let Ok(release) = releases.try_recv() {
        rest.push(release);
    }
    for batch in rest.chunks(MAX_BATCH) {
        send_releases(inner, batch).await;
    }
    let mut redis = inner.redis.clone();
    let _ = within(
        redis::cmd("DEL")
            .arg(&inner.heartbeat)
            .query_async::<i64>(&mut redis),
    )
    .await;
}

/// Gives slots back, or takes tokens out of the queue (whichever each
/// had), in one round trip for the whole batch, and wakes the waiters of
/// each key.
async fn send_releases(inner: &Membership, batch: &[(Arc<str>, u64)]) {
    let mut pipe = redis::pipe();
    let mut keys = std::collections::BTreeSet::new();
    for (key, token) in batch {
        let token = inner.token_name(*token);
        pipe.cmd("HDEL").arg(inner.key("slots", key)).arg(&token).ignore();
        pipe.cmd("ZREM").arg(inner.key("queue", key)).arg(&token).ignore();
        pipe.cmd("HDEL")
            .arg(inner.key("waiters", key))
            .arg(&token)
            .ignore();
        keys.insert(key.clone());
    }
    for key in keys {
        pipe.cmd("PUBLISH")
            .arg(format!("{}:freed", inner.ns))
            .arg(&*key)
            .ignore();
    }
    let mut redis = inner.redis.clone();
    match within(pipe.query_async::<()>(&mut redis)).await {
        Ok(()) => inner.reached(),
        // Redis lost them, or will expire them with the heartbeat: either
        // way the slots stop counting.
        Err(error) => inner.unreachable(&error),
    }
}

pub(super) async fn renew(inner: &Membership) {
    let started = Instant::now();
    let lease_ms = u64::try_from(inner.fleet.lease.as_millis()).unwrap_or(u64::MAX);
    let mut redis = inner.redis.clone();
    let mut call = inner.renew.prepare_invoke();
    call.key(&inner.heartbeat).arg(lease_ms);
    match within(call.invoke_async::<i64>(&mut redis)).await {
        Ok(existed) => {
            inner.reached();
            *lock(&inner.lease_ok_until) = Some(started + inner.fleet.lease);
            // Gone (expired, or Redis restarted empty), or slots taken
            // while Redis was away: put them back.
            if existed == 0 || inner.dirty.swap(false, Ordering::Relaxed) {
                restore(inner).await;
            }
        }
        Err(error) => inner.unreachable(&error),
    }
}

/// Puts every slot this member holds back into Redis (after a restart, a
/// lapse of the lease, or connections opened while it was away).
async fn restore(inner: &Membership) {
    let held: Vec<(u64, Arc<str>)> = lock(&inner.held).iter().map(|(t, k)| (*t, k.clone())).collect();
    if held.is_empty() {
        return;
    }
    let mut pipe = redis::pipe();
    for (token, key) in &held {
        pipe.cmd("HSET")
            .arg(inner.key("slots", key))
            .arg(inner.token_name(*token))
            .arg(&inner.id)
            .ignore();
    }
    let mut redis = inner.redis.clone();
    match within(pipe.query_async::<()>(&mut redis)).await {
        Ok(()) => {
            event!(INFO, fleet = %inner.fleet.name, slots = held.len() as u64, "fleet slots put back");
            // A slot released while this ran may have been put back after
            // its release: release it again.
            let now = lock(&inner.held).clone();
            for (token, key) in held.into_iter().filter(|(t, _)| !now.contains_key(t)) {
                let _ = inner.releases.send((key, token));
            }
        }
        Err(error) => {
            inner.dirty.store(true, Ordering::Relaxed);
            inner.unreachable(&error);
        }
    }
}

/// Follows the `freed` and `wanted` channels, reconnecting while the
/// member lives.
pub(super) async fn listen(inner: Arc<Membership>) {
    let freed = format!("{}:freed", inner.ns);
    let wanted = format!("{}:wanted", inner.ns);
    while !inner.closed.load(Ordering::Acquire) {
        let pubsub = match subscribe(&inner, &freed, &wanted).await {
            Some(pubsub) => pubsub,
            None => {
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => continue,
                    () = inner.shutdown.notified() => return,
                }
            }
        };
        // The waiters may have missed a message while unsubscribed.
        for (notify, _) in lock(&inner.waiting).values() {
            notify.notify_waiters();
        }
        let mut messages = pubsub.into_on_message();
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                () = inner.shutdown.notified() => return,
            };
            let Some(message) = message else { break };
            if let Ok(payload) = message.get_payload::<String>() {
                heard(&inner, message.get_channel_name() == freed, &payload);
            }
        }
    }
}

/// A subscription to the fleet's two channels, within one call's time.
async fn subscribe(inner: &Membership, freed: &str, wanted: &str) -> Option<redis::aio::PubSub> {
    let subscribed = async {
        let mut pubsub = inner.fleet.client.get_async_pubsub().await?;
        pubsub.subscribe(freed).await?;
        pubsub.subscribe(wanted).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    tokio::time::timeout(CALL_TIMEOUT, subscribed).await.ok()?.ok()
}

/// A message of another member: a slot of a key was `freed` (its waiters
/// here ask again), or a key is wanted (an idle connection of it is given
/// up, unless the demand is this member's own).
fn heard(inner: &Membership, freed: bool, payload: &str) {
    if freed {
        if let Some((notify, _)) = lock(&inner.waiting).get(payload) {
            notify.notify_waiters();
        }
        return;
    }
    // `key\nmember`: a member's own demand is not another's.
    let Some((key, member)) = payload.rsplit_once('\n') else {
        return;
    };
    if member == inner.id {
        return;
    }
    let target = lock(&inner.keys).get(key).map(|k| k.target.clone());
    if let Some(target) = target {
        (inner.on_wanted)(&target);
    }
}
