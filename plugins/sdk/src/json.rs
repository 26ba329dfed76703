//! JSON into derived types with a struct read only from a JSON object.
//!
//! serde's derived `Deserialize` also accepts a struct written as an array of its fields in
//! declaration order, and serde_json offers that form: `["RS256"]` reads as `{"alg": "RS256"}`.
//! No JSON producer means that, every specification KEA reads says "a JSON object" (a JOSE
//! header, RFC 7515 4; a JWT claims set, RFC 7519 7.2; a token answer, RFC 6749 5.1; a JWK Set,
//! RFC 7517 5), and a second spelling of a document is a gap between KEA and every other parser.
//! serde has no switch for it, so this adapter wraps the deserializer and answers
//! `deserialize_struct` with `deserialize_map`, at every depth (as serde_path_to_error wraps one
//! to track paths). One limit: what serde buffers before deciding — fields of a
//! `#[serde(flatten)]` struct, untagged and internally tagged enums — is re-read by serde's own
//! buffer, which still takes the array form; the untrusted documents KEA reads have none of those,
//! configurations do (an auth rule's flattened requirement).

use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess};
use serde::de::{SeqAccess, VariantAccess, Visitor};
use std::fmt;

/// Parses a JSON document into `T`, refusing trailing data and structs written as arrays.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = T::deserialize(ObjectsOnly(&mut deserializer))?;
    deserializer.end()?;
    Ok(value)
}

/// A deserializer that reads every struct from a map (a JSON object), never from a sequence.
#[derive(Debug)]
pub struct ObjectsOnly<D>(pub D);

/// Passes values on, wrapping the nested deserializers and accessors.
#[derive(Debug)]
struct Wrap<V>(V);

macro_rules! forward_deserialize {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.0.$method(Wrap(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for ObjectsOnly<D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map deserialize_identifier
        deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(name, Wrap(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_newtype_struct(name, Wrap(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, Wrap(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple_struct(name, len, Wrap(visitor))
    }

    /// The point of the adapter: a struct is a map. A sequence fails with serde_json's own
    /// "invalid type: sequence, expected struct X".
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(Wrap(visitor))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_enum(name, variants, Wrap(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident: $ty:ty)*) => {$(
        fn $method<E: de::Error>(self, value: $ty) -> Result<V::Value, E> {
            self.0.$method(value)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visit! {
        visit_bool: bool visit_i8: i8 visit_i16: i16 visit_i32: i32 visit_i64: i64 visit_i128: i128
        visit_u8: u8 visit_u16: u16 visit_u32: u32 visit_u64: u64 visit_u128: u128
        visit_f32: f32 visit_f64: f64 visit_char: char visit_str: &str visit_borrowed_str: &'de str
        visit_string: String visit_bytes: &[u8] visit_borrowed_bytes: &'de [u8]
        visit_byte_buf: Vec<u8>
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.0.visit_some(ObjectsOnly(deserializer))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.0.visit_newtype_struct(ObjectsOnly(deserializer))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.0.visit_seq(Wrap(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(Wrap(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.0.visit_enum(Wrap(data))
    }
}

/// A seed whose value is read through [`ObjectsOnly`].
struct Seed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(ObjectsOnly(deserializer))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(Seed(seed))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Wrap<A> {
    type Error = A::Error;
    type Variant = Wrap<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Self::Variant), A::Error> {
        let (value, variant) = self.0.variant_seed(Seed(seed))?;
        Ok((value, Wrap(variant)))
    }
}

/// A struct variant's fields, read as a map.
struct StructFields<V>(V);

impl<'de, V: Visitor<'de>> DeserializeSeed<'de> for StructFields<V> {
    type Value = V::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        deserializer.deserialize_map(Wrap(self.0))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(Seed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Wrap(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.newtype_variant_seed(StructFields(visitor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Deserialize)]
    struct Header {
        alg: String,
        #[serde(default)]
        kid: Option<String>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Outer {
        header: Header,
        #[serde(default)]
        list: Vec<Header>,
        #[serde(default)]
        maybe: Option<Header>,
        #[serde(default)]
        kind: Option<Kind>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Plain,
        Wrapped(Header),
        Fields { alg: String },
    }

    #[test]
    fn serde_json_alone_reads_a_struct_from_an_array() {
        // The defect this module exists for: keep the premise visible.
        let header: Header = serde_json::from_slice(br#"["RS256"]"#).unwrap();
        assert_eq!(header.alg, "RS256");
    }

    #[test]
    fn a_struct_is_read_only_from_an_object() {
        let header: Header = from_slice(br#"{"alg": "RS256", "kid": "k1"}"#).unwrap();
        assert_eq!(header.kid.as_deref(), Some("k1"));
        let err = from_slice::<Header>(br#"["RS256"]"#).unwrap_err();
        assert!(err.to_string().contains("invalid type: sequence"), "{err}");
        assert!(from_slice::<Header>(br#"["RS256", "k1"]"#).is_err());
    }

    #[test]
    fn nested_structs_too_at_every_depth() {
        let good = br#"{"header": {"alg": "a"}, "list": [{"alg": "b"}], "maybe": {"alg": "c"}}"#;
        let outer: Outer = from_slice(good).unwrap();
        assert_eq!(outer.list[0].alg, "b");
        assert_eq!(outer.maybe.unwrap().alg, "c");
        for bad in [
            &br#"[{"alg": "a"}]"#[..],
            br#"{"header": ["a"]}"#,
            br#"{"header": {"alg": "a"}, "list": [["b"]]}"#,
            br#"{"header": {"alg": "a"}, "maybe": ["c"]}"#,
            br#"{"header": {"alg": "a"}, "kind": {"wrapped": ["x"]}}"#,
            br#"{"header": {"alg": "a"}, "kind": {"fields": ["x"]}}"#,
        ] {
            assert!(
                from_slice::<Outer>(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn enums_sequences_and_scalars_are_unchanged() {
        let outer: Outer = from_slice(br#"{"header": {"alg": "a"}, "kind": "plain"}"#).unwrap();
        assert_eq!(outer.kind, Some(Kind::Plain));
        let outer: Outer =
            from_slice(br#"{"header": {"alg": "a"}, "kind": {"wrapped": {"alg": "w"}}}"#).unwrap();
        assert_eq!(
            outer.kind,
            Some(Kind::Wrapped(Header {
                alg: "w".into(),
                kid: None
            }))
        );
        let outer: Outer =
            from_slice(br#"{"header": {"alg": "a"}, "kind": {"fields": {"alg": "f"}}}"#).unwrap();
        assert_eq!(outer.kind, Some(Kind::Fields { alg: "f".into() }));
        assert_eq!(from_slice::<Vec<u32>>(b"[1, 2]").unwrap(), [1, 2]);
        assert_eq!(
            from_slice::<(u8, String)>(br#"[1, "x"]"#).unwrap(),
            (1, "x".into())
        );
        assert!(from_slice::<u8>(b"1 2").is_err(), "trailing data");
        let value: serde_json::Value = from_slice(br#"{"a": [1, {"b": null}]}"#).unwrap();
        assert_eq!(value["a"][1]["b"], serde_json::Value::Null);
    }

    #[test]
    fn duplicate_fields_stay_an_error() {
        assert!(from_slice::<Header>(br#"{"alg": "a", "alg": "b"}"#).is_err());
    }
}
