//! Which answers are stored for replay: the one rule every caller applies. Only committed
//! outcomes are (2xx, and business-rule 4xx such as WINDOW_CLOSED or NOT_FOUND); a refused
//! credential (401), a scope or limit refusal (403), a rate limit (429), a retryable answer
//! (a conflict with a concurrent change, IDEMPOTENCY_IN_PROGRESS) and every 5xx store nothing,
//! so a retry runs afresh.

/// Whether an answer with `status` (and `retryable` as its envelope says) is a committed
/// outcome, stored under the request's idempotency key and replayed.
pub const fn stores_outcome(status: u16, retryable: bool) -> bool {
    if retryable {
        return false;
    }
    match status {
        200..=399 => true,
        401 | 403 | 407 | 408 | 429 => false,
        400..=499 => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The rule as DESIGN.md states it, written as a table rather than as ranges.
    fn reference(status: u16, retryable: bool) -> bool {
        let success = (200..300).contains(&status) || (300..400).contains(&status);
        let refusal_of_the_caller = [401u16, 403, 407, 408, 429].contains(&status);
        let client_error = (400..500).contains(&status);
        !retryable && (success || (client_error && !refusal_of_the_caller))
    }

    #[test]
    fn credential_scope_limit_rate_retryable_and_server_failures_are_never_stored() {
        for status in [401, 403, 429, 500, 502, 503] {
            assert!(!stores_outcome(status, false), "{status} is never stored");
        }
        assert!(!stores_outcome(409, true), "a retryable conflict is never stored");
        for status in [200, 201, 202, 400, 404, 409, 422] {
            assert!(stores_outcome(status, false), "{status} is a committed outcome");
        }
    }

    proptest! {
        /// Over every status and both retry flags, the rule agrees with the table.
        #[test]
        fn the_rule_matches_the_table(status in 100u16..600, retryable in any::<bool>()) {
            prop_assert_eq!(stores_outcome(status, retryable), reference(status, retryable));
        }
    }
}
