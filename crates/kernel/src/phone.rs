//! E.164 phone numbers: `+`, a country code and subscriber digits, 8 to 15 digits in all.
//! Common human spellings (spaces, dashes, dots, parentheses, a leading `00`) are normalised.

use std::fmt;
use thiserror::Error;

/// Why a string is not a phone number.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PhoneNumberError {
    #[error("a phone number must start with `+` and the country code")]
    MissingPlus,
    #[error("a phone number may only contain digits after the `+`")]
    InvalidCharacter,
    #[error("an E.164 number has 8 to 15 digits")]
    WrongLength,
    #[error("a country code never starts with 0")]
    LeadingZero,
}

/// A normalised E.164 number, such as `+14155552671`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parses and normalises `input`.
    pub fn parse(input: &str) -> Result<Self, PhoneNumberError> {
        let trimmed = input.trim();
        let rest = if let Some(rest) = trimmed.strip_prefix('+') {
            rest
        } else if let Some(rest) = trimmed.strip_prefix("00") {
            rest
        } else {
            return Err(PhoneNumberError::MissingPlus);
        };
        let mut digits = String::with_capacity(16);
        digits.push('+');
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(PhoneNumberError::InvalidCharacter),
            }
        }
        let count = digits.len() - 1;
        if !(8..=15).contains(&count) {
            return Err(PhoneNumberError::WrongLength);
        }
        if digits.as_bytes()[1] == b'0' {
            return Err(PhoneNumberError::LeadingZero);
        }
        Ok(Self(digits))
    }

    /// The number as `+` and digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without `+`, as WhatsApp's `wa_id` spells them.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.0)
    }
}

impl serde::Serialize for PhoneNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for PhoneNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn human_spellings_normalise_to_e164() {
        for input in ["+1 (415) 555-2671", "+1.415.555.2671", "0014155552671", " +14155552671 "] {
            assert_eq!(PhoneNumber::parse(input).unwrap().as_str(), "+14155552671", "{input}");
        }
    }

    #[test]
    fn malformed_numbers_are_refused_with_a_reason() {
        assert_eq!(PhoneNumber::parse("4155552671"), Err(PhoneNumberError::MissingPlus));
        assert_eq!(PhoneNumber::parse("+1415abc"), Err(PhoneNumberError::InvalidCharacter));
        assert_eq!(PhoneNumber::parse("+1234567"), Err(PhoneNumberError::WrongLength));
        assert_eq!(PhoneNumber::parse("+1234567890123456"), Err(PhoneNumberError::WrongLength));
        assert_eq!(PhoneNumber::parse("+04155552671"), Err(PhoneNumberError::LeadingZero));
    }

    proptest! {
        /// Normalising is idempotent: a parsed number parses to itself.
        #[test]
        fn normalisation_is_idempotent(digits in "[1-9][0-9]{7,14}") {
            let once = PhoneNumber::parse(&format!("+{digits}")).unwrap();
            let twice = PhoneNumber::parse(once.as_str()).unwrap();
            prop_assert_eq!(once, twice);
        }
    }
}
