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
use kea_cache::stream::{CacheStream, RequestAction, ResponseAction, Runtime, Wake};
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

/// The request and response headers of one exchange that went to the origin (the response as
/// it leaves the plugin).
fn through_origin(
    proxy: &Proxy,
    path: &str,
    headers: Headers<'_>,
    origin: Origin<'_>,
) -> (MockHost, CacheStream) {
    let host = proxy.host().with_request("GET", path, headers);
    let mut stream = CacheStream::new();
    assert_eq!(
        stream.on_request_headers(&host, &proxy.runtime),
        RequestAction::Continue
    );
    host.set_response(origin.0, origin.1);
    stream.on_response_headers(&host, &proxy.runtime, false);
    host.set_body(Buffer::ResponseBody, origin.2);
    stream.on_response_body(&host, &proxy.runtime, origin.2.len(), true);
    (host, stream)
}

#[test]
fn the_origins_age_counts_against_freshness() {
    let mut proxy = Proxy::new(json!({}));
    // max-age=3600 but already 7200 s old: stale on arrival, never a fresh hit.
    let old = (
        200,
        &[("cache-control", "max-age=3600"), ("age", "7200")][..],
        &b"old"[..],
    );
    assert_eq!(origin_status(&proxy.get("/old", old)), "MISS");
    assert!(matches!(proxy.get("/old", old), Answer::Origin(_)));
    // With a validator it is kept, but only for revalidation.
    let validated = (
        200,
        &[
            ("cache-control", "max-age=3600"),
            ("age", "7200"),
            ("etag", "\"e\""),
        ][..],
        &b"old"[..],
    );
    proxy.get("/old-etag", validated);
    assert_eq!(origin_status(&proxy.get("/old-etag", validated)), "EXPIRED");
    // Age 100 on arrival, 5 s in the cache: the hit says 105, and it expires 100 s early.
    let aged = (
        200,
        &[("cache-control", "max-age=3600"), ("age", "100")][..],
        &b"a"[..],
    );
    proxy.get("/aged", aged);
    proxy.clock += 5;
    assert_eq!(local(proxy.get("/aged", aged)).header("age"), Some("105"));
    proxy.clock += 3600 - 105;
    assert!(matches!(proxy.get("/aged", aged), Answer::Origin(_)));
    // An invalid Age is ignored (RFC 9111 5.1); of a list, the first member counts.
    for (path, age, expected) in [
        ("/bad", "1.5", "2"),
        ("/neg", "-30", "2"),
        ("/list", "30, 999", "32"),
    ] {
        let response = (
            200,
            &[("cache-control", "max-age=600"), ("age", age)][..],
            &b"x"[..],
        );
        proxy.get(path, response);
        proxy.clock += 2;
        assert_eq!(
            local(proxy.get(path, response)).header("age"),
            Some(expected),
            "Age: {age}"
        );
        proxy.clock -= 2;
    }
}

#[test]
fn unsafe_methods_invalidate_their_target_location_and_content_location() {
    let proxy = Proxy::new(json!({}));
    for path in ["/a", "/b", "/c", "/d", "/e"] {
        proxy.get(path, CACHEABLE);
    }
    let created = (
        201,
        &[
            ("location", "/a"),
            ("content-location", "http://API.example.com:80/b?"),
        ][..],
        &b""[..],
    );
    proxy.exchange("POST", "/collection", &[], created);
    assert!(
        matches!(proxy.get("/a", CACHEABLE), Answer::Origin(_)),
        "Location"
    );
    assert!(matches!(proxy.get("/c", CACHEABLE), Answer::Local(_)));
    // Another origin's URI is never invalidated.
    let elsewhere = (200, &[("location", "http://other.example.com/c")][..], &b""[..]);
    proxy.exchange("PUT", "/x", &[], elsewhere);
    assert!(matches!(proxy.get("/c", CACHEABLE), Answer::Local(_)));
    // Methods the cache does not know are unsafe too.
    proxy.exchange("FROBNICATE", "/d", &[], (200, &[], b""));
    assert!(matches!(proxy.get("/d", CACHEABLE), Answer::Origin(_)));
    // Safe methods invalidate nothing.
    proxy.exchange("OPTIONS", "/e", &[], (200, &[], b""));
    assert!(matches!(proxy.get("/e", CACHEABLE), Answer::Local(_)));
}

