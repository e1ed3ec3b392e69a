//! Who may manage the appliance: the admin account (an argon2id hash in PHC form, never the
//! password) and API bearer tokens (only a SHA-256 of each token is kept; the token itself is
//! shown once when it is created).
//!
//! - `users`: user name -> JSON [`UserRecord`].
//! - `api_tokens`: token id -> JSON [`ApiTokenRecord`] (with a [`TokenScope`] and an optional
//!   expiry since schema 2).
//!
//! These tables are created on first write; readers treat a missing table as empty.

use std::time::SystemTime;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::schema::{decode, encode, read_table};
use crate::{Store, StoreError};

/// Users by name -> JSON [`UserRecord`].
pub const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// API tokens by id (ascending) -> JSON [`ApiTokenRecord`].
pub const API_TOKENS: TableDefinition<u64, &[u8]> = TableDefinition::new("api_tokens");

/// One account of the web UI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The login name.
    pub name: String,
    /// The password's argon2id hash in PHC string form (`$argon2id$v=19$...`).
    pub password_hash: String,
    /// When the account was made.
    pub created: SystemTime,
}

/// What an API token may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    /// Read only: `GET` and `HEAD` on the API.
    ReadOnly,
    /// Everything the API offers (tokens made before scopes existed are admin tokens).
    #[default]
    Admin,
}

impl TokenScope {
    /// The name used in forms, JSON and docs: `read_only` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::ReadOnly => "read_only",
            TokenScope::Admin => "admin",
        }
    }

    /// Parses [`TokenScope::as_str`].
    pub fn parse(s: &str) -> Option<TokenScope> {
        match s {
            "read_only" => Some(TokenScope::ReadOnly),
            "admin" => Some(TokenScope::Admin),
            _ => None,
        }
    }
}

/// One API bearer token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTokenRecord {
    /// Assigned by [`Store::insert_api_token`]; ascending.
    pub id: u64,
    /// What the user called it ("ci", "laptop").
    pub name: String,
    /// Lower-case hex SHA-256 of the token.
    pub token_sha256: String,
    /// When it was made.
    pub created: SystemTime,
    /// What it may do (added in schema 2; older records are admin tokens).
    #[serde(default)]
    pub scope: TokenScope,
    /// When it stops working; `None`: never (added in schema 2).
    #[serde(default)]
    pub expires: Option<SystemTime>,
}

impl ApiTokenRecord {
    /// True when the token has expired at `now`.
    pub fn expired(&self, now: SystemTime) -> bool {
        self.expires.is_some_and(|at| now >= at)
    }
}

impl Store {
    /// The user with this name.
    pub fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, USERS)? else {
            return Ok(None);
        };
        match table.get(name)? {
            Some(v) => Ok(Some(decode("users", name, v.value())?)),
            None => Ok(None),
        }
    }

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, USERS)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push(decode("users", k.value(), v.value())?);
        }
        Ok(out)
    }

    /// Creates or replaces a user.
    pub fn put_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let bytes = encode("users", user)?;
        let txn = self.db.begin_write()?;
        txn.open_table(USERS)?
            .insert(user.name.as_str(), bytes.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Creates a user only if there is no user at all yet (first-run setup), in one
    /// transaction. Returns false (and changes nothing) when a user exists.
    pub fn create_first_user(&self, user: &UserRecord) -> Result<bool, StoreError> {
        let bytes = encode("users", user)?;
        let txn = self.db.begin_write()?;
        let created = {
            let mut table = txn.open_table(USERS)?;
            if table.first()?.is_some() {
                false
            } else {
                table.insert(user.name.as_str(), bytes.as_slice())?;
                true
            }
        };
        txn.commit()?;
        Ok(created)
    }

    /// Stores a new API token under the next id (the record's `id` is ignored).
    pub fn insert_api_token(&self, token: &ApiTokenRecord) -> Result<ApiTokenRecord, StoreError> {
        let txn = self.db.begin_write()?;
        let record = {
            let mut table = txn.open_table(API_TOKENS)?;
            let next = table
                .last()?
                .map_or(1, |(k, _)| k.value().saturating_add(1));
            let record = ApiTokenRecord {
                id: next,
                ..token.clone()
            };
            table.insert(next, encode("api_tokens", &record)?.as_slice())?;
            record
        };
        txn.commit()?;
        Ok(record)
    }

    /// Every API token, oldest first.
    pub fn api_tokens(&self) -> Result<Vec<ApiTokenRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table(&txn, API_TOKENS)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push(decode("api_tokens", k.value(), v.value())?);
        }
        Ok(out)
    }

    /// Revokes a token. Returns whether it existed.
    pub fn remove_api_token(&self, id: u64) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let existed = txn.open_table(API_TOKENS)?.remove(id)?.is_some();
        txn.commit()?;
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserRecord {
        UserRecord {
            name: name.into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            created: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn only_the_first_user_is_created_by_setup() {
        let store = Store::in_memory().unwrap();
        assert!(store.users().unwrap().is_empty());
        assert!(store.create_first_user(&user("admin")).unwrap());
        assert!(!store.create_first_user(&user("mallory")).unwrap());
        assert_eq!(store.users().unwrap(), vec![user("admin")]);
        let mut changed = user("admin");
        changed.password_hash = "$argon2id$other".into();
        store.put_user(&changed).unwrap();
        assert_eq!(store.user("admin").unwrap(), Some(changed));
    }

    #[test]
    fn tokens_get_ascending_ids_and_can_be_revoked() {
        let store = Store::in_memory().unwrap();
        let draft = ApiTokenRecord {
            id: 0,
            name: "ci".into(),
            token_sha256: "ab".repeat(32),
            created: SystemTime::UNIX_EPOCH,
            scope: TokenScope::ReadOnly,
            expires: Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400)),
        };
        let a = store.insert_api_token(&draft).unwrap();
        let b = store.insert_api_token(&draft).unwrap();
        assert_eq!((a.id, b.id), (1, 2));
        assert!(store.remove_api_token(1).unwrap());
        assert!(!store.remove_api_token(1).unwrap());
        assert_eq!(store.api_tokens().unwrap(), vec![b.clone()]);
        // Scope and expiry are kept.
        assert_eq!(b.scope, TokenScope::ReadOnly);
        assert!(!b.expired(SystemTime::UNIX_EPOCH));
        assert!(b.expired(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400)));
    }

    #[test]
    fn a_token_record_without_scope_or_expiry_is_an_admin_token_for_ever() {
        let old = br#"{"id":3,"name":"ci","token_sha256":"ab","created":{"secs_since_epoch":0,"nanos_since_epoch":0}}"#;
        let record: ApiTokenRecord = crate::schema::decode("api_tokens", 3, old).unwrap();
        assert_eq!((record.scope, record.expires), (TokenScope::Admin, None));
        for scope in [TokenScope::ReadOnly, TokenScope::Admin] {
            assert_eq!(TokenScope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(TokenScope::parse("root"), None);
    }
}
