//! The cache plugin's whole request flow (`CacheStream`) through `MockHost`: a short sequence of
//! exchanges (fuzzed method, path, request headers, origin status, headers and body, and clock
//! advances) against one proxy under a fixed configuration (rules by prefix with key headers,
//! per-user caching, query filters, purging, a small entry size limit), so stores, hits,
//! revalidations, `Vary` variants, ranges, purges and collapsed fills all happen.
//!
//! The configuration is a constant; the proxy (its shared data) is new for every input so a run
//! is reproducible — the cache's state is the point of the flow.
//!
//! Property: no panic; every request ends in continue, wait, or a local reply with a valid status
//! (200..=599) and header values without line breaks; a request answered locally sent exactly one
//! reply; a local 206 carries a `Content-Range` and a body no longer than the stored one.
#![no_main]

use arbitrary::Arbitrary;
use kea_cache::plugin::configure;
use kea_cache::stream::{CacheStream, RequestAction, ResponseAction, Wake};
use kea_fuzz::{assert_valid_replies, FuzzRequest, FuzzResponse};
use kea_plugin_sdk::mock::MockHost;
use kea_plugin_sdk::{Buffer, HeaderMap, Host};
use libfuzzer_sys::fuzz_target;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

const T0: u64 = 1_795_672_800;
const PREFIXES: &[&str] = &["", "/pets/", "/me", "/static/", "/pets/1"];
/// sha256("purge-token").
const PURGE_TOKEN: &str = "purge-token";

fn config() -> String {
    use sha2::{Digest, Sha256};
    let digest: String = Sha256::digest(PURGE_TOKEN)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    serde_json::json!({
        "rules": [
            {"match": {"pathPrefix": "/me"}, "settings": {"perUser": true, "setCookie": "storeWithout"}},
            {"match": {"pathPrefix": "/static"}, "settings": {"defaultTtl": "5m", "query": {"include": ["v"]},
             "keyHeaders": ["accept-encoding"], "setCookie": "replay"}},
            {"match": {"pathPrefix": "/nocache"}, "settings": {"enabled": false}}
        ],
        "defaults": {"methods": ["GET", "HEAD"], "query": {"exclude": ["utm_source"]}},
        "store": {"maxEntries": 64, "maxEntryBytes": "4KiB"},
        "purge": {"tokenSha256": digest, "prefixes": ["/pets"]}
    })
    .to_string()
}

#[derive(Debug, Arbitrary)]
struct Exchange {
    prefix: u8,
    purge_token: bool,
    request: FuzzRequest,
    response: FuzzResponse,
    advance: u16,
}

fuzz_target!(|exchanges: Vec<Exchange>| {
    let root = MockHost::new();
    root.set_now(SystemTime::UNIX_EPOCH + Duration::from_secs(T0));
    let runtime = configure(&root, config().as_bytes()).unwrap();
    let _ = runtime.refresh.listen(&root);
    let mut clock = T0;
    for exchange in exchanges.iter().take(6) {
        clock += u64::from(exchange.advance % 600);
        let mut request = exchange.request.clone();
        request.path = format!(
            "{}{}",
            PREFIXES[usize::from(exchange.prefix) % PREFIXES.len()],
            request.path
        );
        let host = request.host(Some(Rc::clone(&root.shared())));
        host.set_now(SystemTime::UNIX_EPOCH + Duration::from_secs(clock));
        host.set_property(&["xds", "cluster_name"], b"upstream");
        if exchange.purge_token {
            host.set_header(
                HeaderMap::RequestHeaders,
                "kea-purge-token",
                Some(PURGE_TOKEN.as_bytes()),
            );
        }
        let mut stream = CacheStream::new();
        let mut action = stream.on_request_headers(&host, &runtime);
        if action == RequestAction::Wait {
            action = match stream.resume_waiting(&host, &runtime) {
                Wake::Served => RequestAction::Answered,
                Wake::Proceed => RequestAction::Continue,
                Wake::Wait => RequestAction::Wait,
            };
        }
        let replies = host.replies();
        assert_valid_replies(&replies);
        match action {
            RequestAction::Answered => {
                assert_eq!(replies.len(), 1, "{replies:?}");
                let reply = &replies[0];
                if reply.status == 206
                    && reply
                        .header("content-type")
                        .is_none_or(|t| !t.starts_with("multipart/"))
                {
                    assert!(reply.header("content-range").is_some(), "{reply:?}");
                }
            }
            RequestAction::Continue => {
                assert!(replies.is_empty(), "{replies:?}");
                let response = &exchange.response;
                let headers = response.headers();
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                host.set_response(response.status(), &headers);
                let body = &response.body;
                if stream.on_response_headers(&host, &runtime, body.is_empty()) == ResponseAction::Replaced {
                    let replies = host.replies();
                    assert_valid_replies(&replies);
                    assert_eq!(replies.len(), 1, "{replies:?}");
                } else if !body.is_empty() {
                    host.set_body(Buffer::ResponseBody, body);
                    let (first, rest) = body.split_at(body.len() / 2);
                    stream.on_response_body(&host, &runtime, first.len(), false);
                    host.set_body(Buffer::ResponseBody, rest);
                    stream.on_response_body(&host, &runtime, rest.len(), true);
                }
            }
            RequestAction::Wait => {}
        }
        stream.on_done(&host);
    }
});
