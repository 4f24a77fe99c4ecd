//! tcp and ipc streams and listeners on the `async-io` reactor.
//!
//! The connection task uses readiness (`readable`/`writable`) and
//! non-blocking calls on the standard streams, so that one task can wait for
//! input, output room, queued messages and timers at once.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
#[cfg(unix)]
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use async_io::Async;

use crate::endpoint::{Endpoint, tcp_endpoint};
use crate::error::{Error, Result};

/// Default send buffer of an ipc connection (the kernel doubles it).
pub(crate) const IPC_SNDBUF: usize = 1 << 20;

/// The most one tcp read into a large frame's buffer asks for: half the
/// frame, within [`TCP_READ_MIN`] and this. With whole 1 MiB reads the
/// receiving thread waited for a whole frame's worth and then held the
/// socket for the whole copy, while the sender's `writev` came back short
/// and waited for room: the two threads took turns instead of overlapping
/// (a read holds the socket; segments that arrive meanwhile wait in its
/// backlog, and the window update goes out when the read ends). Reads of
/// 64 KiB (one loopback segment) took 1 MiB messages from 0.82x OMQ's rate
/// to level with it and 256 KiB messages to 1.15x the build before. Once
/// reads into a reused body no longer zeroed their room first, 128 KiB
/// reads did better for frames of 256 KiB and more (256 KiB messages
/// +4.5 % in 10 rounds, 4 MiB +4 % in 8; see BENCHMARKS.md), and half the
/// frame keeps frames of 128 KiB to two reads (one 128 KiB read was 7 %
/// slower in 4 rounds). Capped reads on ipc were slower (0.94x at 1 MiB),
/// so unix sockets keep whole reads.
pub(crate) const TCP_READ_MAX: usize = 128 * 1024;
/// The least that [`TCP_READ_MAX`]'s rule asks of one tcp read into a
/// large frame's buffer: one loopback segment.
pub(crate) const TCP_READ_MIN: usize = 64 * 1024;

/// A connected stream.
pub(crate) struct Stream {
    /// Registration with the I/O thread's own reactor, made on the first
    /// wait (`None`: not on an I/O thread, or no reactor here; the wait goes
    /// through `async-io`). Declared first: dropped before the descriptor.
    #[cfg(target_os = "linux")]
    reg: std::sync::OnceLock<Option<crate::reactor::Registration>>,
    io: Io,
}

enum Io {
    Tcp(Async<TcpStream>),
    #[cfg(unix)]
    Ipc(Async<UnixStream>),
}

impl Stream {
    fn new(io: Io) -> Stream {
        Stream {
            #[cfg(target_os = "linux")]
            reg: std::sync::OnceLock::new(),
            io,
        }
    }

