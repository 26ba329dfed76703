//! A stored response and its compact binary form (what a store slot holds after the key).
//!
//! Hand-encoded rather than serde: bodies are bytes, and this is read on every hit, so a
//! length-prefixed layout with bounds checks everywhere is both smaller and cheaper than JSON.

/// Format version; an entry of another version reads as a miss.
const VERSION: u8 = 3;
/// Tag of a Vary index record (stored under a URL's primary key when its responses vary).
const VARY_INDEX: u8 = 0x56;

/// Under a primary key: either the response itself, or the `Vary` field names whose request values
/// select the variant (each variant stored under its own secondary key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    Response(StoredResponse),
    VaryIndex(Vec<String>),
}

impl Slot {
    pub fn decode(raw: &[u8]) -> Option<Self> {
        match raw.first()? {
            &VARY_INDEX => {
                let mut r = Reader(raw.get(1..)?);
                let count = r.u16()?;
                let mut names = Vec::with_capacity(usize::from(count).min(64));
                for _ in 0..count {
                    names.push(r.string()?);
                }
                r.0.is_empty().then_some(Self::VaryIndex(names))
            }
            _ => StoredResponse::decode(raw).map(Self::Response),
        }
    }
}

/// Encodes a Vary index record.
pub fn encode_vary_index(names: &[String]) -> Vec<u8> {
    let mut w = Writer(vec![VARY_INDEX]);
    w.u16(u16::try_from(names.len()).unwrap_or(u16::MAX));
    for name in names.iter().take(u16::MAX as usize) {
        w.bytes(name.as_bytes());
    }
    w.0
}

/// Response headers a cache must not store or replay (hop-by-hop, per-hop Envoy headers, and the
/// ones recomputed on every hit).
const NOT_STORED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "age",
    "x-kea-cache",
    "x-envoy-upstream-service-time",
];

