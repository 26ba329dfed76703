//! Whole request flows through the cache logic, driven natively by `MockHost`. Each exchange gets
//! its own host (its own request and response), all sharing one proxy's shared data like the
//! workers of one Envoy.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use kea_cache::plugin::configure;
use kea_cache::refresh::{self, Refreshed};
use kea_cache::stream::{CacheStream, RequestAction, ResponseAction, Runtime};
use kea_plugin_sdk::mock::{LocalReply, MockHost, SharedState};
use kea_plugin_sdk::{Buffer, HeaderMap};
use serde_json::json;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

const T0: u64 = 1_795_672_800; // Thu, 26 Nov 2026 06:00:00 GMT

struct Proxy {
    shared: Rc<SharedState>,
    runtime: Rc<Runtime>,
    clock: u64,
    /// The upstream cluster the router picks (`xds.cluster_name`); `None`: not known.
    cluster: Option<&'static str>,
}

/// What one exchange produced.
#[derive(Debug)]
enum Answer {
    /// Served by the cache.
    Local(LocalReply),
    /// Went to the origin; the response's `x-kea-cache` header.
    Origin(Option<String>),
}

impl Proxy {
    fn new(config: serde_json::Value) -> Self {
        let host = MockHost::new();
        let runtime = configure(&host, config.to_string().as_bytes()).unwrap();
        runtime.refresh.listen(&host).unwrap();
        Self {
            shared: host.shared(),
            runtime,
            clock: T0,
            cluster: Some("upstream"),
        }
    }

    /// Another worker of the same proxy: its own runtime, the same shared data.
    fn worker(&self, config: serde_json::Value) -> Rc<Runtime> {
        let host = self.host();
        let runtime = configure(&host, config.to_string().as_bytes()).unwrap();
        runtime.refresh.listen(&host).unwrap();
        runtime
    }

    fn host(&self) -> MockHost {
        let host = MockHost::sharing_with(Rc::clone(&self.shared));
        host.set_now(SystemTime::UNIX_EPOCH + Duration::from_secs(self.clock));
        if let Some(cluster) = self.cluster {
            host.set_property(&["xds", "cluster_name"], cluster.as_bytes());
        }
        host
    }

    /// One exchange; `origin` is what the upstream would answer (status, headers, body).
    fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        origin: (u16, &[(&str, &str)], &[u8]),
    ) -> Answer {
        self.exchange_on(&self.runtime, method, path, headers, origin)
    }

    /// One exchange on a given worker.
    fn exchange_on(
        &self,
        runtime: &Runtime,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        origin: (u16, &[(&str, &str)], &[u8]),
    ) -> Answer {
        let host = self.host().with_request(method, path, headers);
        let mut stream = CacheStream::new();
        if stream.on_request_headers(&host, runtime) == RequestAction::Answered {
            return Answer::Local(host.replies().pop().unwrap());
        }
        let (status, response_headers, body) = origin;
        host.set_response(status, response_headers);
        if stream.on_response_headers(&host, runtime, body.is_empty()) == ResponseAction::Replaced {
            return Answer::Local(host.replies().pop().unwrap());
        }
        if !body.is_empty() {
            host.set_body(Buffer::ResponseBody, body);
            stream.on_response_body(&host, runtime, body.len(), true);
        }
        Answer::Origin(host.header_text(HeaderMap::ResponseHeaders, "x-kea-cache"))
    }

    /// The worker's root context sends its waiting refreshes; the calls it made.
    fn dispatch(&self, runtime: &Runtime) -> (MockHost, Vec<kea_plugin_sdk::mock::RecordedCall>) {
        let root = self.host();
        refresh::dispatch_pending(&root, runtime);
        let calls = root.calls();
        (root, calls)
    }

    /// The origin answers a refresh call on the root context.
    fn answer(
        &self,
        root: &MockHost,
        runtime: &Runtime,
        token: u32,
        origin: Option<Origin<'_>>,
    ) -> Option<Refreshed> {
        root.set_now(SystemTime::UNIX_EPOCH + Duration::from_secs(self.clock));
        let size = match origin {
            Some((status, headers, body)) => {
                root.answer_call(status, headers, body);
                body.len()
            }
            None => 0,
        };
        refresh::on_call_response(root, runtime, token, size)
    }

    fn get(&self, path: &str, origin: Origin<'_>) -> Answer {
        self.exchange("GET", path, &[], origin)
    }

    fn metric(&self, name: &str) -> Option<i64> {
        self.host().metric(name)
    }
}

