//! `keepalive get`: fetch URLs through one manager, one line per request.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use keepalive::{FromCache, Manager};

use crate::engine::{Choice, Engine};
use tokio::time::Instant;

use crate::report::{closes_text, format_latency, HostLimit};
use crate::url::Url;

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
    /// `--http1`, `--http2`, or ALPN's choice on `https`.
    pub(crate) http: Choice,
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
    let all: Vec<&Url> = urls.iter().collect();
    let manager = Engine::new(plan.http, &all, builder, plan.timeout)?;
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
    for (target, stats) in manager.per_key() {
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
    engine: &Engine,
    url: &Url,
    buf: &mut Vec<u8>,
    output: Option<&Mutex<std::fs::File>>,
    timeout: std::time::Duration,
) -> bool {
    let start = Instant::now();
    let mut body = Vec::new();
    let result = engine.get(url, buf, &mut body, output.is_some(), timeout).await;
    let took = format_latency(start.elapsed());
    match result {
        Ok(answer) => {
            let how = match answer.from {
                Some(FromCache::Fresh) => "fresh",
                Some(FromCache::Immediate) => "immediate",
                Some(FromCache::Deferred) => "deferred",
                None => answer.version,
            };
            println!(
                "{}  {} B  {how}  {took}  {}",
                answer.status, answer.body_bytes, url.text
            );
            if let Some(file) = output {
                if let Ok(mut file) = file.lock() {
                    let _ = file.write_all(&body);
                }
            }
            answer.status < 400
        }
        Err(failure) => {
            println!("error  {}  {took}  {}", failure.line, url.text);
            false
        }
    }
}
