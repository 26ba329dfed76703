//! The browser side of a request: session cookies checked and refreshed, logins started and
//! finished at the callback, logouts. Every failure answers (400/401/403/502/503), never passes.

use crate::keystore::{Pending, Progress};
use crate::native::ProxyCrypto;
use crate::sources::RequestHeaders;
use crate::sso::config::{Endpoints, Sso};
use crate::sso::exchange::{self, ExchangeError, TokenAnswer};
use crate::sso::leases::Lease;
use crate::sso::login::{self, form, CallbackError, LoginState};
use crate::sso::seal;
use crate::sso::session::{self, Session, SessionError};
use crate::stream::{RequestAction, Runtime};
use crate::token_cache::BoundedCache;
use crate::verify::{Rejection, Verified};
use kea_plugin_sdk::{Host, Problem};
use std::rc::Rc;
use std::time::UNIX_EPOCH;

/// A session this worker opened: the cookie's contents and what rules and headers read.
#[derive(Debug)]
pub struct OpenSession {
    /// The session; its claims live in `verified` (kept once).
    pub session: Session,
    /// The session's claims in the shape rules and claim headers expect.
    pub verified: Rc<Verified>,
    /// Hash of the session id, for `x-kea-session`.
    pub public_id: String,
}

impl OpenSession {
    pub fn new(mut session: Session) -> Self {
        let verified = Rc::new(Verified {
            claims: std::mem::take(&mut session.claims),
            payload: String::new(),
            expires_at: Some(session.exp),
            not_before: None,
        });
        let public_id = session.public_id();
        Self {
            session,
            verified,
            public_id,
        }
    }

    /// The whole session again (to seal it anew).
    pub fn to_session(&self) -> Session {
        Session {
            claims: self.verified.claims.clone(),
            ..self.session.clone()
        }
    }
}

/// Opened sessions by sealed cookie value: a repeated cookie costs a lookup, not a decryption.
/// Only single-cookie sessions are kept, so memory stays within entries × 4 KB plus claims.
pub type SessionCache = BoundedCache<Rc<str>, Rc<OpenSession>>;

/// Longest sealed session the cache keeps.
const CACHED_SEALED_BYTES: usize = 4096;

/// A callout a browser request waits for.
#[derive(Debug)]
pub enum SsoWait {
    /// The code grant at the callback.
    Code { login: LoginState, clear: String },
    /// A key-set refetch for an ID token naming an unknown `kid`, then the login finishes.
    CodeKeys {
        pending: Pending,
        login: LoginState,
        clear: String,
        answer: Box<TokenAnswer>,
    },
    /// A refresh-token grant for a session about to expire.
    Refresh {
        old: Rc<OpenSession>,
        names: Vec<String>,
    },
}

/// What the session check found, for the login decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SessionOutcome {
    #[default]
    NotChecked,
    Absent,
    Invalid,
    Valid,
}

/// Per-request single sign-on state.
#[derive(Debug, Default)]
pub struct SsoStream {
    /// `Set-Cookie` values for the upstream's response (a refreshed session).
    pub response_cookies: Vec<String>,
    /// The session after a refresh in this request; used instead of the cookie.
    pub refreshed: Option<Rc<OpenSession>>,
    pub refresh_tried: bool,
    /// The refresh failed because the provider could not be reached.
    pub refresh_unavailable: bool,
    /// `Set-Cookie` values clearing a rejected session.
    pub clear: Vec<String>,
    pub outcome: SessionOutcome,
    /// A stale refresh result was dropped from the shared slot (done at most once per request).
    pub dropped_stale_result: bool,
    /// The plugin's cookies in the request, once the session check has read them.
    pub cookie_names: Option<Vec<String>>,
}

/// What checking the session cookie found.
#[derive(Debug)]
pub enum SessionFound {
    Absent,
    Valid(Rc<OpenSession>),
    /// Rejected; the names are the cookies to clear.
    Invalid(Rejection, Vec<String>),
    /// Expired, and it cannot be refreshed right now (provider unreachable, or another request
    /// of the same session is refreshing it): retry shortly.
    Unavailable,
    Wait(u32, SsoWait),
}

