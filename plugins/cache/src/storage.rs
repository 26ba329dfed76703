//! What the request path and the background refresh share: finding the stored response for a
//! request, deciding whether a response may be stored and in what form (RFC 9111 3), freshening an
//! entry with a 304 (4.3.4), and writing entries with their lifetime in the store.

use crate::cache_control::CacheControl;
use crate::config::{Policy, SetCookiePolicy};
use crate::entry::{encode_vary_index, Slot, StoredResponse};
use crate::freshness::{storable, RequestFacts, ResponseFacts, AGE_CAP};
use crate::key::{normalise_vary_value, CacheKey};
use crate::stream::Runtime;
use crate::update::{freshen, headers_to_store, NotSelected};
use kea_plugin_sdk::{Bytes, Host, PutOutcome, StoreError};
use std::time::UNIX_EPOCH;

/// How long an entry with validators is kept after it goes stale, for revalidation.
const REVALIDATION_GRACE: u64 = 600;
/// Longest a `stale-if-error` or `stale-while-revalidate` window keeps an entry past its freshness.
const MAX_STALE_WINDOW: u64 = REVALIDATION_GRACE * 6;

/// Seconds since the epoch.
pub fn epoch(host: &impl Host) -> u64 {
    host.now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Header values as text, for replies and freshness rules.
pub fn header_texts(headers: &[(String, Bytes)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect()
}

/// Freshness facts of a response for this cache (`Surrogate-Control` applied when honoured).
pub fn response_facts(runtime: &Runtime, status: u16, texts: &[(String, String)]) -> ResponseFacts {
    ResponseFacts::for_surrogate(
        status,
        texts.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        runtime.config.surrogate_token.as_deref(),
    )
}

/// Freshness facts of a stored entry and its `current_age` at `now` (RFC 9111 4.2.3).
pub fn facts_and_age(
    runtime: &Runtime,
    entry: &StoredResponse,
    texts: &[(String, String)],
    now: u64,
) -> (ResponseFacts, u64) {
    let facts = response_facts(runtime, entry.status, texts);
    let resident_time = now.saturating_sub(entry.response_time);
    let age = entry.initial_age.saturating_add(resident_time).min(AGE_CAP);
    (facts, age)
}

/// A request field's lines combined as one list (RFC 9110 5.3).
pub fn field_value(headers: &[(String, Bytes)], name: &str) -> Option<String> {
    let mut lines = headers.iter().filter(|(n, _)| n == name);
    let first = String::from_utf8_lossy(&lines.next()?.1).into_owned();
    Some(lines.fold(first, |combined, (_, line)| {
        combined + "," + &String::from_utf8_lossy(line)
    }))
}

/// A request's values of the given `Vary` field names, normalised for comparison.
pub fn vary_values(headers: &[(String, Bytes)], names: &[String]) -> Vec<(String, Option<String>)> {
    names
        .iter()
        .map(|name| {
            let value = field_value(headers, name).map(|v| normalise_vary_value(name, &v));
            (name.clone(), value)
        })
        .collect()
}

/// The stored response for `key` that matches the request's `Vary` values, if any.
pub fn lookup(
    host: &impl Host,
    runtime: &Runtime,
    key: &CacheKey,
    request_headers: &[(String, Bytes)],
    now: u64,
) -> Option<StoredResponse> {
    let stored = match runtime
        .store
        .get(host, key.text.as_bytes(), key.hash64(), now)
        .and_then(|raw| Slot::decode(&raw))
    {
        Some(Slot::Response(stored)) => Some(stored),
        // The URL's responses vary: find this request's variant.
        Some(Slot::VaryIndex(names)) => {
            let variant = key.variant(&vary_values(request_headers, &names));
            runtime
                .store
                .get(host, variant.text.as_bytes(), variant.hash64(), now)
                .and_then(|raw| StoredResponse::decode(&raw))
        }
        None => None,
    };
    stored.filter(|stored| {
        stored.vary.iter().all(|(name, value)| {
            field_value(request_headers, name).map(|v| normalise_vary_value(name, &v)) == *value
        })
    })
}

/// The key an entry lives under: its variant's when it varies, else the URL's.
pub fn entry_key(key: &CacheKey, entry: &StoredResponse) -> CacheKey {
    if entry.vary.is_empty() {
        key.clone()
    } else {
        key.variant(&entry.vary)
    }
}

/// Why a response is not copied into the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// RFC 9111 3 (or the rule) forbids storing it.
    NotStorable,
    /// It sets cookies and the rule does not store such responses.
    SetsCookie,
    /// Its declared length exceeds the entry limit.
    TooLarge,
}

/// A response that may be stored: its freshness facts and the header fields to keep.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub facts: ResponseFacts,
    pub headers: Vec<(String, Bytes)>,
}