#[test]
fn must_understand_stores_known_statuses_despite_no_store() {
    let proxy = Proxy::new(json!({}));
    let understood = (
        200,
        &[("cache-control", "max-age=60, no-store, must-understand")][..],
        &b"ok"[..],
    );
    proxy.get("/known", understood);
    assert!(matches!(proxy.get("/known", understood), Answer::Local(_)));
    let unknown = (
        299,
        &[("cache-control", "max-age=60, must-understand")][..],
        &b"?"[..],
    );
    proxy.get("/unknown", unknown);
    assert!(matches!(proxy.get("/unknown", unknown), Answer::Origin(_)));
    let plain_no_store = (200, &[("cache-control", "max-age=60, no-store")][..], &b"ok"[..]);
    proxy.get("/no-store", plain_no_store);
    assert!(matches!(
        proxy.get("/no-store", plain_no_store),
        Answer::Origin(_)
    ));
}

#[test]
fn a_304_freshens_only_the_representation_it_names_and_not_its_encoding() {
    let mut proxy = Proxy::new(json!({}));
    let stored = (
        200,
        &[
            ("cache-control", "max-age=10"),
            ("etag", "\"v1\""),
            ("content-type", "text/plain"),
            ("content-encoding", "gzip"),
            ("x-version", "1"),
        ][..],
        &b"gz"[..],
    );
    proxy.get("/r", stored);
    proxy.clock += 11;
    let not_modified = (
        304,
        &[
            ("cache-control", "max-age=100"),
            ("etag", "\"v1\""),
            ("content-type", "text/html"),
            ("content-encoding", "identity"),
            ("x-version", "2"),
        ][..],
        &b""[..],
    );
    let reply = local(proxy.get("/r", not_modified));
    assert_eq!((reply.status, &reply.body[..]), (200, &b"gz"[..]));
    assert_eq!(reply.header("x-version"), Some("2"));
    assert_eq!(reply.header("cache-control"), Some("max-age=100"));
    assert_eq!(reply.header("content-type"), Some("text/plain"));
    assert_eq!(reply.header("content-encoding"), Some("gzip"));
    assert_eq!(reply.header("age"), Some("0"));
    proxy.clock += 50;
    assert_eq!(
        local(proxy.get("/r", CACHEABLE)).header("x-kea-cache"),
        Some("HIT")
    );
    // A 304 about another representation: not applied, not served, the entry dropped.
    proxy.clock += 100;
    let other = (304, &[("etag", "\"v2\""), ("x-version", "3")][..], &b""[..]);
    let refused = local(proxy.get("/r", other));
    assert_eq!(refused.status, 502);
    assert_eq!(refused.header("content-type"), Some("application/problem+json"));
    assert_eq!(origin_status(&proxy.get("/r", stored)), "MISS");
}

