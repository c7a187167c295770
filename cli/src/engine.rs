//! [`Engine`]: how `bench` and `get` send a GET: HTTP/1.1 with the
//! command's own exchange (keepalive-http) on the pool, or hyper through
//! keepalive-hyper for HTTP/2 (by ALPN on `https`, by prior knowledge with
//! `--http2`).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use keepalive::{FromCache, Manager, Stats, Target};
use keepalive_http as http1;

use crate::url::Url;

/// Which HTTP the flags ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Choice {
    /// `https` negotiates HTTP/2 or HTTP/1.1 by ALPN; `http` is HTTP/1.1.
    #[default]
    Auto,
    /// `--http1`: HTTP/1.1 alone.
    Http1,
    /// `--http2`: HTTP/2 by prior knowledge (h2c on `http`; `h2` alone by
    /// ALPN on `https`).
    Http2,
}

impl Choice {
    /// From `--http1` and `--http2` (clap keeps them apart).
    pub(crate) fn from_flags(http1: bool, http2: bool) -> Choice {
        match (http1, http2) {
            (true, _) => Choice::Http1,
            (_, true) => Choice::Http2,
            _ => Choice::Auto,
        }
    }
}

/// The sending side of a run.
#[derive(Clone, Debug)]
pub(crate) enum Engine {
    /// HTTP/1.1 through the command's own exchange.
    Http1(Manager),
    /// hyper on the pool, HTTP/2 where negotiated or asked for.
    Hyper(keepalive_hyper::Client<Empty<Bytes>>),
}

/// A request that failed: the kind `bench` counts it under, the line
/// `get` prints, and whether it was sent twice.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) kind: String,
    pub(crate) line: String,
    pub(crate) retried: bool,
}

/// A response: its status, the HTTP it came over, its body's size, and
/// how the connection was had (HTTP/1.1 alone says).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) version: &'static str,
    pub(crate) body_bytes: u64,
    pub(crate) from: Option<FromCache>,
    /// Sent twice under keepalive-http's retry rule.
    pub(crate) retried: bool,
}

impl Engine {
    /// The engine for `urls` with `choice`, on a pool of `pool`'s settings;
    /// `timeout` bounds a whole request.
    ///
    /// # Errors
    ///
    /// `--http2` for a URL an HTTP proxy forwards (h2c cannot be).
    pub(crate) fn new(
        choice: Choice,
        urls: &[&Url],
        pool: keepalive::Builder,
        timeout: Duration,
    ) -> Result<Engine, String> {
        let https = urls.iter().any(|u| u.target.is_tls());
        // A URL an HTTP proxy forwards needs the absolute form, which the
        // command's own exchange writes (and https URLs then tunnel there).
        let forwarded = urls.iter().any(|u| u.forwarded);
        let hyper = match choice {
            Choice::Http1 => false,
            Choice::Http2 => true,
            Choice::Auto => https && !forwarded,
        };
        if !hyper {
            return Ok(Engine::Http1(pool.build()));
        }
        if let Some(url) = urls.iter().find(|u| u.forwarded && choice == Choice::Http2) {
            return Err(format!(
                "{}: --http2 cannot go through an HTTP proxy's forwarding (h2c is end to end); use --proxy \"\" or an https URL",
                url.text
            ));
        }
        let mut builder = keepalive_hyper::Client::builder().pool(pool).timeout(timeout);
        if choice == Choice::Http2 {
            builder = builder.http2_prior_knowledge();
        }
        Ok(Engine::Hyper(builder.build()))
    }

    /// One GET of `url`, its body kept in `body` when `keep` is true.
    ///
    /// # Errors
    ///
    /// How it failed, in `bench`'s and in `get`'s words.
    pub(crate) async fn get(
        &self,
        url: &Url,
        buf: &mut Vec<u8>,
        body: &mut Vec<u8>,
        keep: bool,
        timeout: Duration,
    ) -> Result<Answer, Failure> {
        match self {
            Engine::Http1(manager) => http1_get(manager, url, buf, body, keep, timeout).await,
            Engine::Hyper(client) => hyper_get(client, url, body, keep).await,
        }
    }

    /// The pool's counts.
    pub(crate) fn stats(&self) -> Stats {
        match self {
            Engine::Http1(manager) => manager.stats(),
            Engine::Hyper(client) => client.stats(),
        }
    }

