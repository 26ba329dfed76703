//! Per-request cache logic: look up on the way in (answering fresh hits and conditional requests
//! locally), copy cacheable responses on the way out and store them when complete, invalidate on
//! successful unsafe requests, purge on `PURGE`.
//!
//! Responses are copied chunk by chunk while they stream to the client, never held back: a
//! response larger than the entry limit simply stops being copied. A stale entry is revalidated
//! with the origin before answering, except inside its `stale-while-revalidate` window: then it
//! is served at once and refreshed in the background (`refresh`).

use crate::cache_control::CacheControl;
use crate::collapse;
use crate::config::{Compiled, Policy};
use crate::entry::StoredResponse;
use crate::freshness::{RequestFacts, ResponseFacts};
use crate::key::{CacheKey, KeyInput};
use crate::metrics::CacheMetrics;
use crate::range;
use crate::refresh::{self, Job, Refresher};
use crate::storage::{
    admit, epoch, facts_and_age, freshen_with_not_modified, header_texts, lookup, store_entry, vary_values,
    Refusal,
};
use kea_plugin_sdk::host::{lossy, status_of};
use kea_plugin_sdk::matcher::split_path;
use kea_plugin_sdk::{
    identity, Body, Buffer, Bytes, HeaderMap, Host, HostError, Phase, Problem, RequestView, SlotStore,
};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::rc::Rc;

/// Everything the contexts of one worker share.
#[derive(Debug)]
pub struct Runtime {
    pub config: Compiled,
    pub store: SlotStore,
    pub metrics: CacheMetrics,
    /// This worker's background refreshes (`stale-while-revalidate`).
    pub refresh: Refresher,
}

/// The `x-kea-cache` outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Hit,
    Miss,
    Expired,
    /// Served stale: inside its `stale-while-revalidate` window (refreshed in the background), or
    /// because the origin failed (`stale-if-error`).
    Stale,
    Bypass,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Expired => "EXPIRED",
            Self::Stale => "STALE",
            Self::Bypass => "BYPASS",
        }
    }
}

/// What the adapter does after the request headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestAction {
    Continue,
    /// A local reply was sent (hit, 304, purge answer): stop the request here.
    Answered,
    /// A concurrent request is fetching the same key: hold this one, and call
    /// [`CacheStream::resume_waiting`] until it says what to do.
    Wait,
}

/// What a request held by [`RequestAction::Wait`] does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Answered from what the other request stored.
    Served,
    /// Nothing usable arrived (or the wait ran out): continue to the origin.
    Proceed,
    /// Keep waiting.
    Wait,
}

/// A response being copied for storage.
#[derive(Debug)]
struct Capture {
    status: u16,
    headers: Vec<(String, Bytes)>,
    facts: ResponseFacts,
    body: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct CacheStream {
    outcome: Option<Outcome>,
    answered: bool,
    key: Option<CacheKey>,
    policy: Option<Rc<Policy>>,
    method: String,
    request_time: u64,
    request_headers: Vec<(String, Bytes)>,
    request_cc: CacheControl,
    has_authorization: bool,
    /// Keys to invalidate if this unsafe request succeeds (RFC 9111 4.4).
    invalidate: Vec<CacheKey>,
    capture: Option<Capture>,
    /// A stale entry kept while the origin is asked: for a 304 (revalidation) or an error
    /// (`stale-if-error`).
    stale: Option<Stale>,
    /// This miss leads the fill of its key (`collapse`): the key hash, released when done.
    filling: Option<u64>,
    /// This miss waits for another's fill until this deadline (ms since the epoch).
    waiting: Option<u64>,
}

/// A stale entry and what may be done with it.
#[derive(Debug)]
struct Stale {
    entry: StoredResponse,
    /// We added validators to the origin request: a 304 is ours to turn into the stored response.
    revalidating: bool,
    /// The entry may still be served if the origin fails (`stale-if-error`).
    usable_on_error: bool,
}

/// What the adapter does after the response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseAction {
    Continue,
    /// The response was replaced by a local reply from the cache (revalidated or stale-if-error).
    Replaced,
}

const SURROGATE_CONTROL: &str = "surrogate-control";