#[test]
fn set_cookie_follows_the_rule_and_the_origins_qualified_directives() {
    let cookie = (
        200,
        &[("cache-control", "max-age=60"), ("set-cookie", "session=alice")][..],
        &b"page"[..],
    );
    // Default: not stored.
    let proxy = Proxy::new(json!({}));
    proxy.get("/p", cookie);
    assert!(matches!(proxy.get("/p", cookie), Answer::Origin(_)));
    // storeWithout: the hit has no cookie; the first client got its own from the origin.
    let proxy = Proxy::new(json!({"defaults": {"setCookie": "storeWithout"}}));
    let (first, _) = through_origin(&proxy, "/p", &[], cookie);
    assert_eq!(
        first
            .header_text(HeaderMap::ResponseHeaders, "set-cookie")
            .as_deref(),
        Some("session=alice")
    );
    let hit = local(proxy.get("/p", cookie));
    assert_eq!(hit.header("set-cookie"), None);
    assert_eq!(hit.body, b"page");
    // replay: an explicit choice for cookies meant for everyone.
    let proxy = Proxy::new(json!({"defaults": {"setCookie": "replay"}}));
    proxy.get("/p", cookie);
    assert_eq!(
        local(proxy.get("/p", cookie)).header("set-cookie"),
        Some("session=alice")
    );
    // The origin's no-cache="set-cookie" lets even the default store the rest.
    let proxy = Proxy::new(json!({}));
    let qualified = (
        200,
        &[
            ("cache-control", "max-age=60, no-cache=\"Set-Cookie\""),
            ("set-cookie", "session=alice"),
        ][..],
        &b"page"[..],
    );
    proxy.get("/q", qualified);
    let hit = local(proxy.get("/q", qualified));
    assert_eq!(hit.header("set-cookie"), None);
}

#[test]
fn surrogate_control_governs_this_cache_and_stays_in_the_gateway() {
    let proxy = Proxy::new(json!({}));
    let surrogate = (
        200,
        &[
            ("cache-control", "private, max-age=0"),
            ("surrogate-control", "max-age=60, no-store;other-cdn"),
        ][..],
        &b"s"[..],
    );
    let (first, _) = through_origin(&proxy, "/s", &[], surrogate);
    assert_eq!(
        first
            .header_text(HeaderMap::RequestHeaders, "surrogate-capability")
            .as_deref(),
        Some("kea=\"Surrogate/1.0\"")
    );
    assert_eq!(
        first.header_text(HeaderMap::ResponseHeaders, "surrogate-control"),
        None
    );
    let hit = local(proxy.get("/s", surrogate));
    assert_eq!(
        hit.header("cache-control"),
        Some("private, max-age=0"),
        "for the caches downstream"
    );
    assert_eq!(hit.header("surrogate-control"), None);
    // Targeted at this cache: no-store wins over a public Cache-Control.
    let refused = (
        200,
        &[
            ("cache-control", "public, max-age=60"),
            ("surrogate-control", "max-age=60, no-store;kea"),
        ][..],
        &b"n"[..],
    );
    proxy.get("/n", refused);
    assert!(matches!(proxy.get("/n", refused), Answer::Origin(_)));
    // Not honoured when disabled: left for a surrogate further out.
    let proxy = Proxy::new(json!({"surrogate": {"enabled": false}}));
    let (first, _) = through_origin(&proxy, "/s", &[], surrogate);
    assert!(first
        .header_text(HeaderMap::ResponseHeaders, "surrogate-control")
        .is_some());
    assert!(matches!(proxy.get("/s", surrogate), Answer::Origin(_)), "private");
}

#[test]
fn only_if_cached_and_max_stale() {
    let mut proxy = Proxy::new(json!({}));
    let missing = local(proxy.exchange("GET", "/none", &[("cache-control", "only-if-cached")], CACHEABLE));
    assert_eq!(missing.status, 504);
    // Entries with validators are held past their freshness, so a client may accept them stale.
    let short = (
        200,
        &[("cache-control", "max-age=10"), ("etag", "\"s\"")][..],
        &b"s"[..],
    );
    proxy.get("/s", short);
    proxy.clock += 15;
    let stale_ok = local(proxy.exchange("GET", "/s", &[("cache-control", "max-stale=10")], short));
    assert_eq!((stale_ok.status, stale_ok.header("age")), (200, Some("15")));
    assert!(matches!(
        proxy.exchange("GET", "/s", &[("cache-control", "max-stale=2")], short),
        Answer::Origin(_)
    ));
    // The origin's must-revalidate (or s-maxage) forbids it.
    let strict = (
        200,
        &[
            ("cache-control", "max-age=10, must-revalidate"),
            ("etag", "\"m\""),
        ][..],
        &b"m"[..],
    );
    proxy.get("/m", strict);
    proxy.clock += 15;
    assert!(matches!(
        proxy.exchange("GET", "/m", &[("cache-control", "max-stale")], strict),
        Answer::Origin(_)
    ));
}

