//! Per-request decisions: which rule applies, which credentials the request carries, whether they
//! verify, whether they grant what the rule asks; then the identity headers for the upstream or
//! the error reply.

use crate::claims::{claim_header_value, scopes_of};
use crate::config::{Compiled, Credential, Needs, Policy};
use crate::keystore::{Keystore, Pending, Progress};
use crate::metrics::AuthMetrics;
use crate::native::ProxyCrypto;
use crate::sources;
use crate::sources::RequestHeaders;
use crate::sso::flow::{self, SessionCache, SessionFound, SessionOutcome, SsoStream, SsoWait};
use crate::sso::leases::RefreshLeases;
use crate::token_cache::{self, Entry, TokenCache};
use crate::verify::{self, Rejection, Verified};
use kea_plugin_sdk::host::route_name;
use kea_plugin_sdk::matcher::split_path;
use kea_plugin_sdk::{identity, HeaderMap, Host, Phase, Problem, RequestView};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::UNIX_EPOCH;

/// Everything the contexts of one worker share.
#[derive(Debug)]
pub struct Runtime {
    pub config: Compiled,
    pub keystore: Keystore,
    pub token_cache: RefCell<TokenCache>,
    pub metrics: AuthMetrics,
    /// Whether the proxy's `verify_signature` can be used (cleared the first time it is missing).
    pub native_crypto: Cell<bool>,
    /// Browser sessions this worker opened.
    pub sessions: RefCell<SessionCache>,
    pub refresh_leases: RefreshLeases,
}

/// What the adapter does after the request headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestAction {
    Continue,
    /// A local reply was sent.
    Answered,
    /// Paused until a JWKS callout (a refetch for an unknown `kid`) answers.
    Wait,
}

/// Who a verified credential says the caller is.
#[derive(Debug, Clone, Default)]
struct Identity {
    subject: Option<String>,
    issuer: Option<String>,
    client: Option<String>,
    scopes: Vec<String>,
    token: Option<Rc<Verified>>,
    /// Index of the provider that verified the token.
    provider: Option<usize>,
    /// Public id of the browser session that authenticated the request.
    session: Option<String>,
    /// Access token of that session, when it is forwarded.
    access_token: Option<String>,
}

/// What checking one credential found.
#[derive(Debug)]
enum Found {
    /// The request does not carry it.
    Absent,
    /// A token is present but names another issuer.
    Foreign,
    Valid(Identity, Vec<crate::config::Source>),
    Invalid(Rejection),
    /// The provider's keys are not available yet: fail closed, retry later.
    Unavailable,
    /// A callout started (a refetch for an unknown `kid`, a session refresh); wait for it.
    Wait(u32, Waiting),
}

/// What a paused request waits for.
#[derive(Debug)]
pub enum Waiting {
    Keys(Pending),
    Sso(SsoWait),
}

/// The decision for the request.
#[derive(Debug)]
enum Decision {
    Allow(Vec<Identity>, Vec<crate::config::Source>),
    Anonymous,
    Missing,
    Invalid(Rejection),
    Forbidden { scopes: bool },
    Unavailable,
    Wait(u32, Waiting),
}

#[derive(Debug, Default)]
pub struct AuthStream {
    waiting: Option<(u32, Waiting)>,
    sso: SsoStream,
}

