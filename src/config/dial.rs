//! The settings of the pool's own dialing ([`Dialer`](crate::Dialer)): the local
//! address, Happy Eyeballs, the TCP options every socket gets, and TLS.
//! They do not apply to another [`Transport`](crate::Transport).

use std::net::IpAddr;
#[cfg(keepalive_tls)]
use std::sync::Arc;
use std::time::Duration;

use super::Builder;

impl<P, T> Builder<P, T> {
    /// The local address every socket binds to before connecting. Defaults
    /// to none: the system picks.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().bind_address([127, 0, 0, 2].into());
    /// # drop(builder);
    /// ```
    pub fn bind_address(mut self, ip: IpAddr) -> Self {
        self.config.dial.bind = Some(ip);
        self
    }

    /// When a name has several addresses, how long one connect attempt runs
    /// alone before the next address is tried as well (Happy Eyeballs,
    /// RFC 8305). A failed attempt starts the next one at once. Defaults to
    /// [`DEFAULT_HAPPY_EYEBALLS_DELAY`](crate::DEFAULT_HAPPY_EYEBALLS_DELAY) (250 ms).
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().happy_eyeballs_delay(std::time::Duration::from_millis(100));
    /// # drop(builder);
    /// ```
    pub fn happy_eyeballs_delay(mut self, d: Duration) -> Self {
        self.config.dial.happy_eyeballs_delay = d;
        self
    }

    /// TCP keepalive (SO_KEEPALIVE) on every socket, with this idle time
    /// before the first probe (TCP_KEEPIDLE, whole seconds, rounded up, at
    /// most 32,767 s), so that a peer that vanished without a FIN or RST (a
    /// dropped NAT entry, a powered-off server) is found dead by the kernel
    /// and its idle socket leaves the pool. `None` turns keepalive off.
    /// Defaults to [`DEFAULT_TCP_KEEPALIVE`](crate::DEFAULT_TCP_KEEPALIVE) (15 s).
    ///
    /// With the defaults, an idle socket whose peer went silent is closed
    /// about 15 s + 30 s after its last traffic: probes start after 15 s,
    /// and `tcp_user_timeout` (30 s), not the retry count, ends them (Linux
    /// lets `TCP_USER_TIMEOUT` decide when unanswered probes end a
    /// connection). With `tcp_user_timeout(None)` it is 15 s +
    /// `interval × retries` = 60 s.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().tcp_keepalive(std::time::Duration::from_secs(30));
    /// # drop(builder);
    /// ```
    pub fn tcp_keepalive(mut self, d: impl Into<Option<Duration>>) -> Self {
        self.config.dial.tcp.keepalive = d.into();
        self
    }

    /// Time between TCP keepalive probes (TCP_KEEPINTVL, whole seconds,
    /// rounded up, at most 32,767 s). `None` leaves the system's default.
    /// Defaults to [`DEFAULT_TCP_KEEPALIVE_INTERVAL`](crate::DEFAULT_TCP_KEEPALIVE_INTERVAL) (15 s).
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().tcp_keepalive_interval(std::time::Duration::from_secs(5));
    /// # drop(builder);
    /// ```
    pub fn tcp_keepalive_interval(mut self, d: impl Into<Option<Duration>>) -> Self {
        self.config.dial.tcp.keepalive_interval = d.into();
        self
    }

    /// Unanswered TCP keepalive probes before the kernel gives up on the
    /// peer (TCP_KEEPCNT, at most 127). Only counts when
    /// `tcp_user_timeout` is off: on Linux a set user timeout decides
    /// instead. `None` leaves the system's default. Defaults to
    /// [`DEFAULT_TCP_KEEPALIVE_RETRIES`](crate::DEFAULT_TCP_KEEPALIVE_RETRIES) (3).
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().tcp_keepalive_retries(5);
    /// # drop(builder);
    /// ```
    pub fn tcp_keepalive_retries(mut self, n: impl Into<Option<u32>>) -> Self {
        self.config.dial.tcp.keepalive_retries = n.into();
        self
    }

