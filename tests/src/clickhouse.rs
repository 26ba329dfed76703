//! A real ClickHouse server (Debian's `clickhouse-server`) on loopback with a scratch data dir.

use crate::{free_port, wait_for};
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SYSTEM_CONFIG: &str = "/etc/clickhouse-server/config.xml";
const SYSTEM_USERS: &str = "/etc/clickhouse-server/users.xml";

#[derive(Debug)]
pub struct ClickHouse {
    child: Option<Child>,
    pub http_port: u16,
    config: PathBuf,
    dir: tempfile::TempDir,
}

impl ClickHouse {
    /// Starts a server with its own ports and data directory, based on the packaged config.
    pub fn start() -> Result<Self> {
        // Its three ports are picked free and released before the server binds them; a parallel
        // test can take one in between. A new pick fixes that.
        let mut attempt = 1;
        loop {
            match Self::start_once() {
                Err(_) if attempt < 3 => attempt += 1,
                other => return other,
            }
        }
    }

    fn start_once() -> Result<Self> {
        let system = fs::read_to_string(SYSTEM_CONFIG).with_context(|| {
            format!("{SYSTEM_CONFIG} missing — run scripts/install-deps.sh (Debian clickhouse-server)")
        })?;
        let dir = tempfile::tempdir()?;
        let root = dir.path().display().to_string();
        let http_port = free_port()?;
        let config: String = system
            .replace(
                "<http_port>8123</http_port>",
                &format!("<http_port>{http_port}</http_port>"),
            )
            .replace(
                "<tcp_port>9000</tcp_port>",
                &format!("<tcp_port>{}</tcp_port>", free_port()?),
            )
            .replace(
                "<interserver_http_port>9009</interserver_http_port>",
                &format!("<interserver_http_port>{}</interserver_http_port>", free_port()?),
            )
            .replace("/var/lib/clickhouse/", &format!("{root}/data/"))
            .replace("/var/log/clickhouse-server/", &format!("{root}/log/"))
            .lines()
            .filter(|line| {
                !line.contains("format_schema_path") && !line.contains("<listen_host>::1</listen_host>")
            })
            .collect::<Vec<_>>()
            .join("\n");
        fs::create_dir_all(dir.path().join("data"))?;
        fs::create_dir_all(dir.path().join("log"))?;
        let config_path = dir.path().join("config.xml");
        fs::write(&config_path, config)?;
        fs::copy(SYSTEM_USERS, dir.path().join("users.xml"))?;
        let mut server = Self {
            child: None,
            http_port,
            config: config_path,
            dir,
        };
        server.launch()?;
        Ok(server)
    }

    fn launch(&mut self) -> Result<()> {
        // Debian installs it in /usr/sbin, which is not on every user's PATH.
        let binary = ["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("clickhouse-server");
        let child = Command::new(binary)
            .arg(format!("--config-file={}", self.config.display()))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start clickhouse-server — run scripts/install-deps.sh")?;
        self.child = Some(child);
        let url = format!("http://127.0.0.1:{}/ping", self.http_port);
        wait_for(Duration::from_secs(60), "ClickHouse to answer /ping", || {
            crate::http::get(&url).ok().filter(|r| r.status == 200)
        })
        .with_context(|| {
            let log =
                fs::read_to_string(self.dir.path().join("log/clickhouse-server.err.log")).unwrap_or_default();
            format!("ClickHouse did not start:\n{log}")
        })?;
        Ok(())
    }

    /// Runs a query and returns the raw answer; a non-200 answer is an error with ClickHouse's message.
    pub fn query(&self, sql: &str) -> Result<String> {
        let response = crate::http::send(
            "POST",
            &format!("http://127.0.0.1:{}/", self.http_port),
            &[],
            Some(sql.as_bytes()),
        )?;
        if response.status != 200 {
            bail!("ClickHouse {}: {}", response.status, response.body);
        }
        Ok(response.body)
    }

    /// Rows of a `SELECT` as JSON objects.
    pub fn rows(&self, select: &str) -> Result<Vec<serde_json::Value>> {
        let body = self.query(&format!("{select} FORMAT JSONEachRow"))?;
        body.lines().map(|line| Ok(serde_json::from_str(line)?)).collect()
    }

    pub fn count(&self, table: &str) -> Result<u64> {
        Ok(self
            .query(&format!("SELECT count() FROM {table}"))?
            .trim()
            .parse()?)
    }

    /// Stops the server (data stays), e.g. to simulate an outage.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.launch()
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The audit table KEA documents for the ClickHouse sink.
pub const AUDIT_TABLE_DDL: &str = include_str!("../../plugins/audit/clickhouse.sql");