#[test]
fn vary_compares_normalised_values() {
    let proxy = Proxy::new(json!({}));
    let varying = (
        200,
        &[("cache-control", "max-age=60"), ("vary", "Accept-Encoding")][..],
        &b"gz"[..],
    );
    proxy.exchange("GET", "/v", &[("accept-encoding", "gzip, br")], varying);
    for same in ["br,gzip", "GZIP,  br"] {
        assert!(
            matches!(
                proxy.exchange("GET", "/v", &[("accept-encoding", same)], varying),
                Answer::Local(_)
            ),
            "{same}"
        );
    }
    // Two field lines are one list.
    assert!(matches!(
        proxy.exchange(
            "GET",
            "/v",
            &[("accept-encoding", "br"), ("accept-encoding", "gzip")],
            varying
        ),
        Answer::Local(_)
    ));
    assert!(matches!(
        proxy.exchange("GET", "/v", &[("accept-encoding", "gzip")], varying),
        Answer::Origin(_)
    ));
}

#[test]
fn concurrent_misses_wait_for_the_one_that_goes_to_the_origin() {
    let proxy = Proxy::new(json!({}));
    let leader_host = proxy.host().with_request("GET", "/slow", &[]);
    let mut leader = CacheStream::new();
    assert_eq!(
        leader.on_request_headers(&leader_host, &proxy.runtime),
        RequestAction::Continue
    );
    // Two more misses for the key, as from other workers: held.
    let held: Vec<(MockHost, CacheStream)> = (0..2)
        .map(|_| {
            let host = proxy.host().with_request("GET", "/slow", &[]);
            let mut stream = CacheStream::new();
            assert_eq!(
                stream.on_request_headers(&host, &proxy.runtime),
                RequestAction::Wait
            );
            (host, stream)
        })
        .collect();
    // Another key is not held.
    let other = proxy.host().with_request("GET", "/other", &[]);
    assert_eq!(
        CacheStream::new().on_request_headers(&other, &proxy.runtime),
        RequestAction::Continue
    );
    let mut held = held;
    for (host, stream) in &mut held {
        assert_eq!(stream.resume_waiting(host, &proxy.runtime), Wake::Wait);
    }
    leader_host.set_response(200, CACHEABLE.1);
    leader.on_response_headers(&leader_host, &proxy.runtime, false);
    leader_host.set_body(Buffer::ResponseBody, CACHEABLE.2);
    leader.on_response_body(&leader_host, &proxy.runtime, CACHEABLE.2.len(), true);
    for (host, stream) in &mut held {
        assert_eq!(stream.resume_waiting(host, &proxy.runtime), Wake::Served);
        let reply = host.replies().pop().unwrap();
        assert_eq!((reply.status, &reply.body[..]), (200, CACHEABLE.2));
        assert_eq!(reply.header("x-kea-cache"), Some("HIT"));
    }
    assert_eq!(proxy.metric("kea_cache_collapsed_total"), Some(2));

    // When the leader's response is not storable, the held requests go to the origin.
    let leader_host = proxy.host().with_request("GET", "/private", &[]);
    let mut leader = CacheStream::new();
    leader.on_request_headers(&leader_host, &proxy.runtime);
    let host = proxy.host().with_request("GET", "/private", &[]);
    let mut follower = CacheStream::new();
    assert_eq!(
        follower.on_request_headers(&host, &proxy.runtime),
        RequestAction::Wait
    );
    leader_host.set_response(200, &[("cache-control", "private")]);
    leader.on_response_headers(&leader_host, &proxy.runtime, true);
    assert_eq!(follower.resume_waiting(&host, &proxy.runtime), Wake::Proceed);
    // The key is then passed: new misses go to the origin side by side instead of queueing
    // behind responses that will not be stored either.
    let host = proxy.host().with_request("GET", "/private", &[]);
    assert_eq!(
        CacheStream::new().on_request_headers(&host, &proxy.runtime),
        RequestAction::Continue
    );
    let host = proxy.host().with_request("GET", "/private", &[]);
    assert_eq!(
        CacheStream::new().on_request_headers(&host, &proxy.runtime),
        RequestAction::Continue
    );

    // A leader whose exchange ends early (client gone) releases its lead in the log phase.
    let leader_host = proxy.host().with_request("GET", "/gone", &[]);
    let mut leader = CacheStream::new();
    leader.on_request_headers(&leader_host, &proxy.runtime);
    let host = proxy.host().with_request("GET", "/gone", &[]);
    let mut follower = CacheStream::new();
    assert_eq!(
        follower.on_request_headers(&host, &proxy.runtime),
        RequestAction::Wait
    );
    leader.on_done(&leader_host);
    assert_eq!(follower.resume_waiting(&host, &proxy.runtime), Wake::Proceed);
    // A request that demands the origin's answer never waits.
    let leader_host = proxy.host().with_request("GET", "/fresh", &[]);
    CacheStream::new().on_request_headers(&leader_host, &proxy.runtime);
    let host = proxy
        .host()
        .with_request("GET", "/fresh", &[("cache-control", "no-cache")]);
    assert_eq!(
        CacheStream::new().on_request_headers(&host, &proxy.runtime),
        RequestAction::Continue
    );
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

/// A stored complete 200 with both validators (its `Date` a day after `Last-Modified`, so the
/// date is strong) and a 26-byte body.
const ALPHABET: Origin<'static> = (
    200,
    &[
        ("cache-control", "max-age=60"),
        ("content-type", "text/plain"),
        ("etag", "\"abc\""),
        ("last-modified", "Wed, 25 Nov 2026 06:00:00 GMT"),
        ("date", "Thu, 26 Nov 2026 06:00:00 GMT"),
    ],
    b"abcdefghijklmnopqrstuvwxyz",
);

