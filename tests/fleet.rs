//! The fleet (issue #16): one per-host limit for many managers, kept in a
//! real `redis-server` that each test starts on loopback. Members are
//! separate OS processes where it matters (this test binary re-run as
//! `member_process`), managers in this process elsewhere.
//!
//! The origin counts, at every accept, the client ends the kernel has
//! established to its port (an end leaves ESTABLISHED when its process
//! closes it), so "never more than the cap" is what the members held open
//! at once, all processes together.
#![cfg(feature = "fleet")]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keepalive::{Fleet, FromCache, Manager, Target};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use support::nginx::free_port;
use support::servers::{redis, Process};
use support::{until, within};

/// The member process's settings, from its environment.
const ROLE: &str = "KEEPALIVE_FLEET_MEMBER";

/// An origin that counts the open connections to it at each accept.
struct Origin {
    port: u16,
    peak: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
}

impl Origin {
    async fn start() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let peak = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (p, a) = (peak.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                // Two readings, the lower kept: a walk of /proc/net/tcp is
                // not atomic, and one that meets a close and a connect
                // (in different buckets) can count both.
                p.fetch_max(open_clients(port).min(open_clients(port)), Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(1..) = stream.read(&mut buf).await {}
                });
            }
        });
        Origin { port, peak, accepted }
    }

    fn target(&self) -> Target {
        Target::new("tcp", "127.0.0.1", self.port)
    }

    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// Client ends connected to `port` (ESTABLISHED), from /proc/net/tcp.
/// What the fleet caps is the connections its members hold open, and a
/// client's end leaves ESTABLISHED in `close()` itself, before the pool
/// gives its slot back. The server's end leaves only when the FIN is
/// processed, which a loaded machine may defer past the next member's
/// connect: counted there, a close and the connect it made room for can
/// overlap (the likely reading of a CI run that saw 3 for a cap of 2).
fn open_clients(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let remote = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            cols.get(2) == Some(&remote.as_str()) && cols.get(3) == Some(&"01")
        })
        .count()
}

/// A redis-server for one test, or `None` (skipped, or failed in CI).
fn start_redis(name: &str, port: u16, password: Option<&str>) -> Option<Process> {
    match redis(name, port, password) {
        Ok(process) => Some(process),
        Err(why) => {
            support::skip_or_fail("redis-server", &why);
            None
        }
    }
}

fn fleet(port: u16, name: &str, cap: usize, lease: Duration) -> Fleet {
    Fleet::redis(&format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .name(name)
        .max_per_host(cap)
        .lease(lease)
}

fn member(fleet: Fleet) -> Manager {
    Manager::builder().max_per_host(4).fleet(fleet).build()
}

/// Looks into Redis: the number of slots held for `target` in fleet
/// `name`, whoever holds them (dead members' included until a script
/// cleans them).
async fn slots_in_redis(port: u16, name: &str, target: &Target) -> usize {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return 0;
    };
    let key = format!("keepalive:fleet:{name}:slots:{target}");
    redis::cmd("HLEN")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap_or(0)
}

/// This test binary again, as a member with `settings`: `press SECS
/// HOLD_MS` (allocate, hold, return, for SECS) or `hold N` (hold N
/// connections until killed). It prints `HELD n` or `DONE ok err`.
fn spawn_member(redis_port: u16, cap: usize, origin: u16, settings: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "member_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(ROLE, format!("{redis_port} {cap} {origin} {settings}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the test binary runs again")
}

/// What follows `prefix` on the first line of `child`'s output that has it.
fn line_from(child: &mut Child, prefix: &str) -> String {
    let stdout = child.stdout.as_mut().expect("piped");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("the member ended before saying {prefix:?}");
        }
        // libtest may have written the test's name on the same line.
        if let Some(at) = line.find(prefix) {
            return line[at + prefix.len()..].trim().to_owned();
        }
    }
}

