//! A [`Connection`] whose object is a byte stream is one too; on the way it
//! notes what decides the object's fate: an error or the end of the stream
//! rules reuse out, and the server's close before any byte was read is the
//! race with its idle close, lost.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::connection::{Answer, Connection, Reuse};
use crate::pooled::{Health, Pooled};

impl<C: Pooled> Connection<C> {
    /// The server closed the stream: lost, if nothing had been read.
    fn closed_by_server(&mut self) {
        if self.answer == Answer::None {
            self.answer = Answer::Lost { reported: false };
        }
    }

    /// Notes an I/O result's bearing on reuse: an error rules it out, and
    /// a reset before any byte was read is the server's close.
    fn note<R>(&mut self, result: &io::Result<R>) {
        if let Err(e) = result {
            self.reuse = Reuse::Failed;
            if Health::is_closed_by_peer(e) {
                self.closed_by_server();
            }
        }
    }
}

impl<C: Pooled + AsyncRead> AsyncRead for Connection<C> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = ready!(Pin::new(this.object_mut()).poll_read(cx, buf));
        this.note(&result);
        if result.is_ok() {
            if buf.filled().len() > before {
                if this.answer == Answer::None {
                    this.answer = Answer::Some;
                }
            } else if buf.remaining() > 0 {
                this.reuse = Reuse::Finished;
                this.closed_by_server();
            }
        }
        Poll::Ready(result)
    }
}

impl<C: Pooled + AsyncWrite> AsyncWrite for Connection<C> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = ready!(Pin::new(this.object_mut()).poll_write(cx, buf));
        this.note(&result);
        Poll::Ready(result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = ready!(Pin::new(this.object_mut()).poll_write_vectored(cx, bufs));
        this.note(&result);
        Poll::Ready(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.object().is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = ready!(Pin::new(this.object_mut()).poll_flush(cx));
        this.note(&result);
        Poll::Ready(result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.reuse = Reuse::Finished;
        Pin::new(this.object_mut()).poll_shutdown(cx)
    }
}
