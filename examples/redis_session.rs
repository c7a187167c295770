//! A Redis session pooled per shard on keepalive: the pooled object is a
//! logged-in session (`AUTH`, then `SELECT`), not a bare socket.
//!
//! * The protocol step ([`Login`]) runs once per connection, inside the
//!   request's timeout; a refused password fails the allocation with
//!   function `"handshake"`.
//! * The session is [`Pooled`]: its checks are its stream's (the kernel's
//!   view of the socket, and the reactor's wake-up while idle), so a
//!   session whose server restarted leaves the pool at once.
//! * Its [`recycle`](Pooled::recycle) refuses a session left in `MULTI` or
//!   subscribed: nobody else may inherit that state.
//!
//! RESP is spoken by hand (a few dozen lines) to keep the example about
//! the pool; a real driver would use a client crate's codec.
//!
//! ```text
//! redis-server --port 6380 --requirepass secret &
//! cargo run --example redis_session -- 127.0.0.1:6380 secret
//! ```
//!
//! `cargo test` runs the tests at the bottom against `redis-server`
//! processes they start themselves.

use std::io;
use std::task::Context;

use keepalive::{Health, Manager, Pooled, Protocol, Stream, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A RESP reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Status(String),
    /// `-ERR ...`
    Error(String),
    /// `:1`
    Integer(i64),
    /// `$3\r\nfoo`, or `None` for `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*2 ...`, or `None` for `*-1`.
    Array(Option<Vec<Reply>>),
}

/// A logged-in Redis connection, and what state the user left it in.
#[derive(Debug)]
pub struct Session {
    stream: Stream,
    buf: Vec<u8>,
    in_multi: bool,
    subscribed: bool,
}

impl Session {
    /// Sends one command and reads its reply, tracking `MULTI` and
    /// subscriptions.
    pub async fn command(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&out).await?;
        let reply = self.reply().await?;
        let name = args.first().map(|a| a.to_ascii_uppercase()).unwrap_or_default();
        match (name.as_slice(), &reply) {
            (_, Reply::Error(_)) => {}
            (b"MULTI", _) => self.in_multi = true,
            (b"EXEC" | b"DISCARD", _) => self.in_multi = false,
            (b"SUBSCRIBE" | b"PSUBSCRIBE" | b"SSUBSCRIBE", _) => self.subscribed = true,
            _ => {}
        }
        Ok(reply)
    }

    /// Reads one reply.
    async fn reply(&mut self) -> io::Result<Reply> {
        loop {
            if let Some((reply, used)) = parse(&self.buf)? {
                self.buf.drain(..used);
                return Ok(reply);
            }
            let mut chunk = [0; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "redis closed the connection",
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

impl Pooled for Session {
    fn check(&mut self) -> Health {
        match self.buf.is_empty() {
            true => self.stream.check(),
            false => Health::Unread,
        }
    }

    fn watch(&mut self, cx: &mut Context<'_>) -> Health {
        self.stream.watch(cx)
    }

    /// A transaction or a subscription the user left open must not reach
    /// the next user: such a session is closed instead.
    fn recycle(&mut self) -> bool {
        !self.in_multi && !self.subscribed && self.buf.is_empty()
    }

    fn abort(&mut self) {
        self.stream.abort();
    }
}

/// One RESP reply from the start of `buf`, and how many bytes it took;
/// `None` when more bytes are needed.
fn parse(buf: &[u8]) -> io::Result<Option<(Reply, usize)>> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "not RESP");
    let line = std::str::from_utf8(&buf[1..end]).map_err(|_| bad())?;
    let after = end + 2;
    let number = || line.parse::<i64>().map_err(|_| bad());
    Ok(match buf.first() {
        Some(b'+') => Some((Reply::Status(line.to_owned()), after)),
        Some(b'-') => Some((Reply::Error(line.to_owned()), after)),
        Some(b':') => Some((Reply::Integer(number()?), after)),
        Some(b'$') => match number()? {
            -1 => Some((Reply::Bulk(None), after)),
            n => {
                let n = usize::try_from(n).map_err(|_| bad())?;
                match buf.len() >= after + n + 2 {
                    true => Some((Reply::Bulk(Some(buf[after..after + n].to_vec())), after + n + 2)),
                    false => None,
                }
            }
        },
        Some(b'*') => match number()? {
            -1 => Some((Reply::Array(None), after)),
            n => {
                let mut items = Vec::new();
                let mut used = after;
                for _ in 0..n {
                    let Some((item, len)) = parse(&buf[used..])? else {
                        return Ok(None);
                    };
                    items.push(item);
                    used += len;
                }
                Some((Reply::Array(Some(items)), used))
            }
        },
        _ => return Err(bad()),
    })
}

/// The protocol step: `AUTH` (when a password is set) and `SELECT`.
#[derive(Debug)]
pub struct Login {
    /// `requirepass`.
    pub password: Option<String>,
    /// The database every session of this manager uses.
    pub db: u32,
}

impl Protocol<Stream> for Login {
    type Conn = Session;
    type Error = io::Error;

    async fn handshake(&self, _: &Target, stream: Stream) -> io::Result<Session> {
        let mut session = Session {
            stream,
            buf: Vec::new(),
            in_multi: false,
            subscribed: false,
        };
        if let Some(password) = &self.password {
            expect_ok(session.command(&[b"AUTH", password.as_bytes()]).await?)?;
        }
        let db = self.db.to_string();
        expect_ok(session.command(&[b"SELECT", db.as_bytes()]).await?)?;
        Ok(session)
    }
}

fn expect_ok(reply: Reply) -> io::Result<()> {
    match reply {
        Reply::Status(s) if s == "OK" => Ok(()),
        other => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("redis refused the session: {other:?}"),
        )),
    }
}