#[test]
#[ignore = "a member process: run by the other tests of this file"]
fn member_process() {
    let settings = std::env::var(ROLE).expect("run by the fleet tests, with its settings");
    let words: Vec<&str> = settings.split_whitespace().collect();
    let (redis_port, cap, origin): (u16, usize, u16) = (
        words[0].parse().unwrap(),
        words[1].parse().unwrap(),
        words[2].parse().unwrap(),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let manager = member(fleet(redis_port, "press", cap, Duration::from_secs(1)));
        let target = Target::new("tcp", "127.0.0.1", origin);
        match words[3] {
            "press" => {
                let secs: f64 = words[4].parse().unwrap();
                let hold = Duration::from_millis(words[5].parse().unwrap());
                let end = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
                let (mut ok, mut err) = (0, 0);
                while tokio::time::Instant::now() < end {
                    match manager.allocate(target.clone()).await {
                        Ok(conn) => {
                            ok += 1;
                            // The load: a connection in use for a while.
                            tokio::time::sleep(hold).await;
                            drop(conn);
                        }
                        Err(e) => {
                            eprintln!("member: {e}");
                            err += 1;
                        }
                    }
                }
                let stats = manager.stats();
                println!(
                    "DONE {ok} {err} {} {}",
                    stats.fleet_waits, stats.closes.fleet_released
                );
            }
            "hold" => {
                let n: usize = words[4].parse().unwrap();
                let mut held = Vec::new();
                for _ in 0..n {
                    held.push(manager.allocate(target.clone()).await.unwrap());
                }
                println!("HELD {}", held.len());
                std::future::pending::<()>().await;
            }
            other => panic!("unknown member mode {other}"),
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_member_processes_never_exceed_the_cap_and_use_it() {
    let redis_port = free_port();
    let Some(_redis) = start_redis("fleet-press", redis_port, None) else {
        return;
    };
    let origin = Origin::start().await;
    let cap = 2;
    let members: Vec<Child> = (0..3)
        .map(|_| spawn_member(redis_port, cap, origin.port, "press 3 20"))
        .collect();
    let outcomes = tokio::task::spawn_blocking(move || {
        members
            .into_iter()
            .map(|mut child| {
                let done = line_from(&mut child, "DONE");
                assert!(child.wait().unwrap().success());
                done
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let mut waits = 0;
    for done in &outcomes {
        let n: Vec<u64> = done.split(' ').map(|w| w.parse().unwrap()).collect();
        assert!(n[0] > 0, "every member was served: {outcomes:?}");
        assert_eq!(n[1], 0, "no member's request failed: {outcomes:?}");
        waits += n[2];
    }
    assert!(waits > 0, "the members had to wait for each other: {outcomes:?}");
    assert_eq!(
        origin.peak(),
        cap,
        "the origin saw the cap, and never more ({outcomes:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_released_for_another_member() {
    let redis_port = free_port();
    let Some(_redis) = start_redis("fleet-idle", redis_port, None) else {
        return;
    };
    let origin = Origin::start().await;
    let (a, b) = (
        member(fleet(redis_port, "idle", 2, Duration::from_secs(5))),
        member(fleet(redis_port, "idle", 2, Duration::from_secs(5))),
    );
    let target = origin.target();
    let held = (
        a.allocate(target.clone()).await.unwrap(),
        a.allocate(target.clone()).await.unwrap(),
    );
    drop(held);
    assert_eq!(a.stats_for(&target).idle, 2, "a holds the whole cap, idle");
    let conn = within("b's connection", b.allocate(target.clone()))
        .await
        .unwrap();
    assert_eq!(conn.from_cache(), FromCache::Fresh);
    let (sa, sb) = (a.stats_for(&target), b.stats_for(&target));
    assert_eq!(sa.closes.fleet_released, 1, "{sa:?}");
    assert_eq!(sa.idle, 1);
    assert_eq!(sb.fleet_waits, 1, "{sb:?}");
    assert!(sb.fleet_wait_time > Duration::ZERO);
    until("the origin to accept all three", || {
        origin.accepted.load(Ordering::SeqCst) == 3
    })
    .await;
    assert_eq!(origin.peak(), 2);
    // Reuse costs no Redis: a's idle connection is reused as before.
    let again = a.allocate(target.clone()).await.unwrap();
    assert_eq!(again.from_cache(), FromCache::Immediate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_frees_its_share_within_the_lease() {
    let redis_port = free_port();
    let Some(_redis) = start_redis("fleet-kill", redis_port, None) else {
        return;
    };
    let origin = Origin::start().await;
    let mut holder = spawn_member(redis_port, 2, origin.port, "hold 2");
    let held = tokio::task::spawn_blocking(move || {
        let held = line_from(&mut holder, "HELD");
        (holder, held)
    });
    let (mut holder, held) = within("the holder's connections", held).await.unwrap();
    assert_eq!(held, "2");
    let target = origin.target();
    let b = member(fleet(redis_port, "press", 2, Duration::from_secs(1)));
    let waiting = b.allocate(target.clone());
    until("b to wait for the fleet", || b.stats_for(&target).connecting == 1).await;
    // SIGKILL: no goodbye, no release; only the lease frees the slots.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let conn = within("b's connection after the holder died", waiting)
        .await
        .unwrap();
    drop(conn);
    let stats = b.stats_for(&target);
    assert_eq!(stats.fleet_waits, 1, "{stats:?}");
    assert!(origin.peak() <= 2, "peak {}: {stats:?}", origin.peak());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_open_or_fails_at_once_and_comes_back() {
    let redis_port = free_port();
    let Some(redis_server) = start_redis("fleet-down", redis_port, None) else {
        return;
    };
    let origin = Origin::start().await;
    let open = member(fleet(redis_port, "down", 2, Duration::from_secs(1)));
    let strict = member(fleet(redis_port, "down", 2, Duration::from_secs(1)).fail_open(false));
    let target = origin.target();
    drop(open.allocate(target.clone()).await.unwrap());
    assert_eq!(open.stats().fleet_reachable, Some(true));
    drop(redis_server);

    // The pool keeps working: reuse needs no Redis.
    let reused = open.allocate(target.clone()).await.unwrap();
    assert_eq!(reused.from_cache(), FromCache::Immediate);
    // A new connection fails open, and says so.
    let fresh = within("a connection without Redis", open.allocate(target.clone()))
        .await
        .unwrap();
    assert_eq!(fresh.from_cache(), FromCache::Fresh);
    let stats = open.stats();
    assert_eq!(
        (stats.fleet_bypassed, stats.fleet_reachable),
        (1, Some(false)),
        "{stats:?}"
    );
    // The strict member fails at once, not at the request's timeout.
    let started = std::time::Instant::now();
    let err = within("the strict refusal", strict.allocate(target.clone()))
        .await
        .unwrap_err();
    assert!(err.is_fleet_unavailable(), "{err}");
    assert_eq!(err.function(), "fleet");
    assert!(
        started.elapsed() < keepalive::DEFAULT_TIMEOUT / 10,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(strict.stats().open, 0, "nothing left open");

    // Redis is back, empty: the open member puts its connections back.
    let _redis = start_redis("fleet-down", redis_port, None).unwrap();
    let held = open.stats_for(&target).open;
    assert_eq!(held, 2);
    until_async(
        "the connections to be put back",
        || slots_in_redis(redis_port, "down", &target),
        held,
    )
    .await;
    // The cap (2) is the open member's again: the strict one waits, and
    // is served when the open member gives a connection up for it.
    let waiting = strict.allocate(target.clone());
    until("the strict member to wait for the fleet", || {
        strict.stats_for(&target).connecting == 1
    })
    .await;
    drop(reused);
    let conn = within("the strict member's connection", waiting).await.unwrap();
    assert_eq!(open.stats().closes.fleet_released, 1);
    assert_eq!(open.stats().fleet_reachable, Some(true));
    drop((conn, fresh));
}

/// Polls an async count until it reaches `want`.
async fn until_async<F, Fut>(what: &str, mut count: F, want: usize)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    within(what, async {
        while count().await != want {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_redis_gets_the_members_connections_back_and_the_cap_holds() {
    let redis_port = free_port();
    let Some(redis_server) = start_redis("fleet-restart", redis_port, None) else {
        return;
    };
    let origin = Origin::start().await;
    let lease = Duration::from_millis(900);
    let a = member(fleet(redis_port, "restart", 2, lease));
    let target = origin.target();
    let held = (
        a.allocate(target.clone()).await.unwrap(),
        a.allocate(target.clone()).await.unwrap(),
    );
    assert_eq!(slots_in_redis(redis_port, "restart", &target).await, 2);
    drop(redis_server);
    let _redis = start_redis("fleet-restart", redis_port, None).unwrap();
    assert_eq!(
        slots_in_redis(redis_port, "restart", &target).await,
        0,
        "restarted empty"
    );
    until_async(
        "a to put its slots back",
        || slots_in_redis(redis_port, "restart", &target),
        2,
    )
    .await;
    let b = member(fleet(redis_port, "restart", 2, lease));
    let waiting = b.allocate(target.clone());
    until("b to wait for the fleet", || b.stats_for(&target).connecting == 1).await;
    drop(held);
    let conn = within("b's connection", waiting).await.unwrap();
    drop(conn);
    assert!(origin.peak() <= 2, "{}", origin.peak());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_fleet_names_are_apart() {
    let redis_port = free_port();
    let Some(_redis) = start_redis("fleet-names", redis_port, None) else {
        return;
    };
    let origin = Origin::start().await;
    let a = member(fleet(redis_port, "a", 1, Duration::from_secs(5)));
    let b = member(fleet(redis_port, "b", 1, Duration::from_secs(5)));
    let target = origin.target();
    let held_a = a.allocate(target.clone()).await.unwrap();
    let held_b = within("b's connection", b.allocate(target.clone()))
        .await
        .unwrap();
    assert_eq!(b.stats().fleet_waits, 0, "another name does not share the cap");
    until("the origin to accept both", || {
        origin.accepted.load(Ordering::SeqCst) == 2
    })
    .await;
    drop((held_a, held_b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_fail_and_passwords_never_show() {
    for bad in [
        "http://127.0.0.1:6379",
        "redis://",
        "not a url",
        "redis://:hunter2@[::1",
    ] {
        let err = Fleet::redis(bad).unwrap_err();
        assert_eq!(err.function(), "fleet", "{bad}: {err}");
        assert!(!err.is_fleet_unavailable());
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
    let redis_port = free_port();
    let Some(_redis) = start_redis("fleet-auth", redis_port, Some("hunter2")) else {
        return;
    };
    let origin = Origin::start().await;
    let good = Fleet::redis(&format!("redis://:hunter2@127.0.0.1:{redis_port}/0")).unwrap();
    assert!(!format!("{good:?}").contains("hunter2"), "{good:?}");
    let manager = Manager::builder().fleet(good.clone().fail_open(false)).build();
    assert!(!format!("{manager:?}").contains("hunter2"));
    let conn = within("a connection", manager.allocate(origin.target()))
        .await
        .unwrap();
    drop(conn);
    assert_eq!(slots_in_redis_auth(redis_port, &origin.target()).await, 1);
    let wrong = Fleet::redis(&format!("redis://:wrong@127.0.0.1:{redis_port}/0"))
        .unwrap()
        .fail_open(false);
    let manager = Manager::builder().fleet(wrong).build();
    let err = within("the refusal", manager.allocate(origin.target()))
        .await
        .unwrap_err();
    assert!(err.is_fleet_unavailable(), "{err}");
    assert!(
        !err.to_string().contains("wrong") || !err.to_string().contains(":wrong@"),
        "{err}"
    );
}

async fn slots_in_redis_auth(port: u16, target: &Target) -> usize {
    let client = redis::Client::open(format!("redis://:hunter2@127.0.0.1:{port}/0")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("keepalive:fleet:keepalive:slots:{target}");
    redis::cmd("HLEN").arg(key).query_async(&mut conn).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_holder_gives_a_connection_up_for_another_member() {
    let redis_port = free_port();
    let Some(_redis) = start_redis("fleet-busy", redis_port, None) else {
        return;
    };
    let origin = Origin::start().await;
    let lease = Duration::from_secs(5);
    let a = Manager::builder()
        .max_per_host(8)
        .fleet(fleet(redis_port, "busy", 2, lease))
        .build();
    let b = member(fleet(redis_port, "busy", 2, lease));
    let target = origin.target();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Four workers on a's two connections: never idle for long.
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (a, target, stop) = (a.clone(), target.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let conn = a.allocate(target.clone()).await.unwrap();
                    tokio::task::yield_now().await;
                    drop(conn);
                }
            })
        })
        .collect();
    until("a to hold the fleet's cap", || a.stats_for(&target).connects >= 2).await;
    let conn = within("b's connection from a busy holder", b.allocate(target.clone()))
        .await
        .unwrap();
    drop(conn);
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let released = a.stats_for(&target).closes.fleet_released;
    assert!(released >= 1, "a gave a connection up: {released}");
    let (a, b) = (a.stats_for(&target), b.stats_for(&target));
    assert_eq!(b.fleet_waits, 1, "{b:?}");
    assert!(origin.peak() <= 2, "peak {}: a {a:?}, b {b:?}", origin.peak());
}

/// Commands Redis has processed so far (the `INFO` asking counts too).
async fn commands_processed(port: u16) -> u64 {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusing_a_pooled_connection_makes_no_call_to_redis() {
    let redis_port = free_port();
    let Some(_redis) = start_redis("fleet-reuse", redis_port, None) else {
        return;
    };
    let origin = Origin::start().await;
    // A long lease: no renewal falls inside the measure.
    let manager = member(fleet(redis_port, "reuse", 2, Duration::from_secs(30)));
    let target = origin.target();
    drop(manager.allocate(target.clone()).await.unwrap());
    // Once the member's start-up calls (first renewal, subscriptions) are
    // done, Redis sees nothing but our own INFOs; the slot stays held by
    // the idle connection, so only reuses follow.
    let before = within("Redis to fall quiet", async {
        loop {
            let (a, b) = (
                commands_processed(redis_port).await,
                commands_processed(redis_port).await,
            );
            if b - a == 1 {
                return b;
            }
        }
    })
    .await;
    for _ in 0..200 {
        let conn = manager.allocate(target.clone()).await.unwrap();
        assert_eq!(conn.from_cache(), FromCache::Immediate);
    }
    let after = commands_processed(redis_port).await;
    assert_eq!(after - before, 1, "only the second INFO itself");
    assert_eq!(manager.stats_for(&target).reuses, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_state_for_a_key_goes_with_its_last_user() {
    let redis_port = free_port();
    let Some(_redis) = start_redis("fleet-keys", redis_port, None) else {
        return;
    };
    let origins = [
        Origin::start().await,
        Origin::start().await,
        Origin::start().await,
        Origin::start().await,
    ];
    let (a, b) = (
        member(fleet(redis_port, "keys", 1, Duration::from_secs(5))),
        member(fleet(redis_port, "keys", 1, Duration::from_secs(5))),
    );
    assert_eq!(a.stats().fleet_keys, 0);
    // b holds the last origin's one slot, in use.
    let held = b.allocate(origins[3].target()).await.unwrap();
    let mut conns = Vec::new();
    for origin in &origins[..3] {
        conns.push(a.allocate(origin.target()).await.unwrap());
    }
    assert_eq!(a.stats().fleet_keys, 3);
    assert_eq!(
        a.stats_for(&origins[0].target()).fleet_keys,
        0,
        "the whole manager's only"
    );
    // A connect waiting for the fleet keeps its key; cancelled, it goes.
    let waiting = a.allocate(origins[3].target());
    until("a's connect to ask the fleet", || a.stats().fleet_keys == 4).await;
    drop(waiting);
    until("the cancelled connect's key to go", || a.stats().fleet_keys == 3).await;
    // An idle connection holds its slot, so its key stays; closed, it goes.
    drop(conns.pop());
    assert_eq!(a.stats().fleet_keys, 3);
    for conn in conns {
        conn.discard();
    }
    until("two keys to go", || a.stats().fleet_keys == 1).await;
    a.shutdown().await;
    assert_eq!(a.stats().fleet_keys, 0);
    drop(held);
}
