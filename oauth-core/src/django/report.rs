//! The import's summary: counts per kind of row, and every skipped row with why.

use std::fmt;

/// What happened to the rows of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// New here.
    pub imported: u64,
    /// Changed in the source since the last import, changed here.
    pub updated: u64,
    /// Imported before and unchanged since.
    pub unchanged: u64,
    /// Not imported; see [`ImportReport::skipped`].
    pub skipped: u64,
}

/// One row not imported. `row` names it without any secret: a user's id and email,
/// an application's `client_id`, a token's row id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// `user`, `application`, `access token` or `refresh token`.
    pub kind: &'static str,
    /// Which row.
    pub row: String,
    /// Why.
    pub reason: String,
}

/// The summary of an [`import`](super::import).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Nothing was written.
    pub dry_run: bool,
    /// The user table read.
    pub user_table: String,
    /// Users.
    pub users: Counts,
    /// Applications.
    pub applications: Counts,
    /// Access tokens.
    pub access_tokens: Counts,
    /// Refresh tokens.
    pub refresh_tokens: Counts,
    /// Every row not imported, with the reason.
    pub skipped: Vec<Skipped>,
    /// Things worth knowing about rows that were imported (a redirect URI dropped).
    pub notes: Vec<String>,
}

impl ImportReport {
    /// True when the run imported or changed nothing.
    #[must_use]
    pub fn changed_nothing(&self) -> bool {
        [
            self.users,
            self.applications,
            self.access_tokens,
            self.refresh_tokens,
        ]
        .iter()
        .all(|c| c.imported == 0 && c.updated == 0)
    }

    pub(crate) fn skip(&mut self, kind: &'static str, row: String, reason: impl Into<String>) {
        self.counts(kind).skipped += 1;
        self.skipped.push(Skipped {
            kind,
            row,
            reason: reason.into(),
        });
    }

    pub(crate) fn counts(&mut self, kind: &'static str) -> &mut Counts {
        match kind {
            "user" => &mut self.users,
            "application" => &mut self.applications,
            "access token" => &mut self.access_tokens,
            _ => &mut self.refresh_tokens,
        }
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dry_run {
            writeln!(f, "dry run: nothing was written; a real run would do this.")?;
        }
        writeln!(f, "user table: {}", self.user_table)?;
        for (name, c) in [
            ("users", self.users),
            ("applications", self.applications),
            ("access tokens", self.access_tokens),
            ("refresh tokens", self.refresh_tokens),
        ] {
            writeln!(
                f,
                "{name:<15} {} imported, {} updated, {} unchanged, {} skipped",
                c.imported, c.updated, c.unchanged, c.skipped
            )?;
        }
        if !self.skipped.is_empty() {
            writeln!(f, "skipped:")?;
            for s in &self.skipped {
                writeln!(f, "  {} {}: {}", s.kind, s.row, s.reason)?;
            }
        }
        if !self.notes.is_empty() {
            writeln!(f, "notes:")?;
            for n in &self.notes {
                writeln!(f, "  {n}")?;
            }
        }
        Ok(())
    }
}
