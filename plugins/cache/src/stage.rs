//! The cache plugin as a [`Stage`]: what its module (alone, or combined with the other plugins)
//! runs.

use crate::plugin::configure;
use crate::refresh;
use crate::stream::{CacheStream, RequestAction, ResponseAction, Runtime, Wake};
use kea_plugin_sdk::{Body, ConfigError, Flow, Host, Metric, Stage, Stream};
use std::rc::Rc;
use std::time::Duration;

/// How often held requests (collapsed misses) look for the entry they wait for; the tick also
/// sends any background refresh left waiting.
const WAIT_POLL: Duration = Duration::from_millis(10);

/// The cache plugin's root half.
#[derive(Debug, Default)]
pub struct CacheStage {
    runtime: Option<Rc<Runtime>>,
}

impl<H: Host> Stage<H> for CacheStage {
    fn name(&self) -> &'static str {
        "kea-cache"
    }

    fn configure(&mut self, host: &H, raw: &[u8]) -> Result<(), ConfigError> {
        let runtime = configure(host, raw)?;
        // Background refreshes start when the request path wakes the root through its own
        // queue; without the queue they start on the tick.
        if let Err(err) = runtime.refresh.listen(host) {
            log::warn!("cache: no wake-up queue ({err}): background refreshes start on a tick");
        }
        self.runtime = Some(runtime);
        Ok(())
    }

    fn unload(&mut self, _host: &H) {
        self.runtime = None;
    }

    fn tick_period(&self) -> Option<Duration> {
        self.runtime.as_ref().map(|_| WAIT_POLL)
    }

    fn on_tick(&mut self, host: &H) {
        if let Some(runtime) = &self.runtime {
            refresh::dispatch_pending(host, runtime);
        }
    }

    fn on_queue_ready(&mut self, host: &H, queue: u32) -> bool {
        match &self.runtime {
            Some(runtime) if runtime.refresh.wakeup_queue() == Some(queue) => {
                refresh::on_wakeup(host, runtime);
                true
            }
            _ => false,
        }
    }

    fn on_call_response(&mut self, host: &H, token: u32, _headers: usize, body_size: usize) -> bool {
        self.runtime
            .as_ref()
            .is_some_and(|runtime| refresh::on_call_response(host, runtime, token, body_size).is_some())
    }

    fn new_stream(&self) -> Option<Box<dyn Stream<H>>> {
        let runtime = Rc::clone(self.runtime.as_ref()?);
        Some(Box::new(CacheRequest {
            runtime,
            stream: CacheStream::new(),
        }))
    }

    fn vm_memory_gauge(&self) -> Option<Metric> {
        Some(self.runtime.as_ref()?.metrics.vm_memory_bytes)
    }
}

/// One request's caching.
struct CacheRequest {
    runtime: Rc<Runtime>,
    stream: CacheStream,
}

impl CacheRequest {
    fn holding(&self) -> Flow {
        if self.stream.is_waiting() {
            Flow::Pause
        } else {
            Flow::Continue
        }
    }
}

impl<H: Host> Stream<H> for CacheRequest {
    fn on_request_headers(&mut self, host: &H, _end_of_stream: bool) -> Flow {
        match self.stream.on_request_headers(host, &self.runtime) {
            RequestAction::Continue => Flow::Continue,
            RequestAction::Answered => Flow::Answered,
            RequestAction::Wait => Flow::Pause,
        }
    }

    fn on_request_body(&mut self, _host: &H, _body: Body) -> Flow {
        self.holding()
    }

    fn on_request_trailers(&mut self, _host: &H) -> Flow {
        self.holding()
    }

    fn polls(&self) -> bool {
        self.stream.is_waiting()
    }

    fn on_poll(&mut self, host: &H) -> Flow {
        match self.stream.resume_waiting(host, &self.runtime) {
            Wake::Wait => Flow::Pause,
            Wake::Served => Flow::Answered,
            Wake::Proceed => Flow::Continue,
        }
    }

    fn on_response_headers(&mut self, host: &H, end_of_stream: bool) -> Flow {
        match self
            .stream
            .on_response_headers(host, &self.runtime, end_of_stream)
        {
            ResponseAction::Continue => Flow::Continue,
            // The origin's response was replaced by a local reply: stop it here.
            ResponseAction::Replaced => Flow::Answered,
        }
    }

    fn on_response_body(&mut self, host: &H, body: Body) -> Flow {
        self.stream.on_response_chunk(host, &self.runtime, body);
        Flow::Continue
    }

    fn on_log(&mut self, host: &H) {
        self.stream.on_done(host);
    }
}
