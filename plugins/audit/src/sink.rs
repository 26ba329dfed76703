//! The batched HTTP sink: takes records from the shared buffer, wraps them in the store's wire
//! format and sends them with `dispatch_http_call`; retries with exponential backoff, then drops.
//!
//! Each worker's root context runs one [`Flusher`]; with one callout in flight per worker at most.

use crate::buffer::SharedBuffer;
use crate::config::{CompiledHttpSink, SinkFormat};
use crate::metrics::AuditMetrics;
use kea_plugin_sdk::callout::{backoff, CallAnswer};
use kea_plugin_sdk::{Bytes, Host, HttpCall, Phase};
use std::time::{Duration, SystemTime};

/// Wraps records (each one JSON object) in the sink's wire format.
pub fn encode_batch(format: SinkFormat, index: &str, records: &[Bytes]) -> Vec<u8> {
    let size: usize = records.iter().map(|r| r.len() + 1).sum();
    let action = format!(
        "{{\"create\":{{\"_index\":{}}}}}\n",
        serde_json::Value::String(index.into())
    );
    let mut body = Vec::with_capacity(
        size + if format == SinkFormat::ElasticBulk {
            records.len() * action.len()
        } else {
            0
        },
    );
    for record in records {
        if format == SinkFormat::ElasticBulk {
            body.extend_from_slice(action.as_bytes());
        }
        body.extend_from_slice(record);
        body.push(b'\n');
    }
    body
}

fn content_type(format: SinkFormat) -> &'static str {
    match format {
        SinkFormat::JsonLines | SinkFormat::ElasticBulk => "application/x-ndjson",
        SinkFormat::Clickhouse => "text/plain; charset=utf-8",
    }
}

/// A batch that is in flight or waiting to be retried.
#[derive(Debug)]
struct Batch {
    records: Vec<Bytes>,
    /// Failed attempts so far.
    failures: u32,
}

#[derive(Debug)]
enum State {
    Idle,
    InFlight { token: u32, batch: Batch },
    Backoff { until: SystemTime, batch: Batch },
}

/// Outcome of one callout, for tests and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sent { records: usize },
    WillRetry { after: Duration },
    Dropped { records: usize },
}

/// Sends batches from the shared buffer; see the module documentation.
#[derive(Debug)]
pub struct Flusher {
    sink: CompiledHttpSink,
    buffer: SharedBuffer,
    state: State,
    /// Records enqueued since the last send, as told by `on_queue_ready`; counted locally so a
    /// notification costs no host call.
    notified: usize,
}

impl Flusher {
    pub fn new(sink: CompiledHttpSink, buffer: SharedBuffer) -> Self {
        Self {
            sink,
            buffer,
            state: State::Idle,
            notified: 0,
        }
    }

    pub fn flush_interval(&self) -> Duration {
        self.sink.flush_interval
    }

