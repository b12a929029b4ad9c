//! Health checks from the manifest: HTTP and TCP against the published host port,
//! commands inside the container. Failures inside the start period don't count.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use archy_registry::manifest::{Container, HealthCheck, Probe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};

use crate::render::publish_host;
use crate::{Error, Result, Runtime};

/// How often the wait for health also asks Podman whether the container still runs: a
/// container that exited, or a Podman service that died, ends the wait at once.
const STATE_EVERY: Duration = Duration::from_secs(2);

/// How long a TCP health probe waits for the peer to hang up before calling the port open
/// (rootless Podman's forwarder hangs up within milliseconds; a loaded host gets slack).
const TCP_SETTLE: Duration = Duration::from_secs(1);

pub async fn wait_healthy(
    runtime: &dyn Runtime,
    name: &str,
    container: &Container,
    check: &HealthCheck,
    publish_address: IpAddr,
) -> Result<()> {
    let started = Instant::now();
    let start_period = Duration::from_secs(check.start_period_seconds.into());
    let interval = Duration::from_secs(check.interval_seconds.into());
    let mut failures = 0;
    let mut state_checked = Instant::now();
    loop {
        if state_checked.elapsed() >= STATE_EVERY {
            state_checked = Instant::now();
            if let Some(reason) = not_running(runtime, name).await? {
                return Err(Error::Unhealthy {
                    container: container.name.clone(),
                    reason,
                });
            }
        }
        let result = probe(runtime, name, container, check, publish_address).await;
        match result {
            Ok(()) => return Ok(()),
            Err(reason) => {
                if started.elapsed() >= start_period {
                    failures += 1;
                    if failures > check.retries {
                        return Err(Error::Unhealthy {
                            container: container.name.clone(),
                            reason,
                        });
                    }
                }
            }
        }
        // Poll faster than the interval while starting, so healthy apps are seen soon.
        let wait = if started.elapsed() < start_period {
            interval.min(Duration::from_millis(50))
        } else {
            interval
        };
        sleep(wait).await;
    }
}

impl crate::Orchestrator {
    /// Runs the health check of `container` (its name in the manifest) once, bounded by the
    /// check's `timeout_seconds`: what a loop watching a running app calls at the check's
    /// interval. `Ok` when the manifest declares no check; `Err` says why the check failed.
    pub async fn check_once(
        &self,
        manifest: &archy_registry::VerifiedManifest,
        container: &str,
    ) -> Result<(), String> {
        let Some(c) = manifest.container(container) else {
            return Err(format!("{} has no container {container:?}", manifest.id));
        };
        let Some(check) = &c.health else {
            return Ok(());
        };
        let name = crate::container_name(&manifest.id, &c.name);
        probe(
            self.runtime.as_ref(),
            &name,
            c,
            check,
            self.config.publish_address,
        )
        .await
    }
}

/// Why the container cannot become healthy any more (it is not running), if so. Errors
/// from Podman itself (a dead or frozen service) are returned as they are.
async fn not_running(runtime: &dyn Runtime, name: &str) -> Result<Option<String>> {
    let Some(info) = runtime.inspect(name).await? else {
        return Ok(Some("the container was removed while starting".into()));
    };
    Ok(match info.status.as_str() {
        "running" | "created" | "configured" | "initialized" | "" => None,
        other => Some(format!(
            "the container is {other} (exit code {}) instead of running",
            info.exit_code
        )),
    })
}

/// Where a port published on `publish_address` answers: loopback of the same family for
/// an unspecified address (Podman binds `0.0.0.0`/`::` on every interface).
fn probe_address(publish_address: IpAddr) -> IpAddr {
    match publish_address {
        IpAddr::V4(v4) if v4.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
        IpAddr::V6(v6) if v6.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
        other => other,
    }
}

/// The HTTP health request: `Host` carries an IPv6 address in brackets (RFC 3986 authority).
fn http_request(path: &str, host: IpAddr, port: u16) -> String {
    format!(
        "GET {path} HTTP/1.0\r\nHost: {}:{port}\r\nUser-Agent: archy-health\r\n\r\n",
        publish_host(host)
    )
}

async fn probe(
    runtime: &dyn Runtime,
    name: &str,
    container: &Container,
    check: &HealthCheck,
    publish_address: IpAddr,
) -> Result<(), String> {
    let limit = Duration::from_secs(check.timeout_seconds.into());
    let host = probe_address(publish_address);
    let host_port = |port: u16| {
        container
            .ports
            .iter()
            .find(|p| p.container == port)
            .map(|p| p.host)
            .ok_or_else(|| {
                format!("container port {port} is not published, so the node cannot probe it")
            })
    };
    match &check.probe {
        Probe::Http(http) => {
            let port = host_port(http.port)?;
            let attempt = async {
                let mut stream = TcpStream::connect((host, port))
                    .await
                    .map_err(|e| e.to_string())?;
                let request = http_request(&http.path, host, port);
                stream
                    .write_all(request.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                let mut head = vec![0u8; 64];
                let n = stream.read(&mut head).await.map_err(|e| e.to_string())?;
                let status_line = String::from_utf8_lossy(&head[..n]).into_owned();
                let code: u16 = status_line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| format!("not an HTTP response: {status_line:?}"))?;
                if (200..400).contains(&code) {
                    Ok(())
                } else {
                    Err(format!("GET {} answered {code}", http.path))
                }
            };
            timeout(limit, attempt).await.unwrap_or_else(|_| {
                Err(format!("no HTTP answer within {}s", check.timeout_seconds))
            })
        }
        Probe::Tcp(tcp) => {
            let port = host_port(tcp.port)?;
            let mut stream = match timeout(limit, TcpStream::connect((host, port))).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return Err(format!("tcp connect to port {port}: {e}")),
                Err(_) => return Err(format!("tcp connect to port {port} timed out")),
            };
            // Rootless Podman's port forwarder accepts on the host side whether or not anything
            // listens in the container, then hangs up. A service keeps the connection open (or
            // speaks first); an immediate end-of-stream means nothing is behind the port.
            let mut first = [0u8; 1];
            match timeout(TCP_SETTLE, stream.read(&mut first)).await {
                Ok(Ok(0)) => Err(format!(
                    "tcp connect to port {port}: the connection was closed at once (nothing listens on container port {})",
                    tcp.port
                )),
                Ok(Err(e)) => Err(format!("tcp connect to port {port}: {e}")),
                Ok(Ok(_)) | Err(_) => Ok(()),
            }
        }
        Probe::Command(command) => match timeout(limit, runtime.exec(name, command)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "health command timed out after {}s",
                check.timeout_seconds
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_header_brackets_ipv6() {
        let v4 = http_request("/healthz", IpAddr::from([127, 0, 0, 1]), 18080);
        assert!(v4.contains("\r\nHost: 127.0.0.1:18080\r\n"), "{v4}");
        let v6 = http_request("/healthz", "::1".parse().unwrap(), 18080);
        assert!(v6.starts_with("GET /healthz HTTP/1.0\r\n"), "{v6}");
        assert!(v6.contains("\r\nHost: [::1]:18080\r\n"), "{v6}");
    }

    #[test]
    fn unspecified_addresses_are_probed_on_loopback() {
        let probe = |a: &str| probe_address(a.parse().unwrap()).to_string();
        assert_eq!(probe("0.0.0.0"), "127.0.0.1");
        assert_eq!(probe("::"), "::1");
        assert_eq!(probe("192.168.1.20"), "192.168.1.20");
        assert_eq!(probe("fd00::20"), "fd00::20");
    }
}
