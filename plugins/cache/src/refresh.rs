//! Background revalidation for `stale-while-revalidate` (RFC 5861 §3): a stale entry inside its
//! window is served at once, and one request per entry, for all workers, refreshes it.
//!
//! - **One refresh for all workers**: a claim in shared data, taken with compare-and-swap and
//!   holding its own expiry, so a worker that dies mid-refresh blocks nobody for long. Shared data
//!   can neither delete keys nor create one atomically (a write to a missing key ignores the CAS
//!   token), so the claims live in a fixed set of slots, all created at configure time: memory
//!   stays bounded whatever the key churn, and every claim is a real compare-and-swap. Two keys
//!   sharing a slot at the same moment only means the second is served stale a little longer.
//! - **The callout belongs to the root context**: Envoy cancels a stream's callouts when the
//!   stream ends, and the client's stream ends as soon as it is answered. The request path queues
//!   a [`Job`] in its worker's [`Refresher`] and wakes the root context through a shared queue
//!   only this worker registered (`on_queue_ready` runs on the registering worker, on its next
//!   event-loop turn); the root dispatches the call and applies its answer.

use crate::config::Policy;
use crate::entry::StoredResponse;
use crate::freshness::RequestFacts;
use crate::key::CacheKey;
use crate::storage::{
    admit, entry_key, epoch, freshen_with_not_modified, lookup, store_entry, vary_values, Refusal,
};
use crate::stream::Runtime;
use kea_plugin_sdk::host::status_of;
use kea_plugin_sdk::{Buffer, Bytes, HeaderMap, Host, HostError, HttpCall, Phase};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

/// Prefix of the claim slots' shared-data keys (`kea.cache.refresh:<n>`).
pub const CLAIM_PREFIX: &str = "kea.cache.refresh";
/// Number of claim slots: refreshes in flight at one moment, over all workers, rarely share one.
pub const CLAIM_SLOTS: u64 = 1024;
/// How long a claim holds when nobody releases it (a worker died or its VM was replaced).
pub const CLAIM_TTL: u64 = 30;
/// Timeout of the refresh callout; shorter than a claim, so a claim outlives its call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Jobs a worker keeps waiting for its root context; more are not refreshed (still served stale).
const MAX_PENDING: usize = 256;
/// Prefix of each worker's wake-up queue (the suffix is random: one queue per worker).
const WAKEUP_PREFIX: &str = "kea.cache.refresh.wakeup";

/// Request fields not copied into a refresh: hop-by-hop (RFC 9110 7.6.1), framing, the client's
/// own conditionals and range, its cache directives (the refresh is the cache's request, not the
/// client's), and its request id (one client request must not appear as two upstream requests).
const NOT_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "trailer",
    "upgrade",
    "content-length",
    "expect",
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "if-range",
    "range",
    "cache-control",
    "pragma",
    "x-request-id",
];

/// A claim on one entry's refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    slot: String,
    /// The entry's key hash and the claim's expiry, as written: the release writes only over this.
    value: [u8; 16],
}

fn claim_slot(hash: u64) -> String {
    format!("{CLAIM_PREFIX}:{}", hash % CLAIM_SLOTS)
}

fn encode_claim(hash: u64, expires_at: u64) -> [u8; 16] {
    let mut value = [0u8; 16];
    let (head, tail) = value.split_at_mut(8);
    head.copy_from_slice(&hash.to_le_bytes());
    tail.copy_from_slice(&expires_at.to_le_bytes());
    value
}

/// Expiry of the claim a slot holds; 0 for a free (or unreadable) slot.
fn claim_expiry(raw: Option<&[u8]>) -> u64 {
    raw.and_then(|raw| raw.get(8..16))
        .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
        .map_or(0, u64::from_le_bytes)
}

const FREE: [u8; 16] = [0; 16];

/// Creates every claim slot that does not exist yet, so that later claims are real
/// compare-and-swaps. Workers configuring at the same time may both create a slot: both write
/// it free, before any request can claim it.
pub fn prepare_claims(host: &impl Host) -> Result<(), HostError> {
    for n in 0..CLAIM_SLOTS {
        let slot = format!("{CLAIM_PREFIX}:{n}");
        if host.shared_data(&slot).1.is_none() {
            host.set_shared_data(&slot, &FREE, None)?;
        }
    }
    Ok(())
}