fn now_secs(host: &impl Host) -> u64 {
    host.now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl AuthStream {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn on_request_headers(&mut self, host: &impl Host, rt: &Runtime) -> RequestAction {
        let _phase = Phase::enter("auth.request_headers");
        let headers = RequestHeaders::read(host);
        strip_client_identity(host, &headers, &rt.config);
        self.decide(host, rt, &headers, true)
    }

    /// Whether the request waits for a callout (key refetch, token exchange, session refresh).
    pub fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// The stream ended; a refetch it was waiting for is handed to the root context's tick.
    pub fn on_done(&mut self, host: &impl Host, rt: &Runtime) {
        match self.waiting.take() {
            Some((_, Waiting::Keys(pending) | Waiting::Sso(SsoWait::CodeKeys { pending, .. }))) => {
                rt.keystore.abandon(host, pending);
            }
            Some((_, Waiting::Sso(SsoWait::Refresh { old, .. }))) => {
                rt.refresh_leases.finish(host, &old.session.sid, None, 0);
            }
            Some((_, Waiting::Sso(SsoWait::Code { .. }))) | None => {}
        }
    }

    /// Response headers: a session refreshed during the request goes back to the browser.
    pub fn on_response_headers(&mut self, host: &impl Host) {
        for cookie in self.sso.response_cookies.drain(..) {
            host.add_header(HeaderMap::ResponseHeaders, "set-cookie", cookie.as_bytes());
        }
    }

    /// A callout this request waits for answered.
    pub fn on_call_answer(
        &mut self,
        host: &impl Host,
        rt: &Runtime,
        token: u32,
        body_size: usize,
    ) -> RequestAction {
        let _phase = Phase::enter("auth.call_answer");
        let Some((expected, waiting)) = self.waiting.take() else {
            return RequestAction::Wait;
        };
        if token != expected {
            self.waiting = Some((expected, waiting));
            return RequestAction::Wait;
        }
        let sso = rt.config.sso.as_ref();
        match (waiting, sso) {
            (Waiting::Keys(pending), _) => {
                match rt
                    .keystore
                    .on_answer(host, &rt.config, &rt.metrics, pending, body_size)
                {
                    Progress::Next(next, pending) => {
                        self.waiting = Some((next, Waiting::Keys(pending)));
                        RequestAction::Wait
                    }
                    Progress::Updated | Progress::Failed => {
                        self.decide(host, rt, &RequestHeaders::read(host), false)
                    }
                }
            }
            (Waiting::Sso(SsoWait::Refresh { old, names }), Some(sso)) => {
                flow::on_refresh_answer(host, rt, sso, &mut self.sso, &old, &names, body_size);
                self.decide(host, rt, &RequestHeaders::read(host), false)
            }
            (Waiting::Sso(SsoWait::Code { login, clear }), Some(sso)) => {
                let (action, next) = flow::on_code_answer(host, rt, sso, login, clear, body_size);
                self.wait_for(action, next)
            }
            (Waiting::Sso(wait @ SsoWait::CodeKeys { .. }), Some(sso)) => {
                let (action, next) = flow::on_code_keys_answer(host, rt, sso, wait, body_size);
                self.wait_for(action, next)
            }
            (Waiting::Sso(_), None) => flow::problem(host, 500, "single sign-on is not configured", &[], &[]),
        }
    }

    fn wait_for(&mut self, action: RequestAction, next: Option<(u32, SsoWait)>) -> RequestAction {
        if let Some((call, wait)) = next {
            self.waiting = Some((call, Waiting::Sso(wait)));
        }
        action
    }

    fn decide(
        &mut self,
        host: &impl Host,
        rt: &Runtime,
        headers: &RequestHeaders,
        may_refetch: bool,
    ) -> RequestAction {
        let path = headers.get(":path").unwrap_or_default();
        let authority = headers.get(":authority").unwrap_or_default();
        let method = headers.get(":method").unwrap_or_default();
        let route = if rt.config.rules.needs_route_name() || rt.config.splits.needs_route_name() {
            route_name(host)
        } else {
            None
        };
        let view = RequestView {
            authority: &authority,
            path: split_path(&path).0,
            method: &method,
            route_name: route.as_deref(),
        };
        if let Some(sso) = &rt.config.sso {
            if view.path == sso.callback_path {
                let (action, next) = flow::on_callback(host, rt, sso, headers);
                return self.wait_for(action, next);
            }
            if view.path == sso.logout_path {
                return flow::on_logout(host, rt, sso, headers);
            }
        }
        if rt.config.path_rules && is_ambiguous(view.path) {
            // The upstream may resolve such a path to one a rule protects (`/public/../admin`,
            // `//admin`, `/admin;x`), while it matches no rule here: refuse it.
            rt.metrics.rejected_paths.add(host, 1);
            let problem = Problem::new(400).with_detail(
                "the request path has dot-segments, encoded separators, empty segments or parameters",
            );
            let _ = problem.send(host, &[]);
            return RequestAction::Answered;
        }
        let policy = Rc::clone(rt.config.policy_for(&view));
        let decision = decide(host, rt, headers, &policy, may_refetch, &mut self.sso);
        log::debug!("kea-auth: {method} {} -> {decision:?}", view.path);
        let metrics = &rt.metrics;
        let config = &rt.config;
        if let Some(sso) = &config.sso {
            let wants_login = match decision {
                Decision::Missing => true,
                Decision::Invalid(rejection) => rejection.is_session(),
                _ => false,
            };
            // Only when the session itself is what is missing: a valid session that lacks another
            // credential (`allOf`) would come straight back from the provider, in a loop.
            let session_lacking =
                matches!(self.sso.outcome, SessionOutcome::Absent | SessionOutcome::Invalid);
            if wants_login
                && session_lacking
                && policy.needs.credentials().contains(&Credential::Session)
                && flow::is_navigation(sso, headers, view.path)
            {
                let clear = std::mem::take(&mut self.sso.clear);
                return flow::start_login(host, rt, sso, headers, &clear);
            }
        }
        // Cookies to set on a local reply: a refreshed session, or clearing a rejected one.
        let cookies: Vec<String> = self
            .sso
            .clear
            .iter()
            .chain(&self.sso.response_cookies)
            .cloned()
            .collect();
        let cookie_headers: Vec<(&str, &str)> = cookies.iter().map(|c| ("set-cookie", c.as_str())).collect();
        fn with<'a>(extra: &[(&'a str, &'a str)], cookies: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
            extra.iter().chain(cookies).copied().collect()
        }
        match decision {
            Decision::Allow(identities, mut remove) => {
                metrics.allowed.add(host, 1);
                remove.extend(sso_cookies(headers, config, &self.sso));
                forward(host, headers, config, &identities, &remove);
                let subject = principal(&identities).and_then(|i| i.subject.as_deref());
                mark_split(host, rt, &view, subject, headers);
                RequestAction::Continue
            }
            Decision::Anonymous => {
                metrics.anonymous.add(host, 1);
                let remove = sso_cookies(headers, config, &self.sso);
                if !remove.is_empty() {
                    sources::remove_all(host, headers, &remove);
                }
                mark_split(host, rt, &view, None, headers);
                RequestAction::Continue
            }
            Decision::Wait(token, waiting) => {
                self.waiting = Some((token, waiting));
                RequestAction::Wait
            }
            Decision::Missing => {
                metrics.denied_missing.add(host, 1);
                let challenge = challenges(config, &policy, None);
                let problem = Problem::new(401).with_detail("credentials are required");
                let _ = problem.send(host, &with(&[("www-authenticate", &challenge)], &cookie_headers));
                RequestAction::Answered
            }
            Decision::Invalid(rejection) => {
                if rejection == Rejection::Expired {
                    metrics.denied_expired.add(host, 1);
                } else {
                    metrics.denied_invalid.add(host, 1);
                }
                log::info!(
                    "kea-auth: {method} {}: credential rejected ({})",
                    view.path,
                    rejection.code()
                );
                let description = rejection.to_string();
                // RFC 6750 error attributes belong to the Bearer scheme: only for tokens.
                let error = (rejection != Rejection::UnknownApiKey && !rejection.is_session())
                    .then(|| format!("error=\"invalid_token\", error_description=\"{description}\""));
                let challenge = challenges(config, &policy, error);
                let problem = Problem::new(401).with_detail(description);
                let _ = problem.send(host, &with(&[("www-authenticate", &challenge)], &cookie_headers));
                RequestAction::Answered
            }
            Decision::Forbidden { scopes } => {
                metrics.denied_forbidden.add(host, 1);
                let problem = Problem::new(403);
                let _ = if scopes {
                    let challenge = format!(
                        "Bearer realm=\"{}\", error=\"insufficient_scope\", scope=\"{}\"",
                        config.realm,
                        policy.scopes.join(" ")
                    );
                    problem
                        .with_detail("the credentials do not grant the required scopes")
                        .send(host, &with(&[("www-authenticate", &challenge)], &cookie_headers))
                } else {
                    problem
                        .with_detail("the credentials do not grant access to this resource")
                        .send(host, &with(&[], &cookie_headers))
                };
                RequestAction::Answered
            }
            Decision::Unavailable => {
                metrics.unavailable.add(host, 1);
                let problem = Problem::new(503).with_detail(
                    "the identity provider's keys or endpoints are not available; retry shortly",
                );
                let _ = problem.send(host, &with(&[("retry-after", "5")], &cookie_headers));
                RequestAction::Answered
            }
        }
    }
}

