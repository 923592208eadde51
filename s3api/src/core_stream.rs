//! A core's socket as hyper's glue reads it (`serve_cores`): glommio's stream, whose reads
//! take an initialized `&mut [u8]`, behind tokio's `AsyncRead`, which hands over uninitialized
//! room (`ReadBuf`).
//!
//! tokio-util's `Compat` adapter did this by zeroing all the room it was given before every
//! read: hyper offers its whole read buffer each time (8 KiB and up), so a 4 KiB GET zeroed
//! kilobytes to receive a few hundred bytes of request, and once more for each keep-alive
//! check (2.5% of the cycles at the GET peak). This adapter offers the socket a window of the
//! room instead, sized by what recent reads brought: it doubles when a read fills it (a body
//! streaming in) and halves after two reads that filled less than half of it. Only the window
//! is zeroed (tokio's `initialize_unfilled_to`, no unsafe code). Writes pass through.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures::io::{AsyncRead as FuturesRead, AsyncWrite as FuturesWrite};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The read window's bounds: a request head fits the smallest; a streaming body fills the
/// largest per read (hyper's own read buffer stops growing near there too).
pub const READ_WINDOW_MIN: usize = 2 * 1024;
pub const READ_WINDOW_MAX: usize = 256 * 1024;

pub struct CoreStream<S> {
    inner: S,
    window: usize,
    /// Reads in a row that filled less than half the window.
    small: u8,
}

impl<S> CoreStream<S> {
    pub fn new(inner: S) -> CoreStream<S> {
        CoreStream {
            inner,
            window: READ_WINDOW_MIN,
            small: 0,
        }
    }

    /// Sizes the next window after a read of `n` bytes into one of `offered`.
    fn adapt(&mut self, n: usize, offered: usize) {
        if n == offered && offered == self.window {
            self.window = (self.window * 2).min(READ_WINDOW_MAX);
            self.small = 0;
        } else if n < self.window / 2 {
            self.small += 1;
            if self.small >= 2 {
                self.window = (self.window / 2).max(READ_WINDOW_MIN);
                self.small = 0;
            }
        } else {
            self.small = 0;
        }
    }
}

impl<S: FuturesRead + Unpin> AsyncRead for CoreStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let offered = buf.remaining().min(this.window);
        if offered == 0 {
            return Poll::Ready(Ok(()));
        }
        let room = buf.initialize_unfilled_to(offered);
        let n = ready!(Pin::new(&mut this.inner).poll_read(cx, room))?;
        buf.advance(n);
        this.adapt(n, offered);
        Poll::Ready(Ok(()))
    }
}

impl<S: FuturesWrite + Unpin> AsyncWrite for CoreStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::MaybeUninit;

    /// A futures reader that hands out at most `chunk` bytes per read.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        chunk: usize,
    }

    impl FuturesRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.chunk).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Poll::Ready(Ok(n))
        }
    }

    fn trickle(len: usize, chunk: usize) -> CoreStream<Trickle> {
        let data = (0..len).map(|i| (i % 251) as u8).collect();
        CoreStream::new(Trickle { data, at: 0, chunk })
    }

    /// One read into fresh room of `room` bytes: (bytes read, bytes of the room initialized).
    fn read_once(s: &mut CoreStream<Trickle>, room: usize) -> (usize, usize) {
        let mut mem = vec![MaybeUninit::<u8>::uninit(); room];
        let mut buf = ReadBuf::uninit(&mut mem);
        let waker = futures::task::noop_waker();
        let polled = Pin::new(&mut *s).poll_read(&mut Context::from_waker(&waker), &mut buf);
        assert!(matches!(polled, Poll::Ready(Ok(()))));
        (buf.filled().len(), buf.initialized().len())
    }

    #[test]
    fn only_the_window_is_zeroed() {
        let mut s = trickle(300, usize::MAX);
        // A 300-byte request head into 64 KiB of room: 2 KiB zeroed, not 64.
        assert_eq!(read_once(&mut s, 64 * 1024), (300, READ_WINDOW_MIN));
    }

    #[test]
    fn the_window_grows_with_a_streaming_body_and_shrinks_after() {
        let mut s = trickle(4 << 20, usize::MAX);
        let mut sizes = Vec::new();
        for _ in 0..10 {
            sizes.push(read_once(&mut s, 1 << 20).0);
        }
        assert_eq!(&sizes[..4], &[2048, 4096, 8192, 16384]);
        assert_eq!(sizes[9], READ_WINDOW_MAX, "{sizes:?}");
        // Small reads (requests on a kept-alive connection): one is not enough to shrink.
        s.inner.chunk = 300;
        read_once(&mut s, 1 << 20);
        assert_eq!(s.window, READ_WINDOW_MAX);
        for _ in 0..20 {
            read_once(&mut s, 1 << 20);
        }
        assert_eq!(s.window, READ_WINDOW_MIN);
    }

    #[test]
    fn what_is_read_arrives_whole_and_in_order() {
        use tokio::io::AsyncReadExt as _;
        let mut s = trickle(1_000_003, 7_777);
        let mut out = Vec::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(s.read_to_end(&mut out)).unwrap();
        assert_eq!(out.len(), 1_000_003);
        assert!(out.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
    }
}
