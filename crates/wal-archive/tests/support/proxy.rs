//! A TCP proxy in front of the S3 server that a test can take down and
//! bring back on the same port, as if the server stopped and restarted
//! (moto keeps its objects in memory, so the real one cannot restart), and
//! that can go down in the middle of a log's upload.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

/// Bytes of a log's upload let through before an armed proxy goes down.
const CUT_AFTER_BYTES: usize = 64 << 10;

#[derive(Debug, Default)]
struct Shared {
    /// The proxy accepts and forwards.
    up: AtomicBool,
    /// Go down once a log's upload has sent `CUT_AFTER_BYTES`.
    armed: AtomicBool,
    /// Times it went down in the middle of an upload.
    cuts: AtomicUsize,
    /// Every connection, to shut them down with the proxy.
    conns: Mutex<Vec<TcpStream>>,
}

/// The proxy.
#[derive(Debug)]
pub(crate) struct Proxy {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
}

impl Proxy {
    /// A proxy on a free port of 127.0.0.1 forwarding to `target` (an
    /// `http://HOST:PORT` URL).
    pub(crate) fn start(target: &str) -> Proxy {
        let target = target
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("the S3 endpoint is http://IP:PORT");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = Proxy {
            addr,
            target,
            shared: Arc::new(Shared::default()),
        };
        proxy.serve(listener);
        proxy
    }

    /// Its URL.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Whether it is up.
    pub(crate) fn is_up(&self) -> bool {
        self.shared.up.load(Ordering::Acquire)
    }

    /// How often it went down in the middle of an upload.
    pub(crate) fn cuts(&self) -> usize {
        self.shared.cuts.load(Ordering::Acquire)
    }

    /// Goes down once the next upload of a `.log` object has sent
    /// `CUT_AFTER_BYTES` of its body.
    pub(crate) fn cut_the_next_log_upload(&self) {
        self.shared.armed.store(true, Ordering::Release);
    }

    /// Brings it back on the same port.
    pub(crate) fn restart(&self) {
        assert!(!self.is_up(), "already up");
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                // The old listener's thread may not have dropped it yet.
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        };
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        listener.set_nonblocking(true).unwrap();
        self.shared.up.store(true, Ordering::Release);
        let shared = Arc::clone(&self.shared);
        let target = self.target;
        thread::spawn(move || {
            while shared.up.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        connect(&shared, client, target);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        go_down(&self.shared);
    }
}

/// Stops accepting and cuts every connection.
fn go_down(shared: &Shared) {
    shared.up.store(false, Ordering::Release);
    for c in shared
        .conns
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .drain(..)
    {
        let _ = c.shutdown(Shutdown::Both);
    }
}

fn connect(shared: &Arc<Shared>, client: TcpStream, target: SocketAddr) {
    let Ok(server) = TcpStream::connect(target) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    {
        let mut conns = shared.conns.lock().unwrap_or_else(PoisonError::into_inner);
        conns.push(client.try_clone().unwrap());
        conns.push(server.try_clone().unwrap());
    }
    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let up = Arc::clone(shared);
    thread::spawn(move || forward(&up, client, server, true));
    let down = Arc::clone(shared);
    thread::spawn(move || forward(&down, s2, c2, false));
}

/// Copies `from` to `to`; on the way to the server, watches for a log's
/// upload when the proxy is armed.
fn forward(shared: &Shared, mut from: TcpStream, mut to: TcpStream, to_server: bool) {
    let mut buf = vec![0u8; 16 << 10];
    let mut upload_sent: Option<usize> = None;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !shared.up.load(Ordering::Acquire) {
            break;
        }
        if to_server && shared.armed.load(Ordering::Acquire) {
            let chunk = &buf[..n];
            if upload_sent.is_none() && starts_log_upload(chunk) {
                upload_sent = Some(0);
            }
            if let Some(sent) = upload_sent.as_mut() {
                *sent += n;
                if *sent >= CUT_AFTER_BYTES {
                    shared.armed.store(false, Ordering::Release);
                    shared.cuts.fetch_add(1, Ordering::AcqRel);
                    go_down(shared);
                    break;
                }
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}

/// Whether `chunk` starts a `PUT` of a `.log` object.
fn starts_log_upload(chunk: &[u8]) -> bool {
    let line_end = chunk
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(chunk.len());
    let line = &chunk[..line_end];
    line.starts_with(b"PUT ") && line.windows(5).any(|w| w == b".log ")
}
