//! The test upstream as a process, for the benchmark and the example gateway.
//! Usage: kea-upstream [PORT] [--bind ADDRESS] [--publish URL_PATH=FILE]...
//! (default port 8081, address 127.0.0.1; in a container `--bind 0.0.0.0`).
//! `--publish` serves a file (e.g. a validate-plugin bundle) at a path, with an ETag.
//! `GET /_kea/stats` answers how many requests reached it.

use anyhow::{bail, Context};

fn main() -> anyhow::Result<()> {
    let mut port: u16 = 8081;
    let mut bind: std::net::IpAddr = std::net::Ipv4Addr::LOCALHOST.into();
    let mut published = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--publish" {
            let spec = args.next().context("--publish needs URL_PATH=FILE")?;
            let (path, file) = spec.split_once('=').context("--publish needs URL_PATH=FILE")?;
            let body = std::fs::read(file).with_context(|| format!("cannot read {file}"))?;
            published.push((path.to_string(), body));
        } else if arg == "--bind" {
            let address = args.next().context("--bind needs an IP address")?;
            bind = address
                .parse()
                .with_context(|| format!("--bind {address:?} is not an IP address"))?;
        } else if let Ok(number) = arg.parse() {
            port = number;
        } else {
            bail!("unexpected argument {arg:?} (usage: kea-upstream [PORT] [--bind ADDRESS] [--publish URL_PATH=FILE]...)");
        }
    }
    let state = kea_e2e::upstream::State::counting();
    for (path, body) in &published {
        state.publish(path, body);
    }
    // One worker: on a small machine the upstream must not compete with the proxy under test.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind((bind, port))
            .await
            .with_context(|| format!("cannot bind {bind}:{port}"))?;
        eprintln!("kea-upstream listening on {bind}:{port}");
        kea_e2e::upstream::serve(listener, state).await?;
        Ok(())
    })
}