/// The split stage runs on requests the decision lets through (also after a paused request's
/// callout answered), once the identity headers are set: sticky splits use the verified principal.
fn mark_split(
    host: &impl Host,
    rt: &Runtime,
    view: &RequestView<'_>,
    principal: Option<&str>,
    headers: &RequestHeaders,
) {
    if rt.config.splits.is_empty() {
        return;
    }
    let request = crate::split::stage::Request {
        view,
        principal,
        headers,
        forwarded_headers: &rt.config.forwarded_headers,
    };
    crate::split::stage::mark(host, &rt.config.splits, &rt.metrics, &request);
}

/// The credential whose subject is the principal: the token when one verified, else the first.
fn principal(identities: &[Identity]) -> Option<&Identity> {
    identities
        .iter()
        .find(|i| i.token.is_some())
        .or(identities.first())
}

/// `WWW-Authenticate` value: a `Bearer` challenge when the rule accepts tokens, an `ApiKey` one
/// when it accepts API keys (RFC 9110 11.6.1 requires at least one challenge on a 401).
fn challenges(config: &Compiled, policy: &Policy, error: Option<String>) -> String {
    let wants_tokens = policy
        .needs
        .credentials()
        .iter()
        .any(|c| matches!(c, Credential::Provider(_)));
    let wants_keys = policy
        .needs
        .credentials()
        .iter()
        .any(|c| matches!(c, Credential::ApiKeys(_)));
    let mut parts = Vec::new();
    if wants_tokens || !wants_keys {
        let mut bearer = format!("Bearer realm=\"{}\"", config.realm);
        if let Some(error) = &error {
            bearer.push_str(", ");
            bearer.push_str(error);
        }
        parts.push(bearer);
    }
    if wants_keys {
        parts.push(format!("ApiKey realm=\"{}\"", config.realm));
    }
    parts.join(", ")
}