/// Header pairs.
type Headers<'a> = &'a [(&'a str, &'a str)];
/// What the origin answers: status, headers, body.
type Origin<'a> = (u16, Headers<'a>, &'a [u8]);

const CACHEABLE: Origin<'static> = (
    200,
    &[
        ("cache-control", "max-age=60"),
        ("content-type", "application/json"),
        ("etag", "\"v1\""),
    ],
    b"{\"pet\":1}",
);

fn origin_status(answer: &Answer) -> &str {
    match answer {
        Answer::Origin(Some(status)) => status,
        other => panic!("expected the origin to answer, got {other:?}"),
    }
}

fn local(answer: Answer) -> LocalReply {
    match answer {
        Answer::Local(reply) => reply,
        other => panic!("expected a cache answer, got {other:?}"),
    }
}

#[test]
fn miss_then_hit_with_age_and_the_stored_body() {
    let mut proxy = Proxy::new(json!({}));
    assert_eq!(origin_status(&proxy.get("/pets/1", CACHEABLE)), "MISS");
    proxy.clock += 7;
    let hit = local(proxy.get("/pets/1", CACHEABLE));
    assert_eq!(hit.status, 200);
    assert_eq!(hit.body, b"{\"pet\":1}");
    assert_eq!(hit.header("x-kea-cache"), Some("HIT"));
    assert_eq!(hit.header("age"), Some("7"));
    assert_eq!(hit.header("content-type"), Some("application/json"));
    assert_eq!(proxy.metric("kea_cache_hits_total"), Some(1));
    assert_eq!(proxy.metric("kea_cache_stores_total"), Some(1));
    // HEAD is answered from the GET entry, without the body.
    let head = local(proxy.exchange("HEAD", "/pets/1", &[], CACHEABLE));
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.header("content-type"), Some("application/json"));
    // A HEAD with nothing stored goes to the origin.
    assert_eq!(
        origin_status(&proxy.exchange("HEAD", "/pets/2", &[], CACHEABLE)),
        "MISS"
    );
}

#[test]
fn entries_expire_after_their_lifetime() {
    let mut proxy = Proxy::new(json!({}));
    proxy.get("/p", CACHEABLE);
    proxy.clock += 59;
    assert!(matches!(proxy.get("/p", CACHEABLE), Answer::Local(_)));
    proxy.clock += 1;
    assert_eq!(
        origin_status(&proxy.get("/p", CACHEABLE)),
        "EXPIRED",
        "stale: fetched again"
    );
    let without_validators = (200, &[("cache-control", "max-age=5")][..], &b"x"[..]);
    proxy.get("/q", without_validators);
    proxy.clock += 5;
    assert_eq!(
        origin_status(&proxy.get("/q", without_validators)),
        "MISS",
        "no validators: dropped at expiry"
    );
}