/// A `multipart/byteranges` part: its headers (lowercase names) and bytes.
type Part = (Vec<(String, String)>, Vec<u8>);

/// The parts of a `multipart/byteranges` body.
fn multipart_parts(content_type: &str, body: &[u8]) -> Vec<Part> {
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("not multipart: {content_type}"));
    let text = String::from_utf8(body.to_vec()).unwrap();
    let closing = format!("--{boundary}--\r\n");
    assert!(text.ends_with(&closing), "{text:?}");
    let inner = text.strip_suffix(&closing).unwrap();
    inner
        .split(&format!("--{boundary}\r\n"))
        .skip(1)
        .map(|part| {
            let (head, data) = part.split_once("\r\n\r\n").unwrap();
            let headers = head
                .split("\r\n")
                .map(|line| {
                    let (name, value) = line.split_once(": ").unwrap();
                    (name.to_ascii_lowercase(), value.to_string())
                })
                .collect();
            (headers, data.strip_suffix("\r\n").unwrap().as_bytes().to_vec())
        })
        .collect()
}

#[test]
fn range_requests_are_answered_from_a_stored_complete_response() {
    let mut proxy = Proxy::new(json!({}));
    let range = |proxy: &Proxy, headers: &[(&str, &str)]| proxy.exchange("GET", "/abc", headers, ALPHABET);
    // A Range request that misses goes to the origin unchanged; its 206 is not stored.
    let partial_origin: Origin<'_> = (
        206,
        &[("cache-control", "max-age=60"), ("content-range", "bytes 0-1/26")],
        b"ab",
    );
    assert_eq!(
        origin_status(&proxy.exchange("GET", "/abc", &[("range", "bytes=0-1")], partial_origin)),
        "MISS"
    );
    assert_eq!(origin_status(&proxy.get("/abc", ALPHABET)), "MISS");
    proxy.clock += 3;

    let single = local(range(&proxy, &[("range", "bytes=0-3")]));
    assert_eq!(single.status, 206);
    assert_eq!(single.body, b"abcd");
    assert_eq!(single.header("content-range"), Some("bytes 0-3/26"));
    assert_eq!(single.header("accept-ranges"), Some("bytes"));
    assert_eq!(single.header("age"), Some("3"));
    assert_eq!(single.header("x-kea-cache"), Some("HIT"));
    assert_eq!(single.header("content-type"), Some("text/plain"));
    assert_eq!(single.header("etag"), Some("\"abc\""));
    assert_eq!(single.header("cache-control"), Some("max-age=60"));
    assert_eq!(single.header("content-length"), None, "Envoy computes it");

    let suffix = local(range(&proxy, &[("range", "bytes=-4")]));
    assert_eq!((suffix.status, suffix.body.as_slice()), (206, &b"wxyz"[..]));
    assert_eq!(suffix.header("content-range"), Some("bytes 22-25/26"));
    let open = local(range(&proxy, &[("range", "bytes=24-")]));
    assert_eq!((open.status, open.body.as_slice()), (206, &b"yz"[..]));
    let clamped = local(range(&proxy, &[("range", "bytes=20-1000")]));
    assert_eq!(clamped.header("content-range"), Some("bytes 20-25/26"));
    // Overlapping ranges are coalesced into one part.
    let coalesced = local(range(&proxy, &[("range", "bytes=0-5,3-8")]));
    assert_eq!(
        (coalesced.status, coalesced.body.as_slice()),
        (206, &b"abcdefghi"[..])
    );
    assert_eq!(coalesced.header("content-range"), Some("bytes 0-8/26"));

    let multi = local(range(&proxy, &[("range", "bytes=0-0,-1,10-12")]));
    assert_eq!(multi.status, 206);
    assert_eq!(multi.header("content-range"), None);
    assert_eq!(multi.header("accept-ranges"), Some("bytes"));
    assert_eq!(multi.header("etag"), Some("\"abc\""));
    let content_type: Vec<&str> = multi
        .headers
        .iter()
        .filter(|(n, _)| n == "content-type")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(content_type.len(), 1, "the stored Content-Type is replaced");
    let parts = multipart_parts(content_type[0], &multi.body);
    let expected: [(&str, &[u8]); 3] = [
        ("bytes 0-0/26", b"a"),
        ("bytes 25-25/26", b"z"),
        ("bytes 10-12/26", b"klm"),
    ];
    assert_eq!(parts.len(), 3);
    for ((headers, data), (content_range, bytes)) in parts.iter().zip(expected) {
        assert_eq!(
            headers,
            &[
                ("content-type".to_string(), "text/plain".to_string()),
                ("content-range".to_string(), content_range.to_string())
            ]
        );
        assert_eq!(data.as_slice(), bytes);
    }

    let unsatisfiable = local(range(&proxy, &[("range", "bytes=26-,-0")]));
    assert_eq!(unsatisfiable.status, 416);
    assert_eq!(unsatisfiable.header("content-range"), Some("bytes */26"));
    assert_eq!(unsatisfiable.header("x-kea-cache"), Some("HIT"));
    assert_eq!(unsatisfiable.json()["status"], 416);

    // Ignored: invalid syntax, other units, too many ranges, several Range lines.
    let many = format!("bytes={}", ["0-0"; 17].join(","));
    for headers in [
        vec![("range", "bytes=5-1")],
        vec![("range", "items=0-1")],
        vec![("range", "bytes=0-1;2")],
        vec![("range", many.as_str())],
        vec![("range", "bytes=0-1"), ("range", "bytes=3-4")],
    ] {
        let whole = local(range(&proxy, &headers));
        assert_eq!(
            (whole.status, whole.body.as_slice()),
            (200, ALPHABET.2),
            "{headers:?}"
        );
        assert_eq!(whole.header("content-range"), None);
    }

    // If-Range: a strong ETag or the exact (strong) Last-Modified date; anything else is a 200.
    let matched = local(range(&proxy, &[("range", "bytes=1-2"), ("if-range", "\"abc\"")]));
    assert_eq!((matched.status, matched.body.as_slice()), (206, &b"bc"[..]));
    assert_eq!(matched.header("content-range"), Some("bytes 1-2/26"));
    assert_eq!(matched.header("etag"), Some("\"abc\""));
    assert_eq!(matched.header("content-type"), Some("text/plain"));
    let by_date = local(range(
        &proxy,
        &[
            ("range", "bytes=1-2"),
            ("if-range", "Wed, 25 Nov 2026 06:00:00 GMT"),
        ],
    ));
    assert_eq!((by_date.status, by_date.body.as_slice()), (206, &b"bc"[..]));
    for if_range in [
        "\"other\"",
        "W/\"abc\"",
        "Wed, 25 Nov 2026 06:00:01 GMT",
        "Tue, 24 Nov 2026 06:00:00 GMT",
    ] {
        let whole = local(range(&proxy, &[("range", "bytes=1-2"), ("if-range", if_range)]));
        assert_eq!(
            (whole.status, whole.body.as_slice()),
            (200, ALPHABET.2),
            "{if_range}"
        );
    }
    // If-Range without Range is ignored.
    let plain = local(range(&proxy, &[("if-range", "\"abc\"")]));
    assert_eq!(plain.status, 200);

    // Conditionals first: a matching If-None-Match is a 304 whatever the Range.
    let not_modified = local(range(
        &proxy,
        &[("range", "bytes=0-1"), ("if-none-match", "\"abc\"")],
    ));
    assert_eq!((not_modified.status, not_modified.body.len()), (304, 0));
    // Range is defined for GET only: a HEAD gets the whole 200's headers.
    let head = local(proxy.exchange("HEAD", "/abc", &[("range", "bytes=0-1")], ALPHABET));
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.header("content-range"), None);

    assert_eq!(proxy.metric("kea_cache_partial_total"), Some(8));
    assert_eq!(
        proxy.metric("kea_cache_stores_total"),
        Some(1),
        "the origin's 206 was not stored"
    );
}

