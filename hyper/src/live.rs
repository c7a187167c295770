//! The client's live connections, by their socket: what a drain shuts
//! down under their users at its deadline.
//!
//! The pool lends connections and does not hold them while they are out;
//! keepalive-hyper's own part of each connection, its [`Wire`], holds the
//! socket for as long as the connection lives. A weak reference to each is
//! kept here, so the list keeps nothing open; dead entries are pruned as it
//! grows.

use std::net::Shutdown;
use std::sync::{Arc, Mutex, Weak};

use crate::lock::lock;
use crate::wire::{on_socket, Wire};

/// The wires of the connections a client made.
#[derive(Default)]
pub(crate) struct Live {
    wires: Mutex<Vec<Weak<Wire>>>,
}

impl Live {
    /// Notes a new connection's wire; drops the entries of ended ones
    /// when the list has doubled since the last pruning.
    pub(crate) fn add(&self, wire: &Arc<Wire>) {
        let mut wires = lock(&self.wires);
        if wires.len() >= 64 && wires.len().is_power_of_two() {
            wires.retain(|w| w.strong_count() > 0);
        }
        wires.push(Arc::downgrade(wire));
    }

    /// Shuts down, both ways, the socket of every connection still alive:
    /// hyper's tasks see their end, requests and bodies in progress fail,
    /// and the connections close. Returns how many were shut down.
    pub(crate) fn cut(&self) -> usize {
        let wires: Vec<Arc<Wire>> = lock(&self.wires).drain(..).filter_map(|w| w.upgrade()).collect();
        for wire in &wires {
            on_socket!(
                &wire.socket,
                s => {
                    let _ = socket2::SockRef::from(s).shutdown(Shutdown::Both);
                },
                stream => {
                    if let Some(tcp) = lock(stream).as_tcp() {
                        let _ = socket2::SockRef::from(tcp).shutdown(Shutdown::Both);
                    }
                }
            );
        }
        wires.len()
    }
}
