//! How a manager makes its objects: the transport's stream to a target,
//! then the protocol step on it.
//!
//! [`Pipeline`] is named by its transport and protocol; the rest of the
//! pool knows it only as [`Make`] of the object it lends, so that the
//! shared state, the tasks and the loans are typed by what they hold. The
//! one dynamic call is per connect, never per checkout.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::state::Addrs;
use crate::deadline::Deadline;
use crate::error::Error;
use crate::pooled::Protocol;
use crate::target::Target;
use crate::transport::{Dial, DialOptions, Progress, Transport};

/// A connect's future: the object, or why it could not be made.
pub(crate) type Making<'a, C> = Pin<Box<dyn Future<Output = Result<C, Error>> + Send + 'a>>;

/// What the pool needs of its pipeline: whether a target's name is looked
/// up first, and the object made for a request.
pub(crate) trait Make<C>: Send + Sync + 'static {
    /// [`Transport::needs_addresses`].
    fn needs_addresses(&self, target: &Target) -> bool;

    /// The transport's stream to the target, then the protocol step on it.
    fn make<'a>(&'a self, dialing: &'a Dialing) -> Making<'a, C>;

    /// [`Protocol::expected_capacity`].
    fn expected_capacity(&self, target: &Target) -> usize;

    /// Whether the objects lent are the pool's own dialer's streams
    /// themselves (the `Plain` protocol on the `Dialer`): their sockets
    /// are the pool's to shut down at a drain's deadline.
    fn lends_streams(&self) -> bool;
}

/// What a connect task is given: where to, the addresses found, the
/// request's deadline, and where the task notes its step.
pub(crate) struct Dialing {
    pub(crate) target: Target,
    pub(crate) addrs: Addrs,
    pub(crate) deadline: Deadline,
    pub(crate) progress: Arc<Progress>,
}

/// The transport, the protocol step on its streams, and the settings of
/// the pool's own dialing.
#[derive(Debug)]
pub(crate) struct Pipeline<P, T> {
    pub(crate) protocol: P,
    pub(crate) transport: T,
    pub(crate) options: DialOptions,
}

impl<P, T> Make<P::Conn> for Pipeline<P, T>
where
    T: Transport,
    P: Protocol<T::Stream>,
{
    fn needs_addresses(&self, target: &Target) -> bool {
        self.transport.needs_addresses(target)
    }

    fn expected_capacity(&self, target: &Target) -> usize {
        self.protocol.expected_capacity(target)
    }

    fn lends_streams(&self) -> bool {
        use std::any::TypeId;
        TypeId::of::<P>() == TypeId::of::<crate::pooled::Plain>()
            && TypeId::of::<T>() == TypeId::of::<crate::transport::Dialer>()
    }

    fn make<'a>(&'a self, dialing: &'a Dialing) -> Making<'a, P::Conn> {
        Box::pin(async move {
            let target = &dialing.target;
            let dial = Dial {
                target,
                addrs: &dialing.addrs,
                deadline: dialing.deadline,
                options: &self.options,
                progress: &dialing.progress,
            };
            let stream = self
                .transport
                .connect(dial)
                .await
                .map_err(|e| Error::from_transport(target, e))?;
            self.protocol
                .handshake(target, stream)
                .await
                .map_err(|e| Error::handshake(target, e))
        })
    }
}
