//! Several stages in one HTTP context: the per-request half of the combined module, and of every
//! single-plugin module (a chain of one).
//!
//! It behaves like the same stages as separate filters in Envoy's chain: request callbacks reach
//! the stages in order and response callbacks in reverse order; a stage that holds the request
//! (headers stopped, body buffered) keeps the stages after it from seeing anything until it lets
//! go, and then they see the headers and the whole buffered body at once, as Envoy's filter
//! manager would hand them on; the stages before it keep seeing each new body chunk. Since the
//! proxy buffers for the whole module, a later callback's buffer can hold bytes an earlier one
//! showed: each stage is told which bytes are new to it ([`Body`]), so none counts a byte twice.

use crate::host::Host;
use crate::stage::{Body, Flow, Stream};

/// What one direction (request or response) has delivered: to the module, or to one stage.
/// Body positions are offsets in the whole body.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Progress {
    headers: bool,
    headers_end: bool,
    body: usize,
    body_end: bool,
    trailers: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Response,
}

/// The state of one direction.
#[derive(Debug, Default)]
struct Lane {
    received: Progress,
    /// Body bytes already passed on by the proxy: the buffer starts here.
    flushed: usize,
    /// Per position in this direction's order: what that stage has been shown.
    seen: Vec<Progress>,
    /// Per position: whether that stage's last verdict was [`Flow::Pause`].
    holding: Vec<bool>,
    /// A local reply was sent: nothing more goes through this direction.
    answered: bool,
}

impl Lane {
    fn new(stages: usize) -> Self {
        Self {
            seen: vec![Progress::default(); stages],
            holding: vec![false; stages],
            ..Self::default()
        }
    }

    fn holder(&self) -> Option<usize> {
        self.holding.iter().position(|held| *held)
    }
}

/// The stages of one request. See the module documentation.
pub struct Chain<H: Host> {
    stages: Vec<Box<dyn Stream<H>>>,
    request: Lane,
    response: Lane,
}

impl<H: Host> std::fmt::Debug for Chain<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("stages", &self.stages.len())
            .field("request", &self.request)
            .field("response", &self.response)
            .finish()
    }
}

impl<H: Host> Chain<H> {
    /// The stages in request order.
    pub fn new(stages: Vec<Box<dyn Stream<H>>>) -> Self {
        let count = stages.len();
        Self {
            stages,
            request: Lane::new(count),
            response: Lane::new(count),
        }
    }

    pub fn on_request_headers(&mut self, host: &H, end_of_stream: bool) -> Flow {
        let received = &mut self.request.received;
        received.headers = true;
        received.headers_end = end_of_stream;
        received.body_end |= end_of_stream;
        self.advance(host, Direction::Request)
    }

    /// `buffered`: the body bytes the proxy hands over now (everything it buffered since the
    /// module last let the body go).
    pub fn on_request_body(&mut self, host: &H, buffered: usize, end_of_stream: bool) -> Flow {
        let lane = &mut self.request;
        lane.received.body = lane.flushed.saturating_add(buffered);
        lane.received.body_end |= end_of_stream;
        self.advance(host, Direction::Request)
    }

    pub fn on_request_trailers(&mut self, host: &H) -> Flow {
        self.request.received.trailers = true;
        self.advance(host, Direction::Request)
    }

    pub fn on_response_headers(&mut self, host: &H, end_of_stream: bool) -> Flow {
        let received = &mut self.response.received;
        received.headers = true;
        received.headers_end = end_of_stream;
        received.body_end |= end_of_stream;
        self.advance(host, Direction::Response)
    }

    pub fn on_response_body(&mut self, host: &H, buffered: usize, end_of_stream: bool) -> Flow {
        let lane = &mut self.response;
        lane.received.body = lane.flushed.saturating_add(buffered);
        lane.received.body_end |= end_of_stream;
        self.advance(host, Direction::Response)
    }

    /// A callout answer on this stream: it goes to the stage holding the request, and when that
    /// lets go and so do the stages after it, the request is resumed.
    pub fn on_call_answer(&mut self, host: &H, token: u32, body_size: usize) -> Flow {
        let Some(position) = self.request.holder().filter(|_| !self.request.answered) else {
            log::debug!("callout answer {token} with no stage holding the request: ignored");
            return Flow::Continue;
        };
        let Some(stage) = self.stages.get_mut(position) else {
            return Flow::Continue;
        };
        let flow = stage.on_call_answer(host, token, body_size);
        self.resume_after(host, position, flow)
    }

