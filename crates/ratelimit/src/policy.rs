//! A rate-limit policy ("60 requests per minute, bursts up to 60"): its validation, the GCRA
//! constants it implies, and its text form (`"60/min"`, `"10/s"`, `"1000/h"`, `"100/10s"`) used
//! in configuration and per-organization overrides.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;
use time::Duration;

/// The longest period a policy may span.
pub const MAX_PERIOD: Duration = Duration::days(7);

/// Why a policy (or its text form) is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    /// The text is not `<limit>/<period>`.
    #[error("expected `<limit>/<period>` such as `60/min`, `10/s` or `100/10s`, got `{0}`")]
    Malformed(String),
    /// The limit is not a whole number that fits in 32 bits.
    #[error("the limit `{0}` is not a whole number of requests")]
    InvalidLimit(String),
    /// A policy must admit at least one request per period.
    #[error("the limit must be at least 1")]
    ZeroLimit,
    /// The period's unit is not one of `ms`, `s`, `min`, `h`, `d` (or their long forms).
    #[error("unknown period `{0}`: use ms, s, min, h or d, optionally with a count (`10s`)")]
    UnknownUnit(String),
    /// The period is zero, negative or not a whole number of milliseconds.
    #[error("the period must be a positive whole number of milliseconds")]
    InvalidPeriod,
    /// The period is longer than [`MAX_PERIOD`].
    #[error("the period may be at most 7 days")]
    PeriodTooLong,
    /// More requests than microseconds in the period: the emission interval would be zero.
    #[error("{limit} requests per {period_us} µs is finer than one request per microsecond")]
    TooFineGrained {
        /// The requested limit.
        limit: u32,
        /// The period in microseconds.
        period_us: i64,
    },
}

/// `limit` requests per `period`, with bursts of up to `limit` requests.
///
/// Valid by construction (see [`Policy::new`]): `limit ≥ 1`, the period a whole number of
/// milliseconds in `1 ms ..= 7 days`, and at least one microsecond per request. Its text form
/// is `"<limit>/<period>"` (see [`Policy::parse`]); it serializes as that string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Policy {
    limit: u32,
    period: Duration,
}

impl Policy {
    /// `limit` requests per `period`.
    ///
    /// # Errors
    /// [`PolicyError::ZeroLimit`], [`PolicyError::InvalidPeriod`] (zero, negative or with a
    /// sub-millisecond part), [`PolicyError::PeriodTooLong`], or
    /// [`PolicyError::TooFineGrained`] when `limit` exceeds the period in microseconds.
    pub fn new(limit: u32, period: Duration) -> Result<Self, PolicyError> {
        if limit == 0 {
            return Err(PolicyError::ZeroLimit);
        }
        if !period.is_positive() || period.whole_nanoseconds() % 1_000_000 != 0 {
            return Err(PolicyError::InvalidPeriod);
        }
        if period > MAX_PERIOD {
            return Err(PolicyError::PeriodTooLong);
        }
        // Fits: at most 7 days in microseconds.
        let period_us = period.whole_microseconds() as i64;
        if i64::from(limit) > period_us {
            return Err(PolicyError::TooFineGrained { limit, period_us });
        }
        Ok(Self { limit, period })
    }

    /// A policy known valid at compile time (the defaults).
    pub(crate) const fn from_valid_parts(limit: u32, period: Duration) -> Self {
        Self { limit, period }
    }

