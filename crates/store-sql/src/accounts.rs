//! `AccountStore` for [`SqlStore`]: organizations, API keys, users, refresh-token families and
//! the bootstrap guard. Every change commits with the call's journal entry in one transaction.

use crate::convert::{corrupt, from_json, from_us, from_us_opt, to_json, to_us};
use crate::entity::{api_keys, organizations, platform_state, refresh_tokens, users};
use crate::error::{db, Failure};
use crate::journal::write_journal_sealed;
use crate::runs::before_cursor;
use crate::SqlStore;
use async_trait::async_trait;
use atlas_accounts::{AccountError, AccountStore, ApiKeyRecord, Organization, RefreshFamilyId, RefreshToken, RotateOutcome, User};
use atlas_kernel::{OrgId, Page, PageRequest, StoreError};
use atlas_runs::JournalEntry;
use atlas_scopes::{KeyId, Role, ScopeSet, UserId};
use ipnet::IpNet;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use time::OffsetDateTime;
use uuid::Uuid;

fn organization_row(org: &Organization) -> organizations::ActiveModel {
    organizations::ActiveModel { id: Set(org.id.as_uuid()), name: Set(org.name.clone()), created_at_us: Set(to_us(org.created_at)) }
}

fn key_row(key: &ApiKeyRecord) -> Result<api_keys::ActiveModel, StoreError> {
    Ok(api_keys::ActiveModel {
        id: Set(key.id.as_uuid()),
        org_id: Set(key.org_id.as_uuid()),
        name: Set(key.name.clone()),
        prefix: Set(key.prefix.clone()),
        hash: Set(key.hash.clone()),
        scopes: Set(to_json("writing a key's scopes", &key.scopes)?),
        expires_at_us: Set(key.expires_at.map(to_us)),
        allowed_ips: Set(to_json("writing a key's IP allowlist", &key.allowed_ips)?),
        created_at_us: Set(to_us(key.created_at)),
        last_used_at_us: Set(key.last_used_at.map(to_us)),
        revoked_at_us: Set(key.revoked_at.map(to_us)),
    })
}

fn key_from_row(row: api_keys::Model) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        id: KeyId::from_uuid(row.id),
        org_id: OrgId::from_uuid(row.org_id),
        name: row.name,
        prefix: row.prefix,
        hash: row.hash,
        scopes: from_json::<ScopeSet>("reading a key's scopes", &row.scopes)?,
        expires_at: from_us_opt(row.expires_at_us)?,
        allowed_ips: from_json::<Vec<IpNet>>("reading a key's IP allowlist", &row.allowed_ips)?,
        created_at: from_us(row.created_at_us)?,
        last_used_at: from_us_opt(row.last_used_at_us)?,
        revoked_at: from_us_opt(row.revoked_at_us)?,
    })
}

fn user_row(user: &User) -> users::ActiveModel {
    users::ActiveModel {
        id: Set(user.id.as_uuid()),
        org_id: Set(user.org_id.as_uuid()),
        email: Set(user.email.clone()),
        username: Set(user.username.clone()),
        password_hash: Set(user.password_hash.clone()),
        role: Set(user.role.as_str().to_owned()),
        created_at_us: Set(to_us(user.created_at)),
    }
}

fn user_from_row(row: users::Model) -> Result<User, StoreError> {
    let role = Role::parse(&row.role).map_err(|e| corrupt("reading a user", e.to_string()))?;
    Ok(User {
        id: UserId::from_uuid(row.id),
        org_id: OrgId::from_uuid(row.org_id),
        email: row.email,
        username: row.username,
        password_hash: row.password_hash,
        role,
        created_at: from_us(row.created_at_us)?,
    })
}

fn refresh_row(token: &RefreshToken) -> refresh_tokens::ActiveModel {
    refresh_tokens::ActiveModel {
        id: Set(Uuid::now_v7()),
        org_id: Set(token.org_id.as_uuid()),
        user_id: Set(token.user_id.as_uuid()),
        family_id: Set(token.family.as_uuid()),
        hash: Set(token.hash.clone()),
        created_at_us: Set(to_us(token.created_at)),
        expires_at_us: Set(to_us(token.expires_at)),
        used_at_us: Set(None),
        revoked_at_us: Set(None),
    }
}

/// Inserts `org` and its admin key through `txn`.
async fn insert_organization(txn: &DatabaseTransaction, org: &Organization, key: &ApiKeyRecord) -> Result<(), Failure> {
    organizations::Entity::insert(organization_row(org)).exec_without_returning(txn).await.map_err(db("inserting the organization"))?;
    insert_key_row(txn, key).await
}