/// A stored response's fields as sent on a reply: `Surrogate-Control` is for this cache only
/// when it honours it.
fn reply_fields<'a>(runtime: &Runtime, texts: &'a [(String, String)]) -> Vec<(&'a str, &'a str)> {
    let honoured = runtime.config.surrogate_token.is_some();
    texts
        .iter()
        .filter(|(n, _)| !(honoured && n == SURROGATE_CONTROL))
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

/// The path (with query) of a `Location`/`Content-Location` URI reference if it names the same
/// origin as the request (RFC 6454: scheme, host and port): absolute-path references always do,
/// absolute URIs when scheme and authority match; other relative references are resolved
/// against nothing here and skipped.
fn same_origin_path(reference: &str, scheme: &str, authority: &str) -> Option<String> {
    let reference = reference.trim();
    let without_fragment = reference.split('#').next().unwrap_or_default();
    if without_fragment.starts_with('/') && !without_fragment.starts_with("//") {
        return Some(without_fragment.to_string());
    }
    let (ref_scheme, rest) = without_fragment.split_once("://")?;
    let (ref_authority, path) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    let origin = |scheme: &str, authority: &str| {
        let scheme = scheme.to_ascii_lowercase();
        let authority = authority.to_ascii_lowercase();
        let default_port = if scheme == "https" { ":443" } else { ":80" };
        let authority = authority
            .strip_suffix(default_port)
            .map(str::to_string)
            .unwrap_or(authority);
        (scheme, authority)
    };
    (origin(ref_scheme, ref_authority) == origin(scheme, authority)).then_some(path)
}

/// Whether a method is safe (RFC 9110 9.2.1); every other one, known or not, invalidates.
fn is_safe(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE")
}

/// Shared-data key of a purgeable prefix's generation counter.
fn generation_key(prefix: &str) -> String {
    format!("kea.cache.gen:{prefix}")
}

fn read_generation(host: &impl Host, prefix: &str) -> u64 {
    host.shared_data(&generation_key(prefix))
        .0
        .and_then(|raw| raw.as_slice().try_into().ok().map(u64::from_le_bytes))
        .unwrap_or(0)
}

fn bump_generation(host: &impl Host, prefix: &str) -> Result<u64, HostError> {
    let key = generation_key(prefix);
    for _ in 0..16 {
        let (raw, cas) = host.shared_data(&key);
        let current = raw
            .and_then(|r| r.as_slice().try_into().ok().map(u64::from_le_bytes))
            .unwrap_or(0);
        let next = current.wrapping_add(1);
        match host.set_shared_data(&key, &next.to_le_bytes(), Some(cas.unwrap_or(0))) {
            Err(HostError::CasMismatch) => continue,
            other => return other.map(|()| next),
        }
    }
    Err(HostError::CasMismatch)
}

/// 16 random bytes for a multipart boundary (a hash of the entry if the proxy has no randomness).
fn boundary_seed(host: &impl Host, stored: &StoredResponse) -> [u8; 16] {
    let mut seed = [0u8; 16];
    if host.random_bytes(&mut seed).is_err() {
        let digest = Sha256::new()
            .chain_update(stored.response_time.to_le_bytes())
            .chain_update(&stored.body)
            .finalize();
        for (out, byte) in seed.iter_mut().zip(digest.iter()) {
            *out = *byte;
        }
    }
    seed
}

/// Entity-tag comparison for `If-None-Match` (weak, RFC 9110 13.1.2).
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let strip = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
    let etag = strip(etag);
    if_none_match
        .split(',')
        .any(|candidate| candidate.trim() == "*" || strip(candidate) == etag)
}

impl CacheStream {
    pub fn new() -> Self {
        Self::default()
    }

