//! Real HTTP servers from Debian's packages, started on loopback by the
//! tests with a short idle limit: Apache httpd, lighttpd and Node.js's
//! `http` module (nginx has `nginx.rs`). `.ci/run` installs them; without
//! one, its tests fail under `CI=true` and skip loudly elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::nginx::free_port;

/// A server process with its own directory; killed, and the directory
/// removed, on drop.
pub struct Process {
    child: Child,
    dir: PathBuf,
    pub port: u16,
}

impl Process {
    /// Runs `command` (which uses `dir`) and waits until it accepts on
    /// every one of `ports`; `port` is the first.
    pub fn spawn(name: &str, mut command: Command, dir: PathBuf, ports: &[u16]) -> Result<Process, String> {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{name}: {e}"))?;
        let port = ports.first().copied().ok_or("no port to wait for")?;
        let mut process = Process { child, dir, port };
        let deadline = Instant::now() + super::DEADLINE;
        for &port in ports {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Ok(Some(status)) = process.child.try_wait() {
                    let log = std::fs::read_to_string(process.dir.join("error.log")).unwrap_or_default();
                    return Err(format!("{name} exited with {status}: {log}"));
                }
                if Instant::now() > deadline {
                    return Err(format!("{name} did not listen on {port}"));
                }
                std::thread::sleep(Duration::from_millis(10)); // polling a port the server binds in its own time
            }
        }
        Ok(process)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Process {
    /// SIGTERM first, so that a server with workers of its own (Apache
    /// httpd, squid) stops them; SIGKILL if it has not ended within 2 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(2);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10)); // polling a process that has no event to await
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh directory for one server, readable by everyone (Apache's
/// workers run as `nobody`).
pub fn workdir(name: &str) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("keepalive-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("www")).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("www/index.html"), "ok\n").map_err(|e| e.to_string())?;
    use std::os::unix::fs::PermissionsExt;
    for path in [dir.clone(), dir.join("www"), dir.join("www/index.html")] {
        let mode = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())?;
    }
    Ok(dir)
}

pub fn binary(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

/// Apache httpd (event MPM) with `KeepAliveTimeout idle_secs`. It sends
/// `Keep-Alive: timeout=N, max=M` when the request says `Connection:
/// keep-alive`. Its access log has `client-port keepalive-count status` per
/// request.
pub fn apache(idle_secs: u64) -> Result<Process, String> {
    let bin = binary(&["/usr/sbin/apache2", "/usr/sbin/httpd"]).ok_or("no apache2 binary")?;
    let modules = ["/usr/lib/apache2/modules", "/usr/lib/httpd/modules"]
        .into_iter()
        .find(|d| Path::new(d).join("mod_mpm_event.so").exists())
        .ok_or("no apache2 modules")?;
    let dir = workdir("apache")?;
    let port = free_port();
    let d = dir.display();
    let conf = format!(
        "ServerRoot \"{d}\"\nServerName 127.0.0.1\nListen 127.0.0.1:{port}\n\
         LoadModule mpm_event_module {modules}/mod_mpm_event.so\n\
         LoadModule authz_core_module {modules}/mod_authz_core.so\n\
         User nobody\nGroup nogroup\nPidFile {d}/httpd.pid\nErrorLog {d}/error.log\n\
         DocumentRoot {d}/www\nKeepAlive On\nKeepAliveTimeout {idle_secs}\nMaxKeepAliveRequests 100000\n\
         LogFormat \"%{{remote}}p %k %>s\" ka\nCustomLog {d}/access.log ka\n\
         <Directory {d}/www>\n  Require all granted\n</Directory>\n"
    );
    std::fs::write(dir.join("httpd.conf"), conf).map_err(|e| e.to_string())?;
    let mut command = Command::new(bin);
    command.arg("-f").arg(dir.join("httpd.conf")).arg("-DFOREGROUND");
    Process::spawn("apache2", command, dir, &[port])
}

/// Apache's access log: (client port, requests before this one on its
/// connection, status) per request.
pub fn apache_log(apache: &Process) -> Vec<(u16, u64, u16)> {
    let text = std::fs::read_to_string(apache.dir().join("access.log")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((
                f.next()?.parse().ok()?,
                f.next()?.parse().ok()?,
                f.next()?.parse().ok()?,
            ))
        })
        .collect()
}

/// lighttpd with `server.max-keep-alive-idle = idle_secs`: no `Keep-Alive`
/// header, and its once-a-second idle check closes anywhere from
/// `idle_secs` to `idle_secs + 1`.
pub fn lighttpd(idle_secs: u64) -> Result<Process, String> {
    let bin = binary(&["/usr/sbin/lighttpd", "/usr/bin/lighttpd"]).ok_or("no lighttpd binary")?;
    let dir = workdir("lighttpd")?;
    let port = free_port();
    let d = dir.display();
    let conf = format!(
        "server.document-root = \"{d}/www\"\nserver.bind = \"127.0.0.1\"\nserver.port = {port}\n\
         server.max-keep-alive-idle = {idle_secs}\nserver.max-keep-alive-requests = 100000\n\
         server.errorlog = \"{d}/error.log\"\nserver.pid-file = \"{d}/lighttpd.pid\"\n"
    );
    std::fs::write(dir.join("lighttpd.conf"), conf).map_err(|e| e.to_string())?;
    let mut command = Command::new(bin);
    command.arg("-D").arg("-f").arg(dir.join("lighttpd.conf"));
    Process::spawn("lighttpd", command, dir, &[port])
}

/// Node.js's `http` server with `keepAliveTimeout = idle_ms`: it announces
/// `Keep-Alive: timeout=N` (seconds) and closes about a second later.
pub fn node(idle_ms: u64) -> Result<Process, String> {
    let bin = binary(&["/usr/bin/node", "/usr/local/bin/node", "/usr/bin/nodejs"]).ok_or("no node binary")?;
    let dir = workdir("node")?;
    let port = free_port();
    let script = format!(
        "const http = require('http');\n\
         const server = http.createServer((req, res) => res.end('ok\\n'));\n\
         server.keepAliveTimeout = {idle_ms};\n\
         server.listen({port}, '127.0.0.1');\n"
    );
    std::fs::write(dir.join("server.js"), script).map_err(|e| e.to_string())?;
    let mut command = Command::new(bin);
    command.arg(dir.join("server.js"));
    Process::spawn("node", command, dir, &[port])
}

/// `redis-server` on `port` (loopback), with no persistence, so a restart
/// starts empty; `password` sets `requirepass`.
pub fn redis(name: &str, port: u16, password: Option<&str>) -> Result<Process, String> {
    let bin =
        binary(&["/usr/bin/redis-server", "/usr/local/bin/redis-server"]).ok_or("no redis-server binary")?;
    let dir = workdir(name)?;
    let mut command = Command::new(bin);
    command
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
        .arg("--dir")
        .arg(&dir);
    if let Some(password) = password {
        command.args(["--requirepass", password]);
    }
    Process::spawn(name, command, dir, &[port])
}
