//! The `keepalive` command: HTTP/1.1 and HTTP/2 benchmarking and fetching
//! through the `keepalive` connection pool, and the built-in server they
//! run against.
//!
//! ```text
//! keepalive bench [URL] [-n N] [-c C] [-d SECS] [--max-per-host K] [--max-open M] [--keep-alive SECS] [--proxy URL]
//!                 [--http1 | --http2] [--fleet redis://HOST:PORT [--fleet-max-per-host N] [--fleet-name NAME]] [--json]
//! keepalive get URL... [-c C] [--repeat N] [-o FILE] [--proxy URL] [--http1 | --http2]
//! keepalive serve [--addr 127.0.0.1:PORT] [--close-after K] [--idle-close SECS [--announce]] [--report-peak]
//!                 [--http2 [--max-streams N]]
//! ```

mod args;
mod bench;
mod engine;
mod get;
mod proxy;
mod report;
mod serve;
mod serve2;
mod trust;
mod url;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "keepalive",
    version,
    about = "HTTP/1.1 and HTTP/2 load and fetches through the keepalive connection pool"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// GET load through one pool; with no URL, against a built-in server on loopback.
    Bench(BenchArgs),
    /// GET each URL and print status, body size, how the connection was obtained, and time.
    Get {
        /// http or https URLs.
        #[arg(required = true)]
        urls: Vec<String>,
        /// Requests in flight at once (at most the requests there are).
        #[arg(short = 'c', long, default_value_t = 1, value_parser = args::count)]
        concurrency: usize,
        /// Fetch the list this many times.
        #[arg(long, default_value_t = 1, value_parser = args::count_u64)]
        repeat: u64,
        /// Write the bodies to this file.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// Go through this proxy (http://, https://, socks5h:// or socks5://, with user:password@ if needed);
        /// "" for none. Without it: https_proxy, http_proxy, all_proxy and no_proxy, as curl reads them.
        #[arg(long, value_name = "URL")]
        proxy: Option<String>,
        /// Connect to this Unix socket instead of the URLs' hosts (as curl's --unix-socket).
        #[arg(long, value_name = "PATH")]
        unix_socket: Option<PathBuf>,
        /// Trust the CA certificates in this PEM file instead of the default roots (as curl's --cacert);
        /// without it, SSL_CERT_FILE and SSL_CERT_DIR are read as OpenSSL reads them.
        #[arg(long, value_name = "FILE")]
        cacert: Option<PathBuf>,
        /// Do not verify servers' certificates (as curl's -k); a warning says so on every run.
        #[arg(short = 'k', long)]
        insecure: bool,
        /// HTTP/1.1 only (https URLs then offer http/1.1 alone by ALPN).
        #[arg(long, conflicts_with = "http2")]
        http1: bool,
        /// HTTP/2 by prior knowledge: h2c on http URLs; https URLs offer h2 alone.
        /// Without --http1 or --http2, https URLs negotiate HTTP/2 or HTTP/1.1 by ALPN.
        #[arg(long)]
        http2: bool,

        /// Seconds a whole request may take: getting a connection, sending, and reading the response to its end
        /// (a number too large for the clock: no limit).
        #[arg(long, value_parser = args::seconds, default_value = "30", value_name = "SECS")]
        timeout: Duration,
        /// Seconds to get a connection: the name lookup, connecting, TLS, and any wait for a free one.
        #[arg(long, value_parser = args::seconds, default_value = "120", value_name = "SECS")]
        connect_timeout: Duration,
    },
    /// Run the built-in HTTP/1.1 (or, with --http2, h2c) server until interrupted.
    Serve {
        /// Address to listen on (port 0 picks one).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Close each connection after this many responses.
        #[arg(long, value_parser = args::count_u64)]
        close_after: Option<u64>,
        /// Close connections idle for this many seconds.
        #[arg(long, value_parser = args::seconds)]
        idle_close: Option<Duration>,
        /// With --idle-close, announce it in `Keep-Alive: timeout=N` (whole seconds).
        #[arg(long, requires = "idle_close")]
        announce: bool,
        /// Print `peak N connections` each time more connections are open at once than before
        /// (counted by the kernel: ESTABLISHED sockets on the port, from /proc/net/tcp).
        #[arg(long)]
        report_peak: bool,
        /// Serve HTTP/2 by prior knowledge (h2c) instead of HTTP/1.1; --close-after and --idle-close do not apply.
        #[arg(long, conflicts_with_all = ["close_after", "idle_close"])]
        http2: bool,
        /// With --http2: requests at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS) [default: 100].
        #[arg(long, requires = "http2", value_parser = args::count_u32)]
        max_streams: Option<u32>,
    },
}

