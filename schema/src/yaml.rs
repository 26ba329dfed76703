//! YAML text into a [`serde_json::Value`], numbers read as serde_json reads JSON.
//!
//! serde_yaml_ng hands integers beyond 64 bits to `visit_u128`/`visit_i128`, and serde_json's own
//! `Value` refuses those ("number out of range") unless built with `arbitrary_precision`. Real
//! documents have them (`maximum: 18446744073709552000`, a u64 bound printed as a double), and the
//! same document as JSON loads, because serde_json reads integers that do not fit 64 bits as `f64`.
//! This visitor does the same, so a YAML document and its JSON form give the same bundle.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// Parses YAML text into a JSON value.
pub fn from_str(text: &str) -> Result<Value, serde_yaml_ng::Error> {
    serde_yaml_ng::from_str::<JsonValue>(text).map(|value| value.0)
}

struct JsonValue(Value);

impl<'de> Deserialize<'de> for JsonValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor).map(JsonValue)
    }
}

struct ValueVisitor;

/// What serde_json makes of a number it cannot hold exactly: a double, and `null` if not finite.
fn float(value: f64) -> Value {
    Number::from_f64(value).map_or(Value::Null, Value::Number)
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any YAML value that JSON can hold")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_i128<E>(self, value: i128) -> Result<Value, E> {
        Ok(match i64::try_from(value) {
            Ok(small) => Value::from(small),
            Err(_) => float(value as f64),
        })
    }

    fn visit_u128<E>(self, value: u128) -> Result<Value, E> {
        Ok(match u64::try_from(value) {
            Ok(small) => Value::from(small),
            Err(_) => float(value as f64),
        })
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(float(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        JsonValue::deserialize(deserializer).map(|value| value.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(JsonValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        // Keys as serde_json's own `Value` reads them: as strings (a YAML key `200` is "200").
        while let Some((key, JsonValue(value))) = map.next_entry::<String, JsonValue>()? {
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_read_as_serde_json_reads_them() {
        let yaml = "big: 18446744073709552000\nneg: -18446744073709552000\nmax: 18446744073709551615\n\
                    min: -9223372036854775808\nf: 1.5\nkey: {200: ok}\nn: ~\nlist: [1, x, true]\n";
        let json = r#"{"big": 18446744073709552000, "neg": -18446744073709552000, "max": 18446744073709551615,
                       "min": -9223372036854775808, "f": 1.5, "key": {"200": "ok"}, "n": null, "list": [1, "x", true]}"#;
        let from_yaml = from_str(yaml).unwrap();
        let from_json: Value = serde_json::from_str(json).unwrap();
        assert_eq!(from_yaml["big"], json!(18446744073709552000.0_f64));
        assert!(from_yaml["big"].is_f64() && from_yaml["max"].is_u64() && from_yaml["min"].is_i64());
        assert_eq!(from_yaml, from_json);
    }
}
