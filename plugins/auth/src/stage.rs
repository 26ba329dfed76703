//! The auth plugin as a [`Stage`]: what its module (alone, or combined with the other plugins)
//! runs.

use crate::keystore::{Pending, Progress};
use crate::plugin::{configure, TICK};
use crate::stream::{AuthStream, RequestAction, Runtime};
use kea_plugin_sdk::{Body, ConfigError, Flow, Host, Metric, Stage, Stream};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// The auth plugin's root half: the shared runtime and the key fetches this VM started.
#[derive(Debug, Default)]
pub struct AuthStage {
    runtime: Option<Rc<Runtime>>,
    /// Key fetches this VM started, by callout token.
    pending: HashMap<u32, Pending>,
}

impl<H: Host> Stage<H> for AuthStage {
    fn name(&self) -> &'static str {
        "kea-auth"
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

    /// Key fetches are not allowed in `on_configure`: the first tick starts them.
    fn tick_period(&self) -> Option<Duration> {
        self.runtime.as_ref().map(|_| TICK)
    }

    fn on_tick(&mut self, host: &H) {
        let Some(runtime) = self.runtime.as_ref() else {
            return;
        };
        for (token, pending) in runtime.keystore.on_tick(host, &runtime.config, &runtime.metrics) {
            self.pending.insert(token, pending);
        }
    }

    fn on_call_response(&mut self, host: &H, token: u32, _headers: usize, body_size: usize) -> bool {
        let Some(pending) = self.pending.remove(&token) else {
            return false;
        };
        if let Some(runtime) = self.runtime.as_ref() {
            if let Progress::Next(next, pending) =
                runtime
                    .keystore
                    .on_answer(host, &runtime.config, &runtime.metrics, pending, body_size)
            {
                self.pending.insert(next, pending);
            }
        }
        true
    }

    fn new_stream(&self) -> Option<Box<dyn Stream<H>>> {
        let runtime = Rc::clone(self.runtime.as_ref()?);
        Some(Box::new(AuthRequest {
            runtime,
            stream: AuthStream::new(),
        }))
    }

    fn vm_memory_gauge(&self) -> Option<Metric> {
        Some(self.runtime.as_ref()?.metrics.vm_memory_bytes)
    }
}

fn flow(action: RequestAction) -> Flow {
    match action {
        RequestAction::Continue => Flow::Continue,
        RequestAction::Wait => Flow::Pause,
        RequestAction::Answered => Flow::Answered,
    }
}

/// One request's authentication.
struct AuthRequest {
    runtime: Rc<Runtime>,
    stream: AuthStream,
}

impl AuthRequest {
    /// Auth decides on the headers alone; it holds the body only while a callout is out.
    fn holding(&self) -> Flow {
        if self.stream.is_waiting() {
            Flow::Pause
        } else {
            Flow::Continue
        }
    }
}

impl<H: Host> Stream<H> for AuthRequest {
    fn on_request_headers(&mut self, host: &H, _end_of_stream: bool) -> Flow {
        flow(self.stream.on_request_headers(host, &self.runtime))
    }

    fn on_request_body(&mut self, _host: &H, _body: Body) -> Flow {
        self.holding()
    }

    fn on_request_trailers(&mut self, _host: &H) -> Flow {
        self.holding()
    }

    fn on_response_headers(&mut self, host: &H, _end_of_stream: bool) -> Flow {
        self.stream.on_response_headers(host);
        Flow::Continue
    }

    fn on_call_answer(&mut self, host: &H, token: u32, body_size: usize) -> Flow {
        flow(self.stream.on_call_answer(host, &self.runtime, token, body_size))
    }

    fn on_done(&mut self, host: &H) {
        self.stream.on_done(host, &self.runtime);
    }
}
