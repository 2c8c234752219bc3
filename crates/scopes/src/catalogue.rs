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

    /// Scope names as a client sends them, valid and not: every catalogue name, its seed
    /// aliases, and near misses.
    fn names() -> impl Strategy<Value = Vec<String>> {
        let known: Vec<String> = Scope::ALL.iter().map(|s| s.as_str().to_owned()).collect();
        let name = prop_oneof![
            4 => proptest::sample::select(known),
            1 => Just("atlas.context.read".to_owned()),
            1 => "atlas\\.[a-z]{1,10}\\.(read|write|send)",
        ];
        proptest::collection::vec(name, 0..8)
    }

    /// An independent statement of the minting rule over names: every name asked for, once
    /// resolved (the seed alias `atlas.context.read` is `atlas.conversations.read`), is among
    /// the holder's resolved names.
    fn reference_subset(asked: &[String], held: &[String]) -> bool {
        let resolve = |n: &String| if n == "atlas.context.read" { "atlas.conversations.read".to_owned() } else { n.clone() };
        let held: Vec<String> = held.iter().map(resolve).collect();
        asked.iter().map(resolve).all(|n| held.contains(&n))
    }

    proptest! {
        /// Over generated names, a set parses exactly when every name is in the catalogue (or
        /// a seed alias), and then `is_subset_of` and `missing_from` agree with the reference
        /// computed over the names themselves.
        #[test]
        fn subset_agrees_with_a_reference_over_names(asked in names(), held in names()) {
            let known = |n: &String| n == "atlas.context.read" || Scope::ALL.iter().any(|s| s.as_str() == n);
            let parsed_asked = ScopeSet::parse(asked.iter().map(String::as_str));
            let parsed_held = ScopeSet::parse(held.iter().map(String::as_str));
            prop_assert_eq!(parsed_asked.is_ok(), asked.iter().all(known));
            prop_assert_eq!(parsed_held.is_ok(), held.iter().all(known));
            if let (Ok(a), Ok(h)) = (parsed_asked, parsed_held) {
                let expected = reference_subset(&asked, &held);
                prop_assert_eq!(a.is_subset_of(&h), expected);
                prop_assert_eq!(a.missing_from(&h).is_empty(), expected);
                for missing in a.missing_from(&h) {
                    prop_assert!(!h.contains(missing), "a scope reported missing is not held");
                    prop_assert!(a.contains(missing), "a scope reported missing was asked for");
                }
            }
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
