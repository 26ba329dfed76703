//! A minimal browser for end-to-end login flows over HTTP: a cookie jar (ureq's, which keeps
//! domains and paths apart as RFC 6265 says), redirects followed one by one and recorded, and HTML
//! forms submitted with their hidden fields. Enough to drive a real OpenID Provider's login,
//! consent and logout pages.

use crate::http::Response;
use anyhow::{bail, Context, Result};
use std::time::Duration;

#[derive(Debug)]
pub struct Browser {
    agent: ureq::Agent,
}

/// Where a navigation went: every URL requested, and the last response.
#[derive(Debug)]
pub struct Visit {
    pub urls: Vec<String>,
    /// Every response on the way, in order (redirects included).
    pub responses: Vec<Response>,
}

impl Visit {
    pub fn last(&self) -> &Response {
        self.responses.last().expect("a visit has at least one response")
    }
    pub fn last_url(&self) -> &str {
        self.urls.last().map_or("", String::as_str)
    }
    /// A `Cookie` header with the live cookies named `base` or `base.<n>` (a chunked cookie) set
    /// on the way.
    pub fn cookie_header(&self, base: &str) -> String {
        let chunk = format!("{base}.");
        self.set_cookies()
            .iter()
            .filter(|c| {
                let name = c.split('=').next().unwrap_or_default();
                (name == base || name.starts_with(&chunk)) && !c.contains("Max-Age=0")
            })
            .map(|c| c.split(';').next().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Every `Set-Cookie` value received on the way.
    pub fn set_cookies(&self) -> Vec<&str> {
        self.responses
            .iter()
            .flat_map(|r| r.headers.iter())
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

fn resolve(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else if location.starts_with('/') {
        format!("{}{location}", origin(base))
    } else {
        let dir = base.rsplit_once('/').map_or(base, |(d, _)| d);
        format!("{dir}/{location}")
    }
}

fn unescape(text: &str) -> String {
    text.replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#x2F;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

/// The first `<form>` of a page (or the one with `id`): its action and hidden inputs.
pub fn form(html: &str, id: Option<&str>) -> Result<(String, Vec<(String, String)>)> {
    let mut rest = html;
    while let Some(start) = rest.find("<form") {
        let after = &rest[start..];
        let end = after.find("</form>").unwrap_or(after.len());
        let form = &after[..end];
        let tag_end = form.find('>').unwrap_or(form.len());
        let tag = &form[..tag_end];
        if id.is_none() || attribute(tag, "id").as_deref() == id {
            let action = attribute(tag, "action").context("form without action")?;
            let mut fields = Vec::new();
            let mut inputs = form;
            while let Some(at) = inputs.find("<input") {
                let input = &inputs[at..];
                let close = input.find('>').unwrap_or(input.len());
                let tag = &input[..close];
                if attribute(tag, "type").as_deref() == Some("hidden") {
                    if let (Some(name), Some(value)) = (attribute(tag, "name"), attribute(tag, "value")) {
                        fields.push((name, value));
                    }
                }
                inputs = &input[close..];
            }
            return Ok((action, fields));
        }
        rest = &after[end..];
    }
    bail!(
        "no form{} in the page:\n{html}",
        id.map(|i| format!(" #{i}")).unwrap_or_default()
    )
}

impl Browser {
    pub fn new() -> Self {
        Self {
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(15))
                .redirects(0)
                .build(),
        }
    }

    fn one(&self, method: &str, url: &str, form: Option<&[(&str, &str)]>) -> Result<Response> {
        let request = self
            .agent
            .request(method, url)
            .set("accept", "text/html,application/xhtml+xml")
            .set("sec-fetch-mode", "navigate");
        let result = match form {
            Some(fields) => request.send_form(fields),
            None => request.call(),
        };
        Response::from_ureq(result)
    }

    fn follow(&self, mut visit: Visit) -> Result<Visit> {
        for _ in 0..20 {
            let last = visit.last();
            if !matches!(last.status, 301 | 302 | 303 | 307 | 308) {
                return Ok(visit);
            }
            let location = last.header("location").context("redirect without location")?;
            let next = resolve(visit.last_url(), location);
            let response = self.one("GET", &next, None)?;
            visit.urls.push(next);
            visit.responses.push(response);
        }
        bail!("too many redirects: {:?}", visit.urls)
    }

    /// Opens `url` and follows redirects.
    pub fn navigate(&self, url: &str) -> Result<Visit> {
        let response = self.one("GET", url, None)?;
        self.follow(Visit {
            urls: vec![url.to_owned()],
            responses: vec![response],
        })
    }

    /// Submits the page's form (`id` picks one) with its hidden fields plus `fields`, and follows
    /// redirects.
    pub fn submit(&self, page: &Visit, id: Option<&str>, fields: &[(&str, &str)]) -> Result<Visit> {
        let (action, hidden) = form(&page.last().body, id)?;
        let url = resolve(page.last_url(), &action);
        let mut all: Vec<(&str, &str)> = hidden.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.extend_from_slice(fields);
        let response = self.one("POST", &url, Some(&all))?;
        self.follow(Visit {
            urls: vec![url],
            responses: vec![response],
        })
    }
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}