    /// Whether the stage holding the request wants to be polled on root ticks.
    pub fn wants_poll(&self) -> bool {
        !self.request.answered
            && self
                .request
                .holder()
                .and_then(|position| self.stages.get(position))
                .is_some_and(|stage| stage.polls())
    }

    /// A root tick for a request whose holder polls.
    pub fn poll(&mut self, host: &H) -> Flow {
        if !self.wants_poll() {
            return Flow::Pause;
        }
        let Some(position) = self.request.holder() else {
            return Flow::Continue;
        };
        let Some(stage) = self.stages.get_mut(position) else {
            return Flow::Continue;
        };
        let flow = stage.on_poll(host);
        self.resume_after(host, position, flow)
    }

    pub fn on_log(&mut self, host: &H) {
        for stage in &mut self.stages {
            stage.on_log(host);
        }
    }

    pub fn on_done(&mut self, host: &H) {
        for stage in &mut self.stages {
            stage.on_done(host);
        }
    }

    /// After an asynchronous verdict of the holder: records it, lets the later stages catch up,
    /// and resumes the request when none holds it any more.
    fn resume_after(&mut self, host: &H, position: usize, flow: Flow) -> Flow {
        match flow {
            Flow::Answered => {
                self.request.answered = true;
                return Flow::Answered;
            }
            Flow::Pause => return Flow::Pause,
            Flow::Continue => {
                if let Some(held) = self.request.holding.get_mut(position) {
                    *held = false;
                }
            }
        }
        let flow = self.advance(host, Direction::Request);
        if flow == Flow::Continue {
            host.resume_request();
        }
        flow
    }

    /// Shows every stage, in this direction's order, what it has not seen yet, up to the first
    /// stage that holds.
    fn advance(&mut self, host: &H, direction: Direction) -> Flow {
        let count = self.stages.len();
        let lane = match direction {
            Direction::Request => &mut self.request,
            Direction::Response => &mut self.response,
        };
        if lane.answered {
            return Flow::Answered;
        }
        for position in 0..count {
            let index = match direction {
                Direction::Request => position,
                Direction::Response => count - 1 - position,
            };
            let (Some(stage), Some(seen), Some(held)) = (
                self.stages.get_mut(index),
                lane.seen.get_mut(position),
                lane.holding.get_mut(position),
            ) else {
                continue;
            };
            match catch_up(
                stage.as_mut(),
                host,
                direction,
                &lane.received,
                lane.flushed,
                seen,
            ) {
                Some(Flow::Answered) => {
                    lane.answered = true;
                    return Flow::Answered;
                }
                Some(flow) => *held = flow == Flow::Pause,
                None => {}
            }
            if *held {
                return Flow::Pause;
            }
        }
        // Nothing holds: the proxy passes the buffered body on.
        lane.flushed = lane.received.body;
        Flow::Continue
    }
}