/// The session and login cookies of a request: bearer secrets the upstream never needs, whatever
/// credential the route took. Read by the session check when it ran, else parsed here.
fn sso_cookies(headers: &RequestHeaders, config: &Compiled, state: &SsoStream) -> Vec<crate::config::Source> {
    let Some(sso) = &config.sso else {
        return Vec::new();
    };
    let names = match &state.cookie_names {
        Some(names) => names.clone(),
        // Most API requests carry no such cookie: skip the parse for them.
        None if !headers.contains_in("cookie", &sso.cookie.name) => return Vec::new(),
        None => crate::sso::session::presented(headers, &sso.cookie)
            .all_names()
            .cloned()
            .collect(),
    };
    names.into_iter().map(crate::config::Source::Cookie).collect()
}

/// Removes client-sent headers that only the plugin may set, also when spelled with
/// underscores (`x_kea_sub`): CGI-style upstreams map both spellings to one variable.
fn strip_client_identity(host: &impl Host, headers: &RequestHeaders, config: &Compiled) {
    for name in headers.names() {
        let reserved = identity::is_kea_header(name)
            || config
                .forwarded_headers
                .iter()
                .any(|h| identity::same_header_name(name, h));
        if reserved {
            host.set_header(HeaderMap::RequestHeaders, name, None);
        }
    }
}

/// Paths an upstream may resolve differently from how rules see them.
fn is_ambiguous(path: &str) -> bool {
    kea_plugin_sdk::matcher::is_ambiguous_path(path) || path.contains("//") || path.contains(';')
}

fn decide(
    host: &impl Host,
    rt: &Runtime,
    headers: &RequestHeaders,
    policy: &Policy,
    may_refetch: bool,
    sso: &mut SsoStream,
) -> Decision {
    let credentials = policy.needs.credentials();
    let mut valid = Vec::new();
    let mut remove = Vec::new();
    let mut invalid = None;
    let mut foreign = false;
    let mut unavailable = false;
    let mut absent = 0usize;
    for credential in credentials {
        let found = match *credential {
            Credential::Provider(index) => check_token(host, rt, headers, index, may_refetch),
            Credential::ApiKeys(index) => check_api_key(rt, headers, index),
            Credential::Session => check_session(host, rt, headers, sso),
        };
        match found {
            Found::Valid(identity, sources) => {
                valid.push(identity);
                remove.extend(sources);
                if matches!(policy.needs, Needs::AnyOf(_)) {
                    break;
                }
            }
            Found::Wait(token, waiting) => return Decision::Wait(token, waiting),
            Found::Absent => absent += 1,
            Found::Foreign => foreign = true,
            Found::Invalid(rejection) => {
                invalid.get_or_insert(rejection);
            }
            Found::Unavailable => unavailable = true,
        }
    }
    let satisfied = match &policy.needs {
        Needs::AnyOf(_) => !valid.is_empty(),
        Needs::AllOf(all) => valid.len() == all.len(),
    };
    if !satisfied {
        // A token that may be valid but cannot be checked yet: fail closed with 503.
        if unavailable {
            return Decision::Unavailable;
        }
        if let Some(rejection) = invalid {
            return Decision::Invalid(rejection);
        }
        if foreign {
            return Decision::Invalid(Rejection::WrongIssuer);
        }
        if policy.allow_anonymous && valid.is_empty() && absent == credentials.len() {
            return Decision::Anonymous;
        }
        return Decision::Missing;
    }
    let granted: Vec<&String> = valid.iter().flat_map(|i| i.scopes.iter()).collect();
    if !policy.scopes.iter().all(|needed| granted.contains(&needed)) {
        return Decision::Forbidden { scopes: true };
    }
    if !policy.claims.is_empty() {
        let holds = policy.claims.iter().all(|matcher| {
            valid
                .iter()
                .filter_map(|i| i.token.as_ref())
                .any(|token| matcher.holds(&token.claims))
        });
        if !holds {
            return Decision::Forbidden { scopes: false };
        }
    }
    Decision::Allow(valid, remove)
}

