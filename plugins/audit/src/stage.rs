//! The audit plugin as a [`Stage`]: what its module (alone, or combined with the other plugins)
//! runs. Every request is passed on at once; the record is built in `on_log`.

use crate::plugin::{AuditRoot, Runtime};
use crate::stream::AuditStream;
use kea_plugin_sdk::{Body, ConfigError, Flow, Host, Metric, Stage, Stream};
use std::rc::Rc;
use std::time::Duration;

/// The audit plugin's root half.
#[derive(Debug, Default)]
pub struct AuditStage {
    root: AuditRoot,
}

impl<H: Host> Stage<H> for AuditStage {
    fn name(&self) -> &'static str {
        "kea-audit"
    }

    fn configure(&mut self, host: &H, raw: &[u8]) -> Result<(), ConfigError> {
        self.root.configure(host, raw)
    }

    fn unload(&mut self, host: &H) {
        self.root.unload(host);
    }

    fn tick_period(&self) -> Option<Duration> {
        self.root.tick_period()
    }

    fn on_tick(&mut self, host: &H) {
        self.root.on_tick(host);
    }

    fn on_queue_ready(&mut self, host: &H, queue: u32) -> bool {
        if self.root.queue_id() != Some(queue) {
            return false;
        }
        self.root.on_queue_ready(host);
        true
    }

    fn on_call_response(&mut self, host: &H, token: u32, headers: usize, body_size: usize) -> bool {
        self.root
            .on_call_response(host, token, headers, body_size)
            .is_some()
    }

    fn new_stream(&self) -> Option<Box<dyn Stream<H>>> {
        let runtime = self.root.runtime()?;
        Some(Box::new(AuditRequest {
            runtime,
            stream: AuditStream::new(),
        }))
    }

    fn vm_memory_gauge(&self) -> Option<Metric> {
        Some(self.root.runtime()?.metrics.vm_memory_bytes)
    }
}

/// One request's audit.
struct AuditRequest {
    runtime: Rc<Runtime>,
    stream: AuditStream,
}

impl<H: Host> Stream<H> for AuditRequest {
    fn on_request_headers(&mut self, host: &H, _end_of_stream: bool) -> Flow {
        self.stream.on_request_headers(host, &self.runtime.config);
        Flow::Continue
    }

    fn on_request_body(&mut self, host: &H, body: Body) -> Flow {
        self.stream.on_request_chunk(host, body);
        Flow::Continue
    }

    fn on_response_headers(&mut self, host: &H, _end_of_stream: bool) -> Flow {
        self.stream.on_response_headers(host);
        Flow::Continue
    }

    fn on_response_body(&mut self, host: &H, body: Body) -> Flow {
        self.stream.on_response_chunk(host, body);
        Flow::Continue
    }

    fn on_log(&mut self, host: &H) {
        let outcome = self.stream.on_log(host, &self.runtime.config);
        self.runtime.emit(host, outcome);
    }
}
