//! A small blocking HTTP client for tests: every status is a response, not an error.

use anyhow::Result;
use std::time::Duration;

/// A response reduced to what tests look at.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// Reads a ureq outcome: any status is a response; only transport failures are errors. Every
    /// value of a repeated header is kept (e.g. several `Set-Cookie`).
    pub fn from_ureq(result: Result<ureq::Response, ureq::Error>) -> Result<Self> {
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(err) => return Err(err.into()),
        };
        let status = response.status();
        let mut names = response.headers_names();
        // A name repeats once per header line; `all` already returns every line's value.
        names.sort();
        names.dedup();
        let headers = names
            .into_iter()
            .flat_map(|name| {
                response
                    .all(&name)
                    .into_iter()
                    .map(|v| (name.clone(), v.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let body = response.into_string()?;
        Ok(Self {
            status,
            headers,
            body,
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .redirects(0)
        .build()
}

/// Sends a request; `headers` as pairs, optional body.
pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Result<Response> {
    send_on(&agent(), method, url, headers, body)
}

/// Sends a request with `agent`, whose kept-alive connection it may reuse (the same proxy
/// instance behind a load balancer).
pub fn send_on(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response> {
    let mut request = agent.request(method, url);
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let result = match body {
        Some(body) => request.send_bytes(body),
        None => request.call(),
    };
    Response::from_ureq(result)
}

pub fn get(url: &str) -> Result<Response> {
    send("GET", url, &[], None)
}