fn check_token(
    host: &impl Host,
    rt: &Runtime,
    headers: &RequestHeaders,
    index: usize,
    may_refetch: bool,
) -> Found {
    let config = &rt.config;
    let Some(provider) = config.providers.get(index) else {
        return Found::Absent;
    };
    let mut result = Found::Absent;
    for source in &provider.sources {
        let Some(token) = sources::read(headers, source) else {
            continue;
        };
        if token.len() > config.max_token_bytes {
            return Found::Invalid(Rejection::TooLarge);
        }
        let now = now_secs(host);
        let digest = token_cache::key(index, &token);
        let cached = rt
            .token_cache
            .borrow_mut()
            .current(&digest, rt.keystore.generation());
        if let Some(entry) = cached {
            rt.metrics.token_cache_hits.add(host, 1);
            return match verify::still_valid(&entry.verified, provider.clock_skew, now) {
                Ok(()) => Found::Valid(
                    identity_of(index, provider, entry.verified),
                    removal(provider, source),
                ),
                Err(rejection) => {
                    rt.token_cache.borrow_mut().remove(&digest);
                    Found::Invalid(rejection)
                }
            };
        }
        let header = match verify::header(&token) {
            Ok(header) => header,
            Err(rejection) => return Found::Invalid(rejection),
        };
        // Several providers may read the same header: a token belongs to the one it names.
        if verify::unverified_issuer(&token).as_deref() != Some(provider.issuer.as_str()) {
            result = Found::Foreign;
            continue;
        }
        rt.metrics.token_cache_misses.add(host, 1);
        let mut keys = rt.keystore.keys(index);
        if provider.keys.is_fetched() && keys.is_empty() {
            rt.keystore.sync(host, config, index);
            keys = rt.keystore.keys(index);
            if keys.is_empty() && !header.alg.is_hmac() {
                return Found::Unavailable;
            }
        }
        let native = ProxyCrypto {
            host,
            available: &rt.native_crypto,
        };
        let mut outcome = verify::verify(provider, &keys, &token, &header, now, &native);
        if outcome == Err(Rejection::UnknownKey) && provider.keys.is_fetched() {
            // Another worker may have fetched newer keys already.
            if rt.keystore.sync(host, config, index) {
                keys = rt.keystore.keys(index);
                outcome = verify::verify(provider, &keys, &token, &header, now, &native);
            }
            if outcome == Err(Rejection::UnknownKey) && may_refetch {
                if let Some((call, pending)) =
                    rt.keystore
                        .refetch_for_unknown_kid(host, config, &rt.metrics, index)
                {
                    return Found::Wait(call, Waiting::Keys(pending));
                }
            }
        }
        return match outcome {
            Ok(verified) => {
                let verified = Rc::new(verified);
                rt.token_cache.borrow_mut().insert(
                    digest,
                    Entry {
                        verified: Rc::clone(&verified),
                        generation: rt.keystore.generation(),
                    },
                );
                Found::Valid(identity_of(index, provider, verified), removal(provider, source))
            }
            Err(rejection) => Found::Invalid(rejection),
        };
    }
    result
}

fn removal(provider: &crate::config::Provider, source: &crate::config::Source) -> Vec<crate::config::Source> {
    if provider.forward_token {
        Vec::new()
    } else {
        vec![source.clone()]
    }
}

fn identity_of(index: usize, provider: &crate::config::Provider, verified: Rc<Verified>) -> Identity {
    Identity {
        subject: verified
            .claims
            .get("sub")
            .and_then(|s| s.as_str())
            .map(str::to_owned),
        issuer: Some(provider.issuer.clone()),
        client: None,
        scopes: scopes_of(&verified.claims),
        token: Some(verified),
        provider: Some(index),
        ..Identity::default()
    }
}

