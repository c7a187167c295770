//! What a user holds: an [`Allocation`], a request still waiting for the
//! pool (`allocation.rs`), and a [`Connection`], a pooled object on loan
//! that goes back to the pool when dropped (`connection.rs`), with its
//! byte-stream side (`stream_io.rs`).

mod allocation;
mod connection;
mod stream_io;

pub use allocation::{Allocation, RequestId};
pub use connection::{Connection, FromCache};