#[test]
fn ranges_of_empty_or_non_200_stored_responses() {
    let proxy = Proxy::new(json!({}));
    let empty: Origin<'_> = (200, &[("cache-control", "max-age=60")], b"");
    proxy.exchange("GET", "/empty", &[], empty);
    let unsatisfiable = local(proxy.exchange("GET", "/empty", &[("range", "bytes=0-")], empty));
    assert_eq!(unsatisfiable.status, 416);
    assert_eq!(unsatisfiable.header("content-range"), Some("bytes */0"));
    // A non-zero suffix is satisfiable yet selects nothing: the whole (empty) 200.
    let whole = local(proxy.exchange("GET", "/empty", &[("range", "bytes=-5")], empty));
    assert_eq!((whole.status, whole.body.len()), (200, 0));

    // Only a stored 200 is cut into ranges.
    let not_found: Origin<'_> = (404, &[("cache-control", "max-age=60")], b"no such pet");
    proxy.exchange("GET", "/missing", &[], not_found);
    let answer = local(proxy.exchange("GET", "/missing", &[("range", "bytes=0-1")], not_found));
    assert_eq!(
        (answer.status, answer.body.as_slice()),
        (404, &b"no such pet"[..])
    );
    assert_eq!(proxy.metric("kea_cache_partial_total"), Some(0));
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