pub(crate) async fn insert_key_row(txn: &DatabaseTransaction, key: &ApiKeyRecord) -> Result<(), Failure> {
    api_keys::Entity::insert(key_row(key)?).exec_without_returning(txn).await.map_err(db("inserting the key"))?;
    Ok(())
}

impl SqlStore {
    /// Opens the one transaction of a use case.
    async fn transaction(&self) -> Result<DatabaseTransaction, Failure> {
        self.db.begin().await.map_err(db("opening a transaction"))
    }

    /// `AccountStore::rotate_refresh_token`, with the journal closure typed as the port means it.
    /// The journal entry is written for `Rotated` and `Reused` (whose revocation commits with
    /// it); `Expired` and `Unknown` change nothing and write nothing (an unknown token has no
    /// organization to file a run under, and both are authentication failures, which store
    /// nothing).
    async fn rotate(
        &self,
        presented_hash: &str,
        next_hash: &str,
        next_expires_at: OffsetDateTime,
        now: OffsetDateTime,
        journal: &(dyn for<'o> Fn(&'o RotateOutcome) -> JournalEntry + Send + Sync),
    ) -> Result<RotateOutcome, AccountError> {
        let txn = self.transaction().await?;
        let mut query = refresh_tokens::Entity::find().filter(refresh_tokens::Column::Hash.eq(presented_hash));
        if self.is_postgres() {
            // A second presentation of the same token waits here for the first to commit, then
            // reads it used: it cannot rotate too.
            query = query.lock_exclusive();
        }
        let Some(token) = query.one(&txn).await.map_err(db("reading the refresh token"))? else {
            rollback(txn).await?;
            return Ok(RotateOutcome::Unknown);
        };
        let family = RefreshFamilyId::from_uuid(token.family_id);
        if token.used_at_us.is_some() || token.revoked_at_us.is_some() {
            refresh_tokens::Entity::update_many()
                .col_expr(refresh_tokens::Column::RevokedAtUs, Expr::value(to_us(now)))
                .filter(refresh_tokens::Column::OrgId.eq(token.org_id))
                .filter(refresh_tokens::Column::FamilyId.eq(token.family_id))
                .filter(refresh_tokens::Column::RevokedAtUs.is_null())
                .exec(&txn)
                .await
                .map_err(db("revoking the refresh-token family"))?;
            let outcome = RotateOutcome::Reused { family, org_id: OrgId::from_uuid(token.org_id) };
            write_journal_sealed(&txn, &journal(&outcome), self.secret_cipher.as_deref()).await?;
            commit(txn, "committing the family's revocation").await?;
            return Ok(outcome);
        }
        if token.expires_at_us <= to_us(now) {
            rollback(txn).await?;
            return Ok(RotateOutcome::Expired);
        }
        let user = users::Entity::find()
            .filter(users::Column::OrgId.eq(token.org_id))
            .filter(users::Column::Id.eq(token.user_id))
            .one(&txn)
            .await
            .map_err(db("reading the refresh token's user"))?
            .ok_or_else(|| corrupt("rotating a refresh token", format!("the user of refresh token {} is missing", token.id)))?;
        let user = user_from_row(user)?;
        let used = refresh_tokens::Entity::update_many()
            .col_expr(refresh_tokens::Column::UsedAtUs, Expr::value(to_us(now)))
            .filter(refresh_tokens::Column::Id.eq(token.id))
            .filter(refresh_tokens::Column::UsedAtUs.is_null())
            .filter(refresh_tokens::Column::RevokedAtUs.is_null())
            .exec(&txn)
            .await
            .map_err(db("marking the refresh token used"))?;
        if used.rows_affected != 1 {
            return Err(StoreError::new("rotating a refresh token", "the token changed while it was locked").into());
        }
        let successor = RefreshToken {
            hash: next_hash.to_owned(),
            family,
            user_id: user.id,
            org_id: user.org_id,
            created_at: now,
            expires_at: next_expires_at,
        };
        refresh_tokens::Entity::insert(refresh_row(&successor))
            .exec_without_returning(&txn)
            .await
            .map_err(db("inserting the successor refresh token"))?;
        let outcome = RotateOutcome::Rotated { user, family };
        write_journal_sealed(&txn, &journal(&outcome), self.secret_cipher.as_deref()).await?;
        commit(txn, "committing the rotation").await?;
        Ok(outcome)
    }
}

/// Commits `txn`.
async fn commit(txn: DatabaseTransaction, context: &'static str) -> Result<(), Failure> {
    txn.commit().await.map_err(db(context))
}

