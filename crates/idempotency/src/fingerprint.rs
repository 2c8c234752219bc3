//! Request fingerprints: SHA-256 over the method, the route and the body as canonical JSON
//! (object keys sorted, no insignificant white space, the top-level `idempotency_key` left out),
//! so two requests that mean the same thing have one fingerprint.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// The hash that tells a retry (same fingerprint) from a reuse of the key (another one).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Fingerprints a request. `body` is `Value::Null` for a request without one.
    pub fn of(method: &str, route: &str, body: &Value) -> Self {
        let body = match body {
            Value::Object(map) if map.contains_key("idempotency_key") => {
                let mut map = map.clone();
                map.remove("idempotency_key");
                canonical_json(&Value::Object(map))
            }
            other => canonical_json(other),
        };
        let mut hash = Sha256::new();
        for part in [method, route, body.as_str()] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        Self(hex::encode(hash.finalize()))
    }

    /// Restores a fingerprint read from a store.
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Serialises `value` canonically: object keys in byte order, no white space, numbers and
/// strings as serde_json writes them.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}", Value::String(k.clone()));
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => {
            let _ = write!(out, "{scalar}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn key_order_white_space_and_the_key_field_do_not_change_the_fingerprint() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": [1, 2], "x": null}, "idempotency_key": "k1"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":null,"y":[1,2]},"b":1}"#).unwrap();
        assert_eq!(Fingerprint::of("POST", "/r", &a), Fingerprint::of("POST", "/r", &b));
    }

    #[test]
    fn another_body_method_or_route_changes_the_fingerprint() {
        let body = json!({"text": "hi"});
        let base = Fingerprint::of("POST", "/r", &body);
        assert_ne!(base, Fingerprint::of("POST", "/r", &json!({"text": "hi!"})));
        assert_ne!(base, Fingerprint::of("PUT", "/r", &body));
        assert_ne!(base, Fingerprint::of("POST", "/s", &body));
        assert_ne!(Fingerprint::of("POST", "/r", &json!([1, 2])), Fingerprint::of("POST", "/r", &json!([2, 1])));
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-z\"\\\\ ]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z]{1,4}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Canonical JSON is valid JSON that parses back to the same value.
        #[test]
        fn canonical_json_round_trips(v in json_value()) {
            let text = canonical_json(&v);
            prop_assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
        }

        /// Canonicalising twice changes nothing.
        #[test]
        fn canonical_json_is_a_fixed_point(v in json_value()) {
            let once = canonical_json(&v);
            let twice = canonical_json(&serde_json::from_str(&once).unwrap());
            prop_assert_eq!(once, twice);
        }
    }
}
