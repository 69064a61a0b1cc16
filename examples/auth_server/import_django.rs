//! `import-django`: a Django + django-oauth-toolkit database into this server's
//! (see docs/migrating-from-dot.md).

use oauth_core::django::{DjangoSource, ImportOptions, import};
use oauth_core::sea::SeaOrmStore;
use oauth_core::{PasswordHasher, Scope};

use crate::Error;
use crate::config::Config;

const USAGE: &str = "import-django --from URL [--user-table TABLE] [--dry-run] \
[--default-scope \"read write\"] [--refresh-token-expire-seconds N]";

/// `import-django --from sqlite:///path/db.sqlite3|postgres://…`: users,
/// applications and live tokens, re-runnable; prints the summary (never a secret).
pub async fn run(store: &SeaOrmStore, config: &Config, args: &[String]) -> Result<(), Error> {
    let mut from = None;
    let mut user_table = None;
    let mut dry_run = false;
    let mut default_scope = None;
    let mut dot_refresh_expire = None;
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        let value = || {
            args.get(i + 1)
                .map(String::as_str)
                .ok_or_else(|| format!("{arg} needs a value; usage: {USAGE}"))
        };
        match arg.as_str() {
            "--dry-run" => {
                dry_run = true;
                i += 1;
                continue;
            }
            "--from" => from = Some(value()?.to_owned()),
            "--user-table" => user_table = Some(value()?.to_owned()),
            "--default-scope" => {
                default_scope = Some(
                    value()?
                        .parse::<Scope>()
                        .map_err(|e| format!("--default-scope: {e}"))?,
                );
            }
            "--refresh-token-expire-seconds" => {
                let secs: u64 = value()?
                    .parse()
                    .map_err(|_| "--refresh-token-expire-seconds: a number of seconds")?;
                dot_refresh_expire = Some(std::time::Duration::from_secs(secs));
            }
            other => return Err(format!("unknown argument {other:?}; usage: {USAGE}").into()),
        }
        i += 2;
    }
    let from = from.ok_or_else(|| format!("--from is required; usage: {USAGE}"))?;
    let source = DjangoSource::connect(&from, user_table.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    let mut options =
        ImportOptions::new(PasswordHasher::new(config.scrypt)?, config.scopes.clone());
    // Imported applications get the ordinary scopes only.
    options.privileged_scopes = config.privileged_scopes.clone();
    // As the demo seed's clients: tokens carry read and write unless more is asked
    // for by name (introspection and admin belong to the resource server and staff).
    options.default_scope = default_scope.unwrap_or_else(|| {
        let plain: Scope = ["read", "write"]
            .into_iter()
            .filter(|s| config.scopes.contains(s))
            .collect();
        if plain.is_empty() {
            config.scopes.clone()
        } else {
            plain
        }
    });
    if !options.default_scope.is_subset(&options.allowed_scope) {
        return Err("--default-scope must be within SCOPES".into());
    }
    options.dry_run = dry_run;
    options.dot_refresh_token_expire = dot_refresh_expire;
    options.refresh_token_ttl = config.refresh_ttl;
    let report = import(&source, store, &options)
        .await
        .map_err(|e| e.to_string())?;
    print!("{report}");
    Ok(())
}