/// Rolls `txn` back (a use case that decided to change nothing).
async fn rollback(txn: DatabaseTransaction) -> Result<(), Failure> {
    txn.rollback().await.map_err(db("rolling back"))
}

#[async_trait]
impl AccountStore for SqlStore {
    async fn has_organizations(&self) -> Result<bool, AccountError> {
        let any = organizations::Entity::find()
            .select_only()
            .column(organizations::Column::Id)
            .into_tuple::<Uuid>()
            .one(&self.db)
            .await
            .map_err(db("looking for organizations"))?;
        Ok(any.is_some())
    }

    async fn create_organization(&self, org: &Organization, admin_key: &ApiKeyRecord, journal: &JournalEntry) -> Result<(), AccountError> {
        let txn = self.transaction().await?;
        insert_organization(&txn, org, admin_key).await?;
        write_journal_sealed(&txn, journal, self.secret_cipher.as_deref()).await?;
        commit(txn, "committing the organization").await?;
        Ok(())
    }

    async fn create_default_organization(
        &self,
        org: &Organization,
        admin_key: &ApiKeyRecord,
        journal: &JournalEntry,
    ) -> Result<bool, AccountError> {
        let txn = self.transaction().await?;
        // The guard first: a second replica's transaction waits here for the first to commit
        // (PostgreSQL), then inserts nothing and creates nothing.
        let claimed = platform_state::Entity::insert(platform_state::ActiveModel {
            name: Set(platform_state::DEFAULT_ORGANIZATION.to_owned()),
            created_at_us: Set(to_us(org.created_at)),
            org_id: Set(Some(org.id.as_uuid())),
        })
        .on_conflict(OnConflict::column(platform_state::Column::Name).do_nothing().to_owned())
        .exec_without_returning(&txn)
        .await
        .map_err(db("claiming the default organization"))?;
        if claimed == 0 {
            rollback(txn).await?;
            return Ok(false);
        }
        insert_organization(&txn, org, admin_key).await?;
        write_journal_sealed(&txn, journal, self.secret_cipher.as_deref()).await?;
        commit(txn, "committing the default organization").await?;
        Ok(true)
    }

    async fn default_organization(&self) -> Result<Option<Organization>, AccountError> {
        let recorded = platform_state::Entity::find_by_id(platform_state::DEFAULT_ORGANIZATION.to_owned())
            .one(&self.db)
            .await
            .map_err(db("reading the default organization"))?
            .and_then(|row| row.org_id);
        let mut query = organizations::Entity::find();
        query = match recorded {
            Some(id) => query.filter(organizations::Column::Id.eq(id)),
            None => query.order_by_asc(organizations::Column::CreatedAtUs).order_by_asc(organizations::Column::Id),
        };
        let Some(row) = query.one(&self.db).await.map_err(db("reading the default organization"))? else {
            return Ok(None);
        };
        Ok(Some(Organization { id: OrgId::from_uuid(row.id), name: row.name, created_at: from_us(row.created_at_us)? }))
    }

    async fn find_key(&self, org_id: OrgId, id: KeyId) -> Result<Option<ApiKeyRecord>, AccountError> {
        let row = api_keys::Entity::find()
            .filter(api_keys::Column::OrgId.eq(org_id.as_uuid()))
            .filter(api_keys::Column::Id.eq(id.as_uuid()))
            .one(&self.db)
            .await
            .map_err(db("reading a key"))?;
        Ok(row.map(key_from_row).transpose()?)
    }

