//! End-to-end: real Envoy with `dist/cache.wasm` in front of an upstream that counts requests.

use anyhow::Result;
use kea_e2e::envoy::{Envoy, EnvoyBuilder};
use kea_e2e::http;
use kea_e2e::upstream::Upstream;
use serde_json::json;

fn sha256_hex(text: &str) -> String {
    // The harness has no hashing dependency of its own; sha256sum is on every Debian machine.
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("printf %s '{text}' | sha256sum"))
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn gateway(upstream: &Upstream, workers: u32, config: serde_json::Value) -> Result<Envoy> {
    EnvoyBuilder::new(upstream.port)
        .concurrency(workers)
        .plugin("cache", config)?
        .start()
}

#[test]
fn hits_are_served_by_every_worker_without_reaching_the_upstream() -> Result<()> {
    let upstream = Upstream::start()?;
    let envoy = gateway(&upstream, 2, json!({}))?;
    let first = http::get(&envoy.url("/cacheable/a"))?;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-kea-cache"), Some("MISS"));
    // Many connections, spread over both workers: every one is a hit from the shared store.
    let hits = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    (0..50)
                        .map(|_| http::get(&envoy.url("/cacheable/a")).unwrap())
                        .filter(|r| {
                            r.status == 200 && r.header("x-kea-cache") == Some("HIT") && r.body == first.body
                        })
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
    });
    assert_eq!(hits, 200);
    assert_eq!(upstream.hits(), 1, "hits must not reach the upstream");
    // Both workers took connections, so both served hits from the one shared store.
    let stats = http::get(&envoy.admin_url("/stats?filter=downstream_cx_total"))?.body;
    let per_worker: Vec<u64> = stats
        .lines()
        .filter(|l| l.contains("worker_") && l.contains("downstream_cx_total"))
        .filter_map(|l| l.rsplit(": ").next()?.trim().parse().ok())
        .collect();
    assert_eq!(per_worker.len(), 2, "{stats}");
    assert!(
        per_worker.iter().all(|&n| n > 0),
        "a worker took no connection: {stats}"
    );
    let hit = http::get(&envoy.url("/cacheable/a"))?;
    assert!(hit.header("age").is_some_and(|age| age.parse::<u64>().is_ok()));
    assert_eq!(hit.header("etag"), Some("\"v1\""));
    assert_eq!(envoy.stat("wasmcustom.kea_cache_hits_total"), Some(201));
    assert_eq!(envoy.stat("wasmcustom.kea_cache_stores_total"), Some(1));
    Ok(())
}

#[test]
fn conditional_requests_no_store_and_oversized_responses() -> Result<()> {
    let upstream = Upstream::start()?;
    let envoy = gateway(&upstream, 1, json!({"store": {"maxEntryBytes": "64KiB"}}))?;
    http::get(&envoy.url("/cacheable/c"))?;
    let not_modified = http::send(
        "GET",
        &envoy.url("/cacheable/c"),
        &[("if-none-match", "\"v1\"")],
        None,
    )?;
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.header("x-kea-cache"), Some("HIT"));
    assert_eq!(upstream.hits(), 1);

    for _ in 0..3 {
        let response = http::get(&envoy.url("/cacheable/n?cc=no-store"))?;
        assert_eq!(response.header("x-kea-cache"), Some("MISS"));
    }
    assert_eq!(
        upstream.hits(),
        4,
        "no-store responses are never served from the cache"
    );

    for _ in 0..2 {
        let big = http::get(&envoy.url("/cacheable/big?size=200000"))?;
        assert_eq!(big.status, 200);
        assert_eq!(big.body.len(), 200_000, "streamed through whole");
    }
    assert_eq!(
        upstream.hits(),
        6,
        "over the entry cap: passed through, not cached"
    );
    assert!(envoy.stat("wasmcustom.kea_cache_too_large_total").unwrap() >= 2);
    Ok(())
}

#[test]
fn purge_requires_the_token() -> Result<()> {
    let upstream = Upstream::start()?;
    let envoy = gateway(
        &upstream,
        1,
        json!({"purge": {"tokenSha256": sha256_hex("s3cret-purge"), "prefixes": ["/cacheable"]}}),
    )?;
    http::get(&envoy.url("/cacheable/p"))?;
    let denied = http::send(
        "PURGE",
        &envoy.url("/cacheable/p"),
        &[("kea-purge-token", "guess")],
        None,
    )?;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.header("content-type"), Some("application/problem+json"));
    assert_eq!(
        http::get(&envoy.url("/cacheable/p"))?.header("x-kea-cache"),
        Some("HIT")
    );

    let purged = http::send(
        "PURGE",
        &envoy.url("/cacheable/p"),
        &[("kea-purge-token", "s3cret-purge")],
        None,
    )?;
    assert_eq!(purged.status, 200, "{}", purged.body);
    assert_eq!(purged.json()["entries"], 1);
    assert_eq!(
        http::get(&envoy.url("/cacheable/p"))?.header("x-kea-cache"),
        Some("MISS")
    );

    http::get(&envoy.url("/cacheable/q"))?;
    let prefix = [("kea-purge-token", "s3cret-purge"), ("kea-purge", "prefix")];
    assert_eq!(
        http::send("PURGE", &envoy.url("/cacheable"), &prefix, None)?.status,
        200
    );
    assert_eq!(
        http::get(&envoy.url("/cacheable/q"))?.header("x-kea-cache"),
        Some("MISS")
    );
    assert_eq!(upstream.hits(), 4, "PURGE requests never reach the upstream");
    Ok(())
}