pub fn now_secs(host: &impl Host) -> u64 {
    host.now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Configured endpoints, else the discovered ones (`None` until discovery answered).
pub fn endpoints(host: &impl Host, rt: &Runtime, sso: &Sso) -> Option<Endpoints> {
    sso.endpoints
        .clone()
        .or_else(|| rt.keystore.discovered_endpoints(host, sso.provider))
}

/// A problem+json answer that also sets `cookies`.
pub fn problem(
    host: &impl Host,
    status: u16,
    detail: &str,
    cookies: &[String],
    extra: &[(&str, &str)],
) -> RequestAction {
    let mut headers: Vec<(&str, &str)> = cookies.iter().map(|c| ("set-cookie", c.as_str())).collect();
    headers.extend_from_slice(extra);
    let _ = Problem::new(status).with_detail(detail).send(host, &headers);
    RequestAction::Answered
}

fn redirect(host: &impl Host, location: &str, cookies: &[String]) -> RequestAction {
    let mut headers: Vec<(&str, &str)> = vec![("location", location), ("cache-control", "no-store")];
    headers.extend(cookies.iter().map(|c| ("set-cookie", c.as_str())));
    let _ = host.send_local_reply(302, &headers, b"");
    RequestAction::Answered
}

/// 503 for a provider that cannot be reached (or whose endpoints are not known yet): fail closed.
fn unavailable(host: &impl Host, rt: &Runtime, cookies: &[String]) -> RequestAction {
    rt.metrics.unavailable.add(host, 1);
    problem(
        host,
        503,
        "the identity provider is not reachable; retry shortly",
        cookies,
        &[("retry-after", "5")],
    )
}

/// Whether an unauthenticated request is a browser navigation that should log in rather than
/// get a 401: a `GET`/`HEAD` to a login path, or one asking for HTML that is not a script's fetch.
pub fn is_navigation(sso: &Sso, headers: &RequestHeaders, path: &str) -> bool {
    let method = headers.get(":method").unwrap_or_default();
    if method != "GET" && method != "HEAD" {
        return false;
    }
    if sso.login_paths.iter().any(|p| path.starts_with(p.as_str())) {
        return true;
    }
    let mode = headers.get("sec-fetch-mode");
    let wants_html = headers
        .get("accept")
        .is_some_and(|a| a.to_ascii_lowercase().contains("text/html"));
    wants_html && mode.is_none_or(|m| m.eq_ignore_ascii_case("navigate"))
}

/// Checks the request's session cookie; starts a refresh when the tokens are about to expire.
pub fn check_session(
    host: &impl Host,
    rt: &Runtime,
    sso: &Sso,
    headers: &RequestHeaders,
    state: &mut SsoStream,
) -> SessionFound {
    let found = find_session(host, rt, sso, headers, state);
    state.outcome = match &found {
        SessionFound::Absent => SessionOutcome::Absent,
        SessionFound::Invalid(..) => SessionOutcome::Invalid,
        SessionFound::Valid(..) | SessionFound::Unavailable | SessionFound::Wait(..) => SessionOutcome::Valid,
    };
    found
}

fn find_session(
    host: &impl Host,
    rt: &Runtime,
    sso: &Sso,
    headers: &RequestHeaders,
    state: &mut SsoStream,
) -> SessionFound {
    let now = now_secs(host);
    let presented = session::presented(headers, &sso.cookie);
    state.cookie_names = Some(presented.all_names().cloned().collect());
    if let Some(open) = &state.refreshed {
        return if now < open.session.exp {
            SessionFound::Valid(Rc::clone(open))
        } else if state.refresh_unavailable {
            SessionFound::Unavailable
        } else {
            SessionFound::Invalid(Rejection::SessionEnded, presented.names)
        };
    }
    if presented.names.is_empty() {
        return SessionFound::Absent;
    }
    let mut rejection = Rejection::BadSession;
    let mut open = None;
    for sealed in &presented.candidates {
        match open_cached(rt, sso, sealed, now) {
            Ok(session) => {
                open = Some(session);
                break;
            }
            Err(SessionError::Ended) => rejection = Rejection::SessionEnded,
            Err(error) => log::info!("kea-auth: session cookie rejected: {error}"),
        }
    }
    let Some(open) = open else {
        return SessionFound::Invalid(rejection, presented.names);
    };
    if now >= open.session.end {
        return SessionFound::Invalid(Rejection::SessionEnded, presented.names);
    }
    let expired = now >= open.session.exp;
    let refresh_due = now.saturating_add(sso.refresh_before.as_secs()) >= open.session.exp;
    if refresh_due && open.session.rt.is_some() && !state.refresh_tried {
        state.refresh_tried = true;
        match start_refresh(host, rt, sso, &open) {
            Refresh::Started(call) => {
                return SessionFound::Wait(
                    call,
                    SsoWait::Refresh {
                        old: open,
                        names: presented.names,
                    },
                )
            }
            Refresh::Done(sealed) => {
                // Another request refreshed this session a moment ago: continue with its result,
                // if it is newer than what this request holds and still valid.
                match session::open(sso, &sealed, now) {
                    Ok(session) if session.exp > open.session.exp && now < session.exp => {
                        let fresh = Rc::new(OpenSession::new(session));
                        state.response_cookies = session::set_cookies(
                            sso,
                            &sealed,
                            session::max_age(&fresh.to_session(), now),
                            &presented.names,
                        )
                        .unwrap_or_default();
                        state.refreshed = Some(Rc::clone(&fresh));
                        return SessionFound::Valid(fresh);
                    }
                    // A stale result: forget it and refresh this session itself (once).
                    _ if !state.dropped_stale_result => {
                        state.dropped_stale_result = true;
                        rt.refresh_leases.finish(host, &open.session.sid, None, 0);
                        state.refresh_tried = false;
                        return find_session(host, rt, sso, headers, state);
                    }
                    _ if expired => return SessionFound::Unavailable,
                    _ => {}
                }
            }
            Refresh::Busy if expired => return SessionFound::Unavailable,
            Refresh::Busy | Refresh::NotPossible => {}
        }
    }
    if expired {
        return SessionFound::Invalid(Rejection::SessionEnded, presented.names);
    }
    SessionFound::Valid(open)
}

/// Opens a sealed session, through the worker's cache.
fn open_cached(rt: &Runtime, sso: &Sso, sealed: &str, now: u64) -> Result<Rc<OpenSession>, SessionError> {
    if let Some(open) = rt.sessions.borrow().get(sealed) {
        return Ok(open);
    }
    let open = Rc::new(OpenSession::new(session::open(sso, sealed, now)?));
    if sealed.len() <= CACHED_SEALED_BYTES {
        rt.sessions
            .borrow_mut()
            .insert(Rc::from(sealed), Rc::clone(&open));
    }
    Ok(open)
}

/// What starting a refresh did.
enum Refresh {
    Started(u32),
    /// Another request of this session is refreshing it.
    Busy,
    /// Another request refreshed it a moment ago: the sealed result.
    Done(String),
    /// No endpoints yet, or the callout could not start.
    NotPossible,
}

fn start_refresh(host: &impl Host, rt: &Runtime, sso: &Sso, open: &OpenSession) -> Refresh {
    let (Some(refresh_token), Some(endpoints)) = (open.session.rt.as_deref(), endpoints(host, rt, sso))
    else {
        return Refresh::NotPossible;
    };
    let now_ms = now_secs(host).saturating_mul(1000);
    let lease_ms = u64::try_from(rt.config.callout_timeout.as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1000);
    match rt
        .refresh_leases
        .take(host, &open.session.sid, now_ms, now_ms.saturating_add(lease_ms))
    {
        Lease::Taken => {}
        Lease::Busy => return Refresh::Busy,
        Lease::Refreshed(sealed) => return Refresh::Done(sealed),
    }
    let fields = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
    match exchange::call(host, sso, &endpoints.token, &fields, rt.config.callout_timeout) {
        Ok(call) => {
            rt.metrics.sso_refreshes.add(host, 1);
            Refresh::Started(call)
        }
        Err(err) => {
            log::warn!(
                "kea-auth: cannot call the token endpoint through cluster {:?}: {err}",
                sso.cluster
            );
            rt.refresh_leases.finish(host, &open.session.sid, None, 0);
            Refresh::NotPossible
        }
    }
}

/// How long a refresh's result is handed to requests that still carry the old cookie.
const REFRESH_RESULT_MS: u64 = 30_000;

/// The refresh answered: the request continues with the new session (cookies go on the
/// response), or with the old one while it is still valid.
pub fn on_refresh_answer(
    host: &impl Host,
    rt: &Runtime,
    sso: &Sso,
    state: &mut SsoStream,
    old: &Rc<OpenSession>,
    names: &[String],
    body_size: usize,
) {
    let now = now_secs(host);
    let result = exchange::read(host, sso, body_size).and_then(|answer| {
        let claims = match &answer.id_token {
            Some(id_token) => Some(verify_id_token(
                host,
                rt,
                sso,
                id_token,
                None,
                Some(&old.session.sub),
            )?),
            None => None,
        };
        Ok(exchange::refreshed(sso, &old.to_session(), &answer, claims, now))
    });
    let session = match result {
        Ok(session) => session,
        Err(ExchangeError::Unavailable(reason)) => {
            rt.metrics.sso_refresh_failures.add(host, 1);
            log::warn!("kea-auth: session refresh failed, provider unreachable: {reason}");
            rt.refresh_leases.finish(host, &old.session.sid, None, 0);
            state.refresh_unavailable = true;
            state.refreshed = Some(Rc::clone(old));
            return;
        }
        Err(error) => {
            // Refused, or an answer that does not verify: the grant is not usable. Keep the
            // session without its refresh token, so later requests do not retry, and let it end
            // at its expiry (then the browser logs in again).
            rt.metrics.sso_refresh_failures.add(host, 1);
            log::warn!("kea-auth: session refresh failed: {error}");
            let mut session = old.to_session();
            session.rt = None;
            session
        }
    };
    let sealed = session::seal_session(host, sso, &session);
    rt.refresh_leases.finish(
        host,
        &old.session.sid,
        sealed.as_deref(),
        now.saturating_mul(1000).saturating_add(REFRESH_RESULT_MS),
    );
    if let Some(cookies) = sealed
        .as_deref()
        .and_then(|sealed| session::set_cookies(sso, sealed, session::max_age(&session, now), names))
    {
        state.response_cookies = cookies;
    }
    state.refreshed = Some(Rc::new(OpenSession::new(session)));
}

fn verify_id_token(
    host: &impl Host,
    rt: &Runtime,
    sso: &Sso,
    id_token: &str,
    nonce: Option<&str>,
    subject: Option<&str>,
) -> Result<serde_json::Map<String, serde_json::Value>, ExchangeError> {
    if id_token.len() > rt.config.max_token_bytes {
        return Err(ExchangeError::IdToken("too_large"));
    }
    let mut keys = rt.keystore.keys(sso.provider);
    if keys.is_empty() {
        rt.keystore.sync(host, &rt.config, sso.provider);
        keys = rt.keystore.keys(sso.provider);
    }
    let native = ProxyCrypto {
        host,
        available: &rt.native_crypto,
    };
    let result = exchange::verify_id_token(sso, &keys, id_token, now_secs(host), &native, nonce, subject);
    if result == Err(ExchangeError::UnknownKey) && rt.keystore.sync(host, &rt.config, sso.provider) {
        keys = rt.keystore.keys(sso.provider);
        return exchange::verify_id_token(sso, &keys, id_token, now_secs(host), &native, nonce, subject);
    }
    result
}

/// An unauthenticated browser navigation: off to the provider, coming back here.
pub fn start_login(
    host: &impl Host,
    rt: &Runtime,
    sso: &Sso,
    headers: &RequestHeaders,
    clear: &[String],
) -> RequestAction {
    let Some(endpoints) = endpoints(host, rt, sso) else {
        return unavailable(host, rt, clear);
    };
    let Some(started) = login::start(host, sso, &endpoints, headers, now_secs(host)) else {
        return problem(host, 500, "cannot start a login", clear, &[]);
    };
    rt.metrics.sso_logins_started.add(host, 1);
    let mut cookies = clear.to_vec();
    cookies.push(started.set_cookie);
    redirect(host, &started.location, &cookies)
}

/// The provider sent the browser back: check the state, then exchange the code.
pub fn on_callback(
    host: &impl Host,
    rt: &Runtime,
    sso: &Sso,
    headers: &RequestHeaders,
) -> (RequestAction, Option<(u32, SsoWait)>) {
    let callback = match login::callback(sso, headers, now_secs(host)) {
        Ok(callback) => callback,
        Err((error, clear)) => {
            rt.metrics.sso_login_failures.add(host, 1);
            log::info!("kea-auth: login callback refused: {error}");
            let status = if matches!(error, CallbackError::Provider(_)) {
                403
            } else {
                400
            };
            let cookies: Vec<String> = clear.into_iter().collect();
            return (problem(host, status, &error.to_string(), &cookies, &[]), None);
        }
    };
    let clear = [callback.clear_cookie.clone()];
    let Some(endpoints) = endpoints(host, rt, sso) else {
        return (unavailable(host, rt, &clear), None);
    };
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", callback.code.as_str()),
        ("redirect_uri", callback.login.redirect_uri.as_str()),
        ("code_verifier", callback.login.verifier.as_str()),
    ];
    match exchange::call(host, sso, &endpoints.token, &fields, rt.config.callout_timeout) {
        Ok(call) => (
            RequestAction::Wait,
            Some((
                call,
                SsoWait::Code {
                    login: callback.login,
                    clear: callback.clear_cookie,
                },
            )),
        ),
        Err(err) => {
            log::warn!(
                "kea-auth: cannot call the token endpoint through cluster {:?}: {err}",
                sso.cluster
            );
            (unavailable(host, rt, &clear), None)
        }
    }
}