#[test]
fn stale_entries_are_revalidated_and_a_304_refreshes_them() {
    let mut proxy = Proxy::new(json!({}));
    let short = (
        200,
        &[("cache-control", "max-age=1"), ("etag", "\"v1\"")][..],
        &b"{\"pet\":1}"[..],
    );
    proxy.get("/r", short);
    proxy.clock += 3;
    // The origin is asked conditionally and says nothing changed.
    let host = proxy.host().with_request("GET", "/r", &[]);
    let mut stream = CacheStream::new();
    assert_eq!(
        stream.on_request_headers(&host, &proxy.runtime),
        RequestAction::Continue
    );
    assert_eq!(
        host.header_text(HeaderMap::RequestHeaders, "if-none-match")
            .as_deref(),
        Some("\"v1\"")
    );
    host.set_response(304, &[("cache-control", "max-age=60"), ("etag", "\"v1\"")]);
    assert_eq!(
        stream.on_response_headers(&host, &proxy.runtime, true),
        ResponseAction::Replaced
    );
    let reply = host.replies().pop().unwrap();
    assert_eq!(
        reply.status, 200,
        "the client asked unconditionally: it gets the stored body"
    );
    assert_eq!(reply.body, b"{\"pet\":1}");
    assert_eq!(reply.header("x-kea-cache"), Some("EXPIRED"));
    assert_eq!(
        reply.header("cache-control"),
        Some("max-age=60"),
        "headers updated from the 304"
    );
    assert_eq!(proxy.metric("kea_cache_revalidated_total"), Some(1));
    // Refreshed: fresh again for the 304's max-age.
    proxy.clock += 30;
    assert_eq!(local(proxy.get("/r", short)).header("x-kea-cache"), Some("HIT"));
    // A client with its own validators talks to the origin itself.
    proxy.clock += 100;
    let own = proxy.exchange("GET", "/r", &[("if-none-match", "\"v0\"")], (304, &[], b""));
    assert_eq!(origin_status(&own), "EXPIRED");
}

#[test]
fn stale_if_error_serves_the_stale_entry_when_the_origin_fails() {
    let mut proxy = Proxy::new(json!({}));
    let resilient = (
        200,
        &[("cache-control", "max-age=1, stale-if-error=60")][..],
        &b"last good"[..],
    );
    proxy.get("/s", resilient);
    proxy.clock += 10;
    let stale = local(proxy.get("/s", (503, &[], b"down")));
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, b"last good");
    assert_eq!(stale.header("x-kea-cache"), Some("STALE"));
    proxy.clock += 100;
    assert!(
        matches!(proxy.get("/s", (503, &[], b"down")), Answer::Origin(_)),
        "past the stale-if-error window"
    );
    let strict = (
        200,
        &[("cache-control", "max-age=1, stale-if-error=60, must-revalidate")][..],
        &b"x"[..],
    );
    proxy.get("/t", strict);
    proxy.clock += 10;
    assert!(
        matches!(proxy.get("/t", (503, &[], b"down")), Answer::Origin(_)),
        "must-revalidate forbids stale"
    );
}

#[test]
fn conditional_requests_get_304_from_the_cache() {
    let proxy = Proxy::new(json!({}));
    let origin = (
        200,
        &[
            ("cache-control", "max-age=60"),
            ("etag", "\"v1\""),
            ("last-modified", "Wed, 25 Nov 2026 06:00:00 GMT"),
        ][..],
        &b"x"[..],
    );
    proxy.get("/c", origin);
    let not_modified = local(proxy.exchange("GET", "/c", &[("if-none-match", "W/\"v1\"")], origin));
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag"), Some("\"v1\""));
    let changed = local(proxy.exchange("GET", "/c", &[("if-none-match", "\"v0\"")], origin));
    assert_eq!(changed.status, 200);
    let since = local(proxy.exchange(
        "GET",
        "/c",
        &[("if-modified-since", "Thu, 26 Nov 2026 00:00:00 GMT")],
        origin,
    ));
    assert_eq!(since.status, 304);
    assert_eq!(proxy.metric("kea_cache_not_modified_total"), Some(2));
}

