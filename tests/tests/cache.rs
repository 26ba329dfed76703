//! End-to-end: real Envoy with `dist/cache.wasm` in front of an upstream that counts requests.

use anyhow::Result;
use kea_e2e::envoy::{rejected_at, Envoy, EnvoyBuilder};
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

/// Both of a two-worker Envoy's workers accepted connections (so both served from the one
/// shared store).
fn assert_both_workers_took_connections(envoy: &Envoy) -> Result<()> {
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
    assert_both_workers_took_connections(&envoy)?;
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
        log.contains(&rejected_at("cache", "defaults.methods[0]")?),
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
    // Refreshed by the 304: a hit again (asked at once: the refreshed entry is fresh for 1 s).
    assert_eq!(
        http::get(&envoy.url("/cacheable/r?cc=max-age=1"))?.header("x-kea-cache"),
        Some("HIT")
    );
    assert_eq!(upstream.hits(), 2);
    assert_eq!(envoy.stat("wasmcustom.kea_cache_revalidated_total"), Some(1));
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

/// The `Age` the origin sends counts against freshness; unsafe methods invalidate the target and
/// the same-origin `Location`/`Content-Location`; `must-understand` stores a known status
/// despite `no-store`.
#[test]
fn age_invalidation_and_must_understand_follow_rfc_9111() -> Result<()> {
    let upstream = Upstream::start()?;
    let envoy = gateway(&upstream, 1, json!({}))?;
    let get = |path: &str| http::get(&envoy.url(path));
    // Already older than its max-age: never a fresh hit.
    upstream.script(
        "/old",
        200,
        &[("cache-control", "max-age=3600"), ("age", "7200")],
        b"old",
    );
    get("/old")?;
    assert_eq!(get("/old")?.header("x-kea-cache"), Some("MISS"));
    assert_eq!(upstream.requests("/old").len(), 2);
    // Age 100 on arrival: the hit is at least that old.
    upstream.script(
        "/aged",
        200,
        &[("cache-control", "max-age=3600"), ("age", "100")],
        b"a",
    );
    get("/aged")?;
    let hit = get("/aged")?;
    assert_eq!(hit.header("x-kea-cache"), Some("HIT"));
    let age: u64 = hit.header("age").unwrap_or_default().parse()?;
    assert!((100..=102).contains(&age), "Age {age}");
    // Invalidation by a POST's Location (relative) and Content-Location (absolute, same origin).
    let cacheable = [("cache-control", "max-age=600")];
    for path in ["/a", "/b", "/c"] {
        upstream.script(path, 200, &cacheable, b"x");
        get(path)?;
        assert_eq!(get(path)?.header("x-kea-cache"), Some("HIT"), "{path}");
    }
    let origin = envoy.url("");
    let content_location = format!("{}/b", origin.trim_end_matches('/'));
    upstream.script(
        "/collection",
        201,
        &[("location", "/a"), ("content-location", &content_location)],
        b"",
    );
    http::send("POST", &envoy.url("/collection"), &[], Some(b"{}"))?;
    assert_eq!(get("/a")?.header("x-kea-cache"), Some("MISS"), "Location");
    assert_eq!(get("/b")?.header("x-kea-cache"), Some("MISS"), "Content-Location");
    // A URI of another origin is left alone.
    upstream.script(
        "/elsewhere",
        200,
        &[("location", "http://other.example.com/c")],
        b"",
    );
    http::send("PUT", &envoy.url("/elsewhere"), &[], Some(b"{}"))?;
    assert_eq!(get("/c")?.header("x-kea-cache"), Some("HIT"));
    // WebDAV's LOCK is unsafe too, though the cache has no rule naming it.
    http::send("LOCK", &envoy.url("/c"), &[], None)?;
    assert_eq!(get("/c")?.header("x-kea-cache"), Some("MISS"));
    // must-understand on a status the cache implements: stored despite no-store.
    upstream.script(
        "/understood",
        200,
        &[("cache-control", "max-age=60, no-store, must-understand")],
        b"u",
    );
    get("/understood")?;
    assert_eq!(get("/understood")?.header("x-kea-cache"), Some("HIT"));
    Ok(())
}

/// A 304 freshens the stored response but not its encoding or type, and one about another
/// representation is refused; `Surrogate-Control` governs this cache and never reaches the
/// client; `Set-Cookie` follows the rule; `Vary` compares normalised values.
#[test]
fn not_modified_surrogate_control_set_cookie_and_vary() -> Result<()> {
    let upstream = Upstream::start()?;
    let envoy = gateway(
        &upstream,
        1,
        json!({"rules": [{"match": {"pathPrefix": "/cookie-without"}, "settings": {"setCookie": "storeWithout"}}]}),
    )?;
    let get = |path: &str| http::get(&envoy.url(path));
    let stored = [
        ("cache-control", "max-age=1"),
        ("etag", "\"v1\""),
        ("content-type", "text/plain"),
        ("x-version", "1"),
    ];
    upstream.script("/r", 200, &stored, b"original");
    get("/r")?;
    std::thread::sleep(std::time::Duration::from_millis(2100));
    upstream.script(
        "/r",
        304,
        &[
            ("cache-control", "max-age=1"),
            ("etag", "\"v1\""),
            ("content-type", "text/html"),
            ("x-version", "2"),
        ],
        b"",
    );
    let freshened = get("/r")?;
    assert_eq!((freshened.status, freshened.body.as_str()), (200, "original"));
    assert_eq!(freshened.header("x-kea-cache"), Some("EXPIRED"));
    assert_eq!(freshened.header("x-version"), Some("2"));
    assert_eq!(freshened.header("content-type"), Some("text/plain"));
    let revalidation = upstream.requests("/r").pop().unwrap_or_default();
    assert!(
        revalidation.contains(&("if-none-match".into(), "\"v1\"".into())),
        "{revalidation:?}"
    );
    std::thread::sleep(std::time::Duration::from_millis(2100));
    upstream.script("/r", 304, &[("etag", "\"v2\"")], b"");
    let refused = get("/r")?;
    assert_eq!(refused.status, 502, "{}", refused.body);
    assert_eq!(refused.header("content-type"), Some("application/problem+json"));

    // Surrogate-Control: cached for 60 s here although Cache-Control says private.
    upstream.script(
        "/s",
        200,
        &[
            ("cache-control", "private, max-age=0"),
            ("surrogate-control", "max-age=60"),
        ],
        b"s",
    );
    let first = get("/s")?;
    assert_eq!(first.header("surrogate-control"), None);
    assert_eq!(first.header("cache-control"), Some("private, max-age=0"));
    let asked = upstream.requests("/s").pop().unwrap_or_default();
    assert!(
        asked.contains(&("surrogate-capability".into(), "kea=\"Surrogate/1.0\"".into())),
        "{asked:?}"
    );
    let hit = get("/s")?;
    assert_eq!(hit.header("x-kea-cache"), Some("HIT"));
    assert_eq!(hit.header("surrogate-control"), None);

    // Set-Cookie: not stored by default; stored without the cookie where the rule says so.
    let cookie = [("cache-control", "max-age=60"), ("set-cookie", "session=alice")];
    upstream.script("/cookie", 200, &cookie, b"c");
    get("/cookie")?;
    assert_eq!(get("/cookie")?.header("x-kea-cache"), Some("MISS"));
    upstream.script("/cookie-without", 200, &cookie, b"c");
    assert_eq!(
        get("/cookie-without")?.header("set-cookie"),
        Some("session=alice")
    );
    let hit = get("/cookie-without")?;
    assert_eq!(hit.header("x-kea-cache"), Some("HIT"));
    assert_eq!(hit.header("set-cookie"), None);

    // Vary: the same Accept-Encoding written differently is the same variant.
    upstream.script(
        "/v",
        200,
        &[("cache-control", "max-age=60"), ("vary", "accept-encoding")],
        b"v",
    );
    let with = |value: &str| http::send("GET", &envoy.url("/v"), &[("accept-encoding", value)], None);
    with("gzip, br")?;
    assert_eq!(with("BR,gzip")?.header("x-kea-cache"), Some("HIT"));
    assert_eq!(with("gzip")?.header("x-kea-cache"), Some("MISS"));
    Ok(())
}

/// The parts of a `multipart/byteranges` body: each part's headers (lowercase names) and text.
fn multipart_parts(content_type: &str, body: &str) -> Vec<(Vec<(String, String)>, String)> {
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("not multipart: {content_type}"));
    let closing = format!("--{boundary}--\r\n");
    let inner = body
        .strip_suffix(&closing)
        .unwrap_or_else(|| panic!("no closing boundary: {body:?}"));
    inner
        .split(&format!("--{boundary}\r\n"))
        .skip(1)
        .map(|part| {
            let (head, data) = part.split_once("\r\n\r\n").expect("part headers");
            let headers = head
                .split("\r\n")
                .filter_map(|line| line.split_once(": "))
                .map(|(name, value)| (name.to_ascii_lowercase(), value.to_string()))
                .collect();
            (headers, data.strip_suffix("\r\n").expect("part end").to_string())
        })
        .collect()
}