#[test]
fn memory_stays_bounded_under_key_churn() -> Result<()> {
    let upstream = Upstream::start()?;
    let envoy = gateway(
        &upstream,
        1,
        json!({"store": {"maxEntries": 128, "maxEntryBytes": "4KiB"}}),
    )?;
    let churn = |from: usize, to: usize| -> Result<()> {
        for i in from..to {
            let response = http::get(&envoy.url(&format!("/cacheable/k{i}?size=1000")))?;
            assert_eq!(response.status, 200);
        }
        Ok(())
    };
    churn(0, 1000)?;
    let after_warmup = envoy.memory_allocated().unwrap();
    churn(1000, 5000)?;
    let after_churn = envoy.memory_allocated().unwrap();
    let growth = after_churn - after_warmup;
    eprintln!("memory allocated: {after_warmup} -> {after_churn} bytes");
    assert!(
        growth < 2 * 1024 * 1024,
        "memory grew by {growth} bytes over 4000 more distinct keys"
    );
    assert!(envoy.stat("wasmcustom.kea_cache_evictions_total").unwrap() > 0);
    Ok(())
}

#[test]
fn invalid_configuration_is_refused_naming_the_field() -> Result<()> {
    let upstream = Upstream::start()?;
    let log = EnvoyBuilder::new(upstream.port)
        .plugin("cache", json!({"defaults": {"methods": ["POST"]}}))?
        .start_expecting_failure()?;
    assert!(
        log.contains("kea-cache: configuration rejected: invalid configuration at defaults.methods[0]"),
        "{log}"
    );
    Ok(())
}

#[test]
fn stale_entries_are_revalidated_with_the_origin() -> Result<()> {
    let upstream = Upstream::start()?;
    let envoy = gateway(&upstream, 1, json!({}))?;
    let first = http::get(&envoy.url("/cacheable/r?cc=max-age=1"))?;
    assert_eq!(first.header("x-kea-cache"), Some("MISS"));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    // Stale: the cache asks the origin with If-None-Match, the origin answers 304, and the client
    // gets the stored body.
    let revalidated = http::get(&envoy.url("/cacheable/r?cc=max-age=1"))?;
    assert_eq!(revalidated.status, 200, "{}", revalidated.body);
    assert_eq!(revalidated.header("x-kea-cache"), Some("EXPIRED"));
    assert_eq!(revalidated.body, first.body);
    assert_eq!(upstream.hits(), 2);
    assert_eq!(envoy.stat("wasmcustom.kea_cache_revalidated_total"), Some(1));
    // Refreshed by the 304: a hit again.
    assert_eq!(
        http::get(&envoy.url("/cacheable/r?cc=max-age=1"))?.header("x-kea-cache"),
        Some("HIT")
    );
    assert_eq!(upstream.hits(), 2);
    Ok(())
}

#[test]
fn stale_if_error_answers_while_the_origin_fails() -> Result<()> {
    let upstream = Upstream::start()?;
    // The key ignores `status`, so the failing request finds the entry the good one left.
    let envoy = gateway(
        &upstream,
        1,
        json!({"defaults": {"query": {"exclude": ["status"]}}}),
    )?;
    let good = http::get(&envoy.url("/cacheable/e?cc=max-age=1,stale-if-error=60"))?;
    assert_eq!(good.header("x-kea-cache"), Some("MISS"));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let stale = http::get(&envoy.url("/cacheable/e?cc=max-age=1,stale-if-error=60&status=503"))?;
    assert_eq!(stale.status, 200);
    assert_eq!(stale.header("x-kea-cache"), Some("STALE"));
    assert_eq!(stale.body, good.body);
    Ok(())
}

