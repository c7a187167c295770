//! `keepalive get`: fetch URLs through one manager, one line per request.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use keepalive::{FromCache, Manager};
use tokio::time::Instant;

use crate::report::{self, closes_text, format_latency, HostLimit};
use crate::url::Url;
use keepalive_http::{self as http, Outcome};

/// What to fetch.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) urls: Vec<Url>,
    pub(crate) concurrency: usize,
    pub(crate) repeat: u64,
    pub(crate) output: Option<PathBuf>,
    /// `--timeout`: a whole request.
    pub(crate) timeout: std::time::Duration,
    /// `--connect-timeout`: getting a connection (the pool's timeout).
    pub(crate) connect_timeout: std::time::Duration,
    /// `--cacert`, `--insecure` and the environment's trust; `None`: the
    /// pool's default.
    pub(crate) tls: Option<Arc<keepalive::rustls::ClientConfig>>,
}

/// Fetches every URL `repeat` times; prints a line per request. Returns
/// whether every request succeeded.
///
/// # Errors
///
/// When the output file cannot be created.
pub(crate) async fn run(plan: Plan) -> Result<bool, String> {
    let output = match &plan.output {
        Some(path) => {
            let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Some(Arc::new(Mutex::new(file)))
        }
        None => None,
    };
    // The requests are taken in turn by number, never listed: `--repeat`
    // may be as large as a u64.
    let total = (plan.urls.len() as u64)
        .checked_mul(plan.repeat)
        .ok_or("--repeat times the URLs is more requests than can be counted")?;
    let urls: Arc<[Url]> = plan.urls.into();
    let next = Arc::new(AtomicU64::new(0));
    let mut builder = Manager::builder().timeout(plan.connect_timeout);
    if let Some(tls) = plan.tls.clone() {
        builder = builder.tls_config(tls);
    }
    let manager = builder.build();
    let timeout = plan.timeout;
    let workers = usize::try_from(total)
        .unwrap_or(usize::MAX)
        .min(plan.concurrency)
        .max(1);
    let workers: Vec<_> = (0..workers)
        .map(|_| {
            let (manager, urls, next, output) = (manager.clone(), urls.clone(), next.clone(), output.clone());
            tokio::spawn(async move {
                let mut all_ok = true;
                let mut buf = Vec::new();
                loop {
                    let job = next.fetch_add(1, Ordering::Relaxed);
                    if job >= total {
                        break;
                    }
                    let url = &urls[(job % urls.len() as u64) as usize];
                    all_ok &= fetch(&manager, url, &mut buf, output.as_deref(), timeout).await;
                }
                all_ok
            })
        })
        .collect();
    let mut all_ok = true;
    for worker in workers {
        all_ok &= worker.await.unwrap_or(false);
    }
    // What the pool learned of each host, on stderr: stdout has one line
    // per request.
    for (target, stats) in report::per_key(&manager) {
        eprintln!(
            "server  {}  (closes: {})",
            HostLimit::from_stats(&target, &stats).text(),
            closes_text(&stats)
        );
    }
    manager.shutdown().await;
    Ok(all_ok)
}

/// One request; prints its line. Returns whether it succeeded.
async fn fetch(
    manager: &Manager,
    url: &Url,
    buf: &mut Vec<u8>,
    output: Option<&Mutex<std::fs::File>>,
    timeout: std::time::Duration,
) -> bool {
    let start = Instant::now();
    let mut body = Vec::new();
    let sink = &mut |bytes: &[u8]| {
        if output.is_some() {
            body.extend_from_slice(bytes);
        }
    };
    let result = http::send_timeout(manager, &url.target, "GET", &url.request, buf, sink, timeout)
        .await
        .map(|outcome| (outcome, outcome.from.unwrap_or(FromCache::Fresh)))
        .map_err(|e| match &e {
            // TLS failures in this project's words; rustls's own are a Debug
            // text (`UnknownIssuer`).
            http::SendError::Pool { error, .. } if error.function() == "tls" => format!("tls: {error}"),
            http::SendError::Pool { error, .. } => format!("{}: {}", error.function(), chain(error)),
            http::SendError::Timeout { .. } => format!("timeout: {}", chain(&e)),
            _ => format!("http: {}", chain(&e)),
        });
    let took = format_latency(start.elapsed());
    match result {
        Ok((
            Outcome {
                status, body_bytes, ..
            },
            from,
        )) => {
            let from = match from {
                FromCache::Fresh => "fresh",
                FromCache::Immediate => "immediate",
                FromCache::Deferred => "deferred",
            };
            println!("{status}  {body_bytes} B  {from}  {took}  {}", url.text);
            if let Some(file) = output {
                if let Ok(mut file) = file.lock() {
                    let _ = file.write_all(&body);
                }
            }
            status < 400
        }
        Err(message) => {
            println!("error  {message}  {took}  {}", url.text);
            false
        }
    }
}

/// An error and its sources, joined with ": ".
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