/// Whether a response header is kept in the stored copy.
pub fn is_stored_header(name: &str) -> bool {
    !name.starts_with(':') && !NOT_STORED.contains(&name)
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    /// End-to-end headers, lowercase names.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// When the request that produced this response was sent and the response received (epoch s).
    pub request_time: u64,
    pub response_time: u64,
    /// Its age when received (RFC 9111 4.2.3 `corrected_initial_age`, from the origin's `Age`
    /// and `Date` and the delay), kept because `Age` itself is recomputed, not stored.
    pub initial_age: u64,
    /// For each `Vary` field name, the request's value when stored (`None`: absent).
    pub vary: Vec<(String, Option<String>)>,
    /// The upstream cluster that answered (Envoy `xds.cluster_name`), where a background
    /// revalidation is sent; `None` when unknown (then revalidation happens in the request).
    pub cluster: Option<String>,
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(v.get(..u32::MAX as usize).unwrap_or(v));
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

impl StoredResponse {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(64 + self.body.len()));
        w.u8(VERSION);
        w.u16(self.status);
        w.u64(self.request_time);
        w.u64(self.response_time);
        w.u64(self.initial_age);
        w.u16(u16::try_from(self.headers.len()).unwrap_or(u16::MAX));
        for (name, value) in self.headers.iter().take(u16::MAX as usize) {
            w.bytes(name.as_bytes());
            w.bytes(value);
        }
        w.u16(u16::try_from(self.vary.len()).unwrap_or(u16::MAX));
        for (name, value) in self.vary.iter().take(u16::MAX as usize) {
            w.bytes(name.as_bytes());
            match value {
                Some(value) => {
                    w.u8(1);
                    w.bytes(value.as_bytes());
                }
                None => w.u8(0),
            }
        }
        match &self.cluster {
            Some(cluster) => {
                w.u8(1);
                w.bytes(cluster.as_bytes());
            }
            None => w.u8(0),
        }
        w.bytes(&self.body);
        w.0
    }

    /// `None` for anything that is not a complete entry of this version.
    pub fn decode(raw: &[u8]) -> Option<Self> {
        let mut r = Reader(raw);
        if r.u8()? != VERSION {
            return None;
        }
        let status = r.u16()?;
        let request_time = r.u64()?;
        let response_time = r.u64()?;
        let initial_age = r.u64()?;
        let header_count = r.u16()?;
        let mut headers = Vec::with_capacity(usize::from(header_count).min(256));
        for _ in 0..header_count {
            headers.push((r.string()?, r.bytes()?.to_vec()));
        }
        let vary_count = r.u16()?;
        let mut vary = Vec::with_capacity(usize::from(vary_count).min(64));
        for _ in 0..vary_count {
            let name = r.string()?;
            let value = match r.u8()? {
                0 => None,
                _ => Some(r.string()?),
            };
            vary.push((name, value));
        }
        let cluster = match r.u8()? {
            0 => None,
            _ => Some(r.string()?),
        };
        let body = r.bytes()?.to_vec();
        r.0.is_empty().then_some(Self {
            status,
            headers,
            body,
            request_time,
            response_time,
            initial_age,
            vary,
            cluster,
        })
    }

    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredResponse {
        StoredResponse {
            status: 200,
            headers: vec![
                ("content-type".into(), b"application/json".to_vec()),
                ("etag".into(), b"\"v1\"".to_vec()),
            ],
            body: vec![0, 1, 2, 255],
            request_time: 10,
            response_time: 11,
            initial_age: 7,
            vary: vec![
                ("accept".into(), Some("text/html".into())),
                ("x-tenant".into(), None),
            ],
            cluster: Some("outbound|80||pets.default.svc.cluster.local".into()),
        }
    }

    #[test]
    fn round_trips() {
        let entry = sample();
        assert_eq!(StoredResponse::decode(&entry.encode()), Some(entry.clone()));
        assert_eq!(entry.header("etag"), Some(&b"\"v1\""[..]));
        let without_cluster = StoredResponse {
            cluster: None,
            ..sample()
        };
        assert_eq!(
            StoredResponse::decode(&without_cluster.encode()),
            Some(without_cluster)
        );
    }

    #[test]
    fn truncated_extended_or_foreign_bytes_read_as_nothing() {
        let raw = sample().encode();
        for cut in 0..raw.len() {
            assert_eq!(StoredResponse::decode(&raw[..cut]), None, "cut at {cut}");
        }
        let unknown = StoredResponse {
            cluster: None,
            ..sample()
        }
        .encode();
        for cut in 0..unknown.len() {
            assert_eq!(StoredResponse::decode(&unknown[..cut]), None, "cut at {cut}");
        }
        // A cluster length running past the end is refused, not read out of bounds.
        let mut overlong = sample().encode();
        let body_len = 4 + sample().body.len();
        let cluster_len = 4 + sample().cluster.map_or(0, |c| c.len());
        let at = overlong.len() - body_len - cluster_len;
        overlong[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(StoredResponse::decode(&overlong), None);
        // The previous format (no cluster field) is another version: a miss.
        let mut previous = sample().encode();
        previous[0] = 2;
        assert_eq!(StoredResponse::decode(&previous), None);
        let mut longer = raw.clone();
        longer.push(0);
        assert_eq!(StoredResponse::decode(&longer), None);
        let mut other_version = raw;
        other_version[0] = 9;
        assert_eq!(StoredResponse::decode(&other_version), None);
        assert_eq!(StoredResponse::decode(&[1, 200, 0, 0xff, 0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn slots_hold_responses_or_vary_indexes() {
        let names = vec!["accept-language".to_string(), "x-tenant".to_string()];
        assert_eq!(
            Slot::decode(&encode_vary_index(&names)),
            Some(Slot::VaryIndex(names))
        );
        assert_eq!(Slot::decode(&sample().encode()), Some(Slot::Response(sample())));
        assert_eq!(Slot::decode(&[VARY_INDEX, 1, 0]), None);
        assert_eq!(Slot::decode(&[]), None);
    }

    #[test]
    fn hop_by_hop_and_recomputed_headers_are_not_stored() {
        for name in [
            ":status",
            "connection",
            "transfer-encoding",
            "age",
            "content-length",
            "x-kea-cache",
        ] {
            assert!(!is_stored_header(name), "{name}");
        }
        assert!(is_stored_header("etag"));
        assert!(is_stored_header("cache-control"));
    }
}
