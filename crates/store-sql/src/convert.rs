//! Conversions between domain values and column values: timestamps as microseconds since the
//! Unix epoch, and the JSON text columns.

use atlas_kernel::StoreError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use time::OffsetDateTime;

/// `at` as microseconds since the Unix epoch (rounded down; saturating far outside ±292,000
/// years, which no Atlas timestamp reaches).
pub(crate) fn to_us(at: OffsetDateTime) -> i64 {
    let us = at.unix_timestamp_nanos().div_euclid(1_000);
    i64::try_from(us).unwrap_or(if us < 0 { i64::MIN } else { i64::MAX })
}

/// `at` as microseconds since the Unix epoch, rounded up: for strict upper bounds, so an
/// instant between two microseconds excludes neither neighbour wrongly.
pub(crate) fn to_us_ceil(at: OffsetDateTime) -> i64 {
    let nanos = at.unix_timestamp_nanos();
    let us = nanos.div_euclid(1_000) + i128::from(nanos.rem_euclid(1_000) != 0);
    i64::try_from(us).unwrap_or(if us < 0 { i64::MIN } else { i64::MAX })
}

/// The instant `us` microseconds after the Unix epoch.
pub(crate) fn from_us(us: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000).map_err(|e| StoreError::new("reading a stored timestamp", e))
}

/// An optional timestamp column.
pub(crate) fn from_us_opt(us: Option<i64>) -> Result<Option<OffsetDateTime>, StoreError> {
    us.map(from_us).transpose()
}

/// A value as JSON text.
pub(crate) fn to_json(context: &'static str, value: &impl Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::new(context, e))
}

/// A JSON text column read back.
pub(crate) fn from_json<T: DeserializeOwned>(context: &'static str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::new(context, e))
}

/// A value that cannot be read back as the domain type it was written from.
pub(crate) fn corrupt(context: &'static str, what: String) -> StoreError {
    StoreError::new(context, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_at_microsecond_precision() {
        let at = time::macros::datetime!(2026-03-04 05:06:07.123456789 UTC);
        let back = from_us(to_us(at)).unwrap();
        assert_eq!(back, time::macros::datetime!(2026-03-04 05:06:07.123456 UTC));
        let before_epoch = time::macros::datetime!(1969-12-31 23:59:59.9999995 UTC);
        assert_eq!(to_us(before_epoch), -1, "times before the epoch round down, not toward zero");
        assert_eq!(to_us_ceil(before_epoch), 0, "rounding up goes toward the next microsecond");
        assert_eq!(to_us_ceil(back), to_us(back), "a whole microsecond rounds to itself either way");
    }
}
