//! Connecting to one of several addresses with Happy Eyeballs (RFC 8305):
//! address families interleaved, the next attempt started when the last
//! one fails or after a delay, the first success kept and the rest closed.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::tcp::TcpOptions;
use crate::deadline::Deadline;
use crate::error::Error;
use crate::target::Target;

/// How to connect: the local address, and the Happy Eyeballs delay.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub(crate) bind: Option<IpAddr>,
    pub(crate) delay: Duration,
    /// The options every connected socket gets.
    pub(crate) tcp: TcpOptions,
}

/// Connects to the first of `addrs` that accepts.
///
/// # Errors
///
/// `Error::Connect` with the first failure's errno and every address tried,
/// or with `AddrNotAvailable` when no address is in the bind address's
/// family.
pub(super) async fn connect_first(
    target: &Target,
    addrs: &[SocketAddr],
    plan: Plan,
) -> Result<TcpStream, Error> {
    let candidates = interleave(
        addrs
            .iter()
            .copied()
            .filter(|a| plan.bind.is_none_or(|b| b.is_ipv4() == a.is_ipv4())),
    );
    let failure = match candidates.as_slice() {
        [] => {
            let why = format!("no address of {target} is in the family of the bind address");
            (None, io::Error::new(io::ErrorKind::AddrNotAvailable, why))
        }
        // The common case, a literal or a single answer: no race to run.
        &[addr] => match connect_one(addr, &plan).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => (Some(addr), e),
        },
        _ => match race(&candidates, plan).await {
            Ok(tcp) => return Ok(tcp),
            Err((addr, e)) => (Some(addr), e),
        },
    };
    Err(Error::Connect {
        target: target.to_string(),
        addr: failure.0,
        tried: candidates,
        source: Arc::new(failure.1),
    })
}

/// Runs the staggered attempts; returns the first failure if all fail.
async fn race(candidates: &[SocketAddr], plan: Plan) -> Result<TcpStream, (SocketAddr, io::Error)> {
    // Dropping the set aborts the attempts still running: the losers.
    let mut attempts = JoinSet::new();
    let mut rest = candidates.iter().copied();
    let mut first_failure = None;
    let mut next_at = Deadline::At(Instant::now());
    loop {
        let more = rest.len() > 0;
        if more && (attempts.is_empty() || next_at.is_reached(Instant::now())) {
            let addr = rest.next().expect("checked above");
            attempts.spawn(async move { (addr, connect_one(addr, &plan).await) });
            next_at = Deadline::after(Instant::now(), plan.delay);
            continue;
        }
        if attempts.is_empty() {
            return Err(first_failure.expect("every candidate was tried and failed"));
        }
        tokio::select! {
            joined = attempts.join_next() => match joined {
                Some(Ok((_, Ok(tcp)))) => return Ok(tcp),
                Some(Ok((addr, Err(e)))) => {
                    first_failure.get_or_insert((addr, e));
                }
                // An attempt cannot panic or be aborted while the set lives.
                Some(Err(_)) | None => {}
            },
            // A delay of "never" waits for a failure instead.
            () = sleep_until(next_at), if more => {}
        }
    }
}

/// Sleeps until `deadline`; forever for [`Deadline::Never`].
async fn sleep_until(deadline: Deadline) {
    match deadline.instant() {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// RFC 8305 §4: alternate address families, starting with the family of
/// the first address, keeping the resolver's order within each family.
pub(super) fn interleave(addrs: impl Iterator<Item = SocketAddr>) -> Vec<SocketAddr> {
    let addrs: Vec<SocketAddr> = addrs.collect();
    let Some(first) = addrs.first() else {
        return addrs;
    };
    let first_v4 = first.is_ipv4();
    let (lead, other): (Vec<SocketAddr>, Vec<SocketAddr>) =
        addrs.iter().partition(|a| a.is_ipv4() == first_v4);
    let mut out = Vec::with_capacity(addrs.len());
    let (mut lead, mut other) = (lead.into_iter(), other.into_iter());
    loop {
        match (lead.next(), other.next()) {
            (None, None) => return out,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
}

async fn connect_one(addr: SocketAddr, plan: &Plan) -> io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(ip) = plan.bind {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let tcp = socket.connect(addr).await?;
    super::tcp::apply(&tcp, &plan.tcp)?;
    Ok(tcp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn families_alternate_starting_with_the_first() {
        let six = [a("[::1]:1"), a("[::2]:1"), a("[::3]:1")];
        let four = [a("10.0.0.1:1"), a("10.0.0.2:1")];
        let mixed = [six[0], six[1], six[2], four[0], four[1]];
        assert_eq!(
            interleave(mixed.into_iter()),
            [six[0], four[0], six[1], four[1], six[2]]
        );
        let v4_first = [four[0], six[0], four[1]];
        assert_eq!(interleave(v4_first.into_iter()), [four[0], six[0], four[1]]);
        assert!(interleave(std::iter::empty()).is_empty());
    }
}
