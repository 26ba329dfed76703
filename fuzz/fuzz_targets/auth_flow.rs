//! The auth plugin's whole request flow (`AuthStream`) through `MockHost`, under a fixed
//! configuration compiled once (`kea_fuzz::auth::config`: HS256 and ES256 providers, API keys,
//! browser sessions, rules by prefix, template and method), with fuzzed method, path, headers and
//! body, optionally carrying a valid credential (a bearer token, an admin token, an API key, a
//! session cookie) or completing a login in progress (its callback with the login cookie) for the fuzzer to mutate around. A callout the request waits for is answered
//! with a fuzzed response; then the response headers and the end of the stream run.
//!
//! Property: no panic; every request ends in continue or a local reply with a valid status
//! (200..=599) and header values without line breaks; a request answered locally sent exactly
//! one reply, a request that continued sent none.
#![no_main]

use arbitrary::Arbitrary;
use kea_auth::stream::{AuthStream, RequestAction};
use kea_fuzz::auth::{Fixture, API_KEY};
use kea_fuzz::{assert_valid_replies, FuzzRequest, FuzzResponse};
use kea_plugin_sdk::{Buffer, HeaderMap, Host};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static FIXTURE: Fixture = Fixture::new();
}

const PREFIXES: &[&str] = &[
    "",
    "/public",
    "/admin",
    "/orders/",
    "/staff",
    "/both",
    "/app",
    "/callback",
    "/logout",
];

#[derive(Debug, Arbitrary)]
struct Input {
    prefix: u8,
    credential: u8,
    request: FuzzRequest,
    answer: FuzzResponse,
    response: FuzzResponse,
}

fuzz_target!(|input: Input| {
    FIXTURE.with(|fixture| {
        let mut request = input.request.clone();
        request.path = format!(
            "{}{}",
            PREFIXES[usize::from(input.prefix) % PREFIXES.len()],
            request.path
        );
        if input.credential % 7 == 6 {
            // The callback of the fixture's login in progress (then the token exchange, answered
            // by the fuzzer).
            request.path = format!("{}{}", fixture.callback, request.path);
        }
        let host = fixture.host().with_request(&request.method(), &request.path, &[]);
        host.set_body(Buffer::RequestBody, &request.body);
        let credential = match input.credential % 7 {
            1 => Some(("authorization", format!("Bearer {}", fixture.token))),
            2 => Some(("authorization", format!("Bearer {}", fixture.admin_token))),
            3 => Some(("x-api-key", API_KEY.to_string())),
            4 => Some(("cookie", fixture.session_cookie.clone())),
            5 => Some(("cookie", format!("at={}", fixture.token))),
            6 => Some(("cookie", fixture.login_cookie.clone())),
            _ => None,
        };
        if let Some((name, value)) = credential {
            host.add_header(HeaderMap::RequestHeaders, name, value.as_bytes());
        }
        for header in request.headers.iter().take(32) {
            let name = header.name();
            if !name.is_empty() && !name.starts_with(':') {
                host.add_header(HeaderMap::RequestHeaders, &name, &header.value);
            }
        }
        let rt = &fixture.runtime;
        let mut stream = AuthStream::new();
        let mut action = stream.on_request_headers(&host, rt);
        // Answer up to a few callouts the request waits for.
        let mut rounds = 0;
        while action == RequestAction::Wait && rounds < 3 {
            rounds += 1;
            // `KEA_FUZZ_VERBOSE=1`: show the callouts requests wait for (token exchanges).
            if std::env::var_os("KEA_FUZZ_VERBOSE").is_some() {
                eprintln!(
                    "waiting for {:?}",
                    host.calls().last().map(|c| c.header(":path").map(str::to_owned))
                );
            }
            let Some(call) = host.calls().last().cloned() else {
                panic!("waiting without a callout");
            };
            let headers = input.answer.headers();
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            host.answer_call(input.answer.status(), &headers, &input.answer.body);
            action = stream.on_call_answer(&host, rt, call.token, input.answer.body.len());
        }
        let replies = host.replies();
        assert_valid_replies(&replies);
        match action {
            RequestAction::Answered => assert_eq!(replies.len(), 1, "{replies:?}"),
            RequestAction::Continue => {
                assert!(replies.is_empty(), "{replies:?}");
                let headers = input.response.headers();
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                host.set_response(input.response.status(), &headers);
                host.set_body(Buffer::ResponseBody, &input.response.body);
                stream.on_response_headers(&host);
            }
            RequestAction::Wait => {}
        }
        stream.on_done(&host, rt);
    });
});