#[test]
fn range_requests_are_answered_from_a_stored_response() -> Result<()> {
    let upstream = Upstream::start()?;
    let envoy = gateway(&upstream, 1, json!({}))?;
    let url = envoy.url("/cacheable/range");
    let get = |headers: &[(&str, &str)]| http::send("GET", &url, headers, None);
    // A miss with Range goes to the origin unchanged (this one ignores Range and sends a 200,
    // which is stored).
    let full = get(&[("range", "bytes=0-9")])?;
    assert_eq!(full.status, 200);
    assert_eq!(full.header("x-kea-cache"), Some("MISS"));
    let body = full.body.clone();
    let length = body.len();
    assert!(length > 100, "{body}");

    let single = get(&[("range", "bytes=0-9")])?;
    assert_eq!(single.status, 206, "{}", single.body);
    assert_eq!(single.body, body[..10]);
    assert_eq!(
        single.header("content-range"),
        Some(format!("bytes 0-9/{length}").as_str())
    );
    assert_eq!(single.header("content-length"), Some("10"));
    assert_eq!(single.header("accept-ranges"), Some("bytes"));
    assert_eq!(single.header("x-kea-cache"), Some("HIT"));
    assert_eq!(single.header("content-type"), Some("application/json"));
    assert_eq!(single.header("etag"), Some("\"v1\""));
    assert!(single.header("age").is_some_and(|age| age.parse::<u64>().is_ok()));

    let suffix = get(&[("range", "bytes=-10")])?;
    assert_eq!(suffix.status, 206);
    assert_eq!(suffix.body, body[length - 10..]);
    assert_eq!(
        suffix.header("content-range"),
        Some(format!("bytes {}-{}/{length}", length - 10, length - 1).as_str())
    );

    let multi = get(&[("range", "bytes=0-4, -5")])?;
    assert_eq!(multi.status, 206);
    assert_eq!(multi.header("content-range"), None);
    assert_eq!(
        multi.header("content-length"),
        Some(multi.body.len().to_string().as_str())
    );
    let parts = multipart_parts(multi.header("content-type").unwrap_or_default(), &multi.body);
    assert_eq!(parts.len(), 2, "{}", multi.body);
    let first_range = "bytes 0-4/".to_string() + &length.to_string();
    let last_range = format!("bytes {}-{}/{length}", length - 5, length - 1);
    assert_eq!(parts[0].1, body[..5]);
    assert_eq!(parts[1].1, body[length - 5..]);
    for ((headers, _), content_range) in parts.iter().zip([first_range, last_range]) {
        assert_eq!(
            headers,
            &[
                ("content-type".to_string(), "application/json".to_string()),
                ("content-range".to_string(), content_range)
            ]
        );
    }

    let unsatisfiable = get(&[("range", "bytes=99999-")])?;
    assert_eq!(unsatisfiable.status, 416);
    assert_eq!(
        unsatisfiable.header("content-range"),
        Some(format!("bytes */{length}").as_str())
    );
    assert_eq!(unsatisfiable.header("x-kea-cache"), Some("HIT"));

    // If-Range: the strong ETag, or the exact Last-Modified (a day before the origin's Date).
    let matched = get(&[("range", "bytes=0-9"), ("if-range", "\"v1\"")])?;
    assert_eq!((matched.status, matched.body.as_str()), (206, &body[..10]));
    assert_eq!(matched.header("content-type"), Some("application/json"));
    let by_date = get(&[
        ("range", "bytes=0-9"),
        ("if-range", "Wed, 25 Nov 2026 06:00:00 GMT"),
    ])?;
    assert_eq!(by_date.status, 206);
    for if_range in ["\"v2\"", "W/\"v1\"", "Wed, 25 Nov 2026 06:00:01 GMT"] {
        let whole = get(&[("range", "bytes=0-9"), ("if-range", if_range)])?;
        assert_eq!(
            (whole.status, whole.body.as_str()),
            (200, body.as_str()),
            "{if_range}"
        );
        assert_eq!(whole.header("x-kea-cache"), Some("HIT"));
    }
    // Invalid ranges are ignored; a HEAD ignores Range (defined for GET only).
    let invalid = get(&[("range", "bytes=9-0")])?;
    assert_eq!((invalid.status, invalid.body.as_str()), (200, body.as_str()));
    let head = http::send("HEAD", &url, &[("range", "bytes=0-9")], None)?;
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!(head.header("content-range"), None);

    assert_eq!(
        upstream.hits(),
        1,
        "every range was answered from the stored response"
    );
    assert_eq!(envoy.stat("wasmcustom.kea_cache_partial_total"), Some(5));
    Ok(())
}