fn check_session(host: &impl Host, rt: &Runtime, headers: &RequestHeaders, state: &mut SsoStream) -> Found {
    let Some(sso) = &rt.config.sso else {
        return Found::Absent;
    };
    match flow::check_session(host, rt, sso, headers, state) {
        SessionFound::Absent => Found::Absent,
        SessionFound::Unavailable => Found::Unavailable,
        SessionFound::Wait(call, wait) => Found::Wait(call, Waiting::Sso(wait)),
        SessionFound::Invalid(rejection, names) => {
            state.clear = crate::sso::session::clearing(sso, &names);
            Found::Invalid(rejection)
        }
        SessionFound::Valid(open) => {
            let session = &open.session;
            let identity = Identity {
                subject: Some(session.sub.clone()),
                issuer: rt.config.providers.get(sso.provider).map(|p| p.issuer.clone()),
                client: None,
                scopes: session.scope.split_whitespace().map(str::to_owned).collect(),
                token: Some(Rc::clone(&open.verified)),
                provider: Some(sso.provider),
                session: Some(open.public_id.clone()),
                access_token: session.at.clone(),
            };
            // The cookies are removed with the plugin's other cookies (`sso_cookies`).
            Found::Valid(identity, Vec::new())
        }
    }
}

fn check_api_key(rt: &Runtime, headers: &RequestHeaders, index: usize) -> Found {
    let Some(set) = rt.config.api_keys.get(index) else {
        return Found::Absent;
    };
    for source in &set.sources {
        let Some(key) = sources::read(headers, source) else {
            continue;
        };
        if key.len() > rt.config.max_token_bytes {
            return Found::Invalid(Rejection::TooLarge);
        }
        let digest = token_cache::digest(&key);
        return match set.keys.get(&digest) {
            Some(client) => Found::Valid(
                Identity {
                    subject: Some(client.client.clone()),
                    client: Some(client.client.clone()),
                    scopes: client.scopes.clone(),
                    ..Identity::default()
                },
                if set.forward_key {
                    Vec::new()
                } else {
                    vec![source.clone()]
                },
            ),
            None => Found::Invalid(Rejection::UnknownApiKey),
        };
    }
    Found::Absent
}

/// Sets the identity headers from verified credentials and removes consumed credentials.
fn forward(
    host: &impl Host,
    headers: &RequestHeaders,
    config: &Compiled,
    identities: &[Identity],
    remove: &[crate::config::Source],
) {
    sources::remove_all(host, headers, remove);
    let set =
        |name: &str, value: &str| host.set_header(HeaderMap::RequestHeaders, name, Some(value.as_bytes()));
    // Subject and issuer come from one credential: the token when there is one, else the key.
    let principal = principal(identities);
    if let Some(subject) = principal.and_then(|i| i.subject.as_deref()) {
        set(identity::SUBJECT, subject);
    }
    let token = principal.filter(|i| i.token.is_some());
    if let Some(issuer) = token.and_then(|i| i.issuer.as_deref()) {
        set(identity::ISSUER, issuer);
    }
    if let Some(client) = identities.iter().find_map(|i| i.client.as_deref()) {
        set(identity::CLIENT, client);
    }
    let mut scopes: Vec<&str> = identities
        .iter()
        .flat_map(|i| i.scopes.iter().map(String::as_str))
        .collect();
    scopes.sort_unstable();
    scopes.dedup();
    if !scopes.is_empty() {
        set(identity::SCOPES, &scopes.join(" "));
    }
    for identity in identities {
        let (Some(verified), Some(provider)) = (
            &identity.token,
            identity.provider.and_then(|i| config.providers.get(i)),
        ) else {
            continue;
        };
        for (path, header) in &provider.claim_headers {
            if let Some(value) = path.lookup(&verified.claims) {
                set(header, &header_safe(&claim_header_value(value)));
            }
        }
        if let Some(header) = provider
            .payload_header
            .as_ref()
            .filter(|_| !verified.payload.is_empty())
        {
            set(header, &verified.payload);
        }
    }
    if let Some(session) = identities.iter().find_map(|i| i.session.as_deref()) {
        set(identity::SESSION, session);
    }
    if let Some(token) = identities.iter().find_map(|i| i.access_token.as_deref()) {
        set("authorization", &format!("Bearer {token}"));
    }
}

/// Header values cannot carry control characters; a claim holding them is sent with them replaced.
fn header_safe(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