#[test]
fn malformed_or_conflicting_freshness_is_never_served_from_the_cache() -> Result<()> {
    let upstream = Upstream::start()?;
    let envoy = gateway(&upstream, 1, json!({}))?;
    for (i, cc) in [
        "max-age=abc",
        "max-age=10,max-age=20",
        "max-age=-5",
        "public,,=,max-age",
        "max-age=60,no-store",
    ]
    .iter()
    .enumerate()
    {
        let path = format!("/cacheable/bad{i}?cc={}", cc.replace(' ', "%20"));
        let first = http::get(&envoy.url(&path))?;
        assert_eq!(first.status, 200, "{cc}");
        let second = http::get(&envoy.url(&path))?;
        assert_ne!(
            second.header("x-kea-cache"),
            Some("HIT"),
            "{cc} was trusted as fresh"
        );
    }
    assert_eq!(upstream.hits(), 10);
    assert_eq!(
        http::get(&envoy.url("/cacheable/ok"))?.status,
        200,
        "still serving"
    );
    Ok(())
}

#[test]
fn audit_and_cache_in_one_chain() -> Result<()> {
    let upstream = Upstream::start()?;
    let envoy = EnvoyBuilder::new(upstream.port)
        .plugin("audit", json!({}))?
        .plugin(
            "cache",
            json!({"purge": {"tokenSha256": sha256_hex("chain-token")}}),
        )?
        .start()?;
    let get = |id: &str| {
        http::send(
            "GET",
            &envoy.url("/cacheable/chain"),
            &[("x-request-id", id)],
            None,
        )
    };
    assert_eq!(get("chain-1")?.header("x-kea-cache"), Some("MISS"));
    assert_eq!(get("chain-2")?.header("x-kea-cache"), Some("HIT"));
    // Audit, first in the chain, records what the cache did, hits included.
    assert_eq!(
        envoy.wait_for_record("http.request.id", "chain-1")?["kea.cache.status"],
        "MISS"
    );
    let hit = envoy.wait_for_record("http.request.id", "chain-2")?;
    assert_eq!(hit["kea.cache.status"], "HIT");
    assert_eq!(hit["http.response.status_code"], 200);
    // Purge headers pass audit (it strips only the x-kea-* namespace KEA sets).
    let purge = http::send(
        "PURGE",
        &envoy.url("/cacheable/chain"),
        &[("kea-purge-token", "chain-token")],
        None,
    )?;
    assert_eq!(purge.status, 200, "{}", purge.body);
    assert_eq!(get("chain-3")?.header("x-kea-cache"), Some("MISS"));
    assert_eq!(upstream.hits(), 2);
    Ok(())
}

/// Waits until a proxy counter reaches `value`; how long that took.
fn wait_for_stat(envoy: &Envoy, name: &str, value: i64) -> Result<std::time::Duration> {
    let started = std::time::Instant::now();
    kea_e2e::wait_for(std::time::Duration::from_secs(10), name, || {
        (envoy.stat(name) == Some(value)).then_some(())
    })?;
    Ok(started.elapsed())
}

/// A background refresh starts as soon as a request claims it (the worker's root context is
/// woken through its queue), not on the plugin's 5 s tick.
const REFRESH_STARTS_WITHIN: std::time::Duration = std::time::Duration::from_millis(2000);

