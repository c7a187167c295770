//! SOCKS5 (RFC 1928) with username/password authentication (RFC 1929):
//! the method choice, the login, and `CONNECT`, each reply read to its
//! exact length (every BND.ADDR type), so nothing of the tunnel is taken.

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Failure;
use crate::error::Error;
use crate::proxy::Proxy;
use crate::resolver::Resolve;
use crate::target::Target;

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0x00;
const USER_PASSWORD: u8 = 0x02;
const NO_ACCEPTABLE: u8 = 0xff;
const CONNECT: u8 = 0x01;
const IPV4: u8 = 0x01;
const DOMAIN: u8 = 0x03;
const IPV6: u8 = 0x04;

/// Asks the proxy on `tcp` for a tunnel to `target`. With `remote_dns`
/// (`socks5h`) a name is sent as a name (ATYP 3); without, the pool's
/// resolver looks it up first and the first address is sent.
pub(super) async fn handshake(
    tcp: &mut TcpStream,
    proxy: &Proxy,
    target: &Target,
    remote_dns: bool,
    resolver: &dyn Resolve,
) -> Result<(), Error> {
    let fail = |f: Failure| f.into_error(target, proxy);
    let destination = match (target.literal(), remote_dns) {
        (Some(ip), _) => Destination::Ip(ip),
        (None, true) => Destination::Name(target.host()),
        (None, false) => Destination::Ip(resolve(resolver, target).await.map_err(fail)?),
    };
    greet(tcp, proxy).await.map_err(fail)?;
    request(tcp, &destination, target.port()).await.map_err(fail)
}

enum Destination<'a> {
    Ip(IpAddr),
    Name(&'a str),
}

/// `socks5://`: the destination's first address, by the pool's resolver.
async fn resolve(resolver: &dyn Resolve, target: &Target) -> Result<IpAddr, Failure> {
    let addrs = resolver
        .resolve(target.host(), target.port())
        .await
        .map_err(|e| {
            Failure::new(format!("resolving {} for the SOCKS5 proxy failed", target.host())).caused_by(e)
        })?;
    addrs.first().map(SocketAddr::ip).ok_or_else(|| {
        Failure::new(format!(
            "{} has no address to send the SOCKS5 proxy",
            target.host()
        ))
    })
}

fn io(doing: &'static str) -> impl Fn(std::io::Error) -> Failure {
    move |e| Failure::io(doing, e)
}

/// The method choice, then RFC 1929's login if the proxy picked it.
async fn greet(tcp: &mut TcpStream, proxy: &Proxy) -> Result<(), Failure> {
    let credentials = proxy.credentials();
    let hello: &[u8] = match credentials {
        Some(_) => &[VERSION, 2, NO_AUTH, USER_PASSWORD],
        None => &[VERSION, 1, NO_AUTH],
    };
    tcp.write_all(hello)
        .await
        .map_err(io("sending the SOCKS5 greeting"))?;
    let mut choice = [0u8; 2];
    tcp.read_exact(&mut choice)
        .await
        .map_err(io("reading the SOCKS5 method choice"))?;
    match (choice, credentials) {
        ([VERSION, NO_AUTH], _) => Ok(()),
        ([VERSION, USER_PASSWORD], Some(credentials)) => {
            login(tcp, &credentials.user, &credentials.password).await
        }
        ([VERSION, NO_ACCEPTABLE], _) => Err(Failure::new(match credentials {
            Some(_) => "the SOCKS5 proxy accepts neither no authentication nor a user name and password",
            None => "the SOCKS5 proxy requires authentication, and no credentials are set",
        })),
        ([VERSION, method], _) => Err(Failure::new(format!(
            "the SOCKS5 proxy chose method {method:#04x}, which was not offered"
        ))),
        (other, _) => Err(Failure::new(format!(
            "the proxy's reply {other:02x?} is not SOCKS5"
        ))),
    }
}