    /// The stream's descriptor.
    #[cfg(unix)]
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        match &self.io {
            Io::Tcp(s) => s.get_ref().as_fd(),
            Io::Ipc(s) => s.get_ref().as_fd(),
        }
    }

    /// The registration with the current thread's reactor, if any.
    #[cfg(target_os = "linux")]
    fn registration(&self) -> Option<&crate::reactor::Registration> {
        let reg = self
            .reg
            .get_or_init(|| crate::reactor::register_current(self.fd()));
        reg.as_ref().filter(|r| r.is_current())
    }

    /// Ready when the stream is readable (`write == false`) or writable;
    /// otherwise `cx` is woken when it may be. A poll rather than a future,
    /// so that a connection's wait holds no state for it.
    pub(crate) fn poll_ready(
        &self,
        cx: &mut std::task::Context<'_>,
        write: bool,
    ) -> std::task::Poll<io::Result<()>> {
        #[cfg(target_os = "linux")]
        if let Some(reg) = self.registration() {
            return reg.poll_ready(cx, self.fd(), write).map(Ok);
        }
        match (&self.io, write) {
            (Io::Tcp(s), false) => s.poll_readable(cx),
            (Io::Tcp(s), true) => s.poll_writable(cx),
            #[cfg(unix)]
            (Io::Ipc(s), false) => s.poll_readable(cx),
            #[cfg(unix)]
            (Io::Ipc(s), true) => s.poll_writable(cx),
        }
    }

    /// Non-blocking read.
    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.io {
            Io::Tcp(s) => s.get_ref().read(buf),
            #[cfg(unix)]
            Io::Ipc(s) => s.get_ref().read(buf),
        }
    }

    /// The most one read into the own buffer of a large frame of `frame`
    /// bytes asks for ([`Stream::try_read_spare`]): on tcp half the frame,
    /// from [`TCP_READ_MIN`] to [`TCP_READ_MAX`]; unbounded on ipc.
    pub(crate) fn read_limit(&self, frame: usize) -> usize {
        match &self.io {
            Io::Tcp(_) => (frame / 2).clamp(TCP_READ_MIN, TCP_READ_MAX),
            #[cfg(unix)]
            Io::Ipc(_) => usize::MAX,
        }
    }

    /// Non-blocking read into the whole spare capacity of `buf`, whatever
    /// [`Stream::read_limit`] says, and `buf` grows by what arrived; on
    /// unix into uninitialised memory. For bulk reads into a pooled read
    /// buffer, whose room (at most 512 KiB) is about that of a read through
    /// the scratch buffer: the limit is for the rest of one large frame,
    /// read into that frame's own buffer ([`Stream::try_read_spare`]).
    pub(crate) fn try_read_spare_whole(&self, buf: &mut Vec<u8>) -> io::Result<usize> {
        #[cfg(unix)]
        {
            rustix::io::read(self.fd(), rustix::buffer::spare_capacity(buf))
                .map_err(io::Error::from)
        }
        #[cfg(not(unix))]
        {
            let room = buf.capacity() - buf.len();
            self.try_read_zeroed(buf, room)
        }
    }

    /// Non-blocking read of at most `room` bytes into `buf`'s spare
    /// capacity, zeroed first, and `buf` grows by what arrived.
    fn try_read_zeroed(&self, buf: &mut Vec<u8>, room: usize) -> io::Result<usize> {
        let len = buf.len();
        buf.resize(len + room, 0);
        let r = self.try_read(&mut buf[len..]);
        buf.truncate(len + *r.as_ref().unwrap_or(&0));
        r
    }

    /// Non-blocking read into the spare capacity of `buf`, at most
    /// [`Stream::read_limit`] bytes for a frame of `frame` bytes, and `buf`
    /// grows by what arrived. Unlike [`Stream::try_read`] on a buffer of
    /// its own, the bytes land where they stay. Room within the limit is
    /// read into uninitialised (on unix). Only the whole spare capacity can
    /// be read into that way without unsafe code, so a tcp read with more
    /// room than the limit zeroes its share first (a tenth of the samples
    /// at 1 MiB, where the shorter reads gain far more); the rest of a
    /// frame that fits within the limit is read without it. A frame read
    /// into a reused body needs neither (see `stream_io::Recycler`).
    pub(crate) fn try_read_spare(&self, buf: &mut Vec<u8>, frame: usize) -> io::Result<usize> {
        let len = buf.len();
        let limit = self.read_limit(frame);
        if buf.capacity() - len <= limit {
            return self.try_read_spare_whole(buf);
        }
        self.try_read_zeroed(buf, limit)
    }

    /// Sets the kernel's send and receive buffer sizes (`SO_SNDBUF`,
    /// `SO_RCVBUF`); `None` keeps the default, which for ipc is a send buffer
    /// of [`IPC_SNDBUF`]: a unix socket otherwise takes about 200 KiB per
    /// write, five hand-offs between the two tasks per MiB.
    pub(crate) fn set_buffer_sizes(&self, sndbuf: Option<usize>, rcvbuf: Option<usize>) {
        #[cfg(unix)]
        {
            use rustix::net::sockopt::{set_socket_recv_buffer_size, set_socket_send_buffer_size};
            let fd = self.fd();
            let sndbuf = match &self.io {
                Io::Tcp(_) => sndbuf,
                Io::Ipc(_) => sndbuf.or(Some(IPC_SNDBUF)),
            };
            // A refused size (beyond the system's limits) leaves the
            // default, as libzmq does.
            if let Some(n) = sndbuf {
                let _ = set_socket_send_buffer_size(fd, n);
            }
            if let Some(n) = rcvbuf {
                let _ = set_socket_recv_buffer_size(fd, n);
            }
        }
        #[cfg(not(unix))]
        let _ = (sndbuf, rcvbuf);
    }

    /// Non-blocking vectored write.
    pub(crate) fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match &self.io {
            Io::Tcp(s) => s.get_ref().write_vectored(bufs),
            #[cfg(unix)]
            Io::Ipc(s) => s.get_ref().write_vectored(bufs),
        }
    }

    pub(crate) fn shutdown(&self) {
        let _ = match &self.io {
            Io::Tcp(s) => s.get_ref().shutdown(Shutdown::Both),
            #[cfg(unix)]
            Io::Ipc(s) => s.get_ref().shutdown(Shutdown::Both),
        };
    }

    /// Connects to an endpoint (one attempt).
    pub(crate) async fn connect(ep: &Endpoint) -> Result<(Stream, String)> {
        match ep {
            Endpoint::Tcp { .. } => {
                let mut last = None;
                for addr in ep.connect_addrs()? {
                    match Async::<TcpStream>::connect(addr).await {
                        Ok(s) => {
                            let _ = s.get_ref().set_nodelay(true);
                            let peer = s
                                .get_ref()
                                .peer_addr()
                                .map(|a| a.to_string())
                                .unwrap_or_default();
                            return Ok((Stream::new(Io::Tcp(s)), peer));
                        }
                        Err(e) => last = Some(e),
                    }
                }
                Err(Error::Io(
                    last.unwrap_or_else(|| io::Error::other("no address")),
                ))
            }
            #[cfg(unix)]
            Endpoint::Ipc(path) => {
                let s = Async::<UnixStream>::connect(path).await?;
                Ok((Stream::new(Io::Ipc(s)), path.display().to_string()))
            }
            #[cfg(not(unix))]
            Endpoint::Ipc(_) => Err(Error::Endpoint("ipc is not supported here".into())),
            // The socket pairs inproc endpoints itself (`crate::inproc`).
            other => Err(Error::Endpoint(format!("{other} has no stream"))),
        }
    }
}

