//! Native cost of one audited request's plugin logic (MockHost; no proxy overhead).
//! cargo run --release -p kea-audit --example onlog_cost
use kea_audit::{AuditRoot, AuditStream};
use kea_plugin_sdk::mock::MockHost;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let host = MockHost::new()
        .with_request(
            "GET",
            "/pets/1?limit=5",
            &[
                ("x-request-id", "0b4c5c5e-1d5e-4a1b-9c55-44b8f0d6c0a1"),
                ("user-agent", "wrk"),
                ("accept", "*/*"),
            ],
        )
        .with_response(
            200,
            &[
                ("content-type", "application/json"),
                ("content-length", "1024"),
                ("date", "Thu, 26 Nov 2026 06:00:00 GMT"),
                ("server", "envoy"),
                ("x-envoy-upstream-service-time", "1"),
            ],
        );
    host.set_property(&["source", "address"], b"127.0.0.1:40000");
    host.set_property(&["xds", "route_name"], b"default");
    let mut root = AuditRoot::new();
    root.configure(&host, b"{}")?;
    let runtime = root.runtime().ok_or("not configured")?;
    let n = 200_000;
    let started = Instant::now();
    let mut bytes = 0;
    for _ in 0..n {
        let mut stream = AuditStream::new();
        stream.on_request_headers(&host, &runtime.config);
        stream.on_response_headers(&host);
        stream.on_response_body(&host, 1024);
        if let kea_audit::LogOutcome::Record(line) = stream.on_log(&host, &runtime.config) {
            bytes += line.len();
        }
    }
    let per = started.elapsed() / n;
    println!(
        "{per:?} per request natively (record {} bytes)",
        bytes / n as usize
    );
    Ok(())
}