    /// How long data written to a socket (or keepalive probes) may go
    /// unacknowledged before the kernel gives up and the connection fails
    /// with `ETIMEDOUT` (Linux `TCP_USER_TIMEOUT`, milliseconds; ignored
    /// elsewhere). A request written to a peer that vanished then fails
    /// with an I/O error within this time instead of retransmitting for
    /// about 15 minutes. `None` turns it off. Defaults to
    /// [`DEFAULT_TCP_USER_TIMEOUT`](crate::DEFAULT_TCP_USER_TIMEOUT) (30 s).
    ///
    /// What a user gets with each combination (Linux):
    ///
    /// | keepalive | user timeout | idle peer gone silent | write to it |
    /// |---|---|---|---|
    /// | on (idle I) | on (U) | closed about I + U after the last traffic | fails after about U |
    /// | on (idle I, interval V, retries N) | off | closed after I + V × N | retransmits for ~15 min |
    /// | off | on (U) | stays until `keep_alive`, then closed | fails after about U |
    /// | off | off | stays until `keep_alive`, then closed | retransmits for ~15 min |
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().tcp_user_timeout(std::time::Duration::from_secs(10));
    /// # drop(builder);
    /// ```
    pub fn tcp_user_timeout(mut self, d: impl Into<Option<Duration>>) -> Self {
        self.config.dial.tcp.user_timeout = d.into();
        self
    }

    /// The TLS configuration for `https` targets. Defaults to one that
    /// trusts Mozilla's root certificates (the `webpki-roots` crate) and
    /// verifies every server's certificate and name.
    ///
    /// There is no switch that turns verification off: who needs that
    /// builds a `ClientConfig` with their own verifier. Use
    /// [`keepalive::rustls`](crate::rustls) so the versions match.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use keepalive::rustls::{ClientConfig, RootCertStore};
    ///
    /// let provider = Arc::new(keepalive::rustls::crypto::aws_lc_rs::default_provider());
    /// let config = ClientConfig::builder_with_provider(provider)
    ///     .with_safe_default_protocol_versions()?
    ///     .with_root_certificates(RootCertStore::empty()) // add your own CA here
    ///     .with_no_client_auth();
    /// let builder = keepalive::Manager::builder().tls_config(Arc::new(config));
    /// # drop(builder);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(keepalive_tls)]
    pub fn tls_config(mut self, c: Arc<rustls::ClientConfig>) -> Self {
        self.config.dial.tls = Some(c);
        self
    }

    /// Trusts `der`, a root certificate, as well as the default roots,
    /// keeping the default configuration (provider, key exchange,
    /// protocol versions), as reqwest's `add_root_certificate` does: for a
    /// private CA or a test server. A [`tls_config`](Builder::tls_config)
    /// given as well wins, whichever is called first. A root that does not
    /// parse is no panic: every `https` allocation of the manager then
    /// fails with function `"tls"` and a message naming it.
    ///
    /// # Examples
    ///
    /// ```
    /// # let der = keepalive::rustls::pki_types::CertificateDer::from(Vec::new());
    /// // `der`: your CA's certificate, DER-encoded.
    /// let builder = keepalive::Manager::builder().add_root_certificate(der);
    /// # drop(builder);
    /// ```
    #[cfg(keepalive_tls)]
    pub fn add_root_certificate(mut self, der: rustls::pki_types::CertificateDer<'static>) -> Self {
        self.config.dial.extra_roots.push(der);
        self
    }

    /// The application protocols offered by ALPN to `https` targets, most
    /// preferred first (such as `h2` and `http/1.1`); the one the server
    /// chose is [`Stream::alpn_protocol`](crate::Stream::alpn_protocol).
    /// TLS to an `https` proxy then offers `http/1.1` alone. A
    /// [`tls_config`](Builder::tls_config) that names ALPN protocols of its
    /// own keeps them. Defaults to none (no ALPN extension).
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = keepalive::Manager::builder().alpn_protocols(["h2", "http/1.1"]);
    /// # drop(builder);
    /// ```
    #[cfg(keepalive_tls)]
    pub fn alpn_protocols<A: AsRef<[u8]>>(mut self, protocols: impl IntoIterator<Item = A>) -> Self {
        self.config.dial.alpn = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }
}
