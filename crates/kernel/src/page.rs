//! Pagination: `?limit=` (default 50, at most 200) and opaque `?cursor=` tokens that stay stable
//! under inserts because they name a position (creation time, then id) rather than an offset.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use thiserror::Error;
use time::OffsetDateTime;
use uuid::Uuid;

/// Items a page holds when the caller does not say.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;
/// Items a page may hold at most.
pub const MAX_PAGE_LIMIT: u32 = 200;

/// Why a cursor was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("the cursor is not one this server issued")]
pub struct CursorError;

/// Why a page request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PageError {
    #[error("limit must be between 1 and {MAX_PAGE_LIMIT}")]
    Limit,
    #[error(transparent)]
    Cursor(#[from] CursorError),
}

/// A position in a list ordered newest first: the last item seen (its creation time and id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: OffsetDateTime,
    pub id: Uuid,
}

impl Cursor {
    /// The opaque token handed to clients.
    pub fn encode(&self) -> String {
        let nanos = self.created_at.unix_timestamp_nanos();
        URL_SAFE_NO_PAD.encode(format!("v1.{nanos}.{}", self.id.simple()))
    }

    /// Reads a token back; anything this server did not issue is a `CursorError`.
    pub fn decode(token: &str) -> Result<Self, CursorError> {
        if token.len() > 128 {
            return Err(CursorError);
        }
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| CursorError)?;
        let text = std::str::from_utf8(&raw).map_err(|_| CursorError)?;
        let mut parts = text.split('.');
        let (Some("v1"), Some(nanos), Some(id), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(CursorError);
        };
        let nanos: i128 = nanos.parse().map_err(|_| CursorError)?;
        let created_at = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| CursorError)?;
        if id.len() != 32 {
            return Err(CursorError);
        }
        let id = Uuid::parse_str(id).map_err(|_| CursorError)?;
        Ok(Self { created_at, id })
    }
}

/// What page of a list the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<Cursor>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self { limit: DEFAULT_PAGE_LIMIT, after: None }
    }
}

impl PageRequest {
    /// Validates a limit and a cursor token as a client sent them.
    pub fn parse(limit: Option<u64>, cursor: Option<&str>) -> Result<Self, PageError> {
        let limit = match limit {
            None => DEFAULT_PAGE_LIMIT,
            Some(n) if (1..=u64::from(MAX_PAGE_LIMIT)).contains(&n) => n as u32,
            Some(_) => return Err(PageError::Limit),
        };
        let after = cursor.filter(|c| !c.is_empty()).map(Cursor::decode).transpose()?;
        Ok(Self { limit, after })
    }

    /// Stores fetch one more row than the limit to learn whether another page exists.
    pub fn fetch_limit(&self) -> u64 {
        u64::from(self.limit) + 1
    }
}

/// One page of a list, and where the next one starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from rows fetched with `request.fetch_limit()`, newest first; `position`
    /// gives each row's (creation time, id).
    pub fn from_rows(mut rows: Vec<T>, request: &PageRequest, position: impl Fn(&T) -> (OffsetDateTime, Uuid)) -> Self {
        let more = rows.len() > request.limit as usize;
        rows.truncate(request.limit as usize);
        let next_cursor = if more {
            rows.last().map(|last| {
                let (created_at, id) = position(last);
                Cursor { created_at, id }.encode()
            })
        } else {
            None
        };
        Self { items: rows, next_cursor }
    }

    /// The same page with each item transformed.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next_cursor: self.next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn limits_outside_one_to_two_hundred_are_refused() {
        assert_eq!(PageRequest::parse(None, None).unwrap().limit, 50);
        assert_eq!(PageRequest::parse(Some(200), None).unwrap().limit, 200);
        assert_eq!(PageRequest::parse(Some(0), None), Err(PageError::Limit));
        assert_eq!(PageRequest::parse(Some(10_000_000_000), None), Err(PageError::Limit));
    }

    #[test]
    fn forged_cursors_are_refused() {
        for forged in ["abc", "djEuMS4y", "!!!", &"A".repeat(500)] {
            assert!(PageRequest::parse(None, Some(forged)).is_err(), "{forged}");
        }
    }

    #[test]
    fn a_page_names_its_last_row_as_the_next_cursor_only_when_more_exist() {
        let t = OffsetDateTime::UNIX_EPOCH;
        let rows: Vec<(OffsetDateTime, Uuid)> = (0..3).map(|_| (t, Uuid::now_v7())).collect();
        let request = PageRequest { limit: 2, after: None };
        let page = Page::from_rows(rows.clone(), &request, |r| *r);
        assert_eq!(page.items.len(), 2);
        let next = Cursor::decode(page.next_cursor.as_deref().unwrap()).unwrap();
        assert_eq!(next.id, rows[1].1);
        let last = Page::from_rows(rows[..2].to_vec(), &request, |r| *r);
        assert_eq!(last.next_cursor, None);
    }

    proptest! {
        /// Every cursor this server issues decodes to the position it was made from.
        #[test]
        fn cursors_round_trip(secs in -1_000_000_000i64..4_000_000_000, nanos in 0u32..1_000_000_000, id in any::<u128>()) {
            let created_at = OffsetDateTime::from_unix_timestamp(secs).unwrap() + time::Duration::nanoseconds(nanos.into());
            let cursor = Cursor { created_at, id: Uuid::from_u128(id) };
            prop_assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        }

        /// Decoding arbitrary text never panics.
        #[test]
        fn decoding_never_panics(s in ".{0,200}") {
            let _ = Cursor::decode(&s);
        }
    }
}