    /// Every key's counts, in the order of their text.
    pub(crate) fn per_key(&self) -> Vec<(Target, Stats)> {
        let mut per_key = match self {
            Engine::Http1(manager) => manager.stats_per_key(),
            Engine::Hyper(client) => client.stats_per_key(),
        };
        per_key.sort_by_cached_key(|(target, _)| target.to_string());
        per_key
    }

    /// Requests sent again by hyper's client (the HTTP/1.1 engine counts
    /// its own per request).
    pub(crate) fn retries(&self) -> u64 {
        match self {
            Engine::Http1(_) => 0,
            Engine::Hyper(client) => client.retries(),
        }
    }

    /// Closes the pool's connections.
    pub(crate) async fn shutdown(&self) {
        match self {
            Engine::Http1(manager) => manager.shutdown().await,
            Engine::Hyper(client) => client.shutdown().await,
        }
    }
}

async fn http1_get(
    manager: &Manager,
    url: &Url,
    buf: &mut Vec<u8>,
    body: &mut Vec<u8>,
    keep: bool,
    timeout: Duration,
) -> Result<Answer, Failure> {
    let sink = &mut |bytes: &[u8]| {
        if keep {
            body.extend_from_slice(bytes);
        }
    };
    match http1::send_timeout(manager, &url.target, "GET", &url.request, buf, sink, timeout).await {
        Ok(outcome) => Ok(Answer {
            status: outcome.status,
            version: "HTTP/1.1",
            body_bytes: outcome.body_bytes,
            from: Some(outcome.from.unwrap_or(FromCache::Fresh)),
            retried: outcome.retried,
        }),
        Err(e) => {
            let kind = match &e {
                http1::SendError::Pool { error, .. } if error.is_timeout() => "timeout".to_owned(),
                http1::SendError::Pool { error, .. } => error.function().to_owned(),
                http1::SendError::Http { error, .. } => error.kind().to_owned(),
                http1::SendError::Timeout { .. } => "timeout".to_owned(),
                _ => "other".to_owned(),
            };
            // rustls's own words stay out of a TLS failure's line.
            let line = match &e {
                http1::SendError::Pool { error, .. } if error.function() == "tls" => format!("tls: {error}"),
                http1::SendError::Pool { error, .. } => format!("{}: {}", error.function(), chain(error)),
                http1::SendError::Timeout { .. } => format!("timeout: {}", chain(&e)),
                _ => format!("http: {}", chain(&e)),
            };
            Err(Failure {
                kind,
                line,
                retried: e.retried(),
            })
        }
    }
}

async fn hyper_get(
    client: &keepalive_hyper::Client<Empty<Bytes>>,
    url: &Url,
    body: &mut Vec<u8>,
    keep: bool,
) -> Result<Answer, Failure> {
    let failed = |e: keepalive_hyper::Error| {
        let kind = match e.pool() {
            Some(pool) if pool.is_timeout() => "timeout".to_owned(),
            Some(pool) => pool.function().to_owned(),
            None if e.is_timeout() => "timeout".to_owned(),
            None => "http".to_owned(),
        };
        let line = match e.pool() {
            Some(pool) if pool.function() == "tls" => format!("tls: {pool}"),
            Some(pool) => format!("{}: {}", pool.function(), chain(pool)),
            None => format!("{kind}: {}", chain(&e)),
        };
        Failure {
            kind,
            line,
            retried: false,
        }
    };
    let mut req = http::Request::get(url.path.as_str());
    if let Some(authorization) = &url.authorization {
        req = req.header(http::header::AUTHORIZATION, authorization.as_str());
    }
    let req = req.body(Empty::new()).map_err(|e| Failure {
        kind: "other".to_owned(),
        line: format!("other: {e}"),
        retried: false,
    })?;
    let response = client.send(url.target.clone(), req).await.map_err(failed)?;
    let (status, version) = (response.status().as_u16(), version_text(response.version()));
    let mut incoming = response.into_body();
    let mut body_bytes = 0u64;
    while let Some(frame) = incoming.frame().await {
        if let Ok(data) = frame.map_err(failed)?.into_data() {
            body_bytes += data.len() as u64;
            if keep {
                body.extend_from_slice(&data);
            }
        }
    }
    Ok(Answer {
        status,
        version,
        body_bytes,
        from: None,
        retried: false,
    })
}

/// `HTTP/2`, `HTTP/1.1`, …
fn version_text(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// An error with its causes, `: `-separated.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