/// A bound listener.
pub(crate) enum Listener {
    Tcp(Async<TcpListener>),
    #[cfg(unix)]
    Ipc(Async<UnixListener>, PathBuf),
}

impl Listener {
    /// Binds with room for `backlog` connections not yet accepted;
    /// returns the listener and the endpoint as bound (with the real port
    /// for port 0).
    pub(crate) fn bind(ep: &Endpoint, backlog: u32) -> Result<(Listener, String)> {
        // The standard library listens with a queue of 128; listening again
        // sets the queue's length (the kernel caps it at somaxconn).
        let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
        match ep {
            Endpoint::Tcp { .. } => {
                let mut last = None;
                for addr in ep.bind_addrs()? {
                    match Async::<TcpListener>::bind(addr) {
                        Ok(l) => {
                            rustix::net::listen(l.get_ref(), backlog).map_err(io::Error::from)?;
                            let local = l.get_ref().local_addr()?;
                            return Ok((Listener::Tcp(l), tcp_endpoint(local)));
                        }
                        Err(e) => last = Some(e),
                    }
                }
                Err(Error::Io(
                    last.unwrap_or_else(|| io::Error::other("no address")),
                ))
            }
            #[cfg(unix)]
            Endpoint::Ipc(path) => {
                take_over_stale_socket(path)?;
                let l = Async::<UnixListener>::bind(path)?;
                rustix::net::listen(l.get_ref(), backlog).map_err(io::Error::from)?;
                Ok((Listener::Ipc(l, path.clone()), ep.to_string()))
            }
            #[cfg(not(unix))]
            Endpoint::Ipc(_) => Err(Error::Endpoint("ipc is not supported here".into())),
            // The socket pairs inproc endpoints itself (`crate::inproc`).
            other => Err(Error::Endpoint(format!("{other} has no listener"))),
        }
    }

