//! The service catalog and the requests made from it: `pending_approval → approved |
//! rejected`, `approved → fulfilled`; a request for an item that needs no approval starts
//! `approved`.

use atlas_kernel::{typed_id, OrgId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

typed_id!(
    /// An item of the service catalog.
    CatalogItemId,
    "cat"
);

typed_id!(
    /// A service request (`srq_…`; `req_` is taken by request ids).
    ServiceRequestId,
    "srq"
);

/// Something people can request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CatalogItem {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: CatalogItemId,
    #[serde(skip)]
    pub org_id: OrgId,
    pub name: String,
    pub description: Option<String>,
    pub requires_approval: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Where a service request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    #[serde(alias = "PendingApproval", alias = "PENDING_APPROVAL")]
    PendingApproval,
    #[serde(alias = "Approved", alias = "APPROVED")]
    Approved,
    #[serde(alias = "Rejected", alias = "REJECTED")]
    Rejected,
    #[serde(alias = "Fulfilled", alias = "FULFILLED")]
    Fulfilled,
}

impl RequestStatus {
    /// Every status.
    pub const ALL: [RequestStatus; 4] =
        [RequestStatus::PendingApproval, RequestStatus::Approved, RequestStatus::Rejected, RequestStatus::Fulfilled];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            RequestStatus::PendingApproval => "pending_approval",
            RequestStatus::Approved => "approved",
            RequestStatus::Rejected => "rejected",
            RequestStatus::Fulfilled => "fulfilled",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The states that may follow this one.
    pub const fn next(self) -> &'static [RequestStatus] {
        match self {
            RequestStatus::PendingApproval => &[RequestStatus::Approved, RequestStatus::Rejected],
            RequestStatus::Approved => &[RequestStatus::Fulfilled],
            RequestStatus::Rejected | RequestStatus::Fulfilled => &[],
        }
    }
}

/// A request made from the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceRequest {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: ServiceRequestId,
    #[serde(skip)]
    pub org_id: OrgId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub catalog_item_id: CatalogItemId,
    pub requested_by: String,
    pub status: RequestStatus,
    /// The credential that approved or rejected it.
    pub decided_by: Option<String>,
    pub comment: Option<String>,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub fulfilled_at: Option<OffsetDateTime>,
}

/// A refused request transition: `INVALID_TRANSITION` with what is allowed from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequestTransition {
    pub from: RequestStatus,
    pub to: RequestStatus,
    pub allowed: Vec<RequestStatus>,
}

impl ServiceRequest {
    /// The status a new request for `item` starts in.
    pub fn initial_status(item: &CatalogItem) -> RequestStatus {
        if item.requires_approval {
            RequestStatus::PendingApproval
        } else {
            RequestStatus::Approved
        }
    }

    /// Moves the request to `to` on behalf of `actor`.
    ///
    /// # Errors
    /// [`InvalidRequestTransition`]; the request is left as it was.
    pub fn advance(
        &mut self,
        to: RequestStatus,
        actor: &str,
        comment: Option<String>,
        at: OffsetDateTime,
    ) -> Result<(), InvalidRequestTransition> {
        let allowed = self.status.next().to_vec();
        if !allowed.contains(&to) {
            return Err(InvalidRequestTransition { from: self.status, to, allowed });
        }
        match to {
            RequestStatus::Approved | RequestStatus::Rejected => {
                self.decided_by = Some(actor.to_owned());
                self.decided_at = Some(at);
            }
            RequestStatus::Fulfilled => self.fulfilled_at = Some(at),
            RequestStatus::PendingApproval => {}
        }
        if comment.is_some() {
            self.comment = comment;
        }
        self.status = to;
        self.updated_at = at;
        self.version += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TABLE: &[(&str, &str)] = &[("pending_approval", "approved"), ("pending_approval", "rejected"), ("approved", "fulfilled")];

    fn request(requires_approval: bool) -> ServiceRequest {
        let at = time::macros::datetime!(2026-04-01 12:00 UTC);
        let item = CatalogItem {
            id: CatalogItemId::generate(),
            org_id: OrgId::generate(),
            name: "Laptop".into(),
            description: None,
            requires_approval,
            created_at: at,
        };
        ServiceRequest {
            id: ServiceRequestId::generate(),
            org_id: item.org_id,
            catalog_item_id: item.id,
            requested_by: "user@example.com".into(),
            status: ServiceRequest::initial_status(&item),
            decided_by: None,
            comment: None,
            version: 1,
            created_at: at,
            updated_at: at,
            decided_at: None,
            fulfilled_at: None,
        }
    }

    proptest! {
        /// From any reachable state exactly the reference table's transitions are accepted, and
        /// a request for an item without approval starts approved.
        #[test]
        fn requests_accept_exactly_the_reference_table(
            requires_approval in any::<bool>(),
            steps in proptest::collection::vec(proptest::sample::select(RequestStatus::ALL.to_vec()), 0..8),
        ) {
            let mut r = request(requires_approval);
            prop_assert_eq!(r.status, if requires_approval { RequestStatus::PendingApproval } else { RequestStatus::Approved });
            let at = r.created_at;
            for to in steps {
                let before = r.status;
                let legal = TABLE.contains(&(before.as_str(), to.as_str()));
                let result = r.advance(to, "key_x", None, at);
                prop_assert_eq!(result.is_ok(), legal);
                match result {
                    Ok(()) => prop_assert_eq!(r.status, to),
                    Err(e) => {
                        prop_assert_eq!(r.status, before);
                        let expected: Vec<RequestStatus> =
                            RequestStatus::ALL.into_iter().filter(|s| TABLE.contains(&(before.as_str(), s.as_str()))).collect();
                        prop_assert_eq!(e.allowed, expected);
                    }
                }
            }
        }
    }
}