#[test]
fn what_must_not_be_stored_is_not() {
    let proxy = Proxy::new(json!({}));
    let cases: [(&str, Headers<'_>, Origin<'_>); 6] = [
        (
            "/no-store",
            &[],
            (200, &[("cache-control", "max-age=60, no-store")], b"x"),
        ),
        (
            "/private",
            &[],
            (200, &[("cache-control", "private, max-age=60")], b"x"),
        ),
        (
            "/vary-star",
            &[],
            (200, &[("cache-control", "max-age=60"), ("vary", "*")], b"x"),
        ),
        (
            "/cookie",
            &[],
            (
                200,
                &[("cache-control", "max-age=60"), ("set-cookie", "s=1")],
                b"x",
            ),
        ),
        (
            "/auth",
            &[("authorization", "Bearer t")],
            (200, &[("cache-control", "max-age=60")], b"x"),
        ),
        ("/error", &[], (500, &[], b"x")),
    ];
    for (path, headers, origin) in cases {
        proxy.exchange("GET", path, headers, origin);
        assert!(
            matches!(proxy.exchange("GET", path, headers, origin), Answer::Origin(_)),
            "{path} was served from the cache"
        );
    }
    assert_eq!(proxy.metric("kea_cache_stores_total"), Some(0));
    // The request can forbid storing too, and can demand a fresh answer.
    proxy.exchange("GET", "/req", &[("cache-control", "no-store")], CACHEABLE);
    assert!(matches!(proxy.get("/req", CACHEABLE), Answer::Origin(_)));
    proxy.get("/req", CACHEABLE);
    assert!(matches!(
        proxy.exchange("GET", "/req", &[("cache-control", "no-cache")], CACHEABLE),
        Answer::Origin(_)
    ));
    assert!(matches!(
        proxy.exchange("GET", "/req", &[("pragma", "no-cache")], CACHEABLE),
        Answer::Origin(_)
    ));
    // Authorised requests are stored when the origin says public.
    let public = (200, &[("cache-control", "public, max-age=60")][..], &b"x"[..]);
    proxy.exchange("GET", "/pub", &[("authorization", "Bearer t")], public);
    assert!(matches!(
        proxy.exchange("GET", "/pub", &[("authorization", "Bearer t")], public),
        Answer::Local(_)
    ));
}

#[test]
fn vary_keeps_one_entry_per_variant() {
    let proxy = Proxy::new(json!({}));
    let german = (
        200,
        &[("cache-control", "max-age=60"), ("vary", "Accept-Language")][..],
        &b"hallo"[..],
    );
    let english = (
        200,
        &[("cache-control", "max-age=60"), ("vary", "Accept-Language")][..],
        &b"hello"[..],
    );
    proxy.exchange("GET", "/v", &[("accept-language", "de")], german);
    proxy.exchange("GET", "/v", &[("accept-language", "en")], english);
    let de = local(proxy.exchange("GET", "/v", &[("accept-language", " de ")], german));
    assert_eq!(de.body, b"hallo");
    let en = local(proxy.exchange("GET", "/v", &[("accept-language", "en")], english));
    assert_eq!(en.body, b"hello", "both variants are kept");
    assert!(
        matches!(proxy.exchange("GET", "/v", &[], german), Answer::Origin(_)),
        "no value is a variant too"
    );
    assert!(matches!(
        proxy.exchange("GET", "/v", &[], german),
        Answer::Local(_)
    ));
    // The origin stops varying: the plain response replaces the index.
    let plain = (200, &[("cache-control", "max-age=60")][..], &b"same"[..]);
    proxy.exchange("GET", "/w", &[("accept-language", "de")], german);
    proxy.exchange("GET", "/w", &[("cache-control", "no-cache")], plain);
    assert_eq!(
        local(proxy.exchange("GET", "/w", &[("accept-language", "de")], plain)).body,
        b"same"
    );
}

#[test]
fn oversized_responses_pass_through_uncached() {
    let proxy = Proxy::new(json!({"store": {"maxEntryBytes": "1KiB"}}));
    let big = vec![b'x'; 2048];
    let origin = (200, &[("cache-control", "max-age=60")][..], big.as_slice());
    proxy.get("/big", origin);
    assert!(matches!(proxy.get("/big", origin), Answer::Origin(_)));
    let declared = (
        200,
        &[("cache-control", "max-age=60"), ("content-length", "999999")][..],
        &b"x"[..],
    );
    proxy.get("/declared", declared);
    assert!(proxy.metric("kea_cache_too_large_total").unwrap() >= 2);
}

