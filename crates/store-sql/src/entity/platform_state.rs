//! `platform_state`: platform-wide facts, one row per name. The `bootstrapped` row is the
//! bootstrap guard: its primary key lets exactly one bootstrap transaction commit.

use sea_orm::entity::prelude::*;

/// The name of the row the bootstrap transaction inserts.
pub const BOOTSTRAPPED: &str = "bootstrapped";
/// The name of the row the first start inserts, naming the default organization (`org_id`).
pub const DEFAULT_ORGANIZATION: &str = "default_organization";

/// One platform fact.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "platform_state")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub created_at_us: i64,
    /// The organization the fact is about (the default organization's row).
    pub org_id: Option<Uuid>,
}

/// No relations are navigated through sea-orm; queries join by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
