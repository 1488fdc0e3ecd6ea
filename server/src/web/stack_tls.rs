//! Mutual TLS on the container-facing listener: every connection presents a certificate
//! from the stack's CA ([`crate::pki`]) or is refused in the handshake; the certificate
//! names the peer (Envoy, Prometheus, a probe), and the peer decides what it may call.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

use crate::pki::{Peer, Pki};

/// Handshakes completed and refused since start (exported on `/metrics`).
pub static HANDSHAKES: AtomicU64 = AtomicU64::new(0);
pub static REFUSED: AtomicU64 = AtomicU64::new(0);

/// A handshake that takes longer than this is dropped (a slow or silent client must not
/// hold a slot).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who is on the other end of a request to the container-facing listener.
#[derive(Debug, Clone, Copy)]
pub struct StackPeer {
    pub addr: SocketAddr,
    pub peer: Peer,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>> for StackPeer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        *stream.remote_addr()
    }
}

/// A TCP listener whose connections come out TLS-established and identified. Handshakes
/// run concurrently (one task each), so a slow client does not delay the others.
pub struct TlsListener {
    local: SocketAddr,
    rx: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, StackPeer)>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, pki: Pki, config: Arc<rustls::ServerConfig>, ids: Vec<(Peer, CertificateDer<'static>)>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let mut current = (config, Arc::new(ids), modified(&pki));
            loop {
                let (sock, addr) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of descriptors and the like: wait instead of spinning.
                        tracing::warn!(error = %e, "container-facing listener: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                // A set made anew (renewed, or remade whole by `up`) is read on the next
                // connection.
                let now = modified(&pki);
                if now != current.2 {
                    match pki.server_config().and_then(|c| Ok((c, pki.identities()?))) {
                        Ok((c, ids)) => current = (c, Arc::new(ids), now),
                        Err(e) => tracing::warn!(error = %e, "container-facing listener: the new certificates do not load; keeping the previous ones"),
                    }
                }
                let (acceptor, ids, tx) = (tokio_rustls::TlsAcceptor::from(current.0.clone()), current.1.clone(), tx.clone());
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            REFUSED.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(%addr, error = %e, "container-facing listener: TLS handshake refused");
                            return;
                        }
                        Err(_) => {
                            REFUSED.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(%addr, "container-facing listener: TLS handshake timed out");
                            return;
                        }
                    };
                    let presented = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).cloned();
                    let Some(peer) = presented.and_then(|c| ids.iter().find(|(_, der)| *der == c).map(|(p, _)| *p)) else {
                        // Signed by the CA but not a leaf of the current set: an older set's.
                        REFUSED.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(%addr, "container-facing listener: a certificate of no current peer");
                        return;
                    };
                    HANDSHAKES.fetch_add(1, Ordering::Relaxed);
                    let _ = tx.send((tls, StackPeer { addr, peer })).await;
                });
            }
        });
        Ok(Self { local, rx })
    }
}

fn modified(pki: &Pki) -> Option<std::time::SystemTime> {
    std::fs::metadata(pki.dir().join("not-after")).and_then(|m| m.modified()).ok()
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = StackPeer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The acceptor task ended (it does not, while the listener lives).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(StackPeer { addr: self.local, peer: Peer::Probe })
    }
}