    /// Parses `"<limit>/<period>"`: the period is an optional whole count followed by a unit,
    /// `ms`, `s` (`sec`, `second`), `min` (`m`, `minute`), `h` (`hour`) or `d` (`day`), plural
    /// forms allowed, case-insensitive, blanks around the parts ignored. Examples: `"60/min"`,
    /// `"10/s"`, `"1000/h"`, `"100/10s"`, `"5/500ms"`.
    ///
    /// # Errors
    /// [`PolicyError::Malformed`], [`PolicyError::InvalidLimit`],
    /// [`PolicyError::UnknownUnit`], or any error of [`Policy::new`].
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let (limit, period) = text.split_once('/').ok_or_else(|| PolicyError::Malformed(text.to_owned()))?;
        let limit = limit.trim();
        let limit: u32 = limit.parse().map_err(|_| PolicyError::InvalidLimit(limit.to_owned()))?;
        let period = parse_period(period.trim())?;
        Self::new(limit, period)
    }

    /// How many requests the policy admits per period (and in one burst).
    pub const fn limit(&self) -> u32 {
        self.limit
    }

    /// The period the limit applies to.
    pub const fn period(&self) -> Duration {
        self.period
    }

    /// The period in microseconds.
    pub fn period_us(&self) -> i64 {
        // Valid policies span at most 7 days, far inside i64 microseconds.
        self.period.whole_microseconds() as i64
    }

    /// GCRA's emission interval `T = period / limit`, in whole microseconds (rounded down,
    /// and at least 1): the steady-state spacing between admitted requests.
    pub fn emission_interval_us(&self) -> i64 {
        (self.period_us() / i64::from(self.limit.max(1))).max(1)
    }

    /// GCRA's burst tolerance `τ = T × (limit − 1)`, in microseconds: how far ahead of "now"
    /// the theoretical arrival time may run while requests are still admitted.
    pub fn burst_tolerance_us(&self) -> i64 {
        self.emission_interval_us() * i64::from(self.limit.max(1) - 1)
    }
}

/// The units a period may be written in, longest names first within a unit.
const UNITS: [(&[&str], Duration); 5] = [
    (&["ms", "msec", "millisecond", "milliseconds"], Duration::MILLISECOND),
    (&["s", "sec", "secs", "second", "seconds"], Duration::SECOND),
    (&["min", "mins", "m", "minute", "minutes"], Duration::MINUTE),
    (&["h", "hr", "hour", "hours"], Duration::HOUR),
    (&["d", "day", "days"], Duration::DAY),
];

fn parse_period(text: &str) -> Result<Duration, PolicyError> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (count, unit) = text.split_at(digits);
    let unit = unit.trim().to_ascii_lowercase();
    let unit_length = UNITS
        .iter()
        .find(|(names, _)| names.contains(&unit.as_str()))
        .map(|(_, length)| *length)
        .ok_or_else(|| PolicyError::UnknownUnit(text.to_owned()))?;
    let count: i32 = if count.is_empty() { 1 } else { count.parse().map_err(|_| PolicyError::PeriodTooLong)? };
    unit_length.checked_mul(count).ok_or(PolicyError::PeriodTooLong)
}

