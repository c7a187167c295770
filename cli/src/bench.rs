//! `keepalive bench`: GET load through one manager, with a summary.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keepalive::Manager;
use tokio::net::TcpListener;

use crate::engine::{Choice, Engine};
use tokio::time::Instant;

use crate::proxy::Proxies;
use crate::report::{self, Summary};
use crate::serve;
use crate::url::Url;

/// What to run.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// `None`: start the built-in server on loopback and bench it.
    pub(crate) url: Option<String>,
    /// `--proxy`; `None` reads the environment for a given URL.
    pub(crate) proxy: Option<String>,
    /// `--fleet`: the per-host limit shared through Redis.
    pub(crate) fleet: Option<keepalive::Fleet>,
    pub(crate) requests: u64,
    pub(crate) duration: Option<Duration>,
    pub(crate) concurrency: usize,
    pub(crate) max_per_host: Option<usize>,
    pub(crate) max_open: Option<usize>,
    pub(crate) keep_alive: Option<Duration>,
    /// `--unix-socket`: every request over this socket.
    pub(crate) unix_socket: Option<std::path::PathBuf>,
    /// `--cacert`, `--insecure` and the environment's trust; `None`: the
    /// pool's default.
    pub(crate) tls: Option<Arc<keepalive::rustls::ClientConfig>>,
    /// `--timeout`: a whole request.
    pub(crate) timeout: Duration,
    /// `--connect-timeout`: getting a connection (the pool's timeout).
    pub(crate) connect_timeout: Duration,
    pub(crate) progress: bool,
    /// `--http1`, `--http2`, or ALPN's choice on `https`.
    pub(crate) http: Choice,
    /// `--metrics`: where the pool's metrics are served for Prometheus.
    pub(crate) metrics: Option<std::net::SocketAddr>,
}

impl Plan {
    /// The workers to run: `-c`, but no more than `-n` requests need.
    pub(crate) fn workers(&self) -> usize {
        match self.duration {
            Some(_) => self.concurrency.max(1),
            None => self
                .concurrency
                .clamp(1, usize::try_from(self.requests).unwrap_or(usize::MAX).max(1)),
        }
    }

    /// The pool's settings for this run; every value was checked as the
    /// flags were parsed, so `build` cannot panic on them.
    pub(crate) fn pool(&self) -> keepalive::Builder {
        let c = self.workers();
        let mut builder = Manager::builder()
            .name("bench")
            .max_per_host(self.max_per_host.unwrap_or(c))
            .max_open(self.max_open.unwrap_or(c.max(keepalive::DEFAULT_MAX_OPEN)))
            .timeout(self.connect_timeout);
        if let Some(keep_alive) = self.keep_alive {
            builder = builder.keep_alive(keep_alive);
        }
        if let Some(fleet) = self.fleet.clone() {
            builder = builder.fleet(fleet);
        }
        if let Some(tls) = self.tls.clone() {
            builder = builder.tls_config(tls);
        }
        builder
    }
}

/// Installs the Prometheus exporter, listening on `addr`, as the
/// process's metrics recorder, before the pool registers its series.
fn serve_metrics(addr: std::net::SocketAddr) -> Result<(), String> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| format!("--metrics {addr}: {e}"))
}

/// Runs the load and returns what it measured.
///
/// # Errors
///
/// A bad URL, or no loopback listener for the built-in server.
pub(crate) async fn run(plan: Plan) -> Result<Summary, String> {
    // The built-in server is reached directly unless --proxy says
    // otherwise: a proxy in the environment is for the user's own URLs.
    let proxies = match (&plan.url, &plan.proxy) {
        (None, None) => Proxies::default(),
        (_, flag) => Proxies::new(flag.as_deref())?,
    };
    let text = match &plan.url {
        Some(url) => url.clone(),
        None => {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| format!("loopback listener: {e}"))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            let options = serve::Options {
                http2: plan.http == Choice::Http2,
                ..serve::Options::default()
            };
            tokio::spawn(serve::serve(listener, options));
            format!("http://{addr}/")
        }
    };
    if let Some(addr) = plan.metrics {
        serve_metrics(addr)?;
    }
    let url = Url::parse_via(&text, &proxies)?;
    let url = Arc::new(match &plan.unix_socket {
        Some(path) => url.over_unix(path),
        None => url,
    });
    let c = plan.workers();
    let engine = Engine::new(plan.http, &[&url], plan.pool(), plan.timeout)?;

    let issued = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let latency = Arc::new(Mutex::new(report::histogram()));
    let bar = plan.progress.then(|| progress_bar(&plan));
    let start = Instant::now();
    // A duration too long for the clock runs until interrupted.
    let deadline = plan.duration.and_then(|d| start.checked_add(d));
    let limit = if plan.duration.is_some() {
        u64::MAX
    } else {
        plan.requests
    };
    let workers: Vec<_> = (0..c)
        .map(|_| {
            let worker = Worker {
                engine: engine.clone(),
                url: url.clone(),
                issued: issued.clone(),
                done: done.clone(),
                failed: failed.clone(),
                latency: latency.clone(),
                timeout: plan.timeout,
                limit,
                deadline,
            };
            tokio::spawn(worker.run())
        })
        .collect();
    let ticker = bar.clone().map(|bar| {
        let (done, failed) = (done.clone(), failed.clone());
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0);
            loop {
                tokio::time::sleep(PROGRESS_TICK).await;
                let (now, finished) = (Instant::now(), done.load(Ordering::Relaxed));
                let errors = failed.load(Ordering::Relaxed);
                let rate = (finished - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
                last = (now, finished);
                let elapsed = start.elapsed();
                match plan_duration(deadline, start) {
                    Some(total) => bar.set_position((elapsed.as_millis() as u64).min(total)),
                    None => bar.set_position(finished),
                }
                bar.set_message(format!(
                    "{rate:.0} requests/s  {errors} errors  {:.1} s",
                    elapsed.as_secs_f64()
                ));
            }
        })
    });
    let mut total = Tally::default();
    for worker in workers {
        total.merge(worker.await.map_err(|e| format!("a worker failed: {e}"))?);
    }
    let elapsed = start.elapsed();
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let summary = Summary {
        url: if plan.url.is_some() {
            url.text.clone()
        } else {
            format!("{} (built-in server)", url.text)
        },
        concurrency: c,
        ok: total.ok,
        errors: total.errors,
        retries: total.retries + engine.retries(),
        elapsed,
        latency: std::mem::replace(&mut *lock(&latency), report::histogram()),
        stats: engine.stats(),
        hosts: report::HostLimit::all(&engine.per_key()),
        protocols: total.protocols,
    };
    engine.shutdown().await;
    Ok(summary)
}