#[test]
fn default_ttl_covers_silent_origins_and_rules_can_bypass() {
    let proxy = Proxy::new(json!({
        "defaults": {"defaultTtl": "30s"},
        "rules": [{"match": {"pathPrefix": "/live"}, "settings": {"enabled": false}}]
    }));
    let silent = (200, &[][..], &b"x"[..]);
    proxy.get("/silent", silent);
    assert!(matches!(proxy.get("/silent", silent), Answer::Local(_)));
    assert_eq!(origin_status(&proxy.get("/live", CACHEABLE)), "BYPASS");
    assert_eq!(origin_status(&proxy.get("/live", CACHEABLE)), "BYPASS");
    assert_eq!(
        origin_status(&proxy.exchange("POST", "/silent/x", &[], CACHEABLE)),
        "BYPASS"
    );
}

#[test]
fn per_user_entries_are_separate() {
    let proxy = Proxy::new(json!({"defaults": {"perUser": true}}));
    let private = (200, &[("cache-control", "private, max-age=60")][..], &b"mine"[..]);
    proxy.exchange(
        "GET",
        "/me",
        &[("x-kea-sub", "alice"), ("authorization", "Bearer a")],
        private,
    );
    assert!(matches!(
        proxy.exchange("GET", "/me", &[("x-kea-sub", "alice")], private),
        Answer::Local(_)
    ));
    assert!(matches!(
        proxy.exchange("GET", "/me", &[("x-kea-sub", "bob")], private),
        Answer::Origin(_)
    ));
    assert_eq!(
        origin_status(&proxy.get("/me", private)),
        "BYPASS",
        "no principal, no per-user entry"
    );
}

#[test]
fn successful_unsafe_requests_invalidate() {
    let proxy = Proxy::new(json!({}));
    proxy.get("/pets/1", CACHEABLE);
    proxy.exchange("DELETE", "/pets/1", &[], (500, &[], b""));
    assert!(
        matches!(proxy.get("/pets/1", CACHEABLE), Answer::Local(_)),
        "a failed DELETE changes nothing"
    );
    proxy.exchange("DELETE", "/pets/1", &[], (204, &[], b""));
    assert!(matches!(proxy.get("/pets/1", CACHEABLE), Answer::Origin(_)));
}