/// `keepalive bench`'s flags.
#[derive(clap::Args, Debug)]
struct BenchArgs {
    /// The URL to load; none starts the built-in server and loads it.
    url: Option<String>,
    /// Requests to make (ignored with -d).
    #[arg(short = 'n', long, default_value_t = 100_000, value_parser = args::count_u64)]
    requests: u64,
    /// Concurrent workers (at most -n: more would have nothing to do).
    #[arg(short = 'c', long, default_value_t = 16, value_parser = args::count)]
    concurrency: usize,
    /// Run for this many seconds instead of -n requests (a number too large for the clock: until interrupted).
    #[arg(short = 'd', long, value_parser = args::seconds)]
    duration: Option<Duration>,
    /// Sockets per host [default: -c].
    #[arg(long, value_parser = args::count)]
    max_per_host: Option<usize>,
    /// Sockets in all [default: the larger of -c and 128].
    #[arg(long, value_parser = args::count)]
    max_open: Option<usize>,
    /// Seconds an idle socket is kept [default: 15].
    #[arg(long, value_parser = args::seconds)]
    keep_alive: Option<Duration>,
    /// Go through this proxy (http://, https://, socks5h:// or socks5://, with user:password@ if needed);
    /// "" for none. Without it, a URL given here uses https_proxy, http_proxy, all_proxy and no_proxy as
    /// curl does; the built-in server is always reached directly.
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
    /// Share the per-host limit with every bench (or program) using this Redis and fleet name.
    #[arg(long, value_name = "REDIS_URL")]
    fleet: Option<String>,
    /// Connections per host across the fleet (defaults to --max-per-host).
    #[arg(long, requires = "fleet", value_parser = args::count)]
    fleet_max_per_host: Option<usize>,
    /// The fleet's name: benches with the same Redis and name share limits.
    #[arg(long, requires = "fleet", default_value = "keepalive")]
    fleet_name: String,
    /// Seconds a whole request may take: getting a connection, sending, and reading the response to its end
    /// (a number too large for the clock: no limit).
    #[arg(long, value_parser = args::seconds, default_value = "30", value_name = "SECS")]
    timeout: Duration,
    /// Seconds to get a connection: the name lookup, connecting, TLS, and any wait for a free one.
    #[arg(long, value_parser = args::seconds, default_value = "120", value_name = "SECS")]
    connect_timeout: Duration,
    /// Trust the CA certificates in this PEM file instead of the default roots (as curl's --cacert);
    /// without it, SSL_CERT_FILE and SSL_CERT_DIR are read as OpenSSL reads them.
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Do not verify servers' certificates (as curl's -k); a warning says so on every run.
    #[arg(short = 'k', long)]
    insecure: bool,
    /// Connect to this Unix socket instead of the URL's host (as curl's --unix-socket).
    #[arg(long, value_name = "PATH")]
    unix_socket: Option<PathBuf>,
    /// Print one JSON object instead of the text summary.
    #[arg(long)]
    json: bool,
    /// HTTP/1.1 only (https URLs then offer http/1.1 alone by ALPN).
    #[arg(long, conflicts_with = "http2")]
    http1: bool,
    /// HTTP/2 by prior knowledge: h2c on http URLs (and the built-in server serves h2c); https URLs
    /// offer h2 alone. Without --http1 or --http2, https URLs negotiate HTTP/2 or HTTP/1.1 by ALPN.
    #[arg(long)]
    http2: bool,
    /// Serve the pool's metrics for Prometheus at http://ADDR/metrics while the bench runs
    /// (OpenTelemetry's names: http_client_open_connections, ...; pool_name="bench").
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
}

impl BenchArgs {
    /// What to run, with the fleet's URL checked.
    fn plan(self) -> Result<bench::Plan, String> {
        let fleet = match self.fleet {
            None => None,
            Some(url) => {
                let fleet = keepalive::Fleet::redis(&url).map_err(|e| format!("--fleet: {e}"))?;
                let fleet = fleet.name(self.fleet_name);
                Some(match self.fleet_max_per_host {
                    Some(n) => fleet.max_per_host(n),
                    None => fleet,
                })
            }
        };
        Ok(bench::Plan {
            url: self.url,
            proxy: self.proxy,
            fleet,
            requests: self.requests,
            duration: self.duration,
            concurrency: self.concurrency,
            max_per_host: self.max_per_host,
            max_open: self.max_open,
            keep_alive: self.keep_alive,
            unix_socket: self.unix_socket,
            tls: tls(self.cacert.as_deref(), self.insecure)?,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            progress: bench::wants_progress(self.json),
            http: engine::Choice::from_flags(self.http1, self.http2),
            metrics: self.metrics,
        })
    }
}