/// How often the progress bar is redrawn, with the rate over that time.
const PROGRESS_TICK: Duration = Duration::from_millis(250);

/// A timed run's length in milliseconds, the progress bar's length.
fn plan_duration(deadline: Option<Instant>, start: Instant) -> Option<u64> {
    deadline.map(|d| d.duration_since(start).as_millis() as u64)
}

/// A bar over requests (`-n`) or milliseconds (`-d`), with live requests/s
/// and errors as its message.
fn progress_bar(plan: &Plan) -> indicatif::ProgressBar {
    let (len, template) = match plan.duration {
        Some(d) => (d.as_millis().max(1) as u64, "{bar:40} {msg}"),
        None => (plan.requests, "{bar:40} {pos}/{len} requests  {msg}"),
    };
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// One worker's counts. Its latencies go to the run's one histogram (a
/// histogram of a minute in microseconds to three figures is 140 KB: one
/// per worker made `-c 100000` take gigabytes), a batch at a time.
#[derive(Default)]
struct Tally {
    ok: u64,
    errors: BTreeMap<String, u64>,
    /// Requests sent a second time under the retry rule.
    retries: u64,
    /// Responses by the HTTP version they came over.
    protocols: BTreeMap<&'static str, u64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.retries += other.retries;
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        for (version, n) in other.protocols {
            *self.protocols.entry(version).or_default() += n;
        }
    }
}

/// Latencies a worker keeps before it adds them to the run's histogram.
const LATENCY_BATCH: usize = 64;

/// The histogram's lock; a worker that panicked holding it left whole
/// counts behind, so poisoning is ignored.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Adds a worker's batch of latencies (microseconds) to the histogram.
fn record(latency: &Mutex<hdrhistogram::Histogram<u64>>, batch: &mut Vec<u64>) {
    let mut histogram = lock(latency);
    for micros in batch.drain(..) {
        histogram.saturating_record(micros);
    }
}

/// A loop of requests on one task.
struct Worker {
    engine: Engine,
    url: Arc<Url>,
    issued: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    latency: Arc<Mutex<hdrhistogram::Histogram<u64>>>,
    timeout: Duration,
    limit: u64,
    deadline: Option<Instant>,
}

impl Worker {
    async fn run(self) -> Tally {
        let mut tally = Tally::default();
        // Grown by the first read: a worker waiting for a connection holds
        // no buffer.
        let (mut buf, mut body) = (Vec::new(), Vec::new());
        let mut batch = Vec::new();
        while self.issued.fetch_add(1, Ordering::Relaxed) < self.limit
            && self.deadline.is_none_or(|d| Instant::now() < d)
        {
            let start = Instant::now();
            let result = self
                .engine
                .get(&self.url, &mut buf, &mut body, false, self.timeout)
                .await;
            let retried = match &result {
                Ok(answer) => answer.retried,
                Err(failure) => failure.retried,
            };
            tally.retries += u64::from(retried);
            let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
            batch.push(micros.max(1));
            if batch.len() == LATENCY_BATCH {
                record(&self.latency, &mut batch);
            }
            if let Ok(answer) = &result {
                *tally.protocols.entry(answer.version).or_default() += 1;
            }
            let kind = match result {
                Ok(answer) if answer.status < 400 => None,
                Ok(answer) => Some(format!("status {}", answer.status)),
                Err(failure) => Some(failure.kind),
            };
            match kind {
                None => tally.ok += 1,
                Some(kind) => {
                    *tally.errors.entry(kind).or_default() += 1;
                    self.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.done.fetch_add(1, Ordering::Relaxed);
        }
        record(&self.latency, &mut batch);
        tally
    }
}

/// Whether to draw a progress bar: only on a terminal, and not for JSON.
pub(crate) fn wants_progress(json: bool) -> bool {
    !json && std::io::stdout().is_terminal()
}
