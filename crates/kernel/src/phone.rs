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

    /// An independent statement of the rule: strip the human separators, take `+` or `00` as
    /// the international prefix, then the rest must be 8 to 15 digits not starting with 0.
    fn reference(input: &str) -> Option<String> {
        let trimmed = input.trim();
        let rest = trimmed.strip_prefix('+').or_else(|| trimmed.strip_prefix("00"))?;
        let kept: String = rest.chars().filter(|c| !" -.()".contains(*c)).collect();
        let all_digits = kept.chars().all(|c| c.is_ascii_digit());
        let ok = all_digits && (8..=15).contains(&kept.len()) && !kept.starts_with('0');
        ok.then(|| format!("+{kept}"))
    }

    /// A spelling of `digits` as people write it: a `+` or `00` prefix, separators between
    /// digits, white space around.
    fn spelled() -> impl Strategy<Value = (String, String)> {
        (
            "[0-9]{1,17}",
            any::<bool>(),
            proptest::collection::vec(prop_oneof![Just(""), Just(" "), Just("-"), Just("."), Just("("), Just(")")], 17),
            "[ ]{0,2}",
        )
            .prop_map(|(digits, double_zero, seps, pad)| {
                let mut text = String::from(if double_zero { "00" } else { "+" });
                for (i, c) in digits.chars().enumerate() {
                    text.push(c);
                    text.push_str(seps[i]);
                }
                (format!("{pad}{text}{pad}"), digits)
            })
    }

    proptest! {
        /// Over human spellings of digit strings (valid and invalid lengths, leading zeros), the
        /// parser agrees with the reference, and an accepted number is `+` and exactly the
        /// digits that were written.
        #[test]
        fn spellings_agree_with_the_reference((text, digits) in spelled()) {
            let parsed = PhoneNumber::parse(&text).ok().map(|p| p.as_str().to_owned());
            prop_assert_eq!(&parsed, &reference(&text));
            if let Some(number) = parsed {
                prop_assert_eq!(number, format!("+{digits}"));
            }
        }

        /// Over arbitrary text (letters, symbols, missing prefixes), the parser accepts exactly
        /// what the reference accepts.
        #[test]
        fn arbitrary_text_agrees_with_the_reference(text in "[+0-9 ().a-z#-]{0,24}") {
            prop_assert_eq!(PhoneNumber::parse(&text).ok().map(|p| p.as_str().to_owned()), reference(&text));
        }

        /// A number that was accepted parses to itself.
        #[test]
        fn normalisation_is_idempotent((text, _) in spelled()) {
            if let Ok(once) = PhoneNumber::parse(&text) {
                prop_assert_eq!(PhoneNumber::parse(once.as_str()), Ok(once));
            }
        }
    }
}