#[test]
fn purge_needs_the_token_and_works_by_url_and_prefix() {
    // The configuration holds only the token's SHA-256.
    let digest = {
        use sha2::{Digest, Sha256};
        Sha256::digest(b"purge-secret")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let proxy = Proxy::new(json!({"purge": {"tokenSha256": digest, "prefixes": ["/pets"]}}));
    proxy.get("/pets/1", CACHEABLE);
    proxy.get("/pets/2", CACHEABLE);
    proxy.get("/owners/1", CACHEABLE);

    let denied = local(proxy.exchange("PURGE", "/pets/1", &[("kea-purge-token", "wrong")], CACHEABLE));
    assert_eq!(denied.status, 403);
    assert_eq!(denied.header("content-type"), Some("application/problem+json"));
    assert_eq!(
        local(proxy.exchange("PURGE", "/pets/1", &[], CACHEABLE)).status,
        403
    );
    assert!(matches!(proxy.get("/pets/1", CACHEABLE), Answer::Local(_)));

    let url = local(proxy.exchange(
        "PURGE",
        "/pets/1",
        &[("kea-purge-token", "purge-secret")],
        CACHEABLE,
    ));
    assert_eq!(url.status, 200);
    assert_eq!(url.json()["entries"], 1);
    assert!(matches!(proxy.get("/pets/1", CACHEABLE), Answer::Origin(_)));
    assert!(matches!(proxy.get("/pets/2", CACHEABLE), Answer::Local(_)));

    let prefix = [("kea-purge-token", "purge-secret"), ("kea-purge", "prefix")];
    assert_eq!(
        local(proxy.exchange("PURGE", "/pets", &prefix, CACHEABLE)).status,
        200
    );
    assert!(matches!(proxy.get("/pets/2", CACHEABLE), Answer::Origin(_)));
    assert!(
        matches!(proxy.get("/owners/1", CACHEABLE), Answer::Local(_)),
        "other prefixes keep their entries"
    );
    assert_eq!(
        local(proxy.exchange("PURGE", "/owners", &prefix, CACHEABLE)).status,
        404
    );
    assert_eq!(proxy.metric("kea_cache_purges_total"), Some(2));
}

#[test]
fn invalid_configuration_is_refused() {
    let host = MockHost::new();
    let err = configure(&host, br#"{"store": {"maxEntries": 0}}"#).unwrap_err();
    assert_eq!(err.path, "store.maxEntries");
}

/// A response that may be served stale for 30 s while it is refreshed.
const SWR: Origin<'static> = (
    200,
    &[
        ("cache-control", "max-age=1, stale-while-revalidate=30"),
        ("etag", "\"v1\""),
    ],
    b"{\"n\":1}",
);

#[test]
fn stale_while_revalidate_serves_at_once_and_one_worker_refreshes_in_the_background() {
    let mut proxy = Proxy::new(json!({}));
    let other = proxy.worker(json!({}));
    assert_eq!(origin_status(&proxy.get("/swr", SWR)), "MISS");
    proxy.clock += 5;
    // Two workers find it stale inside its window: both answer at once, from the entry.
    let failing_origin = (599, &[][..], &b"the origin must not be asked"[..]);
    for runtime in [&proxy.runtime, &other] {
        let stale = local(proxy.exchange_on(
            runtime,
            "GET",
            "/swr",
            &[("accept", "application/json")],
            failing_origin,
        ));
        assert_eq!(stale.status, 200);
        assert_eq!(stale.body, b"{\"n\":1}");
        assert_eq!(stale.header("x-kea-cache"), Some("STALE"));
        assert_eq!(stale.header("age"), Some("5"), "its real age");
    }
    // Only the first claimed the refresh.
    assert_eq!(proxy.runtime.refresh.pending(), 1);
    assert_eq!(other.refresh.pending(), 0);
    assert_eq!(proxy.metric("kea_cache_stale_while_revalidate_total"), Some(2));
    assert_eq!(proxy.metric("kea_cache_hits_total"), Some(0));
    // The worker's root context sends it: a conditional GET to the entry's cluster.
    let (root, calls) = proxy.dispatch(&proxy.runtime);
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.cluster, "upstream");
    assert_eq!(call.header(":method"), Some("GET"));
    assert_eq!(call.header(":path"), Some("/swr"));
    assert_eq!(call.header(":authority"), Some("api.example.com"));
    assert_eq!(call.header("if-none-match"), Some("\"v1\""));
    assert_eq!(call.header("accept"), Some("application/json"));
    assert_eq!(proxy.runtime.refresh.pending(), 0);
    assert_eq!(proxy.runtime.refresh.in_flight(), 1);
    // While it is under way, stale requests do not start another.
    let _ = proxy.exchange_on(&other, "GET", "/swr", &[], failing_origin);
    assert_eq!(other.refresh.pending() + proxy.runtime.refresh.pending(), 0);
    // 304: the entry is fresh again, with the 304's fields and a new age.
    proxy.clock += 1;
    let refreshed = proxy.answer(
        &root,
        &proxy.runtime,
        call.token,
        Some((
            304,
            &[
                ("cache-control", "max-age=60, stale-while-revalidate=30"),
                ("etag", "\"v1\""),
            ],
            b"",
        )),
    );
    assert_eq!(refreshed, Some(Refreshed::Freshened));
    assert_eq!(proxy.runtime.refresh.in_flight(), 0);
    assert_eq!(proxy.metric("kea_cache_background_refresh_total"), Some(1));
    proxy.clock += 2;
    let hit = local(proxy.exchange_on(&other, "GET", "/swr", &[], failing_origin));
    assert_eq!(hit.header("x-kea-cache"), Some("HIT"));
    // 2 s resident, plus the second the refresh took (RFC 9111 4.2.3 `response_delay`).
    assert_eq!(hit.header("age"), Some("3"));
    assert_eq!(
        hit.header("cache-control"),
        Some("max-age=60, stale-while-revalidate=30")
    );
    assert_eq!(hit.body, b"{\"n\":1}");
    // The claim was released: the next time it goes stale, it is refreshed again.
    proxy.clock += 61;
    let stale = local(proxy.exchange_on(&other, "GET", "/swr", &[], failing_origin));
    assert_eq!(stale.header("x-kea-cache"), Some("STALE"));
    assert_eq!(other.refresh.pending(), 1);
}

