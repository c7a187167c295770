//! The `keepalive` command: HTTP/1.1 benchmarking and fetching through the
//! `keepalive` connection pool, and the built-in server they run against.
//!
//! ```text
//! keepalive bench [URL] [-n N] [-c C] [-d SECS] [--max-per-host K] [--max-open M] [--keep-alive SECS] [--proxy URL]
//!                 [--fleet redis://HOST:PORT [--fleet-max-per-host N] [--fleet-name NAME]] [--json]
//! keepalive get URL... [-c C] [--repeat N] [-o FILE] [--proxy URL]
//! keepalive serve [--addr 127.0.0.1:PORT] [--close-after K] [--idle-close SECS [--announce]] [--report-peak]
//! ```

mod bench;
mod get;
mod proxy;
mod report;
mod serve;
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
    about = "HTTP/1.1 load and fetches through the keepalive connection pool"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// GET load through one pool; with no URL, against a built-in server on loopback.
    Bench {
        /// The URL to load; none starts the built-in server and loads it.
        url: Option<String>,
        /// Requests to make (ignored with -d).
        #[arg(short = 'n', long, default_value_t = 100_000)]
        requests: u64,
        /// Concurrent workers.
        #[arg(short = 'c', long, default_value_t = 16, value_parser = at_least_one)]
        concurrency: usize,
        /// Run for this many seconds instead of -n requests.
        #[arg(short = 'd', long, value_parser = seconds)]
        duration: Option<Duration>,
        /// Sockets per host (defaults to -c).
        #[arg(long)]
        max_per_host: Option<usize>,
        /// Sockets in all (defaults to the larger of -c and 128).
        #[arg(long)]
        max_open: Option<usize>,
        /// Seconds an idle socket is kept (defaults to 15).
        #[arg(long, value_parser = seconds)]
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
        #[arg(long, requires = "fleet", value_parser = at_least_one)]
        fleet_max_per_host: Option<usize>,
        /// The fleet's name: benches with the same Redis and name share limits.
        #[arg(long, requires = "fleet", default_value = "keepalive")]
        fleet_name: String,
        /// Print one JSON object instead of the text summary.
        #[arg(long)]
        json: bool,
    },
    /// GET each URL and print status, body size, how the connection was obtained, and time.
    Get {
        /// http or https URLs.
        #[arg(required = true)]
        urls: Vec<String>,
        /// Requests in flight at once.
        #[arg(short = 'c', long, default_value_t = 1, value_parser = at_least_one)]
        concurrency: usize,
        /// Fetch the list this many times.
        #[arg(long, default_value_t = 1)]
        repeat: u64,
        /// Write the bodies to this file.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// Go through this proxy (http://, https://, socks5h:// or socks5://, with user:password@ if needed);
        /// "" for none. Without it: https_proxy, http_proxy, all_proxy and no_proxy, as curl reads them.
        #[arg(long, value_name = "URL")]
        proxy: Option<String>,
    },
    /// Run the built-in HTTP/1.1 server until interrupted.
    Serve {
        /// Address to listen on (port 0 picks one).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Close each connection after this many responses.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        close_after: Option<u64>,
        /// Close connections idle for this many seconds.
        #[arg(long, value_parser = seconds)]
        idle_close: Option<Duration>,
        /// With --idle-close, announce it in `Keep-Alive: timeout=N` (whole seconds).
        #[arg(long, requires = "idle_close")]
        announce: bool,
        /// Print `peak N connections` each time more connections are open at once than before
        /// (counted by the kernel: ESTABLISHED sockets on the port, from /proc/net/tcp).
        #[arg(long)]
        report_peak: bool,
    },
}

/// A count of one or more.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{text:?} is not a whole number of at least 1")),
    }
}

/// A positive number of seconds, fractions allowed.
fn seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s.is_finite() => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("{text:?} is not a positive number of seconds")),
    }
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
        Command::Bench {
            url,
            requests,
            concurrency,
            duration,
            max_per_host,
            max_open,
            keep_alive,
            proxy,
            fleet,
            fleet_max_per_host,
            fleet_name,
            json,
        } => {
            let fleet = match fleet {
                None => None,
                Some(url) => {
                    let fleet = keepalive::Fleet::redis(&url).map_err(|e| format!("--fleet: {e}"))?;
                    let fleet = fleet.name(fleet_name);
                    Some(match fleet_max_per_host {
                        Some(n) => fleet.max_per_host(n),
                        None => fleet,
                    })
                }
            };
            let plan = bench::Plan {
                url,
                proxy,
                fleet,
                requests,
                duration,
                concurrency,
                max_per_host,
                max_open,
                keep_alive,
                progress: bench::wants_progress(json),
            };
            let summary = bench::run(plan).await?;
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
        } => {
            let proxies = proxy::Proxies::new(proxy.as_deref())?;
            let urls = urls
                .iter()
                .map(|u| url::Url::parse_via(u, &proxies))
                .collect::<Result<Vec<_>, _>>()?;
            let plan = get::Plan {
                urls,
                concurrency,
                repeat,
                output,
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
            };
            serve::serve(listener, options)
                .await
                .map_err(|e| format!("accept: {e}"))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