    async fn bootstrap(&self, user: &User, key: &ApiKeyRecord, journal: &JournalEntry) -> Result<(), AccountError> {
        let txn = self.transaction().await?;
        let existing = users::Entity::find()
            .select_only()
            .column(users::Column::Id)
            .into_tuple::<Uuid>()
            .one(&txn)
            .await
            .map_err(db("looking for users"))?;
        if existing.is_some() {
            rollback(txn).await?;
            return Err(AccountError::AlreadyBootstrapped);
        }
        // The guard: of two concurrent bootstraps, the second blocks here (PostgreSQL) or waits
        // for the connection (SQLite), then fails on the primary key: AlreadyBootstrapped.
        platform_state::Entity::insert(platform_state::ActiveModel {
            name: Set(platform_state::BOOTSTRAPPED.to_owned()),
            created_at_us: Set(to_us(user.created_at)),
            org_id: Set(Some(user.org_id.as_uuid())),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(db("claiming the bootstrap"))?;
        insert_key_row(&txn, key).await?;
        users::Entity::insert(user_row(user)).exec_without_returning(&txn).await.map_err(db("inserting the first user"))?;
        write_journal_sealed(&txn, journal, self.secret_cipher.as_deref()).await?;
        commit(txn, "committing the bootstrap").await?;
        Ok(())
    }

    async fn insert_key(&self, key: &ApiKeyRecord, journal: &JournalEntry) -> Result<(), AccountError> {
        let txn = self.transaction().await?;
        insert_key_row(&txn, key).await?;
        write_journal_sealed(&txn, journal, self.secret_cipher.as_deref()).await?;
        commit(txn, "committing the key").await?;
        Ok(())
    }

    async fn list_keys(&self, org_id: OrgId, page: &PageRequest) -> Result<Page<ApiKeyRecord>, AccountError> {
        let mut query = api_keys::Entity::find().filter(api_keys::Column::OrgId.eq(org_id.as_uuid()));
        if let Some(cursor) = &page.after {
            query = query.filter(before_cursor(api_keys::Column::CreatedAtUs, api_keys::Column::Id, cursor));
        }
        let rows = query
            .order_by_desc(api_keys::Column::CreatedAtUs)
            .order_by_desc(api_keys::Column::Id)
            .limit(page.fetch_limit())
            .all(&self.db)
            .await
            .map_err(db("listing keys"))?;
        let keys = rows.into_iter().map(key_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(keys, page, |k| (k.created_at, k.id.as_uuid())))
    }

    async fn revoke_key(&self, org_id: OrgId, id: KeyId, at: OffsetDateTime, journal: &JournalEntry) -> Result<ApiKeyRecord, AccountError> {
        let txn = self.transaction().await?;
        let mut query =
            api_keys::Entity::find().filter(api_keys::Column::OrgId.eq(org_id.as_uuid())).filter(api_keys::Column::Id.eq(id.as_uuid()));
        if self.is_postgres() {
            query = query.lock_exclusive();
        }
        let Some(mut row) = query.one(&txn).await.map_err(db("reading the key"))? else {
            rollback(txn).await?;
            return Err(AccountError::NotFound);
        };
        if row.revoked_at_us.is_none() {
            let revoked_at = to_us(at);
            api_keys::Entity::update_many()
                .col_expr(api_keys::Column::RevokedAtUs, Expr::value(revoked_at))
                .filter(api_keys::Column::OrgId.eq(org_id.as_uuid()))
                .filter(api_keys::Column::Id.eq(id.as_uuid()))
                .exec(&txn)
                .await
                .map_err(db("revoking the key"))?;
            row.revoked_at_us = Some(revoked_at);
        }
        write_journal_sealed(&txn, journal, self.secret_cipher.as_deref()).await?;
        commit(txn, "committing the revocation").await?;
        Ok(key_from_row(row)?)
    }

    async fn find_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, AccountError> {
        let row = api_keys::Entity::find().filter(api_keys::Column::Hash.eq(hash)).one(&self.db).await.map_err(db("looking a key up"))?;
        Ok(row.map(key_from_row).transpose()?)
    }

    async fn touch_key(&self, id: KeyId, at: OffsetDateTime) -> Result<(), AccountError> {
        let at = to_us(at);
        api_keys::Entity::update_many()
            .col_expr(api_keys::Column::LastUsedAtUs, Expr::value(at))
            .filter(api_keys::Column::Id.eq(id.as_uuid()))
            .filter(Condition::any().add(api_keys::Column::LastUsedAtUs.is_null()).add(api_keys::Column::LastUsedAtUs.lt(at)))
            .exec(&self.db)
            .await
            .map_err(db("recording a key's use"))?;
        Ok(())
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, AccountError> {
        let row = users::Entity::find().filter(users::Column::Email.eq(email)).one(&self.db).await.map_err(db("looking a user up"))?;
        Ok(row.map(user_from_row).transpose()?)
    }

    async fn insert_refresh_token(&self, token: &RefreshToken, journal: &JournalEntry) -> Result<(), AccountError> {
        let txn = self.transaction().await?;
        refresh_tokens::Entity::insert(refresh_row(token)).exec_without_returning(&txn).await.map_err(db("inserting the refresh token"))?;
        write_journal_sealed(&txn, journal, self.secret_cipher.as_deref()).await?;
        commit(txn, "committing the refresh token").await?;
        Ok(())
    }

    async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        next_hash: &str,
        next_expires_at: OffsetDateTime,
        now: OffsetDateTime,
        journal: &(dyn for<'o> Fn(&'o RotateOutcome) -> JournalEntry + Send + Sync),
    ) -> Result<RotateOutcome, AccountError> {
        self.rotate(presented_hash, next_hash, next_expires_at, now, journal).await
    }
}