/// Concurrent misses for one key, spread over two workers: one goes to the origin, the others
/// wait for what it stores.
#[test]
fn concurrent_misses_reach_the_origin_once() -> Result<()> {
    let upstream = Upstream::start()?;
    let envoy = gateway(&upstream, 2, json!({"defaults": {"defaultTtl": "60s"}}))?;
    let url = envoy.url("/delay/1000");
    let start = std::sync::Barrier::new(12);
    let answers: Vec<http::Response> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    http::get(&url)
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|handle| handle.join().ok()?.ok())
            .collect()
    });
    assert_eq!(answers.len(), 12);
    assert!(answers
        .iter()
        .all(|a| a.status == 200 && a.body == answers[0].body));
    let misses = answers
        .iter()
        .filter(|a| a.header("x-kea-cache") == Some("MISS"))
        .count();
    assert_eq!(upstream.hits(), 1, "one request reached the origin");
    assert_eq!(misses, 1);
    // Every other request arrived while the origin took its second, was held, and was answered
    // from the stored response.
    assert_eq!(envoy.stat("wasmcustom.kea_cache_collapsed_total"), Some(11));
    assert_eq!(envoy.stat("wasmcustom.kea_cache_hits_total"), Some(11));
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
    assert_both_workers_took_connections(&envoy)?;
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