#[test]
fn a_refresh_with_a_new_response_replaces_the_variant() {
    let mut proxy = Proxy::new(json!({}));
    let varying = (
        200,
        &[
            ("cache-control", "max-age=1, stale-while-revalidate=30"),
            ("etag", "\"v1\""),
            ("vary", "accept-language"),
        ][..],
        &b"bonjour 1"[..],
    );
    proxy.exchange("GET", "/hello", &[("accept-language", "fr")], varying);
    proxy.clock += 3;
    let stale = local(proxy.exchange("GET", "/hello", &[("accept-language", "fr")], varying));
    assert_eq!(stale.header("x-kea-cache"), Some("STALE"));
    let (root, calls) = proxy.dispatch(&proxy.runtime);
    assert_eq!(
        calls[0].header("accept-language"),
        Some("fr"),
        "the same variant is asked for"
    );
    let new = (
        200,
        &[
            ("cache-control", "max-age=60"),
            ("etag", "\"v2\""),
            ("vary", "accept-language"),
            ("content-type", "text/plain"),
        ][..],
        &b"bonjour 2"[..],
    );
    assert_eq!(
        proxy.answer(&root, &proxy.runtime, calls[0].token, Some(new)),
        Some(Refreshed::Replaced)
    );
    let hit = local(proxy.exchange("GET", "/hello", &[("accept-language", "fr")], varying));
    assert_eq!(hit.header("x-kea-cache"), Some("HIT"));
    assert_eq!(hit.body, b"bonjour 2");
    assert_eq!(hit.header("etag"), Some("\"v2\""));
    assert_eq!(hit.header("age"), Some("0"));
    assert!(
        matches!(
            proxy.exchange("GET", "/hello", &[("accept-language", "de")], varying),
            Answer::Origin(_)
        ),
        "other variants are not touched"
    );
    assert_eq!(proxy.metric("kea_cache_background_refresh_total"), Some(1));
}

#[test]
fn a_refresh_the_origin_no_longer_lets_us_store_removes_the_entry() {
    let mut proxy = Proxy::new(json!({}));
    proxy.get("/gone", SWR);
    proxy.clock += 3;
    assert_eq!(
        local(proxy.get("/gone", SWR)).header("x-kea-cache"),
        Some("STALE")
    );
    let (root, calls) = proxy.dispatch(&proxy.runtime);
    let no_store = (200, &[("cache-control", "no-store")][..], &b"{\"n\":2}"[..]);
    assert_eq!(
        proxy.answer(&root, &proxy.runtime, calls[0].token, Some(no_store)),
        Some(Refreshed::Removed)
    );
    assert_eq!(origin_status(&proxy.get("/gone", SWR)), "MISS");
    assert_eq!(proxy.metric("kea_cache_background_refresh_total"), Some(0));
}