/// Claims the refresh of the entry whose key hashes to `hash`, for every worker: `None` when a
/// live claim holds its slot (this entry's refresh is under way, or rarely another's).
pub fn claim(host: &impl Host, hash: u64, now: u64) -> Option<Claim> {
    let slot = claim_slot(hash);
    let value = encode_claim(hash, now.saturating_add(CLAIM_TTL));
    for _ in 0..4 {
        let (raw, cas) = host.shared_data(&slot);
        let Some(cas) = cas else {
            // Not prepared (configure could not write it): create it free, then claim it.
            host.set_shared_data(&slot, &FREE, None).ok()?;
            continue;
        };
        if claim_expiry(raw.as_deref()) > now {
            return None;
        }
        match host.set_shared_data(&slot, &value, Some(cas)) {
            Ok(()) => return Some(Claim { slot, value }),
            Err(HostError::CasMismatch) => continue,
            Err(_) => return None,
        }
    }
    None
}

/// Releases a claim, unless it expired and someone else claimed the slot since.
pub fn release(host: &impl Host, claim: &Claim) {
    for _ in 0..4 {
        let (raw, cas) = host.shared_data(&claim.slot);
        if raw.as_deref() != Some(&claim.value[..]) {
            return;
        }
        match host.set_shared_data(&claim.slot, &FREE, cas) {
            Err(HostError::CasMismatch) => continue,
            _ => return,
        }
    }
}

/// The validator a refresh sends, from the stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validator {
    ETag(Bytes),
    LastModified(Bytes),
    None,
}

impl Validator {
    /// `If-None-Match` with the entity tag when there is one, else `If-Modified-Since`.
    pub fn of(entry: &StoredResponse) -> Self {
        match (entry.header("etag"), entry.header("last-modified")) {
            (Some(etag), _) => Self::ETag(etag.to_vec()),
            (None, Some(modified)) => Self::LastModified(modified.to_vec()),
            (None, None) => Self::None,
        }
    }

    fn field(&self) -> Option<(&'static str, &[u8])> {
        match self {
            Self::ETag(etag) => Some(("if-none-match", etag)),
            Self::LastModified(modified) => Some(("if-modified-since", modified)),
            Self::None => None,
        }
    }
}

/// One background refresh: the request to send and where its answer goes.
#[derive(Debug)]
pub struct Job {
    /// `GET`, or `HEAD` for a stored response to a HEAD.
    pub method: String,
    pub scheme: String,
    pub authority: String,
    pub path: String,
    /// The client's end-to-end request fields (see [`NOT_FORWARDED`]): they select the same
    /// representation (`Vary`) and carry the same identity as the request that found the entry.
    pub request_headers: Vec<(String, Bytes)>,
    /// The stored response's validator, sent as `If-None-Match` or `If-Modified-Since`.
    pub validator: Validator,
    /// `Surrogate-Capability` announced to the origin, when the cache honours `Surrogate-Control`.
    pub surrogate_capability: Option<String>,
    /// The URL's key, under which (or under whose variant) the answer is stored.
    pub key: CacheKey,
    pub policy: Rc<Policy>,
    pub cluster: String,
    pub claim: Claim,
    /// When the call was sent (epoch seconds), for the answer's age.
    pub sent_at: u64,
}

impl Job {
    /// The refresh of `entry`, found under `key` for a request with `request_headers` (all of
    /// them, pseudo-headers included, as the proxy gives them).
    pub fn new(
        request_headers: &[(String, Bytes)],
        method: &str,
        key: CacheKey,
        policy: Rc<Policy>,
        entry: &StoredResponse,
        cluster: &str,
        claim: Claim,
    ) -> Self {
        let pseudo = |name: &str| {
            request_headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let connection_options = crate::update::connection_options(request_headers);
        let forwarded = request_headers
            .iter()
            .filter(|(name, _)| {
                !name.starts_with(':')
                    && !NOT_FORWARDED.contains(&name.as_str())
                    && !connection_options.contains(name)
            })
            .cloned()
            .collect();
        let scheme = match pseudo(":scheme") {
            scheme if scheme.is_empty() => "http".to_string(),
            scheme => scheme,
        };
        Self {
            method: method.to_string(),
            scheme,
            authority: pseudo(":authority"),
            path: pseudo(":path"),
            request_headers: forwarded,
            validator: Validator::of(entry),
            surrogate_capability: None,
            key,
            policy,
            cluster: cluster.to_string(),
            claim,
            sent_at: 0,
        }
    }

    /// The callout's header fields: pseudo-headers, the client's fields, the validator.
    pub fn call_headers(&self) -> Vec<(String, String)> {
        let mut headers = vec![
            (":method".to_string(), self.method.clone()),
            (":scheme".to_string(), self.scheme.clone()),
            (":authority".to_string(), self.authority.clone()),
            (":path".to_string(), self.path.clone()),
        ];
        headers.extend(
            self.request_headers
                .iter()
                .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned())),
        );
        if let Some((name, value)) = self.validator.field() {
            headers.push((name.to_string(), String::from_utf8_lossy(value).into_owned()));
        }
        if let Some(capability) = &self.surrogate_capability {
            headers.push(("surrogate-capability".to_string(), capability.clone()));
        }
        headers
    }
}