    /// Accepts one connection: the stream and the peer's address.
    pub(crate) async fn accept(&self) -> io::Result<(Stream, String, Option<std::net::IpAddr>)> {
        match self {
            Listener::Tcp(l) => {
                let (s, addr) = l.accept().await?;
                let _ = s.get_ref().set_nodelay(true);
                Ok((Stream::new(Io::Tcp(s)), addr.to_string(), Some(addr.ip())))
            }
            #[cfg(unix)]
            Listener::Ipc(l, path) => {
                let (s, _) = l.accept().await?;
                Ok((Stream::new(Io::Ipc(s)), path.display().to_string(), None))
            }
        }
    }
}

/// Removes a stale socket file at `path`, as libzmq does, and nothing
/// else: a socket file whose listener is gone (a connect to it is refused)
/// is removed; a live socket is left to fail the bind (address in use); a
/// regular file, directory or symbolic link is an error.
#[cfg(unix)]
fn take_over_stale_socket(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::Io(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )));
    }
    match UnixStream::connect(path) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            let _ = std::fs::remove_file(path);
            Ok(())
        }
        // Live (the bind then fails: address in use), or not ours to judge.
        _ => Ok(()),
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Listener::Ipc(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use rustix::net::sockopt::{socket_recv_buffer_size, socket_send_buffer_size};

    fn ipc_pair() -> (Stream, Stream) {
        let (a, b) = UnixStream::pair().expect("socketpair");
        let wrap = |s| Stream::new(Io::Ipc(Async::new(s).expect("async")));
        (wrap(a), wrap(b))
    }

    fn sizes(s: &Stream) -> (usize, usize) {
        let Io::Ipc(s) = &s.io else { unreachable!() };
        let fd = s.get_ref();
        (
            socket_send_buffer_size(fd).expect("SO_SNDBUF"),
            socket_recv_buffer_size(fd).expect("SO_RCVBUF"),
        )
    }

    #[test]
    fn ipc_send_buffer_defaults_to_ipc_sndbuf_and_options_apply() {
        let (a, b) = ipc_pair();
        let (snd0, _) = sizes(&b);
        a.set_buffer_sizes(None, None);
        // Linux doubles what is asked (bookkeeping); at least what we asked.
        assert!(
            sizes(&a).0 >= IPC_SNDBUF,
            "{:?} vs default {snd0}",
            sizes(&a)
        );
        b.set_buffer_sizes(Some(64 * 1024), Some(300_000));
        let (snd, rcv) = sizes(&b);
        assert!((64 * 1024..IPC_SNDBUF).contains(&snd), "{snd}");
        assert!(rcv >= 300_000, "{rcv}");
    }

    /// Bytes `0, 1, 2, ...` (mod 251, so that a misplaced piece shows).
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Waits until `fd` has at least `len` bytes queued for reading.
    fn wait_queued(fd: std::os::fd::BorrowedFd<'_>, len: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while rustix::io::ioctl_fionread(fd).expect("FIONREAD") < len as u64 {
            assert!(
                std::time::Instant::now() < deadline,
                "{len} bytes never arrived"
            );
            std::thread::yield_now();
        }
    }

    /// Reads `stream` into `buf` until it holds `len` bytes; every read
    /// takes at most `limit`.
    fn read_all(stream: &Stream, buf: &mut Vec<u8>, len: usize, limit: usize) {
        while buf.len() < len {
            wait_queued(stream.fd(), 1);
            let n = stream.try_read_spare(buf, len).expect("read");
            assert!(n <= limit, "a read took {n} bytes, more than {limit}");
        }
    }

    #[test]
    fn a_tcp_read_limit_is_half_the_frame_within_its_bounds() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let stream = Stream::new(Io::Tcp(
            Async::new(
                TcpStream::connect(listener.local_addr().expect("address")).expect("connect"),
            )
            .expect("async"),
        ));
        assert_eq!(stream.read_limit(16 * 1024), TCP_READ_MIN);
        assert_eq!(stream.read_limit(2 * TCP_READ_MIN + 18), TCP_READ_MIN + 9);
        assert_eq!(stream.read_limit(1 << 20), TCP_READ_MAX);
    }

    #[test]
    fn a_tcp_read_into_a_large_buffer_takes_at_most_tcp_read_max() {
        use rustix::net::{AddressFamily, SocketType, sockopt::set_socket_recv_buffer_size};
        const LEN: usize = 3 * TCP_READ_MAX + 1000;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        // A receive buffer set before the connection, so that the window
        // opens wide at once (the system may grant less; the writer's
        // thread waits for room then).
        let fd =
            rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).expect("socket");
        set_socket_recv_buffer_size(&fd, 4 << 20).expect("SO_RCVBUF");
        rustix::net::connect(&fd, &listener.local_addr().expect("address")).expect("connect");
        let (mut sender, _) = listener.accept().expect("accept");
        let stream = Stream::new(Io::Tcp(Async::new(TcpStream::from(fd)).expect("async")));
        assert_eq!(stream.read_limit(LEN), TCP_READ_MAX);
        let data = pattern(LEN);
        let writer = {
            let data = data.clone();
            std::thread::spawn(move || sender.write_all(&data).expect("write"))
        };
        wait_queued(stream.fd(), 2 * TCP_READ_MAX + 1);
        // More than twice the limit is waiting and the buffer has room for
        // all of it: the read still takes one limit's worth.
        let mut buf = Vec::with_capacity(1 << 20);
        assert_eq!(
            stream.try_read_spare(&mut buf, LEN).expect("read"),
            TCP_READ_MAX
        );
        assert_eq!(buf, data[..TCP_READ_MAX]);
        // A read into the whole spare capacity takes more than the limit
        // (at least one limit's worth and a byte are still waiting).
        let n = stream.try_read_spare_whole(&mut buf).expect("read");
        assert!(n > TCP_READ_MAX, "a whole read took {n} bytes");
        assert_eq!(buf, data[..TCP_READ_MAX + n]);
        read_all(&stream, &mut buf, LEN, TCP_READ_MAX);
        assert!(buf == data, "the bytes arrive whole and in order");
        writer.join().expect("writer");
    }

    #[test]
    fn an_ipc_read_into_a_large_buffer_takes_all_that_waits() {
        const LEN: usize = TCP_READ_MAX + 36 * 1024;
        let (mut sender, receiver) = UnixStream::pair().expect("socketpair");
        let stream = Stream::new(Io::Ipc(Async::new(receiver).expect("async")));
        assert_eq!(stream.read_limit(LEN), usize::MAX);
        let data = pattern(LEN);
        sender.write_all(&data).expect("write");
        wait_queued(stream.fd(), LEN);
        let mut buf = Vec::with_capacity(1 << 20);
        assert_eq!(stream.try_read_spare(&mut buf, LEN).expect("read"), LEN);
        assert!(buf == data);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod backlog_tests {
    use super::*;

    /// Connections a listener nobody accepts from takes before the kernel
    /// drops the next SYN (a connect to loopback completes at once or not
    /// before the peer's retransmission, a second later).
    fn connections_held(backlog: u32) -> usize {
        let ep = Endpoint::parse("tcp://127.0.0.1:0").expect("endpoint");
        let (listener, bound) = Listener::bind(&ep, backlog).expect("bind");
        let addr: std::net::SocketAddr =
            bound.trim_start_matches("tcp://").parse().expect("address");
        let mut held = Vec::new();
        while held.len() < 16 {
            match TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(900)) {
                Ok(s) => held.push(s),
                Err(_) => break,
            }
        }
        drop(listener);
        held.len()
    }

    #[test]
    fn the_backlog_bounds_connections_waiting_for_accept() {
        // Linux queues one more than the backlog.
        assert_eq!(connections_held(2), 3);
        assert_eq!(connections_held(64), 16);
    }
}
