//! The node's public HTTP listeners (the origin's, `blobs_listen`): what anybody on the
//! internet may connect to. `axum::serve` bounds neither: no connection cap and no timer,
//! so hyper's header timeout never fires and a client that opens connections and sends
//! nothing (or a byte at a time) holds a socket each until the process runs out of file
//! descriptors, and with them the blob store, the database and the API. Here every
//! connection takes a place (all of them, and per client address), and must send each
//! request's head, the first and the next on a kept-alive connection, within a deadline.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tracing::debug;

/// Bounds of a public listener.
#[derive(Debug, Clone, Copy)]
pub struct PublicLimits {
    /// Connections open at once, all clients together (each is a file descriptor: the
    /// common soft limit is 1024 for the whole process).
    pub connections: usize,
    /// Connections open at once from one client address (an IPv4 address, an IPv6 /64).
    pub per_client: usize,
    /// How long a client may take to send a request's head, and to start the next one on a
    /// kept-alive connection.
    pub head_within: Duration,
}

impl Default for PublicLimits {
    fn default() -> Self {
        Self {
            connections: 512,
            per_client: 64,
            head_within: Duration::from_secs(10),
        }
    }
}

/// Connections open per client, and in all.
#[derive(Default)]
struct Places {
    per_client: HashMap<IpAddr, usize>,
    total: usize,
}

/// A connection's place, given back when it ends.
struct Place {
    places: Arc<Mutex<Places>>,
    client: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut places = self.places.lock().unwrap_or_else(|e| e.into_inner());
        places.total -= 1;
        if let Some(n) = places.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                places.per_client.remove(&self.client);
            }
        }
    }
}

/// Which addresses count as one client: an IPv4 address, or an IPv6 /64 (a host gets one).
fn client_of(addr: SocketAddr) -> IpAddr {
    match addr.ip().to_canonical() {
        IpAddr::V6(v6) => IpAddr::from(std::net::Ipv6Addr::from(
            u128::from(v6) & !((1u128 << 64) - 1),
        )),
        v4 => v4,
    }
}

/// Serves `router` on `listener` within `limits`, each request carrying the client's
/// address (`ConnectInfo<SocketAddr>`, as `into_make_service_with_connect_info`). A
/// connection past a bound is closed at once. Runs until accepting fails for good.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: PublicLimits,
) -> std::io::Result<()> {
    let places = Arc::new(Mutex::new(Places::default()));
    loop {
        let (tcp, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors or a connection reset before it was taken: the
            // listener itself is fine; wait a moment rather than spin.
            Err(e) if is_transient(&e) => {
                debug!(error = %e, "accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let client = client_of(addr);
        let place = {
            let mut taken = places.lock().unwrap_or_else(|e| e.into_inner());
            let of_client = taken.per_client.get(&client).copied().unwrap_or(0);
            if taken.total >= limits.connections || of_client >= limits.per_client {
                debug!(%addr, open = taken.total, of_client, "connection refused: too many open");
                continue;
            }
            taken.total += 1;
            *taken.per_client.entry(client).or_default() += 1;
            Place {
                places: places.clone(),
                client,
            }
        };
        let service =
            TowerToHyperService::new(router.clone().layer(axum::Extension(ConnectInfo(addr))));
        tokio::spawn(async move {
            let _place = place;
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.head_within)
                .serve_connection(TokioIo::new(tcp), service)
                .await;
            if let Err(e) = served {
                debug!(%addr, error = %e, "connection ended");
            }
        });
    }
}

/// An accept error that leaves the listener usable: a connection gone before it was taken,
/// or the process or system out of descriptors or memory for a moment.
fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    // ENOMEM 12, ENFILE 23, EMFILE 24, ENOBUFS 105 (Linux).
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || matches!(e.raw_os_error(), Some(12 | 23 | 24 | 105))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A router that answers with the client's address, served within `limits`.
    async fn server(limits: PublicLimits) -> SocketAddr {
        let router = Router::new().route(
            "/who",
            axum::routing::get(|ConnectInfo(addr): ConnectInfo<SocketAddr>| async move {
                addr.ip().to_string()
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, router, limits));
        addr
    }

    /// A connection to `server` from `from` (a loopback address).
    async fn connect(server: SocketAddr, from: &str) -> tokio::net::TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        socket.connect(server).await.unwrap()
    }

    /// Whether the server closed `tcp` within `within` (it reads end of stream).
    async fn closed_within(tcp: &mut tokio::net::TcpStream, within: Duration) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(within, tcp.read(&mut byte)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    async fn ask(tcp: &mut tokio::net::TcpStream) -> String {
        tcp.write_all(b"GET /who HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut answer))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&answer[..n]).into_owned()
    }

    /// Past a client's places, or all of them, a connection is closed at once; the ones
    /// that hold a place are served, with the client's address.
    #[tokio::test]
    async fn connections_past_the_bounds_are_closed_and_the_rest_served() {
        let server = server(PublicLimits {
            connections: 3,
            per_client: 2,
            head_within: Duration::from_secs(60),
        })
        .await;
        let mut first = connect(server, "127.0.0.1").await;
        let _second = connect(server, "127.0.0.1").await;
        let mut third = connect(server, "127.0.0.1").await;
        assert!(
            closed_within(&mut third, Duration::from_secs(5)).await,
            "a third from one client"
        );
        let mut other = connect(server, "127.0.0.2").await;
        let mut fourth = connect(server, "127.0.0.3").await;
        assert!(
            closed_within(&mut fourth, Duration::from_secs(5)).await,
            "a fourth in all"
        );
        assert!(ask(&mut first).await.ends_with("127.0.0.1"));
        assert!(ask(&mut other).await.ends_with("127.0.0.2"));
        // A place is given back when its connection ends (once the server has seen it end:
        // tried again for a while on a loaded machine).
        drop(first);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut again = connect(server, "127.0.0.1").await;
            if !closed_within(&mut again, Duration::from_millis(100)).await {
                assert!(ask(&mut again).await.ends_with("127.0.0.1"));
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the place was not given back"
            );
        }
    }

    /// A client that sends nothing, or stops between requests, is closed after the head
    /// deadline (without a timer, hyper never closed it).
    #[tokio::test]
    async fn a_silent_client_is_closed_after_the_head_deadline() {
        let server = server(PublicLimits {
            head_within: Duration::from_millis(300),
            ..PublicLimits::default()
        })
        .await;
        let mut silent = connect(server, "127.0.0.1").await;
        assert!(
            closed_within(&mut silent, Duration::from_secs(5)).await,
            "never sent a head"
        );
        let mut kept = connect(server, "127.0.0.1").await;
        assert!(ask(&mut kept).await.ends_with("127.0.0.1"));
        assert!(
            closed_within(&mut kept, Duration::from_secs(5)).await,
            "idle after a request"
        );
        let mut trickle = connect(server, "127.0.0.1").await;
        let sending = async {
            for byte in b"GET /who HTTP/1.1\r\n" {
                if trickle.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), sending)
            .await
            .ok();
        assert!(
            closed_within(&mut trickle, Duration::from_secs(5)).await,
            "a head a byte at a time"
        );
    }
}