impl fmt::Display for Policy {
    /// The canonical text form: the largest unit that divides the period, its count omitted
    /// when it is 1 (`"60/min"`, `"100/10s"`, `"5/1500ms"`). [`Policy::parse`] reads it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let period_ms = self.period.whole_milliseconds();
        let (name, unit_ms) = [("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1_000)]
            .into_iter()
            .find(|(_, unit_ms)| period_ms % unit_ms == 0)
            .unwrap_or(("ms", 1));
        match period_ms / unit_ms {
            1 => write!(f, "{}/{name}", self.limit),
            count => write!(f, "{}/{count}{name}", self.limit),
        }
    }
}

impl FromStr for Policy {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Policy {
    type Error = PolicyError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Policy> for String {
    fn from(policy: Policy) -> Self {
        policy.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_documented_forms_parse_to_limit_and_period() {
        let cases = [
            ("60/min", 60, Duration::MINUTE),
            ("10/s", 10, Duration::SECOND),
            ("1000/h", 1000, Duration::HOUR),
            ("100/10s", 100, Duration::seconds(10)),
            ("5/500ms", 5, Duration::milliseconds(500)),
            ("10000/d", 10_000, Duration::DAY),
            (" 30 / Minute ", 30, Duration::MINUTE),
            ("2/2 hours", 2, Duration::hours(2)),
        ];
        for (text, limit, period) in cases {
            let policy = Policy::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((policy.limit(), policy.period()), (limit, period), "{text}");
        }
    }

    #[test]
    fn malformed_policies_are_refused_with_a_reason() {
        assert_eq!(Policy::parse("60"), Err(PolicyError::Malformed("60".into())));
        assert_eq!(Policy::parse("x/min"), Err(PolicyError::InvalidLimit("x".into())));
        assert_eq!(Policy::parse("-1/min"), Err(PolicyError::InvalidLimit("-1".into())));
        assert_eq!(Policy::parse("0/min"), Err(PolicyError::ZeroLimit));
        assert_eq!(Policy::parse("5/fortnight"), Err(PolicyError::UnknownUnit("fortnight".into())));
        assert_eq!(Policy::parse("5/0s"), Err(PolicyError::InvalidPeriod));
        assert_eq!(Policy::new(5, Duration::SECOND + Duration::NANOSECOND), Err(PolicyError::InvalidPeriod));
        assert_eq!(Policy::parse("5/8d"), Err(PolicyError::PeriodTooLong));
        assert_eq!(Policy::parse("5/99999999999d"), Err(PolicyError::PeriodTooLong));
        assert_eq!(Policy::parse("2000/ms"), Err(PolicyError::TooFineGrained { limit: 2000, period_us: 1000 }));
    }

    #[test]
    fn a_policy_displays_in_its_largest_whole_unit() {
        assert_eq!(Policy::parse("60/60s").unwrap().to_string(), "60/min");
        assert_eq!(Policy::parse("100/10s").unwrap().to_string(), "100/10s");
        assert_eq!(Policy::parse("5/1500ms").unwrap().to_string(), "5/1500ms");
        assert_eq!(Policy::parse("1000/60min").unwrap().to_string(), "1000/h");
        assert_eq!(Policy::parse("7/48h").unwrap().to_string(), "7/2d");
    }

    #[test]
    fn the_gcra_constants_follow_from_limit_and_period() {
        let policy = Policy::parse("60/min").unwrap();
        assert_eq!(policy.emission_interval_us(), 1_000_000);
        assert_eq!(policy.burst_tolerance_us(), 59_000_000);
        let single = Policy::parse("1/s").unwrap();
        assert_eq!(single.burst_tolerance_us(), 0);
    }

    #[test]
    fn a_policy_serializes_as_its_text_form() {
        let policy = Policy::parse("10/s").unwrap();
        assert_eq!(serde_json::to_string(&policy).unwrap(), "\"10/s\"");
        assert_eq!(serde_json::from_str::<Policy>("\"10/1s\"").unwrap(), policy);
        assert!(serde_json::from_str::<Policy>("\"0/s\"").is_err());
    }

    fn valid_policy() -> impl Strategy<Value = Policy> {
        (1u32..=100_000, 1i64..=MAX_PERIOD.whole_milliseconds() as i64)
            .prop_filter_map("finer than a microsecond per request", |(limit, period_ms)| {
                Policy::new(limit, Duration::milliseconds(period_ms)).ok()
            })
    }

    proptest! {
        /// Rule: the text form of any valid policy parses back to the same policy.
        #[test]
        fn a_policy_round_trips_through_its_text_form(policy in valid_policy()) {
            prop_assert_eq!(Policy::parse(&policy.to_string()), Ok(policy));
        }

        /// Rule: `<limit>/<count><unit>` means `limit` requests per `count` units, whatever
        /// spelling of the unit is used.
        #[test]
        fn any_spelling_of_a_unit_means_the_same_period(
            limit in 1u32..1000,
            count in 1i32..100,
            unit in 0usize..UNITS.len(),
            spelling in any::<prop::sample::Index>(),
        ) {
            let (names, length) = UNITS[unit];
            let name = spelling.get(names);
            let period = length * count;
            if let Ok(expected) = Policy::new(limit, period) {
                prop_assert_eq!(Policy::parse(&format!("{limit}/{count}{name}")), Ok(expected));
            }
        }
    }
}
