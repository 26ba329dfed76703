//! The validate plugin as a [`Stage`]: what its module (alone, or combined with the other
//! plugins) runs.

use crate::plugin::{configure, Runtime, TICK};
use crate::stream::{Action, ValidateStream};
use kea_plugin_sdk::{Body, ConfigError, Flow, Host, Metric, Stage, Stream};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// The validate plugin's root half: the shared runtime and the bundle fetches in flight.
#[derive(Debug, Default)]
pub struct ValidateStage {
    runtime: Option<Rc<Runtime>>,
    /// Bundle fetches in flight: callout token → API index.
    pending: HashMap<u32, usize>,
}

impl<H: Host> Stage<H> for ValidateStage {
    fn name(&self) -> &'static str {
        "kea-validate"
    }

    fn configure(&mut self, host: &H, raw: &[u8]) -> Result<(), ConfigError> {
        self.runtime = Some(configure(host, raw)?);
        self.pending.clear();
        Ok(())
    }

    fn unload(&mut self, _host: &H) {
        self.runtime = None;
        self.pending.clear();
    }

    /// Fetches start from ticks (callouts from `on_configure` are unreliable).
    fn tick_period(&self) -> Option<Duration> {
        self.runtime.as_ref().map(|_| TICK)
    }

    fn on_tick(&mut self, host: &H) {
        if let Some(runtime) = self.runtime.as_ref().filter(|r| r.fetches()) {
            self.pending.extend(runtime.on_tick(host));
        }
    }

    fn on_call_response(&mut self, host: &H, token: u32, _headers: usize, body_size: usize) -> bool {
        let Some(index) = self.pending.remove(&token) else {
            return false;
        };
        if let Some(runtime) = self.runtime.as_ref() {
            runtime.on_fetch_answer(host, index, body_size);
        }
        true
    }

    fn new_stream(&self) -> Option<Box<dyn Stream<H>>> {
        let runtime = Rc::clone(self.runtime.as_ref()?);
        Some(Box::new(ValidateRequest {
            runtime,
            stream: ValidateStream::new(),
        }))
    }

    fn vm_memory_gauge(&self) -> Option<Metric> {
        Some(self.runtime.as_ref()?.metrics.vm_memory_bytes)
    }
}

fn flow(action: Action) -> Flow {
    match action {
        Action::Continue => Flow::Continue,
        // Headers held and the body buffered until it is complete.
        Action::Wait => Flow::Pause,
        Action::Answered => Flow::Answered,
    }
}

/// One request's validation. Validation reads the whole buffered body, not chunks.
struct ValidateRequest {
    runtime: Rc<Runtime>,
    stream: ValidateStream,
}

impl<H: Host> Stream<H> for ValidateRequest {
    fn on_request_headers(&mut self, host: &H, end_of_stream: bool) -> Flow {
        flow(self.stream.on_request_headers(host, &self.runtime, end_of_stream))
    }

    fn on_request_body(&mut self, host: &H, body: Body) -> Flow {
        flow(
            self.stream
                .on_request_body(host, &self.runtime, body.buffered, body.end_of_stream),
        )
    }

    fn on_request_trailers(&mut self, host: &H) -> Flow {
        flow(self.stream.on_request_trailers(host, &self.runtime))
    }

    fn on_response_headers(&mut self, host: &H, end_of_stream: bool) -> Flow {
        flow(
            self.stream
                .on_response_headers(host, &self.runtime, end_of_stream),
        )
    }

    fn on_response_body(&mut self, host: &H, body: Body) -> Flow {
        flow(
            self.stream
                .on_response_body(host, &self.runtime, body.buffered, body.end_of_stream),
        )
    }
}