/// Shows one stage the parts it has not seen; the verdict of the last one, `None` when nothing
/// was new.
fn catch_up<H: Host>(
    stage: &mut dyn Stream<H>,
    host: &H,
    direction: Direction,
    received: &Progress,
    flushed: usize,
    seen: &mut Progress,
) -> Option<Flow> {
    let mut flow = None;
    if received.headers && !seen.headers {
        seen.headers = true;
        seen.headers_end = received.headers_end;
        let verdict = match direction {
            Direction::Request => stage.on_request_headers(host, received.headers_end),
            Direction::Response => stage.on_response_headers(host, received.headers_end),
        };
        if verdict == Flow::Answered {
            return Some(verdict);
        }
        flow = Some(verdict);
    }
    let body_is_new = received.body > seen.body || (received.body_end && !seen.body_end);
    if seen.headers && !received.headers_end && body_is_new {
        let body = Body {
            buffered: received.body.saturating_sub(flushed),
            chunk_start: seen.body.saturating_sub(flushed),
            end_of_stream: received.body_end,
        };
        seen.body = received.body;
        seen.body_end = received.body_end;
        let verdict = match direction {
            Direction::Request => stage.on_request_body(host, body),
            Direction::Response => stage.on_response_body(host, body),
        };
        if verdict == Flow::Answered {
            return Some(verdict);
        }
        flow = Some(verdict);
    }
    if direction == Direction::Request && received.trailers && !seen.trailers && seen.headers {
        seen.trailers = true;
        flow = Some(stage.on_request_trailers(host));
    }
    flow
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::mock::MockHost;
    use std::cell::RefCell;
    use std::rc::Rc;

    type Journal = Rc<RefCell<Vec<String>>>;

    /// A stage that writes what it is shown into a shared journal and answers from a script.
    struct Scripted {
        name: &'static str,
        journal: Journal,
        /// Verdict for request headers, then for each request body callback.
        headers: Flow,
        body: Vec<Flow>,
        answer: Flow,
        polls: bool,
    }

    impl Scripted {
        fn new(name: &'static str, journal: &Journal) -> Self {
            Self {
                name,
                journal: Rc::clone(journal),
                headers: Flow::Continue,
                body: Vec::new(),
                answer: Flow::Continue,
                polls: false,
            }
        }
        fn note(&self, what: String) {
            self.journal.borrow_mut().push(format!("{} {what}", self.name));
        }
    }

    impl Stream<MockHost> for Scripted {
        fn on_request_headers(&mut self, _: &MockHost, end: bool) -> Flow {
            self.note(format!("req-headers end={end}"));
            self.headers
        }
        fn on_request_body(&mut self, _: &MockHost, body: Body) -> Flow {
            self.note(format!(
                "req-body {}..{} end={}",
                body.chunk_start, body.buffered, body.end_of_stream
            ));
            if self.body.is_empty() {
                Flow::Continue
            } else {
                self.body.remove(0)
            }
        }
        fn on_request_trailers(&mut self, _: &MockHost) -> Flow {
            self.note("req-trailers".into());
            Flow::Continue
        }
        fn on_response_headers(&mut self, _: &MockHost, end: bool) -> Flow {
            self.note(format!("resp-headers end={end}"));
            Flow::Continue
        }
        fn on_response_body(&mut self, _: &MockHost, body: Body) -> Flow {
            self.note(format!("resp-body {}..{}", body.chunk_start, body.buffered));
            Flow::Continue
        }
        fn on_call_answer(&mut self, _: &MockHost, token: u32, _: usize) -> Flow {
            self.note(format!("answer {token}"));
            self.answer
        }
        fn polls(&self) -> bool {
            self.polls
        }
        fn on_poll(&mut self, _: &MockHost) -> Flow {
            self.note("poll".into());
            self.answer
        }
    }

    fn chain(stages: Vec<Scripted>) -> Chain<MockHost> {
        Chain::new(
            stages
                .into_iter()
                .map(|s| Box::new(s) as Box<dyn Stream<MockHost>>)
                .collect(),
        )
    }

    fn take(journal: &Journal) -> Vec<String> {
        std::mem::take(&mut *journal.borrow_mut())
    }

    #[test]
    fn requests_go_in_order_and_responses_in_reverse() {
        let journal = Journal::default();
        let host = MockHost::new();
        let mut chain = chain(vec![Scripted::new("a", &journal), Scripted::new("b", &journal)]);
        assert_eq!(chain.on_request_headers(&host, true), Flow::Continue);
        assert_eq!(chain.on_response_headers(&host, false), Flow::Continue);
        assert_eq!(chain.on_response_body(&host, 5, true), Flow::Continue);
        assert_eq!(
            take(&journal),
            [
                "a req-headers end=true",
                "b req-headers end=true",
                "b resp-headers end=false",
                "a resp-headers end=false",
                "b resp-body 0..5",
                "a resp-body 0..5",
            ]
        );
    }

    #[test]
    fn a_stage_holding_for_the_body_hides_it_from_later_stages_until_it_is_whole() {
        let journal = Journal::default();
        let host = MockHost::new();
        let mut holder = Scripted::new("hold", &journal);
        holder.headers = Flow::Pause;
        holder.body = vec![Flow::Pause, Flow::Continue];
        let mut chain = chain(vec![
            Scripted::new("first", &journal),
            holder,
            Scripted::new("last", &journal),
        ]);
        assert_eq!(chain.on_request_headers(&host, false), Flow::Pause);
        // The proxy buffers while the module pauses: the second callback's buffer holds both chunks.
        assert_eq!(chain.on_request_body(&host, 10, false), Flow::Pause);
        assert_eq!(chain.on_request_body(&host, 25, true), Flow::Continue);
        assert_eq!(
            take(&journal),
            [
                "first req-headers end=false",
                "hold req-headers end=false",
                "first req-body 0..10 end=false",
                "hold req-body 0..10 end=false",
                "first req-body 10..25 end=true",
                "hold req-body 10..25 end=true",
                "last req-headers end=false",
                "last req-body 0..25 end=true",
            ]
        );
        // The body went on; a response body starts afresh.
        assert_eq!(chain.request.flushed, 25);
    }

    #[test]
    fn chunks_after_the_body_was_let_go_start_at_zero() {
        let journal = Journal::default();
        let host = MockHost::new();
        let mut chain = chain(vec![Scripted::new("a", &journal)]);
        chain.on_request_headers(&host, false);
        assert_eq!(chain.on_request_body(&host, 4, false), Flow::Continue);
        assert_eq!(chain.on_request_body(&host, 6, true), Flow::Continue);
        assert_eq!(
            take(&journal)[1..],
            ["a req-body 0..4 end=false", "a req-body 0..6 end=true"]
        );
    }

    #[test]
    fn a_callout_answer_goes_to_the_holder_and_resumes_after_the_later_stages() {
        let journal = Journal::default();
        let host = MockHost::new();
        let mut waiting = Scripted::new("auth", &journal);
        waiting.headers = Flow::Pause;
        waiting.body = vec![Flow::Pause];
        let mut chain = chain(vec![
            Scripted::new("audit", &journal),
            waiting,
            Scripted::new("cache", &journal),
        ]);
        assert_eq!(chain.on_request_headers(&host, false), Flow::Pause);
        assert_eq!(chain.on_request_body(&host, 3, true), Flow::Pause);
        assert_eq!(host.resumed_requests(), 0);
        assert_eq!(chain.on_call_answer(&host, 7, 0), Flow::Continue);
        assert_eq!(host.resumed_requests(), 1);
        assert_eq!(
            take(&journal),
            [
                "audit req-headers end=false",
                "auth req-headers end=false",
                "audit req-body 0..3 end=true",
                "auth req-body 0..3 end=true",
                "auth answer 7",
                "cache req-headers end=false",
                "cache req-body 0..3 end=true",
            ]
        );
    }

    #[test]
    fn an_answer_stops_the_request_but_every_stage_sees_the_reply() {
        let journal = Journal::default();
        let host = MockHost::new();
        let mut auth = Scripted::new("auth", &journal);
        auth.headers = Flow::Answered;
        let mut chain = chain(vec![
            Scripted::new("audit", &journal),
            auth,
            Scripted::new("cache", &journal),
        ]);
        assert_eq!(chain.on_request_headers(&host, false), Flow::Answered);
        assert_eq!(chain.on_request_body(&host, 3, true), Flow::Answered);
        assert_eq!(chain.on_response_headers(&host, true), Flow::Continue);
        assert_eq!(
            take(&journal),
            [
                "audit req-headers end=false",
                "auth req-headers end=false",
                "cache resp-headers end=true",
                "auth resp-headers end=true",
                "audit resp-headers end=true",
            ]
        );
    }

    #[test]
    fn a_polling_holder_is_polled_until_it_lets_go() {
        let journal = Journal::default();
        let host = MockHost::new();
        let mut cache = Scripted::new("cache", &journal);
        cache.headers = Flow::Pause;
        cache.polls = true;
        cache.answer = Flow::Pause;
        let mut chain = chain(vec![Scripted::new("audit", &journal), cache]);
        assert_eq!(chain.on_request_headers(&host, true), Flow::Pause);
        assert!(chain.wants_poll());
        assert_eq!(chain.poll(&host), Flow::Pause);
        chain.stages[1] = {
            let mut done = Scripted::new("cache", &journal);
            done.polls = true;
            done.answer = Flow::Answered;
            Box::new(done)
        };
        assert_eq!(chain.poll(&host), Flow::Answered);
        assert!(!chain.wants_poll());
        assert_eq!(host.resumed_requests(), 0);
    }

    #[test]
    fn trailers_follow_the_body_to_every_stage() {
        let journal = Journal::default();
        let host = MockHost::new();
        let mut chain = chain(vec![Scripted::new("a", &journal)]);
        chain.on_request_headers(&host, false);
        chain.on_request_body(&host, 2, false);
        assert_eq!(chain.on_request_trailers(&host), Flow::Continue);
        assert_eq!(take(&journal).last().unwrap(), "a req-trailers");
    }
}
