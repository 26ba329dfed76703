//! Reading a credential from where a provider or key set says it is, and removing it before the
//! request goes upstream.

use crate::config::Source;
use kea_plugin_sdk::matcher::split_path;
use kea_plugin_sdk::{Bytes, HeaderMap, Host};

/// The request headers, read from the proxy once: one host call instead of one per name (each
/// crossing of the wasm boundary costs more than the lookups it replaces).
#[derive(Debug, Default)]
pub struct RequestHeaders(Vec<(String, Bytes)>);

impl RequestHeaders {
    pub fn read(host: &impl Host) -> Self {
        Self(host.headers(HeaderMap::RequestHeaders))
    }

    /// The first value of a header (names are lowercase, as proxies hand them over).
    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
    }

    /// Whether some value of header `name` contains `needle` (no copy of the value).
    pub fn contains_in(&self, name: &str, needle: &str) -> bool {
        let needle = needle.as_bytes();
        self.0.iter().any(|(key, value)| {
            key.eq_ignore_ascii_case(name)
                && !needle.is_empty()
                && value.windows(needle.len()).any(|w| w == needle)
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(name, _)| name.as_str())
    }

    /// `name=value` pairs of every `Cookie` header (HTTP/2 may split them across headers).
    pub fn cookies(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.0
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, value)| {
                String::from_utf8_lossy(value)
                    .split(';')
                    .filter_map(|pair| {
                        let (key, value) = pair.trim().split_once('=')?;
                        Some((key.trim().to_owned(), value.trim().trim_matches('"').to_owned()))
                    })
                    .collect::<Vec<_>>()
            })
    }
}

/// The credential at `source`, if the request carries one.
pub fn read(headers: &RequestHeaders, source: &Source) -> Option<String> {
    let value = match source {
        Source::Header { name, prefix } => {
            let value = headers.get(name)?;
            match prefix {
                Some(prefix) => {
                    let head = value.get(..prefix.len())?;
                    if !head.eq_ignore_ascii_case(prefix) {
                        return None;
                    }
                    value.get(prefix.len()..)?.trim().to_owned()
                }
                None => value.trim().to_owned(),
            }
        }
        Source::Query(name) => {
            let path = headers.get(":path")?;
            let query = split_path(&path).1?;
            query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(key, _)| percent_decode(key).as_deref() == Some(name.as_str()))
                .and_then(|(_, value)| percent_decode(value))?
        }
        Source::Cookie(name) => headers.cookies().find(|(key, _)| key == name).map(|(_, v)| v)?,
    };
    (!value.is_empty()).then_some(value)
}

/// Removes the credential at `source` from the request.
pub fn remove(host: &impl Host, headers: &RequestHeaders, source: &Source) {
    remove_all(host, headers, std::slice::from_ref(source));
}

/// Removes every credential in `sources`; query parameters and cookies are removed together, so
/// each rewrite starts from the request as received and none undoes another.
pub fn remove_all(host: &impl Host, headers: &RequestHeaders, sources: &[Source]) {
    let mut queries = Vec::new();
    let mut cookies = Vec::new();
    for source in sources {
        match source {
            Source::Header { name, .. } => host.set_header(HeaderMap::RequestHeaders, name, None),
            Source::Query(name) => queries.push(name.as_str()),
            Source::Cookie(name) => cookies.push(name.as_str()),
        }
    }
    if !queries.is_empty() {
        remove_query_parameters(host, headers, &queries);
    }
    if !cookies.is_empty() {
        let kept: Vec<String> = headers
            .cookies()
            .filter(|(key, _)| !cookies.contains(&key.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let value = kept.join("; ");
        host.set_header(
            HeaderMap::RequestHeaders,
            "cookie",
            (!value.is_empty()).then_some(value.as_bytes()),
        );
    }
}

fn remove_query_parameters(host: &impl Host, headers: &RequestHeaders, names: &[&str]) {
    let Some(path) = headers.get(":path") else {
        return;
    };
    let (base, Some(query)) = split_path(&path) else {
        return;
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            !percent_decode(key).is_some_and(|k| names.contains(&k.as_str()))
        })
        .collect();
    let rewritten = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    host.set_header(HeaderMap::RequestHeaders, ":path", Some(rewritten.as_bytes()));
}

/// Decodes `%XX` escapes and `+` (form encoding); `None` for invalid escapes or UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kea_plugin_sdk::mock::MockHost;

    fn header(name: &str, prefix: Option<&str>) -> Source {
        Source::Header {
            name: name.into(),
            prefix: prefix.map(str::to_owned),
        }
    }

    #[test]
    fn reads_bearer_case_insensitively() {
        let host = MockHost::new().with_request("GET", "/", &[("authorization", "bEaReR  abc.def.ghi ")]);
        assert_eq!(
            read(
                &RequestHeaders::read(&host),
                &header("authorization", Some("bearer "))
            )
            .as_deref(),
            Some("abc.def.ghi")
        );
        let host = MockHost::new().with_request("GET", "/", &[("authorization", "Basic eDp5")]);
        assert_eq!(
            read(
                &RequestHeaders::read(&host),
                &header("authorization", Some("bearer "))
            ),
            None
        );
        let host = MockHost::new().with_request("GET", "/", &[("authorization", "Bearer ")]);
        assert_eq!(
            read(
                &RequestHeaders::read(&host),
                &header("authorization", Some("bearer "))
            ),
            None
        );
    }

    #[test]
    fn reads_and_removes_query_parameters() {
        let host = MockHost::new().with_request("GET", "/p?a=1&access%5Ftoken=t%2Bx&b=2", &[]);
        let source = Source::Query("access_token".into());
        assert_eq!(
            read(&RequestHeaders::read(&host), &source).as_deref(),
            Some("t+x")
        );
        remove(&host, &RequestHeaders::read(&host), &source);
        assert_eq!(
            host.header_text(HeaderMap::RequestHeaders, ":path").as_deref(),
            Some("/p?a=1&b=2")
        );
        let host = MockHost::new().with_request("GET", "/p?access_token=t", &[]);
        remove(&host, &RequestHeaders::read(&host), &source);
        assert_eq!(
            host.header_text(HeaderMap::RequestHeaders, ":path").as_deref(),
            Some("/p")
        );
        let host = MockHost::new().with_request("GET", "/p?access_token=%zz", &[]);
        assert_eq!(read(&RequestHeaders::read(&host), &source), None);
    }

    #[test]
    fn reads_and_removes_cookies() {
        let host = MockHost::new().with_request("GET", "/", &[("cookie", "a=1; session=tok; b=2")]);
        let source = Source::Cookie("session".into());
        assert_eq!(
            read(&RequestHeaders::read(&host), &source).as_deref(),
            Some("tok")
        );
        remove(&host, &RequestHeaders::read(&host), &source);
        assert_eq!(
            host.header_text(HeaderMap::RequestHeaders, "cookie").as_deref(),
            Some("a=1; b=2")
        );
        let both = [source, Source::Cookie("a".into())];
        remove_all(&host, &RequestHeaders::read(&host), &both);
        assert_eq!(
            host.header_text(HeaderMap::RequestHeaders, "cookie").as_deref(),
            Some("b=2"),
            "removing two cookies keeps neither"
        );
    }
}