/// The TLS configuration `--cacert`, `--insecure` and the environment ask
/// for; `--insecure` warns on stderr.
fn tls(
    cacert: Option<&std::path::Path>,
    insecure: bool,
) -> Result<Option<std::sync::Arc<keepalive::rustls::ClientConfig>>, String> {
    if insecure {
        eprintln!("keepalive: warning: --insecure: servers' certificates are not verified");
    }
    trust::config(cacert, insecure, |name| std::env::var_os(name))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("keepalive: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("keepalive: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Bench(args) => {
            let json = args.json;
            let summary = bench::run(args.plan()?).await?;
            if json {
                println!("{}", summary.json());
            } else {
                print!("{}", summary.text());
            }
            Ok(if summary.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Get {
            urls,
            concurrency,
            repeat,
            output,
            proxy,
            unix_socket,
            timeout,
            connect_timeout,
            cacert,
            insecure,
            http1,
            http2,
        } => {
            let tls = tls(cacert.as_deref(), insecure)?;
            let proxies = proxy::Proxies::new(proxy.as_deref())?;
            let urls = urls
                .iter()
                .map(|u| url::Url::parse_via(u, &proxies))
                .map(|u| match &unix_socket {
                    Some(path) => u.map(|u| u.over_unix(path)),
                    None => u,
                })
                .collect::<Result<Vec<_>, _>>()?;
            let plan = get::Plan {
                urls,
                concurrency,
                repeat,
                output,
                timeout,
                connect_timeout,
                tls,
                http: engine::Choice::from_flags(http1, http2),
            };
            let all_ok = get::run(plan).await?;
            Ok(if all_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Serve {
            addr,
            close_after,
            idle_close,
            announce,
            report_peak,
            http2,
            max_streams,
        } => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            let bound = listener.local_addr().map_err(|e| e.to_string())?;
            println!("listening on http://{bound}/");
            let options = serve::Options {
                close_after,
                idle_close,
                announce,
                report_peak,
                http2,
                max_streams,
            };
            serve::serve(listener, options)
                .await
                .map_err(|e| format!("accept: {e}"))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Values that broke the command before, numbers of every size, and
    /// any short text.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<u64>().prop_map(|n| n.to_string()),
            any::<u128>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| f.to_string()),
            any::<f64>().prop_map(|f| format!("{f:e}")),
            prop::sample::select(vec![
                "0",
                "-1",
                "1e30",
                "1e-10",
                "1e-9",
                "NaN",
                "inf",
                "-inf",
                "18446744073709551615"
            ])
            .prop_map(str::to_owned),
            "[ -~]{0,12}",
        ]
    }

    /// Every command's number and duration flags.
    const FLAGS: [(&str, &str); 12] = [
        ("bench", "-n"),
        ("bench", "-c"),
        ("bench", "-d"),
        ("bench", "--max-per-host"),
        ("bench", "--max-open"),
        ("bench", "--keep-alive"),
        ("get", "-c"),
        ("get", "--repeat"),
        ("serve", "--close-after"),
        ("serve", "--idle-close"),
        ("bench", "--proxy"),
        ("bench", "--fleet"),
    ];

    /// Parses `args`; for a bench, also checks its plan and builds its pool
    /// (no connection is made): none of it may panic.
    fn parse_and_build(args: &[&str]) {
        let Ok(cli) = Cli::try_parse_from(args) else {
            return;
        };
        if let Command::Bench(bench) = cli.command {
            let Ok(plan) = bench.plan() else {
                return;
            };
            assert!(plan.workers() >= 1);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async { drop(plan.pool().build()) });
        }
    }

    proptest! {
        #[test]
        fn no_flag_value_makes_the_command_panic(flag in prop::sample::select(FLAGS.to_vec()), value in value()) {
            let (command, flag) = flag;
            let url = if command == "get" { "http://127.0.0.1:1/" } else { "--" };
            let args: Vec<&str> = match command {
                "get" => vec!["keepalive", command, url, flag, &value],
                _ => vec!["keepalive", command, flag, &value],
            };
            parse_and_build(&args);
            // And beside the other flags at their edges.
            parse_and_build(&["keepalive", "bench", "-n", "1", "-c", &value, "--keep-alive", &value, "-d", &value]);
        }
    }

    #[test]
    fn the_inputs_that_panicked_are_clear_errors_or_never() {
        for bad in [
            ["-c", "0"],
            ["--max-per-host", "0"],
            ["--max-open", "0"],
            ["--keep-alive", "1e-10"],
            ["-n", "0"],
        ] {
            let err = Cli::try_parse_from(["keepalive", "bench", bad[0], bad[1]]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{err}");
        }
        for never in ["1e30", "18446744073709551615"] {
            parse_and_build(&["keepalive", "bench", "--keep-alive", never, "-d", never]);
        }
        let err = Cli::try_parse_from([
            "keepalive",
            "get",
            "-c",
            "99999999999999999999999999999999999999",
            "http://a/",
        ]);
        assert_eq!(err.unwrap_err().exit_code(), 2);
    }
}
