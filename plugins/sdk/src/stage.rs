//! The contract every KEA plugin implements, so that one module can run several plugins in one
//! HTTP context per request ([`crate::chain::Chain`]) and a plugin alone is the same code with a
//! chain of one.
//!
//! A plugin is a [`Stage`] (its root-level half: configuration, timers, background callouts,
//! shared queues) that opens a [`Stream`] per request. Every stream callback answers with a
//! [`Flow`]: the stage's verdict on whether the request (or response) may go on *after* this
//! callback. A stage that holds the request says [`Flow::Pause`] from every callback until it lets
//! it go — also from body callbacks that arrive while it waits for a callout.

use crate::host::Host;
use crate::metrics::Metric;
use crate::ConfigError;
use std::time::Duration;

/// A stage's verdict after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Nothing held: the later stages (and then the upstream or client) may have it.
    Continue,
    /// Held here: headers stay, body is buffered, until this stage continues (on a later body
    /// callback, a callout answer or a poll).
    Pause,
    /// A local reply was sent; nothing goes further.
    Answered,
}

/// A body as one callback sees it. The proxy keeps buffering while any stage holds the body, so
/// the buffer may hold bytes an earlier callback already showed: `chunk_start..buffered` is what
/// is new to this stage, `0..buffered` is everything the buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Body {
    /// Bytes in the body buffer now (readable with `Host::buffer` from 0).
    pub buffered: usize,
    /// Where the bytes this stage has not seen start in the buffer.
    pub chunk_start: usize,
    /// Whether this is the last of the body.
    pub end_of_stream: bool,
}

impl Body {
    /// A body whose buffer holds only new bytes (what a lone filter sees when it never pauses).
    pub fn whole(size: usize, end_of_stream: bool) -> Self {
        Self {
            buffered: size,
            chunk_start: 0,
            end_of_stream,
        }
    }

    /// Number of bytes new to this stage.
    pub fn chunk_len(&self) -> usize {
        self.buffered.saturating_sub(self.chunk_start)
    }
}

/// The per-request half of a stage. Every method has a default that does nothing and lets the
/// request go, so a stage implements only the callbacks it needs.
pub trait Stream<H: Host> {
    fn on_request_headers(&mut self, _host: &H, _end_of_stream: bool) -> Flow {
        Flow::Continue
    }
    fn on_request_body(&mut self, _host: &H, _body: Body) -> Flow {
        Flow::Continue
    }
    fn on_request_trailers(&mut self, _host: &H) -> Flow {
        Flow::Continue
    }
    fn on_response_headers(&mut self, _host: &H, _end_of_stream: bool) -> Flow {
        Flow::Continue
    }
    fn on_response_body(&mut self, _host: &H, _body: Body) -> Flow {
        Flow::Continue
    }
    /// The answer to a callout this stage made while it held the request (only a holding stage
    /// waits for callouts on a stream, so the chain hands answers to the holder).
    fn on_call_answer(&mut self, _host: &H, _token: u32, _body_size: usize) -> Flow {
        Flow::Continue
    }
    /// Whether this stage, holding the request, wants [`Stream::on_poll`] on every root tick
    /// (a request waiting for something another request does, such as a collapsed cache fill).
    fn polls(&self) -> bool {
        false
    }
    fn on_poll(&mut self, _host: &H) -> Flow {
        Flow::Pause
    }
    /// The exchange is over (Envoy's access-log phase): records, cleanup that needs the host.
    fn on_log(&mut self, _host: &H) {}
    /// The stream is being destroyed.
    fn on_done(&mut self, _host: &H) {}
}

/// A module's stages, in the order they run on a request.
pub type Stages<H> = Vec<Box<dyn Stage<H>>>;

/// The root-level half of a plugin: one per plugin per VM.
pub trait Stage<H: Host> {
    /// The plugin's name as it appears in logs (`kea-audit`).
    fn name(&self) -> &'static str;
    /// Parses and compiles the configuration. On error the previous configuration stays active.
    /// Must not dispatch callouts (proxies refuse them here): the first tick starts them.
    fn configure(&mut self, host: &H, raw: &[u8]) -> Result<(), ConfigError>;
    /// Drops the configuration: the stage opens no streams and wants no ticks (the combined
    /// module's configuration no longer has its section).
    fn unload(&mut self, host: &H);
    /// How often the stage wants [`Stage::on_tick`]; `None` when it needs no timer.
    fn tick_period(&self) -> Option<Duration>;
    fn on_tick(&mut self, _host: &H) {}
    /// A shared queue this stage registered became non-empty; `false` when the queue is not its.
    fn on_queue_ready(&mut self, _host: &H, _queue: u32) -> bool {
        false
    }
    /// The answer to a callout the root made; `false` when the token is not this stage's.
    fn on_call_response(&mut self, _host: &H, _token: u32, _headers: usize, _body_size: usize) -> bool {
        false
    }
    /// The stream for a new request, or `None` when the stage is not configured.
    fn new_stream(&self) -> Option<Box<dyn Stream<H>>>;
    /// The gauge the VM's linear memory is reported to (`kea_<plugin>_vm_memory_bytes`).
    fn vm_memory_gauge(&self) -> Option<Metric> {
        None
    }
}