/// A manager of logged-in sessions, one key per shard.
pub fn sessions(password: Option<String>, db: u32) -> Manager<Login> {
    Manager::builder()
        .max_per_host(8)
        .protocol(Login { password, db })
        .build()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:6379".into());
    let password = args.next();
    let target: Target = format!("redis://{addr}").parse()?;
    let manager = sessions(password, 0);
    for i in 0..3 {
        let mut session = manager.allocate(target.clone()).await?;
        let key = format!("keepalive:example:{i}");
        session.command(&[b"SET", key.as_bytes(), b"1"]).await?;
        println!(
            "{key}: {:?} ({:?})",
            session.command(&[b"GET", key.as_bytes()]).await?,
            session.from_cache()
        );
    }
    let stats = manager.stats_for(&target);
    println!(
        "{} login(s) for {} commands' checkouts",
        stats.connects,
        stats.connects + stats.reuses
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    /// The tests run one at a time: the restart test gives its port back
    /// and takes it again, which another test's port pick could steal.
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    /// A `redis-server` on a loopback port of its own, killed on drop.
    struct Redis {
        child: Child,
        port: u16,
    }

    impl Redis {
        /// `None` (with a banner, or a panic under `CI=true`) when
        /// `redis-server` is not installed.
        async fn start(port: Option<u16>) -> Option<Redis> {
            let port = match port {
                Some(port) => port,
                None => std::net::TcpListener::bind("127.0.0.1:0")
                    .ok()?
                    .local_addr()
                    .ok()?
                    .port(),
            };
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(["--requirepass", "secret"])
                .stdout(Stdio::null())
                .spawn();
            let child = match child {
                Ok(child) => child,
                Err(e) => {
                    if std::env::var("CI").is_ok_and(|v| v == "true") {
                        panic!("redis-server is required in CI: {e}");
                    }
                    let banner = format!("\n!!!!!!!! SKIPPED: redis-server is not available ({e}); `bash .ci/run` installs it !!!!!!!!\n\n");
                    let _ = io::Write::write_all(&mut io::stderr(), banner.as_bytes());
                    return None;
                }
            };
            let redis = Redis { child, port };
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "redis-server did not listen on {port}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Some(redis)
        }

        fn target(&self) -> Target {
            Target::new("redis", "127.0.0.1", self.port)
        }

        /// Connections the pool made: the server's
        /// `total_connections_received`, less the test's own.
        async fn connections_received(&self) -> i64 {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .unwrap();
            s.write_all(b"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n")
                .await
                .unwrap();
            let mut text = Vec::new();
            let mut chunk = [0; 8192];
            while !String::from_utf8_lossy(&text).contains("total_commands_processed") {
                let n = s.read(&mut chunk).await.unwrap();
                assert!(n > 0, "INFO reply cut short");
                text.extend_from_slice(&chunk[..n]);
            }
            let text = String::from_utf8_lossy(&text);
            let line = text
                .lines()
                .find(|l| l.starts_with("total_connections_received:"))
                .unwrap();
            // Minus this one, the counting connection, and the readiness
            // probe of `start` (refused attempts are not counted).
            line["total_connections_received:".len()..]
                .trim()
                .parse::<i64>()
                .unwrap()
                - 2
        }
    }

    impl Drop for Redis {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(Some(s.as_bytes().to_vec()))
    }

    #[tokio::test]
    async fn sessions_log_in_once_per_connection_and_per_shard() {
        let _serial = SERIAL.lock().await;
        let (Some(a), Some(b)) = (Redis::start(None).await, Redis::start(None).await) else {
            return;
        };
        let manager = sessions(Some("secret".into()), 2);
        for shard in [&a, &b] {
            for i in 0..5 {
                let mut session = manager.allocate(shard.target()).await.unwrap();
                let value = format!("{}-{i}", shard.port);
                session.command(&[b"SET", b"k", value.as_bytes()]).await.unwrap();
                assert_eq!(session.command(&[b"GET", b"k"]).await.unwrap(), bulk(&value));
                // SELECT 2 ran in the protocol step.
                let Reply::Bulk(Some(info)) = session.command(&[b"CLIENT", b"INFO"]).await.unwrap() else {
                    panic!("CLIENT INFO");
                };
                assert!(String::from_utf8_lossy(&info).contains(" db=2 "));
            }
            assert_eq!(
                shard.connections_received().await,
                1,
                "one login for five checkouts"
            );
            let stats = manager.stats_for(&shard.target());
            assert_eq!((stats.connects, stats.reuses), (1, 4));
        }
        let wrong = sessions(Some("wrong".into()), 0);
        let err = wrong.allocate(a.target()).await.unwrap_err();
        assert_eq!(err.function(), "handshake", "{err}");
        assert_eq!(wrong.stats().open, 0);
    }

    #[tokio::test]
    async fn a_session_left_in_multi_or_subscribed_is_not_reused() {
        let _serial = SERIAL.lock().await;
        let Some(redis) = Redis::start(None).await else {
            return;
        };
        let manager = sessions(Some("secret".into()), 0);
        let mut session = manager.allocate(redis.target()).await.unwrap();
        assert_eq!(
            session.command(&[b"MULTI"]).await.unwrap(),
            Reply::Status("OK".into())
        );
        drop(session);
        let mut session = manager.allocate(redis.target()).await.unwrap();
        assert_eq!(session.from_cache(), keepalive::FromCache::Fresh);
        assert_eq!(
            session.command(&[b"MULTI"]).await.unwrap(),
            Reply::Status("OK".into())
        );
        assert_eq!(
            session.command(&[b"EXEC"]).await.unwrap(),
            Reply::Array(Some(vec![]))
        );
        drop(session);
        let mut session = manager.allocate(redis.target()).await.unwrap();
        assert_eq!(
            session.from_cache(),
            keepalive::FromCache::Immediate,
            "EXEC ended it"
        );
        session.command(&[b"SUBSCRIBE", b"news"]).await.unwrap();
        drop(session);
        let stats = manager.stats_for(&redis.target());
        assert_eq!(stats.closes.recycle_refused, 2);
        assert_eq!((stats.open, stats.connects), (0, 2));
    }

    #[tokio::test]
    async fn idle_sessions_leave_the_pool_when_redis_restarts() {
        let _serial = SERIAL.lock().await;
        let Some(redis) = Redis::start(None).await else {
            return;
        };
        let port = redis.port;
        let manager = sessions(Some("secret".into()), 0);
        let target = redis.target();
        let (s1, s2) = (
            manager.allocate(target.clone()).await.unwrap(),
            manager.allocate(target.clone()).await.unwrap(),
        );
        drop((s1, s2));
        assert_eq!(manager.stats().idle, 2);
        drop(redis);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while manager.stats().open != 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "idle sessions outlived their server"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(manager.stats().closes.closed_by_peer, 2);
        let Some(again) = Redis::start(Some(port)).await else {
            return;
        };
        let mut session = manager.allocate(again.target()).await.unwrap();
        assert_eq!(session.from_cache(), keepalive::FromCache::Fresh);
        assert_eq!(
            session.command(&[b"PING"]).await.unwrap(),
            Reply::Status("PONG".into())
        );
    }
}