/// The token endpoint answered the code grant.
pub fn on_code_answer(
    host: &impl Host,
    rt: &Runtime,
    sso: &Sso,
    login: LoginState,
    clear: String,
    body_size: usize,
) -> (RequestAction, Option<(u32, SsoWait)>) {
    match exchange::read(host, sso, body_size) {
        Ok(answer) => finish_login(host, rt, sso, answer, login, clear, true),
        Err(error) => (login_failed(host, rt, &error, &clear), None),
    }
}

/// A key-set refetch for the ID token's `kid` answered.
pub fn on_code_keys_answer(
    host: &impl Host,
    rt: &Runtime,
    sso: &Sso,
    wait: SsoWait,
    body_size: usize,
) -> (RequestAction, Option<(u32, SsoWait)>) {
    let SsoWait::CodeKeys {
        pending,
        login,
        clear,
        answer,
    } = wait
    else {
        return (RequestAction::Wait, None);
    };
    match rt
        .keystore
        .on_answer(host, &rt.config, &rt.metrics, pending, body_size)
    {
        Progress::Next(next, pending) => (
            RequestAction::Wait,
            Some((
                next,
                SsoWait::CodeKeys {
                    pending,
                    login,
                    clear,
                    answer,
                },
            )),
        ),
        Progress::Updated => finish_login(host, rt, sso, *answer, login, clear, false),
        // The key set could not be fetched: fail closed with 503, the ID token may be fine.
        Progress::Failed => (
            login_failed(
                host,
                rt,
                &ExchangeError::Unavailable("the provider's key set could not be fetched".into()),
                &clear,
            ),
            None,
        ),
    }
}

