//! The browser sign-on (OpenID Connect) inputs of the auth plugin: session cookies
//! (`sso::session::presented` reassembling chunks, `open` of each candidate), callback requests
//! (`sso::login::callback`: query parameters, state, login cookie), return paths
//! (`safe_local_path`), token-endpoint answers (`sso::exchange::read`), and the credential
//! sources of `Cookie`/query/header (`sources::read`).
//!
//! Property: no panic, and
//! - `presented` yields at most one candidate per `kea_session` cookie, each assembled only from
//!   cookies the request carries;
//! - a sealed session opens only when it is bit-for-bit the one the gateway sealed;
//! - `safe_local_path` returns the input or `/`, and the result never starts with `//` or `/\`;
//! - a token answer is accepted only with `token_type` Bearer.
#![no_main]

use arbitrary::Arbitrary;
use kea_auth::config::Source;
use kea_auth::sources::{self, RequestHeaders};
use kea_auth::sso::{exchange, login, session};
use kea_fuzz::auth::{Fixture, NOW};
use kea_plugin_sdk::{HeaderMap, Host};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static FIXTURE: Fixture = Fixture::new();
}

#[derive(Debug, Arbitrary)]
struct Input {
    path: String,
    cookies: Vec<String>,
    /// Prefix the real session cookie to the request's cookies.
    with_session: bool,
    answer_status: u16,
    answer: Vec<u8>,
    other: String,
}

fuzz_target!(|input: Input| {
    FIXTURE.with(|fixture| {
        let sso = fixture.runtime.config.sso.as_ref().unwrap();
        let host = fixture.host().with_request("GET", &input.path, &[]);
        if input.with_session {
            host.add_header(
                HeaderMap::RequestHeaders,
                "cookie",
                fixture.session_cookie.as_bytes(),
            );
        }
        for cookie in input.cookies.iter().take(8) {
            host.add_header(HeaderMap::RequestHeaders, "cookie", cookie.as_bytes());
        }
        let headers = RequestHeaders::read(&host);
        // Session cookies.
        let presented = session::presented(&headers, &sso.cookie);
        let heads = headers.cookies().filter(|(n, _)| *n == sso.cookie.name).count();
        assert!(presented.candidates.len() <= heads);
        for candidate in &presented.candidates {
            if let Ok(opened) = session::open(sso, candidate, NOW) {
                assert!(
                    input.with_session
                        && fixture
                            .session_cookie
                            .contains(candidate.split_at(candidate.len().min(40)).0),
                    "a session opened that the gateway did not seal: {candidate}"
                );
                assert_eq!(opened.sub, "alice");
            }
        }
        assert!(
            session::open(sso, &input.other, NOW).is_err() || fixture.session_cookie.contains(&input.other)
        );
        // Callback requests.
        let _ = login::query_params(&input.path);
        let _ = login::request_scheme(&headers);
        match login::callback(sso, &headers, NOW) {
            Ok(callback) => panic!("a callback passed without a login cookie: {callback:?}"),
            Err((_, clear)) => {
                if let Some(clear) = clear {
                    assert!(!clear.contains(['\r', '\n']), "{clear:?}");
                }
            }
        }
        // Return paths.
        let local = login::safe_local_path(&input.other);
        assert!(local == "/" || local == input.other);
        assert!(local.starts_with('/') && !local.starts_with("//") && !local.starts_with("/\\"));
        // Credential sources.
        for source in [
            Source::Header {
                name: "authorization".into(),
                prefix: Some("bearer ".into()),
            },
            Source::Header {
                name: "cookie".into(),
                prefix: None,
            },
            Source::Query("access_token".into()),
            Source::Cookie("at".into()),
        ] {
            if let Some(value) = sources::read(&headers, &source) {
                assert!(!value.is_empty());
            }
        }
        sources::remove_all(
            &host,
            &headers,
            &[Source::Query("access_token".into()), Source::Cookie("at".into())],
        );
        // Token-endpoint answers.
        host.answer_call(
            input.answer_status,
            &[("content-type", "application/json")],
            &input.answer,
        );
        if let Ok(answer) = exchange::read(&host, sso, input.answer.len()) {
            assert!(answer.token_type.eq_ignore_ascii_case("bearer"));
        }
    });
});
