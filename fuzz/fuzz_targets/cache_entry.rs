//! Stored cache entries (`entry::Slot::decode`, `StoredResponse::decode`/`encode`,
//! `encode_vary_index`): what the cache reads back from the proxy's shared data, written by any
//! worker (or a different plugin version) — untrusted bytes as far as the reader is concerned.
//!
//! Property: no panic, and
//! - a structured entry encodes and decodes to itself (`decode(encode(e)) == e`), the same for
//!   Vary index records;
//! - a decoded byte string re-encodes to bytes that decode to the same entry (decode is a
//!   left-inverse of encode on everything it accepts).
#![no_main]

use arbitrary::Arbitrary;
use kea_cache::entry::{encode_vary_index, Slot, StoredResponse};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Entry {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    request_time: u64,
    response_time: u64,
    initial_age: u64,
    vary: Vec<(String, Option<String>)>,
    cluster: Option<String>,
}

#[derive(Debug, Arbitrary)]
enum Input {
    Raw(Vec<u8>),
    Entry(Entry),
    VaryIndex(Vec<String>),
}

fuzz_target!(|input: Input| {
    match input {
        Input::Raw(raw) => {
            if let Some(slot) = Slot::decode(&raw) {
                match slot {
                    Slot::Response(entry) => {
                        let again = StoredResponse::decode(&entry.encode());
                        assert_eq!(again.as_ref(), Some(&entry));
                        let _ = entry.header("content-type");
                    }
                    Slot::VaryIndex(names) => {
                        assert_eq!(
                            Slot::decode(&encode_vary_index(&names)),
                            Some(Slot::VaryIndex(names))
                        );
                    }
                }
            }
            let _ = StoredResponse::decode(&raw);
        }
        Input::Entry(e) => {
            let entry = StoredResponse {
                status: e.status,
                headers: e.headers,
                body: e.body,
                request_time: e.request_time,
                response_time: e.response_time,
                initial_age: e.initial_age,
                vary: e.vary,
                cluster: e.cluster,
            };
            let encoded = entry.encode();
            assert_eq!(
                StoredResponse::decode(&encoded),
                Some(entry.clone()),
                "{encoded:?}"
            );
            assert_eq!(Slot::decode(&encoded), Some(Slot::Response(entry)));
        }
        Input::VaryIndex(names) => {
            if names.len() <= usize::from(u16::MAX) {
                assert_eq!(
                    Slot::decode(&encode_vary_index(&names)),
                    Some(Slot::VaryIndex(names))
                );
            }
        }
    }
});