fn login_failed(host: &impl Host, rt: &Runtime, error: &ExchangeError, clear: &str) -> RequestAction {
    rt.metrics.sso_login_failures.add(host, 1);
    log::warn!("kea-auth: login failed: {error}");
    let clear = [clear.to_owned()];
    match error {
        ExchangeError::Unavailable(_) => unavailable(host, rt, &clear),
        ExchangeError::Refused(_) => problem(
            host,
            400,
            "the identity provider refused the authorization code (used already or expired); sign in again",
            &clear,
            &[],
        ),
        ExchangeError::Invalid(_) => problem(
            host,
            502,
            "the identity provider's token answer is invalid",
            &clear,
            &[],
        ),
        ExchangeError::IdToken(_) | ExchangeError::UnknownKey => {
            problem(host, 401, &error.to_string(), &clear, &[])
        }
    }
}

fn finish_login(
    host: &impl Host,
    rt: &Runtime,
    sso: &Sso,
    answer: TokenAnswer,
    login: LoginState,
    clear: String,
    may_refetch: bool,
) -> (RequestAction, Option<(u32, SsoWait)>) {
    let Some(id_token) = answer.id_token.clone() else {
        return (
            login_failed(host, rt, &ExchangeError::Invalid("no id_token".into()), &clear),
            None,
        );
    };
    if rt.keystore.keys(sso.provider).is_empty() && !rt.keystore.sync(host, &rt.config, sso.provider) {
        return (
            login_failed(
                host,
                rt,
                &ExchangeError::Unavailable("no signing keys yet".into()),
                &clear,
            ),
            None,
        );
    }
    let claims = match verify_id_token(host, rt, sso, &id_token, Some(&login.nonce), None) {
        Ok(claims) => claims,
        Err(ExchangeError::UnknownKey) if may_refetch => {
            if let Some((call, pending)) =
                rt.keystore
                    .refetch_for_unknown_kid(host, &rt.config, &rt.metrics, sso.provider)
            {
                return (
                    RequestAction::Wait,
                    Some((
                        call,
                        SsoWait::CodeKeys {
                            pending,
                            login,
                            clear,
                            answer: Box::new(answer),
                        },
                    )),
                );
            }
            return (login_failed(host, rt, &ExchangeError::UnknownKey, &clear), None);
        }
        Err(error) => return (login_failed(host, rt, &error, &clear), None),
    };
    let now = now_secs(host);
    let Some(sid) = seal::random_text(host, 16) else {
        return (problem(host, 500, "cannot create a session", &[clear], &[]), None);
    };
    let session = exchange::new_session(sso, sid, &answer, claims, now);
    let previous = session::presented(&RequestHeaders::read(host), &sso.cookie).names;
    let Some(mut cookies) = session::cookies_for(host, sso, &session, now, &previous) else {
        return (
            problem(
                host,
                500,
                "the session is too large for its cookies",
                &[clear],
                &[],
            ),
            None,
        );
    };
    cookies.push(clear);
    rt.metrics.sso_logins_completed.add(host, 1);
    log::info!("kea-auth: session {} started", session.public_id());
    (redirect(host, &login.return_to, &cookies), None)
}