/// RFC 1929's user name and password exchange.
async fn login(tcp: &mut TcpStream, user: &str, password: &str) -> Result<(), Failure> {
    let (user, password) = (user.as_bytes(), password.as_bytes());
    // Lengths were checked to fit one byte when the target was.
    let mut login = Vec::with_capacity(3 + user.len() + password.len());
    login.extend([1, user.len() as u8]);
    login.extend_from_slice(user);
    login.push(password.len() as u8);
    login.extend_from_slice(password);
    tcp.write_all(&login)
        .await
        .map_err(io("sending the SOCKS5 login"))?;
    let mut status = [0u8; 2];
    tcp.read_exact(&mut status)
        .await
        .map_err(io("reading the SOCKS5 login reply"))?;
    match status {
        [1, 0] => Ok(()),
        [1, code] => Err(Failure::new(format!(
            "the SOCKS5 proxy refused the user name and password (status {code})"
        ))),
        other => Err(Failure::new(format!(
            "the SOCKS5 login reply {other:02x?} is not RFC 1929's"
        ))),
    }
}

/// `CONNECT` to the destination, and its reply consumed to its last byte.
async fn request(tcp: &mut TcpStream, destination: &Destination<'_>, port: u16) -> Result<(), Failure> {
    let message = connect_message(destination, port);
    tcp.write_all(&message)
        .await
        .map_err(io("sending the SOCKS5 CONNECT"))?;
    read_reply(tcp).await
}

/// The CONNECT request for `destination` and `port` (RFC 1928 section 4).
fn connect_message(destination: &Destination<'_>, port: u16) -> Vec<u8> {
    let mut message = vec![VERSION, CONNECT, 0];
    match destination {
        Destination::Ip(IpAddr::V4(ip)) => {
            message.push(IPV4);
            message.extend_from_slice(&ip.octets());
        }
        Destination::Ip(IpAddr::V6(ip)) => {
            message.push(IPV6);
            message.extend_from_slice(&ip.octets());
        }
        Destination::Name(name) => {
            // RFC 1123 names are at most 253 bytes: they fit the one byte.
            message.extend([DOMAIN, name.len() as u8]);
            message.extend_from_slice(name.as_bytes());
        }
    }
    message.extend_from_slice(&port.to_be_bytes());
    message
}

/// The CONNECT reply (RFC 1928 section 6), consumed to its last byte.
async fn read_reply(tcp: &mut TcpStream) -> Result<(), Failure> {
    let mut head = [0u8; 4];
    tcp.read_exact(&mut head)
        .await
        .map_err(io("reading the SOCKS5 CONNECT reply"))?;
    let [version, code, _reserved, atyp] = head;
    if version != VERSION {
        return Err(Failure::new(format!(
            "the proxy's CONNECT reply {head:02x?} is not SOCKS5"
        )));
    }
    if code != 0 {
        return Err(Failure::new(format!(
            "the SOCKS5 proxy refused the tunnel: {} (reply {code})",
            reply_meaning(code)
        )));
    }
    let address_len = match atyp {
        IPV4 => 4,
        IPV6 => 16,
        DOMAIN => {
            let mut len = [0u8; 1];
            tcp.read_exact(&mut len)
                .await
                .map_err(io("reading the SOCKS5 CONNECT reply"))?;
            usize::from(len[0])
        }
        other => {
            return Err(Failure::new(format!(
                "the SOCKS5 CONNECT reply has address type {other}, which RFC 1928 does not define"
            )))
        }
    };
    // BND.ADDR and BND.PORT: read, and not needed.
    let mut bound = [0u8; 255 + 2];
    tcp.read_exact(&mut bound[..address_len + 2])
        .await
        .map_err(io("reading the SOCKS5 CONNECT reply"))?;
    Ok(())
}

/// RFC 1928 section 6's words for a reply code.
fn reply_meaning(code: u8) -> &'static str {
    match code {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unassigned reply code",
    }
}
