//! Request fingerprints: SHA-256 over the method, the concrete path (ids included) and the body
//! as it is understood: parsed, then normalised (field names folded to snake case, so the
//! seeds' `projectId` and `project_id` are one field; numbers by value, so `1`, `1.0` and `1e0`
//! are one number) and written as canonical JSON (object keys sorted, no insignificant white
//! space, the top-level `idempotency_key` left out). Two requests that mean the same thing have
//! one fingerprint.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// The hash that tells a retry (same fingerprint) from a reuse of the key (another one).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Fingerprints a request to the concrete `path` (`/v1/atlas/webhooks/whk_…`, never the
    /// route template). `body` is `Value::Null` for a request without one.
    pub fn of(method: &str, path: &str, body: &Value) -> Self {
        let route = path;
        let mut body = normalise(body);
        if let Value::Object(map) = &mut body {
            map.remove("idempotency_key");
        }
        let body = canonical_json(&body);
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

/// The body as it is understood: every object key folded to snake case (`projectId` →
/// `project_id`) and every number written by value (`1.0` → `1`, `2.50` → `2.5`).
pub fn normalise(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (snake_case(k), normalise(v))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(normalise).collect()),
        Value::Number(n) => Value::Number(number_by_value(n)),
        other => other.clone(),
    }
}

/// `projectId` → `project_id`; a name without capitals is kept as it is.
fn snake_case(name: &str) -> String {
    if !name.bytes().any(|b| b.is_ascii_uppercase()) {
        return name.to_owned();
    }
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A number in one form per value: integers (however written) as integers, others as the
/// shortest float that reads back the same.
fn number_by_value(n: &serde_json::Number) -> serde_json::Number {
    if n.is_i64() || n.is_u64() {
        return n.clone();
    }
    match n.as_f64() {
        // Within ±2^53 every integral float is exact and fits an i64.
        Some(f) if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 => serde_json::Number::from(f as i64),
        Some(f) => serde_json::Number::from_f64(f).unwrap_or_else(|| n.clone()),
        None => n.clone(),
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
    fn aliases_and_number_forms_that_mean_the_same_have_one_fingerprint() {
        let a: Value = serde_json::from_str(r#"{"projectId": "p1", "estimateHours": 1.0, "tags": [{"dueAt": 2e0}]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"project_id": "p1", "estimate_hours": 1, "tags": [{"due_at": 2}]}"#).unwrap();
        assert_eq!(Fingerprint::of("POST", "/r", &a), Fingerprint::of("POST", "/r", &b));
        assert_ne!(Fingerprint::of("POST", "/r", &json!({"n": 1})), Fingerprint::of("POST", "/r", &json!({"n": 1.5})));
        assert_ne!(Fingerprint::of("POST", "/r", &json!({"n": 1})), Fingerprint::of("POST", "/r", &json!({"n": "1"})));
    }

    #[test]
    fn the_concrete_path_is_part_of_the_fingerprint() {
        let body = json!({"url": "https://example.com/hook"});
        assert_ne!(
            Fingerprint::of("PATCH", "/v1/atlas/webhooks/whk_a", &body),
            Fingerprint::of("PATCH", "/v1/atlas/webhooks/whk_b", &body)
        );
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

    /// A snake-case field name and a way to spell it: as it is, or in camel case.
    fn spelled(name: &str, camel: bool) -> String {
        if !camel {
            return name.to_owned();
        }
        let mut out = String::new();
        let mut upper = false;
        for c in name.chars() {
            if c == '_' {
                upper = true;
            } else if upper {
                out.push(c.to_ascii_uppercase());
                upper = false;
            } else {
                out.push(c);
            }
        }
        out
    }

    proptest! {
        /// Spelling the same fields in camel or snake case, and integers as `n` or `n.0`, never
        /// changes the fingerprint; changing a value always does.
        #[test]
        fn equivalent_spellings_share_a_fingerprint(
            fields in proptest::collection::btree_map("[a-z]{1,5}(_[a-z]{1,5}){0,2}", -1_000_000i64..1_000_000, 1..6),
            camel in proptest::collection::vec(any::<bool>(), 6),
            decimal in proptest::collection::vec(any::<bool>(), 6),
            bump in 0usize..6,
        ) {
            let snake: String = format!("{{{}}}", fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect::<Vec<_>>().join(","));
            let other: String = format!("{{{}}}", fields.iter().enumerate().map(|(i, (k, v))| {
                let value = if decimal[i] { format!("{v}.0") } else { v.to_string() };
                format!("\"{}\":{value}", spelled(k, camel[i]))
            }).collect::<Vec<_>>().join(","));
            let a: Value = serde_json::from_str(&snake).unwrap();
            let b: Value = serde_json::from_str(&other).unwrap();
            prop_assert_eq!(Fingerprint::of("POST", "/r", &a), Fingerprint::of("POST", "/r", &b));
            let bump = bump % fields.len();
            let (key, value) = fields.iter().nth(bump).unwrap();
            let mut changed = a.clone();
            changed[key.as_str()] = json!(value + 1);
            prop_assert_ne!(Fingerprint::of("POST", "/r", &a), Fingerprint::of("POST", "/r", &changed));
        }

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