#[test]
fn stale_while_revalidate_answers_at_once_and_one_request_refreshes_for_all_workers() -> Result<()> {
    let upstream = Upstream::start()?;
    let envoy = gateway(&upstream, 2, json!({}))?;
    // The representation changes on every request; a revalidation takes a second. (Fresh for 4 s:
    // ages are whole seconds, and the refreshed entry must still be fresh when read back.)
    let path = "/counter/swr?cc=max-age=4,stale-while-revalidate=30&revalidationDelay=1000";
    let first = http::get(&envoy.url(path))?;
    assert_eq!(first.header("x-kea-cache"), Some("MISS"));
    assert_eq!(first.body, r#"{"n":1}"#);
    std::thread::sleep(std::time::Duration::from_millis(4100));

    // Twenty clients at once, on both workers: every one is answered from the stale entry at
    // once, without waiting for the (slow) revalidation.
    let barrier = std::sync::Barrier::new(20);
    let answers: Vec<(http::Response, std::time::Duration)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    let started = std::time::Instant::now();
                    let response = http::get(&envoy.url(path)).unwrap();
                    (response, started.elapsed())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (response, elapsed) in &answers {
        assert_eq!(response.status, 200);
        assert_eq!(response.header("x-kea-cache"), Some("STALE"), "{response:?}");
        assert_eq!(response.body, r#"{"n":1}"#);
        let age: u64 = response.header("age").unwrap_or_default().parse()?;
        assert!(age >= 4, "its real age: {age}");
        assert!(
            *elapsed < std::time::Duration::from_millis(700),
            "waited {elapsed:?} for the revalidation"
        );
    }
    assert_eq!(
        envoy.stat("wasmcustom.kea_cache_stale_while_revalidate_total"),
        Some(20)
    );
    // Exactly one revalidation, with the stored validator, for all workers; started at once.
    let waited = wait_for_stat(&envoy, "wasmcustom.kea_cache_background_refresh_total", 1)?;
    assert!(
        waited < REFRESH_STARTS_WITHIN,
        "refreshed {waited:?} after the stale answers (the origin takes 1 s)"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(upstream.hits(), 2);
    assert_eq!(
        upstream.conditionals("/counter/swr"),
        [None, Some("\"1\"".to_string())]
    );
    // The refreshed entry is what is served now.
    let hit = http::get(&envoy.url(path))?;
    assert_eq!(hit.header("x-kea-cache"), Some("HIT"));
    assert_eq!(hit.body, r#"{"n":2}"#);
    assert_eq!(hit.header("etag"), Some("\"2\""));
    assert_eq!(upstream.hits(), 2);
    // Both workers answered some of the twenty.
    let stats = http::get(&envoy.admin_url("/stats?filter=downstream_cx_total"))?.body;
    let per_worker: Vec<u64> = stats
        .lines()
        .filter(|l| l.contains("worker_") && l.contains("downstream_cx_total"))
        .filter_map(|l| l.rsplit(": ").next()?.trim().parse().ok())
        .collect();
    assert_eq!(per_worker.len(), 2, "{stats}");
    assert!(
        per_worker.iter().all(|&n| n > 0),
        "a worker took no connection: {stats}"
    );
    Ok(())
}

#[test]
fn stale_while_revalidate_304s_failures_and_where_it_does_not_apply() -> Result<()> {
    let upstream = Upstream::start()?;
    // The key ignores `status`, so a request can make the refresh it triggers fail.
    let envoy = gateway(
        &upstream,
        1,
        json!({"defaults": {"query": {"exclude": ["status"]}}}),
    )?;
    // Fresh for 3 s: a refreshed entry (ages are whole seconds) is still fresh when read back.
    let swr = "cc=max-age=3,stale-while-revalidate=30";
    let paths = [
        format!("/cacheable/w?{swr}"),
        format!("/cacheable/f?{swr}"),
        format!("/cacheable/n?{swr}"),
        format!("/cacheable/m?{swr},must-revalidate"),
        "/cacheable/o?cc=max-age=1,stale-while-revalidate=1".to_string(),
    ];
    for path in &paths {
        assert_eq!(http::get(&envoy.url(path))?.header("x-kea-cache"), Some("MISS"));
    }
    std::thread::sleep(std::time::Duration::from_millis(3100));
    let status = |path: &str, headers: &[(&str, &str)]| -> Result<Option<String>> {
        let response = http::send("GET", &envoy.url(path), headers, None)?;
        assert_eq!(response.status, 200, "{path}: {}", response.body);
        Ok(response.header("x-kea-cache").map(str::to_string))
    };

    // A 304 makes the entry fresh again.
    assert_eq!(status(&paths[0], &[])?.as_deref(), Some("STALE"));
    let waited = wait_for_stat(&envoy, "wasmcustom.kea_cache_background_refresh_total", 1)?;
    assert!(waited < REFRESH_STARTS_WITHIN, "refreshed after {waited:?}");
    assert_eq!(status(&paths[0], &[])?.as_deref(), Some("HIT"));
    assert_eq!(upstream.hits(), 6, "five misses and one revalidation");

    // A failed refresh leaves the entry and gives up its claim: the next stale request refreshes.
    assert_eq!(
        status(&format!("{}&status=503", paths[1]), &[])?.as_deref(),
        Some("STALE")
    );
    kea_e2e::wait_for(std::time::Duration::from_secs(10), "the failed refresh", || {
        (upstream.hits() == 7).then_some(())
    })?;
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        envoy.stat("wasmcustom.kea_cache_background_refresh_total"),
        Some(1)
    );
    assert_eq!(status(&paths[1], &[])?.as_deref(), Some("STALE"));
    let waited = wait_for_stat(&envoy, "wasmcustom.kea_cache_background_refresh_total", 2)?;
    assert!(waited < REFRESH_STARTS_WITHIN, "refreshed after {waited:?}");
    assert_eq!(status(&paths[1], &[])?.as_deref(), Some("HIT"));

    // The client wants a validated response, the origin forbids stale use, or the window has
    // passed: revalidated before answering.
    assert_eq!(
        status(&paths[2], &[("cache-control", "no-cache")])?.as_deref(),
        Some("EXPIRED")
    );
    assert_eq!(status(&paths[3], &[])?.as_deref(), Some("EXPIRED"));
    assert_eq!(status(&paths[4], &[])?.as_deref(), Some("EXPIRED"));
    assert_eq!(
        envoy.stat("wasmcustom.kea_cache_stale_while_revalidate_total"),
        Some(3)
    );
    assert_eq!(envoy.stat("wasmcustom.kea_cache_revalidated_total"), Some(3));
    Ok(())
}