/// Clears the session and sends the browser to the provider's logout (RP-initiated logout).
pub fn on_logout(host: &impl Host, rt: &Runtime, sso: &Sso, headers: &RequestHeaders) -> RequestAction {
    // A cross-site page must not log users out (logout CSRF); links from the gateway's own
    // pages, sibling subdomains, typed URLs and clients without fetch metadata may.
    if headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.eq_ignore_ascii_case("cross-site"))
    {
        return problem(host, 403, "logout must start from this site", &[], &[]);
    }
    let presented = session::presented(headers, &sso.cookie);
    let cookies = session::clearing(sso, &presented.names);
    rt.metrics.sso_logouts.add(host, 1);
    let end_session = endpoints(host, rt, sso).and_then(|e| e.end_session);
    match (end_session, &sso.post_logout_redirect_uri) {
        (Some(end_session), post_logout) => {
            let mut pairs = vec![("client_id", sso.client_id.as_str())];
            if let Some(uri) = post_logout {
                pairs.push(("post_logout_redirect_uri", uri.as_str()));
            }
            let separator = if end_session.contains('?') { '&' } else { '?' };
            redirect(
                host,
                &format!("{end_session}{separator}{}", form(&pairs)),
                &cookies,
            )
        }
        (None, Some(uri)) => redirect(host, uri, &cookies),
        (None, None) => {
            let mut headers: Vec<(&str, &str)> = vec![
                ("content-type", "text/plain; charset=utf-8"),
                ("cache-control", "no-store"),
            ];
            headers.extend(cookies.iter().map(|c| ("set-cookie", c.as_str())));
            let _ = host.send_local_reply(200, &headers, b"signed out\n");
            RequestAction::Answered
        }
    }
}
