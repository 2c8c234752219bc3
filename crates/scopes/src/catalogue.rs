//! The scope catalogue and scope sets. A scope is `atlas.<area>.<verb>`; aliases from the seeds
//! (`atlas.context.read`) resolve to their canonical scope.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use thiserror::Error;

/// A scope name that is not in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown scope `{0}`")]
pub struct UnknownScope(pub String);

macro_rules! scopes {
    ($($variant:ident => $name:literal,)*) => {
        /// One permission a credential can hold.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Scope { $($variant,)* }

        impl Scope {
            /// Every scope in the catalogue.
            pub const ALL: &'static [Scope] = &[$(Scope::$variant,)*];

            /// The scope's wire name.
            pub const fn as_str(self) -> &'static str {
                match self { $(Scope::$variant => $name,)* }
            }

            /// Parses a wire name or a known alias.
            pub fn parse(name: &str) -> Result<Self, UnknownScope> {
                match name {
                    $($name => Ok(Scope::$variant),)*
                    "atlas.context.read" => Ok(Scope::ConversationsRead),
                    other => Err(UnknownScope(other.to_owned())),
                }
            }
        }
    };
}

scopes! {
    PlatformAdmin => "atlas.platform.admin",
    MessagesSend => "atlas.messages.send",
    ChannelsRead => "atlas.channels.read",
    ChannelsWrite => "atlas.channels.write",
    KnowledgeRead => "atlas.knowledge.read",
    KnowledgeWrite => "atlas.knowledge.write",
    AgentsRead => "atlas.agents.read",
    AgentsWrite => "atlas.agents.write",
    SessionsRead => "atlas.sessions.read",
    SessionsWrite => "atlas.sessions.write",
    ConversationsRead => "atlas.conversations.read",
    ActionsExecute => "atlas.actions.execute",
    EventsRead => "atlas.events.read",
    EventsWrite => "atlas.events.write",
    RunsRead => "atlas.runs.read",
    KeysRead => "atlas.keys.read",
    KeysWrite => "atlas.keys.write",
    TemplatesRead => "atlas.templates.read",
    TemplatesWrite => "atlas.templates.write",
    IncidentsRead => "atlas.incidents.read",
    IncidentsWrite => "atlas.incidents.write",
    ChangesRead => "atlas.changes.read",
    ChangesWrite => "atlas.changes.write",
    CmdbRead => "atlas.cmdb.read",
    CmdbWrite => "atlas.cmdb.write",
    RunbooksRead => "atlas.runbooks.read",
    RunbooksWrite => "atlas.runbooks.write",
    RunbooksExecute => "atlas.runbooks.execute",
    ProjectsRead => "atlas.projects.read",
    ProjectsWrite => "atlas.projects.write",
    TasksRead => "atlas.tasks.read",
    TasksWrite => "atlas.tasks.write",
    RequestsRead => "atlas.requests.read",
    RequestsWrite => "atlas.requests.write",
}

impl Scope {
    /// Whether an organization's own administrator holds this scope. The operator-only
    /// `atlas.platform.admin` is granted by the operator alone.
    pub const fn is_organization_scope(self) -> bool {
        !matches!(self, Scope::PlatformAdmin)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Scope::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A set of scopes, held by a credential or asked for by a mint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    /// The empty set.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Every organization scope: what an organization's administrator holds.
    pub fn organization_admin() -> Self {
        Scope::ALL.iter().copied().filter(|s| s.is_organization_scope()).collect()
    }

    /// Parses wire names, reporting the first unknown one.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, UnknownScope> {
        names.into_iter().map(Scope::parse).collect()
    }

    /// Whether the set holds `scope`.
    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    /// The minting rule: a credential may grant only scopes it holds itself.
    pub fn is_subset_of(&self, holder: &ScopeSet) -> bool {
        self.0.is_subset(&holder.0)
    }

    /// The scopes of `self` that `holder` lacks, in catalogue order.
    pub fn missing_from(&self, holder: &ScopeSet) -> Vec<Scope> {
        self.0.difference(&holder.0).copied().collect()
    }

    /// The scopes, in catalogue order.
    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// How many scopes the set holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Wire names, in catalogue order.
    pub fn names(&self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_scope_parses_back_from_its_wire_name() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()).unwrap(), *scope);
        }
    }

    #[test]
    fn the_context_alias_means_conversations_read() {
        assert_eq!(Scope::parse("atlas.context.read").unwrap(), Scope::ConversationsRead);
        assert_eq!(Scope::parse("atlas.nope.read"), Err(UnknownScope("atlas.nope.read".into())));
    }

    #[test]
    fn an_organization_admin_never_holds_the_operator_scope() {
        assert!(!ScopeSet::organization_admin().contains(Scope::PlatformAdmin));
        assert_eq!(ScopeSet::organization_admin().len(), Scope::ALL.len() - 1);
    }

    fn scope_set() -> impl Strategy<Value = ScopeSet> {
        proptest::sample::subsequence(Scope::ALL.to_vec(), 0..Scope::ALL.len()).prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        /// A set is a subset of a holder exactly when none of its scopes is missing from it.
        #[test]
        fn subset_means_nothing_missing(asked in scope_set(), holder in scope_set()) {
            prop_assert_eq!(asked.is_subset_of(&holder), asked.missing_from(&holder).is_empty());
        }

        /// A holder may always mint any part of what it holds, and never a scope it lacks.
        #[test]
        fn minting_rule(holder in scope_set(), extra in proptest::sample::select(Scope::ALL.to_vec())) {
            let part: ScopeSet = holder.iter().step_by(2).collect();
            prop_assert!(part.is_subset_of(&holder));
            let mut wider: ScopeSet = holder.iter().collect();
            wider.0.insert(extra);
            prop_assert_eq!(wider.is_subset_of(&holder), holder.contains(extra));
        }

        /// The subset rule is transitive.
        #[test]
        fn subset_is_transitive(a in scope_set(), b in scope_set(), c in scope_set()) {
            if a.is_subset_of(&b) && b.is_subset_of(&c) {
                prop_assert!(a.is_subset_of(&c));
            }
        }
    }
}