#[test]
fn a_failed_refresh_leaves_the_entry_and_releases_the_claim() {
    let mut proxy = Proxy::new(json!({}));
    proxy.get("/flaky", SWR);
    proxy.clock += 3;
    let stale = |proxy: &Proxy| {
        local(proxy.get("/flaky", SWR))
            .header("x-kea-cache")
            .map(str::to_string)
    };
    // The origin fails: the entry stays, and the next stale request tries again.
    assert_eq!(stale(&proxy).as_deref(), Some("STALE"));
    let (root, calls) = proxy.dispatch(&proxy.runtime);
    assert_eq!(
        proxy.answer(&root, &proxy.runtime, calls[0].token, Some((503, &[], b"down"))),
        Some(Refreshed::Kept)
    );
    assert_eq!(stale(&proxy).as_deref(), Some("STALE"));
    // No response at all (reset, timeout): the same.
    let (root, calls) = proxy.dispatch(&proxy.runtime);
    assert_eq!(calls.len(), 1);
    assert_eq!(
        proxy.answer(&root, &proxy.runtime, calls[0].token, None),
        Some(Refreshed::Kept)
    );
    assert_eq!(stale(&proxy).as_deref(), Some("STALE"));
    // The call cannot even be sent: the claim is released at once.
    let root = proxy.host();
    root.fail_cluster("upstream");
    refresh::dispatch_pending(&root, &proxy.runtime);
    assert_eq!(proxy.runtime.refresh.in_flight(), 0);
    assert_eq!(stale(&proxy).as_deref(), Some("STALE"));
    assert_eq!(proxy.runtime.refresh.pending(), 1);
    // Answers to calls that are not refreshes are not ours.
    assert_eq!(refresh::on_call_response(&root, &proxy.runtime, 999, 0), None);
    assert_eq!(proxy.metric("kea_cache_background_refresh_total"), Some(0));
}

#[test]
fn outside_the_window_or_when_stale_use_is_forbidden_revalidation_happens_in_the_request() {
    let mut proxy = Proxy::new(json!({}));
    let with = |cc: &'static str| -> Origin<'static> {
        let headers: &'static [(&'static str, &'static str)] =
            Box::leak(vec![("cache-control", cc), ("etag", "\"v1\"")].into_boxed_slice());
        (200, headers, b"x")
    };
    let cases: [(&str, Origin<'_>, Headers<'_>); 8] = [
        ("/past-window", with("max-age=1, stale-while-revalidate=2"), &[]),
        (
            "/must",
            with("max-age=1, stale-while-revalidate=30, must-revalidate"),
            &[],
        ),
        (
            "/proxy",
            with("max-age=1, stale-while-revalidate=30, proxy-revalidate"),
            &[],
        ),
        ("/shared", with("s-maxage=1, stale-while-revalidate=30"), &[]),
        ("/no-cache-request", SWR, &[("cache-control", "no-cache")]),
        ("/max-age-request", SWR, &[("cache-control", "max-age=2")]),
        ("/min-fresh-request", SWR, &[("cache-control", "min-fresh=1")]),
        (
            "/no-cache-response",
            with("no-cache, max-age=1, stale-while-revalidate=30"),
            &[],
        ),
    ];
    for (path, origin, _) in &cases {
        proxy.get(path, *origin);
    }
    proxy.clock += 5;
    for (path, _, request) in &cases {
        let host = proxy.host().with_request("GET", path, request);
        let mut stream = CacheStream::new();
        assert_eq!(
            stream.on_request_headers(&host, &proxy.runtime),
            RequestAction::Continue,
            "{path} was answered from the cache"
        );
        assert_eq!(
            host.header_text(HeaderMap::RequestHeaders, "if-none-match")
                .as_deref(),
            Some("\"v1\""),
            "{path}: revalidated with the origin before answering"
        );
    }
    // An entry whose upstream cluster is unknown cannot be refreshed in the background.
    proxy.cluster = None;
    proxy.get("/unknown-cluster", SWR);
    proxy.clock += 5;
    assert_eq!(origin_status(&proxy.get("/unknown-cluster", SWR)), "EXPIRED");
    assert_eq!(proxy.runtime.refresh.pending(), 0);
    assert_eq!(proxy.metric("kea_cache_stale_while_revalidate_total"), Some(0));
}
