//! nginx on loopback, started by the test with a configuration of its own.
//! `.ci/run` installs nginx when it is missing. Without it the tests fail
//! in CI (`CI=true`) and skip with a loud message elsewhere.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::servers::Process;

/// A running nginx; killed, with its files removed, on drop.
pub struct Nginx {
    process: Process,
}

/// A free loopback port (the listener is closed before nginx binds it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn binary() -> Option<PathBuf> {
    super::servers::binary(&["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"])
}

/// Skips (or, in CI, fails) a test that needs nginx.
pub fn unavailable(why: &str) {
    super::skip_or_fail("nginx", why);
}

impl Nginx {
    /// Starts nginx with `servers` (server blocks) inside an http block
    /// that logs `$connection $connection_requests $status` per request.
    /// `files` are written to its directory first (certificates).
    pub fn start(
        name: &str,
        servers: &str,
        files: &[(&str, String)],
        ports: &[u16],
    ) -> Result<Nginx, String> {
        let bin = binary().ok_or("no nginx binary")?;
        let dir = std::env::temp_dir().join(format!("keepalive-nginx-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tmp")).map_err(|e| e.to_string())?;
        for (file, contents) in files {
            std::fs::write(dir.join(file), contents).map_err(|e| e.to_string())?;
        }
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  log_format ka '$connection $connection_requests $status';\n  access_log {d}/access.log ka;\n\
             client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n\
             fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n{servers}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).map_err(|e| e.to_string())?;
        let mut command = Command::new(bin);
        command.arg("-p").arg(&dir).arg("-c").arg(dir.join("nginx.conf"));
        let process = Process::spawn("nginx", command, dir, ports)?;
        Ok(Nginx { process })
    }

    /// The access log: (connection number, requests on it so far, status)
    /// per request. The test's own readiness probes are not requests and
    /// are not logged.
    pub fn log(&self) -> Vec<(u64, u64, u16)> {
        let text = std::fs::read_to_string(self.dir().join("access.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace().map(str::parse::<u64>);
                Some((f.next()?.ok()?, f.next()?.ok()?, f.next()?.ok()? as u16))
            })
            .collect()
    }

    pub fn dir(&self) -> &Path {
        self.process.dir()
    }
}
