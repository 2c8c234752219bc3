//! Typed, prefixed identifiers (`org_…`, `key_…`): a UUIDv7 inside, a prefix outside, so an id
//! says what it names and ids of different kinds cannot be mixed up.

use thiserror::Error;

/// Why a string is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    #[error("expected an id starting with `{expected}_`")]
    WrongPrefix { expected: &'static str },
    #[error("the id's body is not 32 hexadecimal characters")]
    Malformed,
}

/// Declares a typed id: `typed_id!(KeyId, "key");` gives `KeyId`, displayed as `key_<32 hex>`.
#[macro_export]
macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name($crate::__private::uuid::Uuid);

        #[allow(dead_code)]
        impl $name {
            /// The prefix this kind of id carries.
            pub const PREFIX: &'static str = $prefix;

            /// A new time-ordered id (UUIDv7).
            pub fn generate() -> Self {
                Self($crate::__private::uuid::Uuid::now_v7())
            }

            /// Wraps an existing UUID.
            pub const fn from_uuid(uuid: $crate::__private::uuid::Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside.
            pub const fn as_uuid(&self) -> $crate::__private::uuid::Uuid {
                self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}_{}", $prefix, self.0.simple())
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Display::fmt(self, f)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let body = s
                    .strip_prefix($prefix)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .ok_or($crate::IdError::WrongPrefix { expected: $prefix })?;
                if body.len() != 32 || !body.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err($crate::IdError::Malformed);
                }
                $crate::__private::uuid::Uuid::parse_str(body).map(Self).map_err(|_| $crate::IdError::Malformed)
            }
        }

        impl $crate::__private::serde::Serialize for $name {
            fn serialize<S: $crate::__private::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> $crate::__private::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::__private::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as $crate::__private::serde::Deserialize>::deserialize(d)?;
                s.parse().map_err($crate::__private::serde::de::Error::custom)
            }
        }
    };
}

typed_id!(
    /// An organization: the tenant every row belongs to.
    OrgId,
    "org"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    typed_id!(WidgetId, "wdg");

    #[test]
    fn an_id_displays_with_its_prefix_and_parses_back() {
        let id = WidgetId::generate();
        let text = id.to_string();
        assert!(text.starts_with("wdg_"));
        assert_eq!(text.len(), 4 + 32);
        assert_eq!(text.parse::<WidgetId>().unwrap(), id);
    }

    #[test]
    fn an_id_of_another_kind_is_refused() {
        let org = OrgId::generate().to_string();
        assert_eq!(org.parse::<WidgetId>(), Err(IdError::WrongPrefix { expected: "wdg" }));
        assert_eq!("wdg_xyz".parse::<WidgetId>(), Err(IdError::Malformed));
    }

    #[test]
    fn ids_serialize_as_their_display_form() {
        let id = OrgId::generate();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<OrgId>(&json).unwrap(), id);
    }

    /// An independent statement of the rule: `wdg_` then 32 hexadecimal digits, either case.
    fn reference(text: &str) -> Option<u128> {
        let body = text.strip_prefix("wdg_")?;
        if body.len() != 32 {
            return None;
        }
        u128::from_str_radix(body, 16).ok().filter(|_| body.chars().all(|c| c.is_ascii_hexdigit()))
    }

    /// Text near the id format: a prefix (right, wrong or missing), then a body of hex digits
    /// and near misses, of lengths around 32.
    fn near_ids() -> impl Strategy<Value = String> {
        (prop_oneof![Just("wdg_"), Just("wdg"), Just("org_"), Just(""), Just("WDG_")], "[0-9a-fA-Fg_ -]{28,36}")
            .prop_map(|(prefix, body)| format!("{prefix}{body}"))
    }

    proptest! {
        /// Over valid ids in any hex case, parsing gives back the same UUID.
        #[test]
        fn valid_ids_parse_to_their_uuid(value in any::<u128>(), upper in any::<bool>()) {
            let body = format!("{value:032x}");
            let body = if upper { body.to_uppercase() } else { body };
            let text = format!("wdg_{body}");
            prop_assert_eq!(text.parse::<WidgetId>().map(|id| id.as_uuid().as_u128()), Ok(value));
        }

        /// Over near misses, the parser accepts exactly what the reference accepts.
        #[test]
        fn near_misses_agree_with_the_reference(text in near_ids()) {
            prop_assert_eq!(text.parse::<WidgetId>().ok().map(|id| id.as_uuid().as_u128()), reference(&text));
        }

        /// Parsing never panics, whatever the input, and accepts nothing the reference refuses.
        #[test]
        fn arbitrary_text_agrees_with_the_reference(s in ".*") {
            prop_assert_eq!(s.parse::<WidgetId>().ok().map(|id| id.as_uuid().as_u128()), reference(&s));
        }
    }
}
