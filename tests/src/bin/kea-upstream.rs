//! The test upstream as a process, for the benchmark and the example gateway.
//! Usage: kea-upstream [PORT] (default 8081).

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .map(|p| p.parse())
        .transpose()
        .context("PORT must be a number")?
        .unwrap_or(8081);
    // One worker: on a small machine the upstream must not compete with the proxy under test.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("cannot bind 127.0.0.1:{port}"))?;
        eprintln!("kea-upstream listening on 127.0.0.1:{port}");
        kea_e2e::upstream::serve(listener, kea_e2e::upstream::State::counting()).await?;
        Ok(())
    })
}
