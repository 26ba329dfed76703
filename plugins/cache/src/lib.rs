//! KEA cache plugin (in progress): the RFC 9111 decision logic of a shared HTTP cache —
//! `Cache-Control` parsing, storability, freshness and age. Host-free and tested natively; the
//! bounded shared store, the request/response flow and the proxy-wasm adapter come next.

pub mod cache_control;
pub mod config;
pub mod entry;
pub mod freshness;
pub mod key;
