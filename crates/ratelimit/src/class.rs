//! Route classes (which family of routes a request spends quota from), their default
//! policies from DESIGN.md, per-organization overrides, and the bucket keys limiters store
//! state under.

use crate::Policy;
use atlas_kernel::OrgId;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;
use time::Duration;

/// A family of routes sharing one bucket per organization (per client IP for `Auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteClass {
    /// `POST /v1/atlas/messages`: 60/min.
    Messages,
    /// `POST /agent/v1/tools/*`: 120/min.
    AgentTools,
    /// `POST /v1/atlas/actions`: 30/min.
    Actions,
    /// Every other mutating route: 60/min.
    Writes,
    /// Every `GET`: 300/min.
    Reads,
    /// `/v1/atlas/auth/*`, keyed per client IP: 10/min.
    Auth,
}

/// The text is not the name of a route class.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown route class `{0}`: expected messages, agent_tools, actions, writes, reads or auth")]
pub struct UnknownRouteClass(pub String);

impl RouteClass {
    /// Every class, in declaration order.
    pub const ALL: [RouteClass; 6] = [Self::Messages, Self::AgentTools, Self::Actions, Self::Writes, Self::Reads, Self::Auth];

    /// The class's name as used in configuration, bucket keys and metrics.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Messages => "messages",
            Self::AgentTools => "agent_tools",
            Self::Actions => "actions",
            Self::Writes => "writes",
            Self::Reads => "reads",
            Self::Auth => "auth",
        }
    }

    /// Parses a class name as written by [`RouteClass::as_str`].
    ///
    /// # Errors
    /// [`UnknownRouteClass`] for any other text.
    pub fn parse(text: &str) -> Result<Self, UnknownRouteClass> {
        Self::ALL.into_iter().find(|class| class.as_str() == text).ok_or_else(|| UnknownRouteClass(text.to_owned()))
    }

    /// The policy DESIGN.md gives the class.
    pub const fn default_policy(&self) -> Policy {
        let per_minute = match self {
            Self::Messages => 60,
            Self::AgentTools => 120,
            Self::Actions => 30,
            Self::Writes => 60,
            Self::Reads => 300,
            Self::Auth => 10,
        };
        Policy::from_valid_parts(per_minute, Duration::MINUTE)
    }
}

impl fmt::Display for RouteClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RouteClass {
    type Err = UnknownRouteClass;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The key of the bucket a request spends from: `"<class>:<subject>"`, where the subject is
/// the organization id (`org_…`), or `"ip:<address>"` for [`RouteClass::Auth`]. Limiters
/// treat it as opaque (the Redis adapter prefixes it with its namespace).
pub fn bucket_key(class: RouteClass, subject: &str) -> String {
    format!("{}:{subject}", class.as_str())
}

/// The policy of every (organization, route class): the defaults, replaced per class where
/// configured, and per organization where an override exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policies {
    defaults: [Policy; RouteClass::ALL.len()],
    overrides: HashMap<(OrgId, RouteClass), Policy>,
}

impl Policies {
    /// DESIGN.md's defaults and no overrides.
    pub fn new() -> Self {
        Self { defaults: RouteClass::ALL.map(|class| class.default_policy()), overrides: HashMap::new() }
    }

    /// Replaces the default policy of `class` (for every organization without an override).
    pub fn set_default(&mut self, class: RouteClass, policy: Policy) -> &mut Self {
        self.defaults[class as usize] = policy;
        self
    }

    /// Gives `org` its own policy for `class`.
    pub fn set_override(&mut self, org: OrgId, class: RouteClass, policy: Policy) -> &mut Self {
        self.overrides.insert((org, class), policy);
        self
    }

    /// Removes `org`'s override for `class`, returning it; the default applies again.
    pub fn remove_override(&mut self, org: OrgId, class: RouteClass) -> Option<Policy> {
        self.overrides.remove(&(org, class))
    }