    /// Records taken from the buffer and not yet delivered or dropped.
    pub fn held_records(&self) -> usize {
        match &self.state {
            State::Idle => 0,
            State::InFlight { batch, .. } | State::Backoff { batch, .. } => batch.records.len(),
        }
    }

    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// On every tick: retry a batch whose backoff is over, or send whatever is buffered.
    pub fn on_tick(&mut self, host: &impl Host, metrics: &AuditMetrics) {
        let _phase = Phase::enter("audit.flusher.on_tick");
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Backoff { until, batch } if host.now() >= until => self.send(host, metrics, batch),
            State::Idle => self.send_next(host, metrics),
            other => self.state = other,
        }
        metrics.report_occupancy(host, self.buffer.occupancy(host));
    }

    /// When records arrive: send early once a full batch is waiting. Envoy notifies the worker
    /// that registered the queue once per enqueued record, from every worker.
    pub fn on_queue_ready(&mut self, host: &impl Host, metrics: &AuditMetrics) {
        self.notified += 1;
        if self.is_idle() && self.notified >= self.sink.batch_records {
            self.send_next(host, metrics);
        }
    }

    /// After a successful send: keep draining while a full batch is waiting.
    fn drain_if_full(&mut self, host: &impl Host, metrics: &AuditMetrics) {
        if self.buffer.occupancy(host).records >= self.sink.batch_records as u64 {
            self.send_next(host, metrics);
        }
    }

    fn send_next(&mut self, host: &impl Host, metrics: &AuditMetrics) {
        self.notified = 0;
        let records = self
            .buffer
            .pop_batch(host, self.sink.batch_records, self.sink.batch_bytes);
        if !records.is_empty() {
            self.send(host, metrics, Batch { records, failures: 0 });
        }
    }

    fn send(&mut self, host: &impl Host, metrics: &AuditMetrics, batch: Batch) {
        let body = encode_batch(self.sink.format, &self.sink.index, &batch.records);
        let mut headers = vec![
            (":method", "POST"),
            (":path", self.sink.path.as_str()),
            (":authority", self.sink.authority.as_str()),
            ("content-type", content_type(self.sink.format)),
            ("user-agent", "kea-audit"),
        ];
        headers.extend(self.sink.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let call = HttpCall {
            cluster: &self.sink.cluster,
            headers,
            body: Some(&body),
            timeout: self.sink.timeout,
        };
        match host.dispatch_http_call(&call) {
            Ok(token) => self.state = State::InFlight { token, batch },
            Err(err) => {
                log::warn!("audit sink: cannot call cluster {}: {err}", self.sink.cluster);
                self.failed(host, metrics, batch);
            }
        }
    }

    /// Handles the answer to a callout. Returns `None` when the token is not ours.
    /// `headers` is the number of response headers Envoy reports: 0 means there was no response
    /// at all (stream reset), and the call-response maps must not be read (they do not exist, and
    /// reading them makes the SDK panic).
    pub fn on_call_response(
        &mut self,
        host: &impl Host,
        metrics: &AuditMetrics,
        token: u32,
        headers: usize,
        body_size: usize,
    ) -> Option<Delivery> {
        let _phase = Phase::enter("audit.flusher.on_call_response");
        let batch = match std::mem::replace(&mut self.state, State::Idle) {
            State::InFlight { token: t, batch } if t == token => batch,
            other => {
                self.state = other;
                return None;
            }
        };
        let answer = (headers > 0)
            .then(|| CallAnswer::read(host, body_size).ok())
            .flatten();
        match answer.as_ref().map(|a| a.status) {
            Some(200..=299) => {
                let rejected = match &answer {
                    Some(answer) if self.sink.format == SinkFormat::ElasticBulk => {
                        self.rejected_bulk_items(host, answer).min(batch.records.len())
                    }
                    _ => 0,
                };
                let records = batch.records.len() - rejected;
                metrics.batch_sent(host, records);
                if rejected > 0 {
                    metrics.send_failure(host);
                    metrics.dropped(host, rejected as u64);
                }
                self.drain_if_full(host, metrics);
                Some(Delivery::Sent { records })
            }
            other => {
                let body = answer.and_then(|a| a.body_start(host, 512));
                let detail = match (other, body) {
                    (Some(code), Some(body)) => {
                        format!("status {code}: {}", String::from_utf8_lossy(&body).trim())
                    }
                    (Some(code), None) => format!("status {code}"),
                    (None, _) => "no response (stream reset)".into(),
                };
                log::warn!(
                    "audit sink {}: batch of {} failed: {detail}",
                    self.sink.cluster,
                    batch.records.len()
                );
                Some(self.failed(host, metrics, batch))
            }
        }
    }

    /// `_bulk` answers 200 even when items fail. Those items are counted as dropped instead of
    /// retrying the whole batch (a retry would duplicate the items that did succeed).
    fn rejected_bulk_items(&self, host: &impl Host, answer: &CallAnswer) -> usize {
        const MAX_ANSWER: usize = 4 * 1024 * 1024;
        let Some(body) = answer.body_start(host, MAX_ANSWER) else {
            return 0;
        };
        #[derive(serde::Deserialize)]
        struct BulkAnswer {
            #[serde(default)]
            errors: bool,
            #[serde(default)]
            items: Vec<serde_json::Map<String, serde_json::Value>>,
        }
        let answer: BulkAnswer = match kea_plugin_sdk::json::from_slice(&body) {
            Ok(answer) => answer,
            Err(err) => {
                log::warn!("audit sink {}: unreadable _bulk answer: {err}", self.sink.cluster);
                return 0;
            }
        };
        if !answer.errors {
            return 0;
        }
        let rejected = answer
            .items
            .iter()
            .filter(|item| {
                item.values().any(|result| {
                    result.get("error").is_some()
                        || result
                            .get("status")
                            .and_then(|s| s.as_u64())
                            .is_some_and(|s| s >= 300)
                })
            })
            .count();
        log::warn!(
            "audit sink {}: _bulk rejected {rejected} items",
            self.sink.cluster
        );
        rejected
    }

    fn failed(&mut self, host: &impl Host, metrics: &AuditMetrics, mut batch: Batch) -> Delivery {
        metrics.send_failure(host);
        batch.failures += 1;
        if batch.failures > self.sink.max_retries {
            let records = batch.records.len();
            log::warn!(
                "audit sink {}: dropping {records} records after {} attempts",
                self.sink.cluster,
                batch.failures
            );
            metrics.dropped(host, records as u64);
            self.state = State::Idle;
            return Delivery::Dropped { records };
        }
        let after = backoff(self.sink.initial_backoff, self.sink.max_backoff, batch.failures);
        let now = host.now();
        self.state = State::Backoff {
            until: now.checked_add(after).unwrap_or(now),
            batch,
        };
        Delivery::WillRetry { after }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let records = vec![br#"{"a":1}"#.to_vec(), br#"{"a":2}"#.to_vec()];
        assert_eq!(
            encode_batch(SinkFormat::JsonLines, "i", &records),
            b"{\"a\":1}\n{\"a\":2}\n"
        );
        assert_eq!(
            encode_batch(SinkFormat::Clickhouse, "i", &records),
            b"{\"a\":1}\n{\"a\":2}\n"
        );
        assert_eq!(
            String::from_utf8(encode_batch(SinkFormat::ElasticBulk, "kea-audit", &records)).unwrap(),
            "{\"create\":{\"_index\":\"kea-audit\"}}\n{\"a\":1}\n{\"create\":{\"_index\":\"kea-audit\"}}\n{\"a\":2}\n"
        );
    }
}