/// A worker's refreshes: jobs waiting for the root context and calls in flight.
#[derive(Debug, Default)]
pub struct Refresher {
    pending: RefCell<Vec<Job>>,
    in_flight: RefCell<Vec<(u32, Job)>>,
    wakeup: Cell<Option<u32>>,
}

impl Refresher {
    /// Registers this worker's wake-up queue (from the root context, at configure time).
    pub fn listen(&self, host: &impl Host) -> Result<u32, HostError> {
        let mut suffix = [0u8; 8];
        host.random_bytes(&mut suffix)?;
        let name = format!("{WAKEUP_PREFIX}.{:016x}", u64::from_le_bytes(suffix));
        let queue = host.register_queue(&name)?;
        self.wakeup.set(Some(queue));
        Ok(queue)
    }

    pub fn wakeup_queue(&self) -> Option<u32> {
        self.wakeup.get()
    }

    /// Queues a job and wakes the root context. When too many wait, the job is dropped and its
    /// claim released (the entry is still served stale; a later request refreshes it): `false`.
    pub fn schedule(&self, host: &impl Host, job: Job) -> bool {
        let mut pending = self.pending.borrow_mut();
        if pending.len() >= MAX_PENDING {
            release(host, &job.claim);
            return false;
        }
        let first = pending.is_empty();
        pending.push(job);
        if let (true, Some(queue)) = (first, self.wakeup.get()) {
            if let Err(err) = host.enqueue(queue, b"1") {
                log::warn!("cache: cannot wake the refresh: {err}");
            }
        }
        true
    }

    /// Jobs waiting for the root context.
    pub fn pending(&self) -> usize {
        self.pending.borrow().len()
    }

    /// Calls in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.borrow().len()
    }
}

/// Root context, `on_queue_ready` of the wake-up queue: empties it and sends the waiting jobs.
pub fn on_wakeup(host: &impl Host, runtime: &Runtime) {
    if let Some(queue) = runtime.refresh.wakeup_queue() {
        while let Ok(Some(_)) = host.dequeue(queue) {}
    }
    dispatch_pending(host, runtime);
}

/// Root context only (a stream's callouts die with the stream): sends every waiting job.
pub fn dispatch_pending(host: &impl Host, runtime: &Runtime) {
    let jobs = std::mem::take(&mut *runtime.refresh.pending.borrow_mut());
    if jobs.is_empty() {
        return;
    }
    let _phase = Phase::enter("cache.refresh.dispatch");
    let now = epoch(host);
    for mut job in jobs {
        let headers = job.call_headers();
        let call = HttpCall {
            cluster: &job.cluster,
            headers: headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect(),
            body: None,
            timeout: CALL_TIMEOUT,
        };
        match host.dispatch_http_call(&call) {
            Ok(token) => {
                job.sent_at = now;
                runtime.refresh.in_flight.borrow_mut().push((token, job));
            }
            Err(err) => {
                log::warn!("cache: cannot refresh {} on {}: {err}", job.path, job.cluster);
                release(host, &job.claim);
            }
        }
    }
}

/// What a refresh did with the stored entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// 304: the stored response is fresh again.
    Freshened,
    /// A new response replaced it.
    Replaced,
    /// The origin's answer supersedes it but cannot be stored: it was removed.
    Removed,
    /// Left as it was (failure, 5xx, or the entry changed meanwhile).
    Kept,
}