    /// The default policy of `class`.
    pub fn default_for(&self, class: RouteClass) -> Policy {
        self.defaults[class as usize]
    }

    /// The policy for requests of `org` (or of no organization yet, as on the auth routes,
    /// which are keyed per client IP) in `class`: the organization's override if any, else
    /// the class default.
    pub fn policy_for(&self, org: Option<OrgId>, class: RouteClass) -> Policy {
        org.and_then(|org| self.overrides.get(&(org, class)).copied()).unwrap_or_else(|| self.default_for(class))
    }

    /// The overrides, for display or export.
    pub fn overrides(&self) -> impl Iterator<Item = (OrgId, RouteClass, Policy)> + '_ {
        self.overrides.iter().map(|(&(org, class), &policy)| (org, class, policy))
    }
}

impl Default for Policies {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_a_name_that_parses_back() {
        let names: Vec<&str> = RouteClass::ALL.iter().map(RouteClass::as_str).collect();
        assert_eq!(names, ["messages", "agent_tools", "actions", "writes", "reads", "auth"]);
        for class in RouteClass::ALL {
            assert_eq!(class.as_str().parse::<RouteClass>(), Ok(class));
            assert_eq!(class.to_string(), class.as_str());
        }
        assert_eq!(RouteClass::parse("Messages"), Err(UnknownRouteClass("Messages".into())));
    }

    #[test]
    fn the_defaults_are_those_of_the_design() {
        let policies = Policies::new();
        let expected = [
            (RouteClass::Messages, "60/min"),
            (RouteClass::AgentTools, "120/min"),
            (RouteClass::Actions, "30/min"),
            (RouteClass::Writes, "60/min"),
            (RouteClass::Reads, "300/min"),
            (RouteClass::Auth, "10/min"),
        ];
        for (class, policy) in expected {
            assert_eq!(policies.policy_for(None, class), Policy::parse(policy).unwrap(), "{class}");
            assert_eq!(class.default_policy().to_string(), policy);
            // A default is as valid as a parsed policy.
            let default = class.default_policy();
            assert_eq!(Policy::new(default.limit(), default.period()), Ok(default));
        }
    }

    #[test]
    fn an_override_applies_to_its_organization_and_class_only() {
        let acme = OrgId::generate();
        let other = OrgId::generate();
        let mut policies = Policies::new();
        policies.set_override(acme, RouteClass::Messages, Policy::parse("600/min").unwrap());

        assert_eq!(policies.policy_for(Some(acme), RouteClass::Messages).limit(), 600);
        assert_eq!(policies.policy_for(Some(acme), RouteClass::Reads).limit(), 300);
        assert_eq!(policies.policy_for(Some(other), RouteClass::Messages).limit(), 60);
        assert_eq!(policies.policy_for(None, RouteClass::Messages).limit(), 60);
        assert_eq!(policies.overrides().count(), 1);

        policies.remove_override(acme, RouteClass::Messages);
        assert_eq!(policies.policy_for(Some(acme), RouteClass::Messages).limit(), 60);
    }

    #[test]
    fn a_changed_default_applies_to_organizations_without_an_override() {
        let acme = OrgId::generate();
        let mut policies = Policies::new();
        policies.set_default(RouteClass::Reads, Policy::parse("50/s").unwrap());
        assert_eq!(policies.policy_for(Some(acme), RouteClass::Reads).to_string(), "50/s");
        assert_eq!(policies.policy_for(Some(acme), RouteClass::Writes).to_string(), "60/min");
    }

    #[test]
    fn bucket_keys_name_the_class_and_the_subject() {
        let org = OrgId::generate();
        assert_eq!(bucket_key(RouteClass::Messages, &org.to_string()), format!("messages:{org}"));
        assert_eq!(bucket_key(RouteClass::Auth, "ip:203.0.113.7"), "auth:ip:203.0.113.7");
    }
}
