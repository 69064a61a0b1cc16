//! Reading a Django + django-oauth-toolkit database: the user table and DOT's
//! application, access-token and refresh-token tables, on SQLite or PostgreSQL,
//! for DOT 1.x to 3.x schemas (columns added by later versions are optional).
//!
//! Every value is read with plain SQL that both backends understand: integers cast
//! to `BIGINT`, booleans turned into 0/1, times into Unix seconds. A row whose
//! values cannot be read becomes an error for that row alone.

use std::collections::HashSet;

use sea_orm::{
    ConnectOptions, ConnectionTrait as _, Database, DatabaseConnection, DbBackend, DbErr,
    QueryResult, Statement,
};

use super::ImportError;
use crate::store::UnixTime;

const APPLICATION: &str = "oauth2_provider_application";
const ACCESS_TOKEN: &str = "oauth2_provider_accesstoken";
const REFRESH_TOKEN: &str = "oauth2_provider_refreshtoken";

/// A Django + DOT database opened for reading.
pub struct DjangoSource {
    db: DatabaseConnection,
    backend: DbBackend,
    user_table: String,
}

impl std::fmt::Debug for DjangoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DjangoSource")
            .field("backend", &self.backend)
            .field("user_table", &self.user_table)
            .finish_non_exhaustive()
    }
}

/// A user row.
#[derive(Clone)]
pub(crate) struct SourceUser {
    pub(crate) id: i64,
    pub(crate) email: String,
    pub(crate) password: String,
    pub(crate) is_active: bool,
    pub(crate) is_staff: bool,
    pub(crate) is_superuser: bool,
    pub(crate) date_joined: Option<UnixTime>,
    pub(crate) last_login: Option<UnixTime>,
}

/// An application row.
#[derive(Clone)]
pub(crate) struct SourceApplication {
    pub(crate) id: i64,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    /// DOT ≥ 2.0's `hash_client_secret`; `None` before (secrets were kept in clear).
    pub(crate) hash_client_secret: Option<bool>,
    pub(crate) client_type: String,
    pub(crate) grant_type: String,
    pub(crate) redirect_uris: String,
    pub(crate) allowed_origins: String,
    pub(crate) skip_authorization: bool,
    pub(crate) name: String,
    pub(crate) user_id: Option<i64>,
    pub(crate) created: Option<UnixTime>,
}

/// An access-token row.
#[derive(Clone)]
pub(crate) struct SourceAccessToken {
    pub(crate) id: i64,
    pub(crate) token: Option<String>,
    /// DOT ≥ 3's SHA-256 (hex) of the token.
    pub(crate) checksum: Option<String>,
    pub(crate) user_id: Option<i64>,
    pub(crate) application_id: Option<i64>,
    pub(crate) scope: String,
    pub(crate) expires: Option<UnixTime>,
    pub(crate) created: Option<UnixTime>,
}

/// A refresh-token row.
#[derive(Clone)]
pub(crate) struct SourceRefreshToken {
    pub(crate) id: i64,
    pub(crate) token: Option<String>,
    pub(crate) checksum: Option<String>,
    pub(crate) user_id: Option<i64>,
    pub(crate) application_id: Option<i64>,
    pub(crate) access_token_id: Option<i64>,
    pub(crate) created: Option<UnixTime>,
    pub(crate) revoked: Option<UnixTime>,
}

/// A row that could not be read: its id (when that much could be read) and why.
pub(crate) type BadRow = (Option<i64>, String);