/// Root context, `on_http_call_response`: applies a refresh's answer (`body_size` bytes of body)
/// and releases its claim. `None` for a call that is not a refresh.
pub fn on_call_response(
    host: &impl Host,
    runtime: &Runtime,
    token: u32,
    body_size: usize,
) -> Option<Refreshed> {
    let job = {
        let mut in_flight = runtime.refresh.in_flight.borrow_mut();
        let at = in_flight.iter().position(|(t, _)| *t == token)?;
        in_flight.swap_remove(at).1
    };
    let _phase = Phase::enter("cache.refresh.answer");
    let headers = host.headers(HeaderMap::CallResponseHeaders);
    let refreshed = match status_of(&headers) {
        // No response (reset, timeout, no healthy host) or an origin failure: the stale entry
        // stays, to expire on its own.
        None | Some(500..=599) => Refreshed::Kept,
        Some(304) => not_modified(host, runtime, &job, &headers),
        Some(status) => replace(host, runtime, &job, status, &headers, body_size),
    };
    if matches!(refreshed, Refreshed::Freshened | Refreshed::Replaced) {
        runtime.metrics.background_refresh.add(host, 1);
    }
    release(host, &job.claim);
    log::debug!("cache: background refresh of {}: {refreshed:?}", job.path);
    Some(refreshed)
}

/// The entry the job is about, as stored now, if it still has the validator that was sent.
fn current_entry(host: &impl Host, runtime: &Runtime, job: &Job, now: u64) -> Option<StoredResponse> {
    lookup(host, runtime, &job.key, &job.request_headers, now)
        .filter(|entry| Validator::of(entry) == job.validator)
}

fn not_modified(host: &impl Host, runtime: &Runtime, job: &Job, headers: &[(String, Bytes)]) -> Refreshed {
    let now = epoch(host);
    // Meanwhile replaced or gone: the 304 is about nothing stored.
    let Some(mut entry) = current_entry(host, runtime, job, now) else {
        return Refreshed::Kept;
    };
    if freshen_with_not_modified(&mut entry, &job.policy, headers, job.sent_at, now).is_err() {
        // About another representation: what is stored is not known to be current any more.
        let key = entry_key(&job.key, &entry);
        let _ = runtime.store.remove(host, key.text.as_bytes(), key.hash64());
        return Refreshed::Removed;
    }
    entry.cluster = Some(job.cluster.clone());
    store_entry(host, runtime, &job.key, &job.policy, &entry);
    Refreshed::Freshened
}

/// A full response: it replaces the stored one when it may be stored (the same rules as on the
/// request path); otherwise the stored one, superseded, is removed.
fn replace(
    host: &impl Host,
    runtime: &Runtime,
    job: &Job,
    status: u16,
    headers: &[(String, Bytes)],
    body_size: usize,
) -> Refreshed {
    let now = epoch(host);
    let request = RequestFacts {
        method: &job.method,
        cache_control: None,
        has_authorization: job.request_headers.iter().any(|(n, _)| n == "authorization"),
    };
    let admitted = match admit(runtime, &job.policy, &request, status, headers) {
        Ok(admitted) if body_size <= runtime.config.max_entry_bytes => Ok(admitted),
        Ok(_) => Err(Refusal::TooLarge),
        Err(refusal) => Err(refusal),
    };
    let admitted = match admitted {
        Ok(admitted) => admitted,
        Err(refusal) => {
            if refusal == Refusal::TooLarge {
                runtime.metrics.too_large.add(host, 1);
            }
            if let Some(entry) = lookup(host, runtime, &job.key, &job.request_headers, now) {
                let key = entry_key(&job.key, &entry);
                let _ = runtime.store.remove(host, key.text.as_bytes(), key.hash64());
            }
            return Refreshed::Removed;
        }
    };
    let body = if body_size == 0 {
        Vec::new()
    } else {
        match host.buffer(Buffer::CallResponseBody, 0, body_size) {
            Some(body) if body.len() == body_size => body,
            _ => return Refreshed::Kept,
        }
    };
    let entry = StoredResponse {
        status,
        headers: admitted.headers,
        body,
        request_time: job.sent_at,
        response_time: now,
        initial_age: admitted.facts.initial_age(job.sent_at, now),
        vary: vary_values(&job.request_headers, &admitted.facts.vary),
        cluster: Some(job.cluster.clone()),
    };
    store_entry(host, runtime, &job.key, &job.policy, &entry);
    Refreshed::Replaced
}

#[cfg(test)]
mod tests {
    use super::*;
    use kea_plugin_sdk::mock::MockHost;