    fn header(&self, name: &str) -> Option<String> {
        self.request_headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// The stored response for `key` that matches this request's `Vary` values, if any.
    fn lookup(
        &self,
        host: &impl Host,
        runtime: &Runtime,
        key: &CacheKey,
        now: u64,
    ) -> Option<StoredResponse> {
        lookup(host, runtime, key, &self.request_headers, now)
    }

    fn bypass(&mut self, runtime: &Runtime, host: &impl Host) -> RequestAction {
        self.outcome = Some(Outcome::Bypass);
        runtime.metrics.bypass.add(host, 1);
        RequestAction::Continue
    }

    /// Builds the key of this request under `policy` for `method`.
    fn key_for(
        &self,
        host: &impl Host,
        config: &Compiled,
        policy: &Policy,
        method: &str,
    ) -> Option<CacheKey> {
        let path = self.header(":path").unwrap_or_default();
        self.key_for_path(host, config, policy, method, &path)
    }

    /// The key `method` on `path` would have for this request (same origin, headers, user).
    fn key_for_path(
        &self,
        host: &impl Host,
        config: &Compiled,
        policy: &Policy,
        method: &str,
        path: &str,
    ) -> Option<CacheKey> {
        let principal = self.header(identity::SUBJECT);
        if policy.per_user && principal.is_none() {
            return None;
        }
        let generation = config
            .purge_prefixes
            .iter()
            .filter(|prefix| split_path(path).0.starts_with(prefix.as_str()))
            .max_by_key(|prefix| prefix.len())
            .map(|prefix| read_generation(host, prefix));
        let header_values: Vec<(String, Option<String>)> = policy
            .key_headers
            .iter()
            .map(|name| (name.clone(), self.header(name)))
            .collect();
        let header_refs: Vec<(&str, Option<&str>)> = header_values
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_deref()))
            .collect();
        let scheme = self.header(":scheme").unwrap_or_else(|| "http".into());
        let authority = self.header(":authority").unwrap_or_default();
        let input = KeyInput {
            method,
            scheme: &scheme,
            authority: &authority,
            path,
            headers: &header_refs,
            principal: if policy.per_user {
                principal.as_deref()
            } else {
                None
            },
            generation,
        };
        Some(CacheKey::build(&input, &policy.query))
    }

    pub fn on_request_headers(&mut self, host: &impl Host, runtime: &Runtime) -> RequestAction {
        let _phase = Phase::enter("cache.on_request_headers");
        if runtime.config.caches_nothing {
            // Nothing about the request can change that, so none of it is read: each header read
            // costs 3-9 µs per request here (bench/README.md, "What a host call costs").
            return self.bypass(runtime, host);
        }
        self.request_time = epoch(host);
        self.request_headers = host.headers(HeaderMap::RequestHeaders);
        self.method = self.header(":method").unwrap_or_default().to_ascii_uppercase();
        let path = self.header(":path").unwrap_or_default();
        let authority = self.header(":authority").unwrap_or_default();
        if self.method == "PURGE" && runtime.config.purge_token_sha256.is_some() {
            return self.purge(host, runtime);
        }
        let view = RequestView {
            authority: &authority,
            path: split_path(&path).0,
            method: &self.method,
            route_name: None,
        };
        let policy = Rc::clone(runtime.config.policy_for(&view));
        if !policy.enabled {
            return self.bypass(runtime, host);
        }
        if !policy.methods.contains(&self.method) {
            if !is_safe(&self.method) {
                // RFC 9111 4.4: any unsafe method, known or not, invalidates the target URI
                // (and, on its response, the `Location` and `Content-Location` URIs).
                self.invalidate = ["GET", "HEAD"]
                    .iter()
                    .filter_map(|m| self.key_for(host, &runtime.config, &policy, m))
                    .collect();
                self.policy = Some(Rc::clone(&policy));
            }
            return self.bypass(runtime, host);
        }
        let cache_control: Vec<String> = self
            .request_headers
            .iter()
            .filter(|(n, _)| n == "cache-control")
            .map(|(_, v)| lossy(v.clone()))
            .collect();
        self.request_cc = CacheControl::parse(cache_control.iter().map(String::as_str));
        if cache_control.is_empty()
            && self
                .header("pragma")
                .is_some_and(|p| p.to_ascii_lowercase().contains("no-cache"))
        {
            self.request_cc.no_cache = true;
        }
        self.has_authorization = self.header("authorization").is_some();
        let Some(key) = self.key_for(host, &runtime.config, &policy, &self.method.clone()) else {
            return self.bypass(runtime, host);
        };
        let now = self.request_time;
        let mut stored = self.lookup(host, runtime, &key, now);
        // Where the entry was found, and for which method: what a background refresh asks for.
        let mut found = (key.clone(), self.method.clone());
        // A HEAD may be answered from the stored GET response (RFC 9110 9.3.2), without its body.
        if stored.is_none() && self.method == "HEAD" {
            if let Some(get_key) = self.key_for(host, &runtime.config, &policy, "GET") {
                stored = self.lookup(host, runtime, &get_key, now);
                found = (get_key, "GET".to_string());
            }
        }
        self.key = Some(key);
        self.policy = Some(Rc::clone(&policy));
        let Some(stored) = stored else {
            if self.request_cc.only_if_cached {
                return self.gateway_timeout(host);
            }
            self.outcome = Some(Outcome::Miss);
            runtime.metrics.misses.add(host, 1);
            // Concurrent misses for this key: one goes to the origin, the others wait for it. A
            // request that demands the origin's own answer does not wait for another's.
            let demands_origin = self.request_cc.no_cache
                || self.request_cc.max_age.is_some()
                || self.request_cc.min_fresh.is_some();
            if !demands_origin {
                let hash = self.key.as_ref().map_or(0, CacheKey::hash64);
                match collapse::claim(host, hash) {
                    collapse::Role::Leader => self.filling = Some(hash),
                    collapse::Role::Follower { deadline } => {
                        self.waiting = Some(deadline);
                        return RequestAction::Wait;
                    }
                    collapse::Role::Alone => {}
                }
            }
            self.announce_surrogate(host, runtime);
            return RequestAction::Continue;
        };
        let texts = header_texts(&stored.headers);
        let (facts, age) = facts_and_age(runtime, &stored, &texts, now);
        let lifetime = facts.freshness_lifetime(stored.response_time, policy.default_ttl);
        let request_allows = !self.request_cc.no_cache
            && self.request_cc.max_age.is_none_or(|max| age <= max)
            && self
                .request_cc
                .min_fresh
                .is_none_or(|min| lifetime.saturating_sub(age) >= min);
        // A client's `max-stale` (5.2.1.2) admits a stale response, unless the origin forbade
        // serving it stale (5.2.2.2, 5.2.2.8, 5.2.2.10).
        let stale_accepted = age >= lifetime
            && !facts.cache_control.revalidate_when_stale()
            && (self.request_cc.max_stale_any
                || self
                    .request_cc
                    .max_stale
                    .is_some_and(|max| age.saturating_sub(lifetime) <= max));
        if (age < lifetime || stale_accepted) && request_allows && !facts.cache_control.no_cache {
            self.serve(host, runtime, &stored, &texts, age, Outcome::Hit);
            return RequestAction::Answered;
        }
        // RFC 5861 3: inside its `stale-while-revalidate` window a stale response is served at
        // once while it is refreshed in the background — unless the origin forbade serving it
        // stale (must-revalidate, proxy-revalidate, s-maxage) or the request asked for a fresh
        // or validated one. Without a known upstream cluster the refresh cannot leave the
        // request, so it is revalidated the usual way.
        let in_window = facts
            .cache_control
            .stale_while_revalidate
            .is_some_and(|window| age < lifetime.saturating_add(window));
        if age >= lifetime
            && in_window
            && request_allows
            && !facts.cache_control.no_cache
            && !facts.cache_control.revalidate_when_stale()
            && stored.cluster.is_some()
        {
            self.refresh_in_background(host, runtime, &stored, found, &policy, now);
            self.serve(host, runtime, &stored, &texts, age, Outcome::Stale);
            return RequestAction::Answered;
        }
        if self.request_cc.only_if_cached {
            return self.gateway_timeout(host);
        }
        self.announce_surrogate(host, runtime);
        self.outcome = Some(Outcome::Expired);
        runtime.metrics.expired.add(host, 1);
        let client_conditional =
            self.header("if-none-match").is_some() || self.header("if-modified-since").is_some();
        let find = |name: &str| texts.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let (etag, last_modified) = (find("etag"), find("last-modified"));
        let revalidating = !client_conditional && (etag.is_some() || last_modified.is_some());
        if revalidating {
            // Ask the origin whether the stored response is still good (RFC 9111 4.3.1).
            if let Some(etag) = &etag {
                host.set_header(HeaderMap::RequestHeaders, "if-none-match", Some(etag.as_bytes()));
            } else if let Some(modified) = &last_modified {
                host.set_header(
                    HeaderMap::RequestHeaders,
                    "if-modified-since",
                    Some(modified.as_bytes()),
                );
            }
        }
        let usable_on_error = facts
            .cache_control
            .stale_if_error
            .is_some_and(|window| age < lifetime.saturating_add(window))
            && !facts.cache_control.revalidate_when_stale();
        if revalidating || usable_on_error {
            self.stale = Some(Stale {
                entry: stored,
                revalidating,
                usable_on_error,
            });
        }
        RequestAction::Continue
    }

    /// Starts the background refresh of `stored` (`found` under that key for that method), unless
    /// another request of any worker already did: the claim in shared data decides.
    fn refresh_in_background(
        &self,
        host: &impl Host,
        runtime: &Runtime,
        stored: &StoredResponse,
        found: (CacheKey, String),
        policy: &Rc<Policy>,
        now: u64,
    ) {
        let (key, method) = found;
        let Some(cluster) = stored.cluster.as_deref() else {
            return;
        };
        let entry_key = crate::storage::entry_key(&key, stored);
        let Some(claim) = refresh::claim(host, entry_key.hash64(), now) else {
            return;
        };
        let mut job = Job::new(
            &self.request_headers,
            &method,
            key,
            Rc::clone(policy),
            stored,
            cluster,
            claim,
        );
        job.surrogate_capability = runtime
            .config
            .surrogate_token
            .as_ref()
            .map(|token| format!("{token}=\"Surrogate/1.0\""));
        runtime.refresh.schedule(host, job);
    }

    /// After a non-error response to an unsafe request (RFC 9111 4.4): removes the target URI's
    /// entries, and those of the `Location` and `Content-Location` URIs when they have the
    /// target's origin (a different origin must not be invalidated: that would let one origin
    /// evict another's entries).
    fn invalidate_after_unsafe(&mut self, host: &impl Host, runtime: &Runtime, headers: &[(String, Bytes)]) {
        let mut keys = std::mem::take(&mut self.invalidate);
        if let Some(policy) = self.policy.clone() {
            let scheme = self.header(":scheme").unwrap_or_else(|| "http".into());
            let authority = self.header(":authority").unwrap_or_default();
            for (_, value) in headers
                .iter()
                .filter(|(n, _)| n == "location" || n == "content-location")
            {
                let Some(path) = same_origin_path(&lossy(value.clone()), &scheme, &authority) else {
                    continue;
                };
                keys.extend(
                    ["GET", "HEAD"]
                        .iter()
                        .filter_map(|m| self.key_for_path(host, &runtime.config, &policy, m, &path)),
                );
            }
        }
        for key in keys {
            let _ = runtime.store.remove(host, key.text.as_bytes(), key.hash64());
        }
    }

    /// For a request held by [`RequestAction::Wait`]: answers it from the entry the leading
    /// request stored, lets it go to the origin when none will come (the response was not
    /// storable, its variant differs, the leader is gone, the wait ran out), or keeps it waiting.
    pub fn resume_waiting(&mut self, host: &impl Host, runtime: &Runtime) -> Wake {
        let (Some(deadline), Some(key), Some(policy)) = (self.waiting, self.key.clone(), self.policy.clone())
        else {
            return Wake::Proceed;
        };
        let _phase = Phase::enter("cache.resume_waiting");
        let now = epoch(host);
        if let Some(stored) = self.lookup(host, runtime, &key, now) {
            let texts = header_texts(&stored.headers);
            let (facts, age) = facts_and_age(runtime, &stored, &texts, now);
            let lifetime = facts.freshness_lifetime(stored.response_time, policy.default_ttl);
            if age < lifetime && !facts.cache_control.no_cache {
                self.waiting = None;
                self.serve(host, runtime, &stored, &texts, age, Outcome::Hit);
                if self.answered {
                    runtime.metrics.collapsed.add(host, 1);
                    return Wake::Served;
                }
            }
        }
        if collapse::still_filling(host, key.hash64(), deadline) {
            return Wake::Wait;
        }
        self.waiting = None;
        self.announce_surrogate(host, runtime);
        Wake::Proceed
    }

    /// Ends this request's lead of its key's fill: its response is stored (`stored`), or will
    /// not be (the key is then passed for a while: see `collapse`).
    fn release_fill(&mut self, host: &impl Host, stored: bool) {
        if let Some(hash) = self.filling.take() {
            collapse::release(host, hash, stored);
        }
    }

    /// Whether this request is held for another request's fill of its key.
    pub fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// The exchange is over (the proxy's log phase): a lead still held (the client left before
    /// the response was complete) is released, so waiting requests need not wait for its
    /// deadline.
    pub fn on_done(&mut self, host: &impl Host) {
        self.release_fill(host, true);
    }

    /// `only-if-cached` with nothing usable stored: 504 (RFC 9111 5.2.1.7).
    fn gateway_timeout(&mut self, host: &impl Host) -> RequestAction {
        self.answered = true;
        self.outcome = Some(Outcome::Miss);
        let _ = Problem::new(504)
            .with_detail("only-if-cached: no stored response satisfies the request")
            .send(host, &[(identity::CACHE, Outcome::Miss.as_str())]);
        RequestAction::Answered
    }

    /// Tells the origin a surrogate is in the path (`Surrogate-Capability`, Edge Architecture
    /// 1.0), so it may send `Surrogate-Control`.
    fn announce_surrogate(&self, host: &impl Host, runtime: &Runtime) {
        if let Some(token) = &runtime.config.surrogate_token {
            let capability = format!("{token}=\"Surrogate/1.0\"");
            host.set_header(
                HeaderMap::RequestHeaders,
                "surrogate-capability",
                Some(capability.as_bytes()),
            );
        }
    }

    /// The origin answered a stale entry's revalidation with 304, or failed while the entry may
    /// be served stale: answer from the entry instead (Envoy sends such a reply straight to the
    /// client, the origin's response is dropped).
    fn replace_with_stale(
        &mut self,
        host: &impl Host,
        runtime: &Runtime,
        status: u16,
        headers: &[(String, Bytes)],
    ) -> ResponseAction {
        let Some(stale) = self.stale.take() else {
            return ResponseAction::Continue;
        };
        let now = epoch(host);
        let (mut entry, outcome) = match (status, self.key.clone(), self.policy.clone()) {
            (304, Some(key), Some(policy)) if stale.revalidating => {
                // RFC 9111 4.3.4: the 304's fields freshen the stored response it is about.
                let mut entry = stale.entry;
                if freshen_with_not_modified(&mut entry, &policy, headers, self.request_time, now).is_err() {
                    // Not about what is stored: neither it nor the 304 answers this request
                    // (the client asked unconditionally), and the stored response is not
                    // known to be current any more.
                    let _ = runtime.store.remove(host, key.text.as_bytes(), key.hash64());
                    self.answered = true;
                    let _ = Problem::new(502)
                        .with_detail("the origin's 304 is about a representation other than the stored one")
                        .send(host, &[(identity::CACHE, Outcome::Expired.as_str())]);
                    return ResponseAction::Replaced;
                }
                if let Some(cluster) = upstream_cluster(host) {
                    entry.cluster = Some(cluster);
                }
                store_entry(host, runtime, &key, &policy, &entry);
                runtime.metrics.revalidated.add(host, 1);
                (entry, Outcome::Expired)
            }
            (500..=599, _, _) if stale.usable_on_error => {
                runtime.metrics.stale_served.add(host, 1);
                (stale.entry, Outcome::Stale)
            }
            _ => return ResponseAction::Continue,
        };
        let texts = header_texts(&entry.headers);
        let age = facts_and_age(runtime, &entry, &texts, now).1.to_string();
        let mut reply = reply_fields(runtime, &texts);
        reply.push(("age", &age));
        reply.push((identity::CACHE, outcome.as_str()));
        let body = if self.method == "HEAD" {
            Vec::new()
        } else {
            std::mem::take(&mut entry.body)
        };
        if host.send_local_reply(entry.status, &reply, &body).is_err() {
            return ResponseAction::Continue;
        }
        self.answered = true;
        self.capture = None;
        ResponseAction::Replaced
    }

    /// Answers from the cache: 304 when the client's validators match, else the stored response.
    /// `outcome` is `Hit` for a fresh (or acceptably stale) entry, `Stale` inside its
    /// `stale-while-revalidate` window.
    fn serve(
        &mut self,
        host: &impl Host,
        runtime: &Runtime,
        stored: &StoredResponse,
        texts: &[(String, String)],
        age: u64,
        outcome: Outcome,
    ) {
        let _phase = Phase::enter("cache.serve");
        let find = |name: &str| texts.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let not_modified = match (self.header("if-none-match"), self.header("if-modified-since")) {
            (Some(inm), _) => find("etag").is_some_and(|etag| etag_matches(&inm, etag)),
            (None, Some(ims)) => {
                let since = crate::freshness::http_date(&ims);
                let modified = find("last-modified").and_then(crate::freshness::http_date);
                matches!((since, modified), (Some(since), Some(modified)) if modified <= since)
            }
            (None, None) => false,
        };
        let age = age.to_string();
        // Range applies to GET only, after the conditionals, when the answer would be a 200
        // (RFC 9110 §13.2.2, §14.2).
        if !not_modified
            && self.method == "GET"
            && stored.status == 200
            && self.serve_partial(host, runtime, stored, texts, &age)
        {
            return;
        }
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(texts.len() + 2);
        if not_modified {
            // RFC 9110 15.4.5: the headers a 200 would have sent among these.
            const KEPT: &[&str] = &[
                "cache-control",
                "content-location",
                "date",
                "etag",
                "expires",
                "vary",
                "last-modified",
            ];
            headers.extend(
                texts
                    .iter()
                    .filter(|(n, _)| KEPT.contains(&n.as_str()))
                    .map(|(n, v)| (n.as_str(), v.as_str())),
            );
        } else {
            headers.extend(reply_fields(runtime, texts));
        }
        headers.push(("age", &age));
        headers.push((identity::CACHE, outcome.as_str()));
        let (status, body): (u16, &[u8]) = match (not_modified, self.method.as_str()) {
            (true, _) => (304, &[]),
            (false, "HEAD") => (stored.status, &[]),
            (false, _) => (stored.status, &stored.body),
        };
        if host.send_local_reply(status, &headers, body).is_ok() {
            self.answered = true;
            self.outcome = Some(outcome);
            match outcome {
                Outcome::Stale => runtime.metrics.stale_while_revalidate.add(host, 1),
                _ => runtime.metrics.hits.add(host, 1),
            }
            if not_modified {
                runtime.metrics.not_modified.add(host, 1);
            }
        }
    }

    /// Answers a `Range` request from a stored complete 200: 206 (one part, or
    /// `multipart/byteranges`) or 416. False when the range is to be ignored (the whole 200).
    fn serve_partial(
        &mut self,
        host: &impl Host,
        runtime: &Runtime,
        stored: &StoredResponse,
        texts: &[(String, String)],
        age: &str,
    ) -> bool {
        let lines = |name: &str| -> Vec<String> {
            self.request_headers
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .collect()
        };
        let (range_lines, if_range_lines) = (lines("range"), lines("if-range"));
        if range_lines.is_empty() {
            return false;
        }
        let _phase = Phase::enter("cache.serve_partial");
        let find = |name: &str| texts.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let validators = range::Validators {
            etag: find("etag"),
            last_modified: find("last-modified"),
            date: find("date"),
        };
        let Ok(length) = u64::try_from(stored.body.len()) else {
            return false;
        };
        let range_refs: Vec<&str> = range_lines.iter().map(String::as_str).collect();
        let if_range_refs: Vec<&str> = if_range_lines.iter().map(String::as_str).collect();
        let parts = match range::plan(&range_refs, &if_range_refs, &validators, length) {
            range::Plan::Full => return false,
            range::Plan::NotSatisfiable => {
                let content_range = range::unsatisfied_content_range(length);
                let sent = Problem::new(416)
                    .with_type("about:blank", "Range Not Satisfiable")
                    .with_detail(format!("no requested range overlaps the {length} bytes"))
                    .send(
                        host,
                        &[
                            ("content-range", &content_range),
                            ("accept-ranges", "bytes"),
                            (identity::CACHE, Outcome::Hit.as_str()),
                        ],
                    );
                if sent.is_ok() {
                    self.answered = true;
                    self.outcome = Some(Outcome::Hit);
                    runtime.metrics.hits.add(host, 1);
                }
                return sent.is_ok();
            }
            range::Plan::Partial(parts) => parts,
        };
        let (body, content_type, content_range) = match parts.as_slice() {
            [single] => {
                let Some(bytes) = single.slice(&stored.body) else {
                    return false;
                };
                (Cow::Borrowed(bytes), None, Some(single.content_range(length)))
            }
            _ => {
                let boundary = range::boundary(&boundary_seed(host, stored));
                let Some(body) = range::multipart_body(&stored.body, &parts, find("content-type"), &boundary)
                else {
                    return false;
                };
                (
                    Cow::Owned(body),
                    Some(range::multipart_content_type(&boundary)),
                    None,
                )
            }
        };
        // RFC 9110 §15.3.7: the 200's headers, but a multipart answer has its own Content-Type.
        // (After a matching If-Range the representation metadata SHOULD NOT be sent; it is, because
        // Envoy gives a local reply without Content-Type a false `text/plain`.)
        let mut headers: Vec<(&str, &str)> = reply_fields(runtime, texts)
            .into_iter()
            .filter(|(n, _)| !matches!(*n, "content-range" | "accept-ranges"))
            .filter(|(n, _)| !(content_type.is_some() && *n == "content-type"))
            .collect();
        if let Some(content_type) = &content_type {
            headers.push(("content-type", content_type));
        }
        if let Some(content_range) = &content_range {
            headers.push(("content-range", content_range));
        }
        headers.push(("accept-ranges", "bytes"));
        headers.push(("age", age));
        headers.push((identity::CACHE, Outcome::Hit.as_str()));
        if host.send_local_reply(206, &headers, &body).is_err() {
            return false;
        }
        self.answered = true;
        self.outcome = Some(Outcome::Hit);
        runtime.metrics.hits.add(host, 1);
        runtime.metrics.partial.add(host, 1);
        true
    }

    /// `PURGE <path>` with `kea-purge-token`: removes the GET and HEAD entries of that URL, or,
    /// with `kea-purge: prefix`, every entry under a configured prefix. (Not `x-kea-*`: that
    /// namespace is for headers KEA sets, and client-sent ones are stripped at the gateway.)
    fn purge(&mut self, host: &impl Host, runtime: &Runtime) -> RequestAction {
        let _phase = Phase::enter("cache.purge");
        self.answered = true;
        let presented = self.header("kea-purge-token").unwrap_or_default();
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let expected = runtime.config.purge_token_sha256.unwrap_or([0xff; 32]);
        // Compare digests in constant time: the comparison must not leak how much matched.
        let matches = digest
            .iter()
            .zip(expected.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        if presented.is_empty() || !matches {
            let _ = Problem::new(403)
                .with_detail("PURGE needs a valid kea-purge-token")
                .send(host, &[]);
            return RequestAction::Answered;
        }
        let path = self.header(":path").unwrap_or_default();
        let (path_only, _) = split_path(&path);
        let body = if self
            .header("kea-purge")
            .is_some_and(|mode| mode.eq_ignore_ascii_case("prefix"))
        {
            if !runtime.config.purge_prefixes.iter().any(|p| p == path_only) {
                let detail = format!("{path_only} is not a purgeable prefix");
                let _ = Problem::new(404).with_detail(detail).send(host, &[]);
                return RequestAction::Answered;
            }
            match bump_generation(host, path_only) {
                Ok(generation) => {
                    serde_json::json!({"purged": "prefix", "prefix": path_only, "generation": generation})
                }
                Err(err) => {
                    let _ = Problem::new(503)
                        .with_detail(format!("purge failed: {err}"))
                        .send(host, &[]);
                    return RequestAction::Answered;
                }
            }
        } else {
            let authority = self.header(":authority").unwrap_or_default();
            let view = RequestView {
                authority: &authority,
                path: path_only,
                method: "GET",
                route_name: None,
            };
            let policy = Rc::clone(runtime.config.policy_for(&view));
            let removed = ["GET", "HEAD"]
                .iter()
                .filter_map(|method| self.key_for(host, &runtime.config, &policy, method))
                .filter(|key| {
                    runtime
                        .store
                        .remove(host, key.text.as_bytes(), key.hash64())
                        .unwrap_or(false)
                })
                .count();
            serde_json::json!({"purged": "url", "path": path_only, "entries": removed})
        };
        runtime.metrics.purges.add(host, 1);
        let _ = host.send_local_reply(
            200,
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        );
        RequestAction::Answered
    }

    fn examine_response(
        &mut self,
        host: &impl Host,
        runtime: &Runtime,
        end_of_stream: bool,
    ) -> ResponseAction {
        if self.answered {
            return ResponseAction::Continue;
        }
        let _phase = Phase::enter("cache.on_response_headers");
        if let Some(outcome) = self.outcome {
            host.set_header(
                HeaderMap::ResponseHeaders,
                identity::CACHE,
                Some(outcome.as_str().as_bytes()),
            );
        }
        // A bypassed request needs nothing from its response, and each host call costs 3-9 µs
        // per request here (bench/README.md, "What a host call costs").
        if self.key.is_none() && self.invalidate.is_empty() && self.stale.is_none() {
            if runtime.config.surrogate_token.is_some() {
                // Addressed to this cache: removed without first reading the map to look for it.
                host.set_header(HeaderMap::ResponseHeaders, SURROGATE_CONTROL, None);
            }
            return ResponseAction::Continue;
        }
        let headers = host.headers(HeaderMap::ResponseHeaders);
        let status = status_of(&headers).unwrap_or(0);
        if !self.invalidate.is_empty() && (200..400).contains(&status) {
            self.invalidate_after_unsafe(host, runtime, &headers);
        }
        // `Surrogate-Control` is addressed to this cache: it does not leave the gateway.
        if runtime.config.surrogate_token.is_some() && headers.iter().any(|(n, _)| n == SURROGATE_CONTROL) {
            host.set_header(HeaderMap::ResponseHeaders, SURROGATE_CONTROL, None);
        }
        if self.stale.is_some()
            && self.replace_with_stale(host, runtime, status, &headers) == ResponseAction::Replaced
        {
            return ResponseAction::Replaced;
        }
        let (Some(_), Some(policy)) = (&self.key, &self.policy) else {
            return ResponseAction::Continue;
        };
        let request = RequestFacts {
            method: &self.method,
            cache_control: Some(&self.request_cc),
            has_authorization: self.has_authorization,
        };
        let admitted = match admit(runtime, policy, &request, status, &headers) {
            Ok(admitted) => admitted,
            Err(Refusal::TooLarge) => {
                runtime.metrics.too_large.add(host, 1);
                return ResponseAction::Continue;
            }
            Err(Refusal::NotStorable | Refusal::SetsCookie) => return ResponseAction::Continue,
        };
        self.capture = Some(Capture {
            status,
            headers: admitted.headers,
            facts: admitted.facts,
            body: Vec::new(),
        });
        if end_of_stream {
            self.finish(host, runtime);
        }
        ResponseAction::Continue
    }

    /// The response headers, then the lead released unless a copy for storage is under way.
    pub fn on_response_headers(
        &mut self,
        host: &impl Host,
        runtime: &Runtime,
        end_of_stream: bool,
    ) -> ResponseAction {
        let action = self.examine_response(host, runtime, end_of_stream);
        if self.capture.is_none() {
            self.release_fill(host, false);
        }
        action
    }

    /// A response body chunk of `chunk_size` bytes, alone in the buffer.
    pub fn on_response_body(
        &mut self,
        host: &impl Host,
        runtime: &Runtime,
        chunk_size: usize,
        end_of_stream: bool,
    ) {
        self.on_response_chunk(host, runtime, Body::whole(chunk_size, end_of_stream));
    }

    /// The response body bytes new to this stage: copied for storage when the response is.
    pub fn on_response_chunk(&mut self, host: &impl Host, runtime: &Runtime, body: Body) {
        let (chunk_size, end_of_stream) = (body.chunk_len(), body.end_of_stream);
        let Some(capture) = self.capture.as_mut() else {
            return;
        };
        if capture.body.len().saturating_add(chunk_size) > runtime.config.max_entry_bytes {
            self.capture = None;
            runtime.metrics.too_large.add(host, 1);
            self.release_fill(host, false);
            return;
        }
        if chunk_size > 0 {
            match host.buffer(Buffer::ResponseBody, body.chunk_start, chunk_size) {
                Some(chunk) => capture.body.extend_from_slice(&chunk),
                None => {
                    self.capture = None;
                    self.release_fill(host, true);
                    return;
                }
            }
        }
        if end_of_stream {
            self.finish(host, runtime);
        }
    }

    /// Stores the copied response.
    fn finish(&mut self, host: &impl Host, runtime: &Runtime) {
        let _phase = Phase::enter("cache.store");
        let Some(capture) = self.capture.take() else {
            self.release_fill(host, true);
            return;
        };
        let (Some(key), Some(policy)) = (&self.key, &self.policy) else {
            self.release_fill(host, true);
            return;
        };
        let vary = vary_values(&self.request_headers, &capture.facts.vary);
        let response_time = epoch(host);
        let entry = StoredResponse {
            status: capture.status,
            headers: capture.headers,
            body: capture.body,
            request_time: self.request_time,
            response_time,
            initial_age: capture.facts.initial_age(self.request_time, response_time),
            vary,
            cluster: upstream_cluster(host),
        };
        store_entry(host, runtime, key, policy, &entry);
        self.release_fill(host, true);
    }
}

/// The upstream cluster the router chose (`xds.cluster_name`), kept with a stored entry: where a
/// background refresh of it goes. Read only when a response is stored, since every host call
/// costs 3-9 µs per request (bench/README.md, "What a host call costs").
fn upstream_cluster(host: &impl Host) -> Option<String> {
    kea_plugin_sdk::host::property_string(host, &["xds", "cluster_name"])
        .filter(|cluster| !cluster.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_compare_weakly() {
        assert!(etag_matches("\"a\"", "\"a\""));
        assert!(etag_matches("W/\"a\", \"b\"", "\"a\""));
        assert!(etag_matches("\"x\", W/\"a\"", "W/\"a\""));
        assert!(etag_matches("*", "\"z\""));
        assert!(!etag_matches("\"b\"", "\"a\""));
    }
}