impl DjangoSource {
    /// Opens `url` (`sqlite:///path/db.sqlite3` — read-only — or `postgres://…`) and
    /// finds the user table: `user_table` when given, else the table DOT's
    /// `oauth2_provider_accesstoken.user_id` references (`auth_user`, or a custom
    /// model's table such as `users_customuser`).
    ///
    /// # Errors
    /// [`ImportError::Source`] when the database cannot be opened, DOT's tables are
    /// missing, or the user table cannot be found or lacks `email` or `password`.
    pub async fn connect(url: &str, user_table: Option<&str>) -> Result<Self, ImportError> {
        let url = if url.starts_with("sqlite:") && !url.contains("mode=") {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}mode=ro")
        } else {
            url.to_owned()
        };
        let mut opts = ConnectOptions::new(url);
        opts.sqlx_logging(false).max_connections(2);
        let db = Database::connect(opts)
            .await
            .map_err(|e| ImportError::Source(format!("cannot open the Django database: {e}")))?;
        let backend = db.get_database_backend();
        let mut source = Self {
            db,
            backend,
            user_table: String::new(),
        };
        for table in [APPLICATION, ACCESS_TOKEN, REFRESH_TOKEN] {
            if source.columns(table).await?.is_empty() {
                return Err(ImportError::Source(format!(
                    "no table {table}: is this a django-oauth-toolkit database?"
                )));
            }
        }
        let table = match user_table {
            Some(t) => t.to_owned(),
            None => source.user_table_from_foreign_key().await?,
        };
        check_identifier(&table)?;
        let columns = source.columns(&table).await?;
        for needed in ["id", "email", "password"] {
            if !columns.contains(needed) {
                return Err(ImportError::Source(format!(
                    "the user table {table} has no column {needed}"
                )));
            }
        }
        source.user_table = table;
        Ok(source)
    }

    /// The user table read.
    #[must_use]
    pub fn user_table(&self) -> &str {
        &self.user_table
    }

    async fn user_table_from_foreign_key(&self) -> Result<String, ImportError> {
        let sql = match self.backend {
            DbBackend::Sqlite => format!(
                "SELECT \"table\" AS t FROM pragma_foreign_key_list('{ACCESS_TOKEN}') WHERE \"from\" = 'user_id'"
            ),
            _ => format!(
                "SELECT CAST(ccu.table_name AS TEXT) AS t \
                 FROM information_schema.table_constraints tc \
                 JOIN information_schema.key_column_usage kcu \
                   ON tc.constraint_name = kcu.constraint_name AND tc.table_schema = kcu.table_schema \
                 JOIN information_schema.constraint_column_usage ccu \
                   ON ccu.constraint_name = tc.constraint_name AND ccu.table_schema = tc.table_schema \
                 WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = current_schema() \
                   AND tc.table_name = '{ACCESS_TOKEN}' AND kcu.column_name = 'user_id'"
            ),
        };
        let rows = self.query(&sql).await?;
        rows.first()
            .and_then(|r| r.try_get::<String>("", "t").ok())
            .ok_or_else(|| {
                ImportError::Source(format!(
                    "cannot tell the user table from {ACCESS_TOKEN}.user_id's foreign key; name it (--user-table)"
                ))
            })
    }

    /// The column names of `table` (empty when there is no such table).
    async fn columns(&self, table: &str) -> Result<HashSet<String>, ImportError> {
        check_identifier(table)?;
        let sql = match self.backend {
            DbBackend::Sqlite => format!("SELECT name AS c FROM pragma_table_info('{table}')"),
            _ => format!(
                "SELECT CAST(column_name AS TEXT) AS c FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = '{table}'"
            ),
        };
        Ok(self
            .query(&sql)
            .await?
            .iter()
            .filter_map(|r| r.try_get::<String>("", "c").ok())
            .collect())
    }

    async fn query(&self, sql: &str) -> Result<Vec<QueryResult>, ImportError> {
        self.db
            .query_all_raw(Statement::from_string(self.backend, sql.to_owned()))
            .await
            .map_err(|e| ImportError::Source(format!("reading the Django database: {e}")))
    }

    /// Runs `sql` and reads each row with `read`, given the row's `id`: a row whose
    /// id cannot be read, or that `read` fails on, is a [`BadRow`].
    async fn rows<T>(
        &self,
        sql: &str,
        read: impl Fn(&QueryResult, i64) -> Result<T, DbErr>,
    ) -> Result<Vec<Result<T, BadRow>>, ImportError> {
        Ok(self
            .query(sql)
            .await?
            .iter()
            .map(|r| {
                let id = r
                    .try_get::<i64>("", "id")
                    .map_err(|e| (None, e.to_string()))?;
                read(r, id).map_err(|e| (Some(id), format!("unreadable row: {e}")))
            })
            .collect())
    }

    /// `col` as a 64-bit integer, or NULL.
    fn int(col: &str) -> String {
        format!("CAST(\"{col}\" AS BIGINT)")
    }

    /// `col` (a boolean) as 0 or 1; `default` when the table has no such column.
    fn flag(columns: &HashSet<String>, col: &str, default: bool) -> String {
        if columns.contains(col) {
            format!("CAST(CASE WHEN \"{col}\" THEN 1 ELSE 0 END AS BIGINT)")
        } else {
            format!("CAST({} AS BIGINT)", i64::from(default))
        }
    }

    /// `col` (a date-time) as Unix seconds, or NULL (also when there is no such column).
    fn time(&self, columns: &HashSet<String>, col: &str) -> String {
        if !columns.contains(col) {
            return "CAST(NULL AS BIGINT)".to_owned();
        }
        match self.backend {
            DbBackend::Sqlite => format!("CAST(strftime('%s', \"{col}\") AS INTEGER)"),
            _ => format!("CAST(EXTRACT(EPOCH FROM \"{col}\") AS BIGINT)"),
        }
    }

    /// `col` as text, or NULL when there is no such column.
    fn text(columns: &HashSet<String>, col: &str) -> String {
        if columns.contains(col) {
            format!("\"{col}\"")
        } else {
            "CAST(NULL AS TEXT)".to_owned()
        }
    }

    /// Every user row, oldest first.
    pub(crate) async fn users(&self) -> Result<Vec<Result<SourceUser, BadRow>>, ImportError> {
        let c = self.columns(&self.user_table).await?;
        let sql = format!(
            "SELECT {id} AS id, \"email\" AS email, \"password\" AS password, {active} AS is_active, \
             {staff} AS is_staff, {superuser} AS is_superuser, {joined} AS date_joined, \
             {login} AS last_login FROM \"{table}\" ORDER BY \"id\"",
            id = Self::int("id"),
            active = Self::flag(&c, "is_active", true),
            staff = Self::flag(&c, "is_staff", false),
            superuser = Self::flag(&c, "is_superuser", false),
            joined = self.time(&c, "date_joined"),
            login = self.time(&c, "last_login"),
            table = self.user_table,
        );
        self.rows(&sql, |r, id| {
            Ok(SourceUser {
                id,
                email: text_or_empty(r, "email")?,
                password: text_or_empty(r, "password")?,
                is_active: flag_set(r, "is_active")?,
                is_staff: flag_set(r, "is_staff")?,
                is_superuser: flag_set(r, "is_superuser")?,
                date_joined: r.try_get("", "date_joined")?,
                last_login: r.try_get("", "last_login")?,
            })
        })
        .await
    }

    /// Every application row.
    pub(crate) async fn applications(
        &self,
    ) -> Result<Vec<Result<SourceApplication, BadRow>>, ImportError> {
        let c = self.columns(APPLICATION).await?;
        let hashed = if c.contains("hash_client_secret") {
            Self::flag(&c, "hash_client_secret", false)
        } else {
            "CAST(NULL AS BIGINT)".to_owned()
        };
        let sql = format!(
            "SELECT {id} AS id, \"client_id\" AS client_id, \"client_secret\" AS client_secret, \
             {hashed} AS hash_client_secret, \"client_type\" AS client_type, \
             \"authorization_grant_type\" AS grant_type, {redirect} AS redirect_uris, \
             {origins} AS allowed_origins, {skip} AS skip_authorization, {name} AS name, \
             {user} AS user_id, {created} AS created FROM \"{APPLICATION}\" ORDER BY \"id\"",
            id = Self::int("id"),
            redirect = Self::text(&c, "redirect_uris"),
            origins = Self::text(&c, "allowed_origins"),
            skip = Self::flag(&c, "skip_authorization", false),
            name = Self::text(&c, "name"),
            user = Self::int("user_id"),
            created = self.time(&c, "created"),
        );
        self.rows(&sql, |r, id| {
            Ok(SourceApplication {
                id,
                client_id: text_or_empty(r, "client_id")?,
                client_secret: text_or_empty(r, "client_secret")?,
                hash_client_secret: r
                    .try_get::<Option<i64>>("", "hash_client_secret")?
                    .map(|v| v != 0),
                client_type: text_or_empty(r, "client_type")?,
                grant_type: text_or_empty(r, "grant_type")?,
                redirect_uris: text_or_empty(r, "redirect_uris")?,
                allowed_origins: text_or_empty(r, "allowed_origins")?,
                skip_authorization: flag_set(r, "skip_authorization")?,
                name: text_or_empty(r, "name")?,
                user_id: r.try_get("", "user_id")?,
                created: r.try_get("", "created")?,
            })
        })
        .await
    }

    /// Every access-token row.
    pub(crate) async fn access_tokens(
        &self,
    ) -> Result<Vec<Result<SourceAccessToken, BadRow>>, ImportError> {
        let c = self.columns(ACCESS_TOKEN).await?;
        let sql = format!(
            "SELECT {id} AS id, {token} AS token, {checksum} AS checksum, {user} AS user_id, \
             {app} AS application_id, \"scope\" AS scope, {expires} AS expires, \
             {created} AS created FROM \"{ACCESS_TOKEN}\" ORDER BY \"id\"",
            id = Self::int("id"),
            token = Self::text(&c, "token"),
            checksum = Self::text(&c, "token_checksum"),
            user = Self::int("user_id"),
            app = Self::int("application_id"),
            expires = self.time(&c, "expires"),
            created = self.time(&c, "created"),
        );
        self.rows(&sql, |r, id| {
            Ok(SourceAccessToken {
                id,
                token: r.try_get("", "token")?,
                checksum: r.try_get("", "checksum")?,
                user_id: r.try_get("", "user_id")?,
                application_id: r.try_get("", "application_id")?,
                scope: text_or_empty(r, "scope")?,
                expires: r.try_get("", "expires")?,
                created: r.try_get("", "created")?,
            })
        })
        .await
    }

    /// Every refresh-token row.
    pub(crate) async fn refresh_tokens(
        &self,
    ) -> Result<Vec<Result<SourceRefreshToken, BadRow>>, ImportError> {
        let c = self.columns(REFRESH_TOKEN).await?;
        let sql = format!(
            "SELECT {id} AS id, {token} AS token, {checksum} AS checksum, {user} AS user_id, \
             {app} AS application_id, {access} AS access_token_id, {created} AS created, \
             {revoked} AS revoked FROM \"{REFRESH_TOKEN}\" ORDER BY \"id\"",
            id = Self::int("id"),
            token = Self::text(&c, "token"),
            checksum = Self::text(&c, "token_checksum"),
            user = Self::int("user_id"),
            app = Self::int("application_id"),
            access = Self::int("access_token_id"),
            created = self.time(&c, "created"),
            revoked = self.time(&c, "revoked"),
        );
        self.rows(&sql, |r, id| {
            Ok(SourceRefreshToken {
                id,
                token: r.try_get("", "token")?,
                checksum: r.try_get("", "checksum")?,
                user_id: r.try_get("", "user_id")?,
                application_id: r.try_get("", "application_id")?,
                access_token_id: r.try_get("", "access_token_id")?,
                created: r.try_get("", "created")?,
                revoked: r.try_get("", "revoked")?,
            })
        })
        .await
    }
}

/// A text column read from a row, NULL read as "".
fn text_or_empty(r: &QueryResult, col: &str) -> Result<String, DbErr> {
    Ok(r.try_get::<Option<String>>("", col)?.unwrap_or_default())
}

/// A column selected as 0 or 1 (see [`DjangoSource::flag`]) read from a row.
fn flag_set(r: &QueryResult, col: &str) -> Result<bool, DbErr> {
    Ok(r.try_get::<i64>("", col)? != 0)
}

/// Table names go into SQL text: letters, digits and underscores only.
fn check_identifier(name: &str) -> Result<(), ImportError> {
    if !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(())
    } else {
        Err(ImportError::Source(format!(
            "table name {name:?} must be letters, digits and underscores"
        )))
    }
}