/// Whether a response may be stored under `policy`, and which of its fields.
pub fn admit(
    runtime: &Runtime,
    policy: &Policy,
    request: &RequestFacts<'_>,
    status: u16,
    headers: &[(String, Bytes)],
) -> Result<Admitted, Refusal> {
    let texts = header_texts(headers);
    let facts = response_facts(runtime, status, &texts);
    storable(
        request,
        &facts,
        &policy.methods,
        policy.per_user,
        policy.default_ttl,
    )
    .map_err(|_| Refusal::NotStorable)?;
    // A shared cache must not hand one user's cookie to another: what happens to responses
    // that set cookies is the rule's choice, unless the origin's qualified `no-cache` or
    // `private` already keeps the cookies out of the store.
    let origin_cc = CacheControl::parse(
        texts
            .iter()
            .filter(|(n, _)| n == "cache-control")
            .map(|(_, v)| v.as_str()),
    );
    let names_cookie = |fields: &[String]| fields.iter().any(|f| f == "set-cookie");
    let cookie_excluded = names_cookie(&origin_cc.no_cache_fields) || names_cookie(&origin_cc.private_fields);
    let dropped: &[&str] = match policy.set_cookie {
        SetCookiePolicy::DoNotStore if !cookie_excluded && texts.iter().any(|(n, _)| n == "set-cookie") => {
            return Err(Refusal::SetsCookie);
        }
        SetCookiePolicy::Replay => &[],
        _ => &["set-cookie"],
    };
    let declared = texts
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|len| len > runtime.config.max_entry_bytes) {
        return Err(Refusal::TooLarge);
    }
    Ok(Admitted {
        facts,
        headers: headers_to_store(headers, &origin_cc, dropped),
    })
}

/// Freshens `entry` with a 304 (RFC 9111 4.3.4) received for a request sent at `request_time`
/// and answered at `now`: its fields, and its age from the 304's `Date` and `Age`.
pub fn freshen_with_not_modified(
    entry: &mut StoredResponse,
    policy: &Policy,
    headers: &[(String, Bytes)],
    request_time: u64,
    now: u64,
) -> Result<(), NotSelected> {
    let dropped: &[&str] = match policy.set_cookie {
        SetCookiePolicy::Replay => &[],
        _ => &["set-cookie"],
    };
    freshen(entry, headers, dropped)?;
    let texts = header_texts(headers);
    let not_modified = ResponseFacts::from_headers(304, texts.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    entry.request_time = request_time;
    entry.response_time = now;
    entry.initial_age = not_modified.initial_age(request_time, now);
    Ok(())
}

/// Writes an entry under `key` (its variant's key when it varies) for what remains of its
/// freshness, plus the time it may still be used stale: for revalidation when it has validators,
/// and its `stale-if-error` and `stale-while-revalidate` windows.
pub fn store_entry(
    host: &impl Host,
    runtime: &Runtime,
    key: &CacheKey,
    policy: &Policy,
    entry: &StoredResponse,
) {
    let texts = header_texts(&entry.headers);
    let facts = response_facts(runtime, entry.status, &texts);
    let lifetime = facts.freshness_lifetime(entry.response_time, policy.default_ttl);
    let age = entry.initial_age;
    let has_validators = texts.iter().any(|(n, _)| n == "etag" || n == "last-modified");
    let cc = &facts.cache_control;
    let window = cc
        .stale_if_error
        .unwrap_or(0)
        .max(cc.stale_while_revalidate.unwrap_or(0))
        .min(MAX_STALE_WINDOW);
    let grace = if has_validators { REVALIDATION_GRACE } else { 0 }.max(window);
    if lifetime <= age && grace == 0 {
        return;
    }
    let encoded = entry.encode();
    let expires_at = entry
        .response_time
        .saturating_add(lifetime.saturating_sub(age))
        .saturating_add(grace);
    // A varying response goes under its variant's key; the URL's key says which fields select.
    if !entry.vary.is_empty() {
        let names: Vec<String> = entry.vary.iter().map(|(name, _)| name.clone()).collect();
        let index = encode_vary_index(&names);
        // The index lives as long as the longest variant could (a fresh store renews it).
        let index_expiry = entry
            .response_time
            .saturating_add(lifetime.max(grace))
            .saturating_add(grace);
        if let Err(err) = runtime.store.put(
            host,
            key.text.as_bytes(),
            key.hash64(),
            &index,
            entry.response_time,
            index_expiry,
        ) {
            log::warn!("cache: cannot store the Vary index: {err}");
            return;
        }
    }
    let key = entry_key(key, entry);
    match runtime.store.put(
        host,
        key.text.as_bytes(),
        key.hash64(),
        &encoded,
        entry.response_time,
        expires_at,
    ) {
        Ok(outcome) => {
            runtime.metrics.stores.add(host, 1);
            runtime.metrics.stored_bytes.add(host, encoded.len() as i64);
            if outcome == PutOutcome::Evicted {
                runtime.metrics.evictions.add(host, 1);
            }
        }
        Err(StoreError::TooLarge { .. }) => runtime.metrics.too_large.add(host, 1),
        Err(err) => log::warn!("cache: cannot store: {err}"),
    }
}
