//! Endpoint strings: `tcp://host:port`, `ipc:///path` and `inproc://name`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use crate::error::{Error, Result};

/// The longest ipc path: `sun_path` is 108 bytes on Linux (104 on the
/// BSDs and macOS), less the terminating zero.
#[cfg(any(target_os = "linux", target_os = "android"))]
const MAX_IPC_PATH: usize = 107;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const MAX_IPC_PATH: usize = 103;

/// A parsed endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `tcp://host:port`. `host` is kept as written for connects (resolved
    /// at each attempt) and resolved at once for binds.
    Tcp {
        /// Host name or address as written (`*` for every interface).
        host: String,
        /// Port; 0 (or `*`) lets the system pick one when binding.
        port: u16,
    },
    /// `ipc:///path` (Unix domain socket).
    Ipc(PathBuf),
    /// `inproc://name`: between sockets of one [`crate::Context`], in one
    /// process. Messages are handed over, not encoded; security options do
    /// not apply (as in libzmq).
    Inproc(String),
}

impl Endpoint {
    /// Parses an endpoint string.
    pub fn parse(s: &str) -> Result<Endpoint> {
        let bad = || Error::Endpoint(s.to_owned());
        let (scheme, rest) = s.split_once("://").ok_or_else(bad)?;
        match scheme {
            "tcp" => {
                let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
                let port = if port == "*" {
                    0
                } else {
                    port.parse().map_err(|_| bad())?
                };
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if host.is_empty() {
                    return Err(bad());
                }
                Ok(Endpoint::Tcp {
                    host: host.to_owned(),
                    port,
                })
            }
            "ipc" => {
                if rest.is_empty() {
                    return Err(bad());
                }
                // A Unix socket address holds the path and a terminating
                // zero in `sun_path`; a longer path cannot be bound or
                // connected to (libzmq: ENAMETOOLONG).
                if rest.len() > MAX_IPC_PATH {
                    return Err(Error::Endpoint(format!(
                        "{s}: the path is {} bytes, a Unix socket address holds at most {MAX_IPC_PATH}",
                        rest.len()
                    )));
                }
                Ok(Endpoint::Ipc(PathBuf::from(rest)))
            }
            "inproc" => {
                if rest.is_empty() {
                    return Err(Error::Endpoint(format!("{s}: an inproc name is not empty")));
                }
                Ok(Endpoint::Inproc(rest.to_owned()))
            }
            _ => Err(bad()),
        }
    }

    /// Socket addresses for a bind: `*` means every IPv4 interface (as in
    /// libzmq without `ZMQ_IPV6`).
    pub(crate) fn bind_addrs(&self) -> Result<Vec<SocketAddr>> {
        match self {
            Endpoint::Tcp { host, port } if host == "*" => Ok(vec![SocketAddr::new(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                *port,
            )]),
            Endpoint::Tcp { host, port } => resolve(host, *port),
            Endpoint::Ipc(_) | Endpoint::Inproc(_) => Ok(Vec::new()),
        }
    }

    /// Socket addresses for a connect, resolved at each attempt.
    pub(crate) fn connect_addrs(&self) -> Result<Vec<SocketAddr>> {
        match self {
            Endpoint::Tcp { host, port } if host == "*" => Ok(vec![SocketAddr::new(
                IpAddr::V6(Ipv6Addr::LOCALHOST),
                *port,
            )]),
            Endpoint::Tcp { host, port } => resolve(host, *port),
            Endpoint::Ipc(_) | Endpoint::Inproc(_) => Ok(Vec::new()),
        }
    }
}

fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    if addrs.is_empty() {
        return Err(Error::Endpoint(format!("tcp://{host}:{port}")));
    }
    Ok(addrs)
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            Endpoint::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Endpoint::Ipc(p) => write!(f, "ipc://{}", p.display()),
            Endpoint::Inproc(name) => write!(f, "inproc://{name}"),
        }
    }
}

/// The endpoint string for a bound address, as libzmq reports it.
pub(crate) fn tcp_endpoint(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("tcp://{}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("tcp://[{}]:{}", a.ip(), a.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipc_path_too_long_for_a_socket_address_is_refused() {
        let longest = format!("ipc:///{}", "x".repeat(MAX_IPC_PATH - 1));
        assert!(Endpoint::parse(&longest).is_ok());
        let over = format!("ipc:///{}", "x".repeat(MAX_IPC_PATH));
        match Endpoint::parse(&over) {
            Err(Error::Endpoint(why)) => assert!(why.contains("at most"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses() {
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.1:5555").unwrap(),
            Endpoint::Tcp {
                host: "127.0.0.1".into(),
                port: 5555
            }
        );
        assert_eq!(
            Endpoint::parse("tcp://*:*").unwrap(),
            Endpoint::Tcp {
                host: "*".into(),
                port: 0
            }
        );
        assert_eq!(
            Endpoint::parse("tcp://[::1]:7").unwrap(),
            Endpoint::Tcp {
                host: "::1".into(),
                port: 7
            }
        );
        assert_eq!(
            Endpoint::parse("tcp://[::1]:7").unwrap().to_string(),
            "tcp://[::1]:7"
        );
        assert_eq!(
            Endpoint::parse("ipc:///tmp/x.sock").unwrap(),
            Endpoint::Ipc("/tmp/x.sock".into())
        );
        assert_eq!(
            Endpoint::parse("inproc://work-queue").unwrap(),
            Endpoint::Inproc("work-queue".into())
        );
        assert_eq!(Endpoint::Inproc("w".into()).to_string(), "inproc://w");
        for bad in [
            "tcp://host",
            "tcp://:5",
            "udp://a:1",
            "tcp://a:99999",
            "ipc://",
            "inproc://",
            "nothing",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