    #[test]
    fn one_claim_per_entry_until_released_or_expired() {
        let a = MockHost::new();
        let b = MockHost::sharing_with(a.shared());
        prepare_claims(&a).unwrap();
        let claim = claim(&a, 42, 1000).expect("the first worker claims");
        assert_eq!(super::claim(&b, 42, 1000), None, "the second worker does not");
        assert_eq!(
            super::claim(&b, 42 + CLAIM_SLOTS, 1000),
            None,
            "nor for a key sharing the slot"
        );
        assert!(super::claim(&b, 43, 1000).is_some(), "other slots are free");
        release(&a, &claim);
        let again = super::claim(&b, 42, 1001).expect("released: claimable again");
        // Not released (a worker died): the claim lapses by itself.
        assert_eq!(super::claim(&a, 42, 1001 + CLAIM_TTL - 1), None);
        let taken_over = super::claim(&a, 42, 1001 + CLAIM_TTL).expect("expired claims are taken over");
        // The late release of the lapsed claim leaves the new one alone.
        release(&b, &again);
        assert_eq!(super::claim(&b, 42, 1001 + CLAIM_TTL), None);
        release(&a, &taken_over);
        assert!(super::claim(&b, 42, 1001 + CLAIM_TTL).is_some());
    }

    #[test]
    fn claim_slots_are_bounded_and_created_once() {
        let host = MockHost::new();
        prepare_claims(&host).unwrap();
        let (keys, _) = host.shared_data_usage();
        assert_eq!(keys as u64, CLAIM_SLOTS);
        let held = claim(&host, 7, 1000).unwrap();
        prepare_claims(&host).unwrap();
        assert_eq!(
            claim(&host, 7, 1000),
            None,
            "a second configure keeps live claims"
        );
        release(&host, &held);
        for hash in 0..10_000u64 {
            if let Some(claim) = claim(&host, hash.wrapping_mul(0x9e37_79b9_7f4a_7c15), 2000) {
                release(&host, &claim);
            }
        }
        assert_eq!(host.shared_data_usage().0 as u64, CLAIM_SLOTS);
    }

    #[test]
    fn an_unprepared_slot_is_created_then_claimed() {
        let host = MockHost::new();
        let held = claim(&host, 5, 1000).expect("claimed");
        assert_eq!(claim(&host, 5, 1000), None);
        release(&host, &held);
        assert!(claim(&host, 5, 1000).is_some());
    }

    #[test]
    fn jobs_forward_end_to_end_fields_and_send_the_stored_validator() {
        let request: Vec<(String, Bytes)> = [
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "api.example.com"),
            (":path", "/pets?a=1"),
            ("accept-language", "fr"),
            ("authorization", "Bearer t"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("te", "trailers"),
            ("if-none-match", "\"client\""),
            ("if-modified-since", "Wed, 25 Nov 2026 06:00:00 GMT"),
            ("range", "bytes=0-1"),
            ("cache-control", "max-stale"),
            ("x-request-id", "r1"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect();
        let entry = StoredResponse {
            status: 200,
            headers: vec![
                ("etag".into(), b"\"v1\"".to_vec()),
                ("last-modified".into(), b"Wed, 25 Nov 2026 06:00:00 GMT".to_vec()),
            ],
            ..StoredResponse::default()
        };
        let key = CacheKey {
            text: "GET\nhttps\napi.example.com\n/pets\na=1".into(),
            digest: [0; 32],
        };
        let claim = Claim {
            slot: claim_slot(0),
            value: encode_claim(0, 1),
        };
        let job = Job::new(
            &request,
            "GET",
            key,
            Rc::clone(&crate::config::CacheConfig::default().compile().unwrap().defaults),
            &entry,
            "upstream",
            claim,
        );
        let headers = job.call_headers();
        let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                ":method",
                ":scheme",
                ":authority",
                ":path",
                "accept-language",
                "authorization",
                "if-none-match"
            ]
        );
        assert_eq!(headers[3].1, "/pets?a=1");
        assert_eq!(headers[6].1, "\"v1\"", "our validator, not the client's");
        let by_date = Validator::of(&StoredResponse {
            headers: vec![("last-modified".into(), b"Wed, 25 Nov 2026 06:00:00 GMT".to_vec())],
            ..StoredResponse::default()
        });
        assert_eq!(by_date.field().map(|(n, _)| n), Some("if-modified-since"));
        assert_eq!(Validator::of(&StoredResponse::default()).field(), None);
    }
}
