//! Real proxies from Debian's packages, started on loopback by the tests:
//! tinyproxy and squid (HTTP `CONNECT`, Basic auth) and microsocks
//! (SOCKS5). `.ci/run` installs them; without one, its tests fail under
//! `CI=true` and skip loudly elsewhere.

use std::process::Command;

use super::nginx::free_port;
use super::servers::{binary, workdir, Process};

/// Skips (or, in CI, fails) a test that needs a proxy it cannot start.
pub fn unavailable(what: &str, why: &str) {
    super::skip_or_fail(what, why);
}

/// tinyproxy in the foreground, asking for `auth` (user, password) with
/// Basic if given. Every `CONNECT` port is allowed (no `ConnectPort`).
pub fn tinyproxy(name: &str, auth: Option<(&str, &str)>) -> Result<Process, String> {
    let bin = binary(&["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"]).ok_or("no tinyproxy binary")?;
    let dir = workdir(name)?;
    let port = free_port();
    let d = dir.display();
    let mut conf = format!(
        "Port {port}\nListen 127.0.0.1\nTimeout 600\nMaxClients 200\nLogLevel Info\nLogFile \"{d}/tinyproxy.log\"\n"
    );
    if let Some((user, password)) = auth {
        conf.push_str(&format!("BasicAuth {user} {password}\n"));
    }
    std::fs::write(dir.join("tinyproxy.conf"), conf).map_err(|e| e.to_string())?;
    let mut command = Command::new(bin);
    command.arg("-d").arg("-c").arg(dir.join("tinyproxy.conf"));
    Process::spawn(name, command, dir, &[port])
}

/// squid with Basic auth through `basic_ncsa_auth` (its password file made
/// by `htpasswd`), no cache, an access log of one line per request or
/// tunnel (`CONNECT` lines are written when the tunnel closes).
pub fn squid(user: &str, password: &str) -> Result<Process, String> {
    let bin = binary(&["/usr/sbin/squid"]).ok_or("no squid binary")?;
    let helper = binary(&[
        "/usr/lib/squid/basic_ncsa_auth",
        "/usr/lib64/squid/basic_ncsa_auth",
    ])
    .ok_or("no basic_ncsa_auth helper")?;
    let htpasswd = binary(&["/usr/bin/htpasswd"]).ok_or("no htpasswd (apache2-utils)")?;
    let dir = workdir("squid")?;
    let d = dir.display();
    let made = Command::new(htpasswd)
        .arg("-bc")
        .arg(dir.join("passwd"))
        .arg(user)
        .arg(password)
        .output()
        .map_err(|e| format!("htpasswd: {e}"))?;
    if !made.status.success() {
        return Err(format!(
            "htpasswd failed: {}",
            String::from_utf8_lossy(&made.stderr)
        ));
    }
    let port = free_port();
    let conf = format!(
        "http_port 127.0.0.1:{port}\npid_filename {d}/squid.pid\ncache_log {d}/cache.log\n\
         access_log stdio:{d}/access.log squid\ncache deny all\ncache_mem 8 MB\ncoredump_dir {d}\n\
         auth_param basic program {helper} {d}/passwd\nauth_param basic realm keepalive-test\n\
         acl authed proxy_auth REQUIRED\nhttp_access allow authed\nhttp_access deny all\n\
         shutdown_lifetime 0 seconds\npinger_enable off\n",
        helper = helper.display()
    );
    std::fs::write(dir.join("squid.conf"), conf).map_err(|e| e.to_string())?;
    // squid drops to its own user, which must write the logs.
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(&dir).map_err(|e| e.to_string())?.flatten() {
        let _ = std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o777));
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).map_err(|e| e.to_string())?;
    let mut command = Command::new(bin);
    command.arg("-N").arg("-f").arg(dir.join("squid.conf"));
    Process::spawn("squid", command, dir, &[port])
}

/// squid's access log: (method, status) per logged request or tunnel.
pub fn squid_log(squid: &Process) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(squid.dir().join("access.log")).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some((fields.get(5)?.to_string(), fields.get(3)?.to_string()))
        })
        .collect()
}

/// microsocks (SOCKS5), asking for `auth` with RFC 1929 if given.
pub fn microsocks(name: &str, auth: Option<(&str, &str)>) -> Result<Process, String> {
    let bin = binary(&["/usr/bin/microsocks", "/usr/local/bin/microsocks"]).ok_or("no microsocks binary")?;
    let dir = workdir(name)?;
    let port = free_port();
    let mut command = Command::new(bin);
    command.arg("-i").arg("127.0.0.1").arg("-p").arg(port.to_string());
    if let Some((user, password)) = auth {
        command.arg("-u").arg(user).arg("-P").arg(password);
    }
    Process::spawn(name, command, dir, &[port])
}
