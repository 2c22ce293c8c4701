//! `shortener links import`: validates every row with the API's rules, gives it a
//! code under a leased Snowflake worker id, and writes it in batches that each commit
//! whole, recording each row in the import ledger so a rerun skips it.
//!
//! A reader thread parses and validates rows while the database writes the previous
//! batch, so the two costs overlap instead of adding up.

use common::audit::{self, AuditAction};
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::config::Settings;
use common::db::domains::{self, DomainRecord};
use common::db::links::{self, LinkRecord, TenantId};
use common::db::transfer::{self, LedgerEntry};
use common::db::{Engine, StoreError};
use common::domains::DefaultDomain;
use common::links::{DomainName, UrlPolicy};
use common::time::now_ms;
use create_service::CreateState;
use create_service::model::{CreateLinkRequest, Password, ValidLink};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::rows::{Read, RowReader, SourceRow};
use super::{Format, progress_bar};

/// Default rows per batch (one transaction each).
pub const DEFAULT_BATCH: usize = 1000;

/// How far a `created_at` may lie ahead of this machine's clock: the file may come
/// from a machine whose clock runs a little ahead.
const CLOCK_TOLERANCE_MS: i64 = 3_600_000;

/// Attempts at one batch when the database is briefly unavailable (a busy SQLite
/// file, a dropped connection) before the import stops.
const ATTEMPTS: u32 = 3;

/// What to import, and how.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub file: PathBuf,
    /// `None`: from the file's extension.
    pub format: Option<Format>,
    pub tenant: String,
    /// Rows per transaction.
    pub batch: usize,
    /// Check every row against the database, then roll every batch back.
    pub dry_run: bool,
    /// Snowflake worker id to lease; `None` takes the lowest free one. The
    /// configured `ids.worker_id` and `ids.pod_name` belong to the server and are
    /// not used: its live process would hold them.
    pub worker_id: Option<u16>,
    /// Draw a progress bar on stderr when it is a terminal.
    pub progress: bool,
}

impl ImportOptions {
    pub fn new(file: impl Into<PathBuf>, tenant: &str) -> ImportOptions {
        ImportOptions {
            file: file.into(),
            format: None,
            tenant: tenant.to_string(),
            batch: DEFAULT_BATCH,
            dry_run: false,
            worker_id: None,
            progress: false,
        }
    }
}

/// A row that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub line: u64,
    pub reason: String,
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportSummary {
    pub imported: u64,
    /// Rows found in the ledger: imported by an earlier run.
    pub already_imported: u64,
    pub bad: u64,
    pub seconds: f64,
    pub dry_run: bool,
}

impl ImportSummary {
    /// Rows read from the file (blank JSON lines aside).
    pub fn rows(&self) -> u64 {
        self.imported + self.already_imported + self.bad
    }

    pub fn rows_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.rows() as f64 / self.seconds
        } else {
            0.0
        }
    }
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}imported {}, skipped as already imported {}, bad {}, {:.1} s, {:.0} rows/s",
            if self.dry_run {
                "dry run: would have "
            } else {
                ""
            },
            self.imported,
            self.already_imported,
            self.bad,
            self.seconds,
            self.rows_per_second()
        )
    }
}

/// The domains rows may name: the default domain's hosts and the tenant's own
/// branded domains, read once when the import starts.
#[derive(Debug)]
struct Domains {
    default: DefaultDomain,
    held: HashMap<DomainName, DomainRecord>,
}

impl Domains {
    /// The branded domain a row's `domain` names: `None` for the default domain.
    fn resolve(&self, name: Option<&DomainName>) -> Result<Option<&DomainRecord>, String> {
        let Some(name) = name.filter(|n| !self.default.is(n.as_str())) else {
            return Ok(None);
        };
        self.held
            .get(name)
            .map(Some)
            .ok_or_else(|| format!("domain: `{name}` is not one of this tenant's domains"))
    }
}

/// A row that passed validation, with its ledger key.
struct Candidate {
    line: u64,
    key: String,
    link: ValidLink,
    created_at: Option<i64>,
    clicks: i64,
}

/// What the reader thread hands over: up to one batch of good rows, the bad rows met
/// while collecting them, and how far into the file it got.
#[derive(Default)]
struct Chunk {
    rows: Vec<Candidate>,
    bad: Vec<BadRow>,
    bytes_read: u64,
}

/// Imports `options.file` into `options.tenant`'s links. Bad rows go to `on_bad`,
/// in file order, and are skipped; the good rows are kept either way. `Err` means the
/// import stopped early: the batches committed before stay, and a rerun continues.
pub async fn import_links(
    mut settings: Settings,
    options: &ImportOptions,
    mut on_bad: impl FnMut(&BadRow),
) -> anyhow::Result<ImportSummary> {
    let started = Instant::now();
    let tenant = TenantId::parse(&options.tenant).map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
    let format = match options.format {
        Some(format) => format,
        None => Format::from_path(&options.file)?,
    };
    let file = std::fs::File::open(&options.file)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", options.file.display()))?;
    let total_bytes = file.metadata().map(|m| m.len()).unwrap_or_default();
    // The header is checked before anything touches the database.
    let reader = RowReader::new(format, file)?;

    settings.ids.worker_id = options.worker_id;
    settings.ids.pod_name = None;
    // Batches are written here, in one transaction each: the create path's group
    // commit has nothing to do.
    settings.database.group_commit_writers = 0;
    let deps = crate::connect(settings).await?;
    // The very state create-service runs on: the same lease on a worker id (a live
    // create-service keeps its own, so their ids never collide) and code key.
    // Imported links reach the caches like any other change: each row's change is
    // written with it (by trigger) and a running server's relay publishes it, so an
    // alias someone asked for before the import loses its "not found" entry at once.
    let state = CreateState::build(&deps).await?;
    let domains = Arc::new(Domains {
        default: state.default_domain.clone(),
        held: domains::list_for_tenant(deps.db.primary(), &tenant)
            .await?
            .into_iter()
            .map(|site| (site.name.clone(), site))
            .collect(),
    });

    let batch = options.batch.max(1);
    let (tx, mut rx) = mpsc::channel::<anyhow::Result<Chunk>>(2);
    let policy = state.url_policy.clone();
    let reading = tokio::task::spawn_blocking({
        let domains = domains.clone();
        move || read_rows(reader, batch, &policy, &domains, &tx)
    });

    let bar = progress_bar(total_bytes, options.progress, true);
    let mut summary = ImportSummary {
        dry_run: options.dry_run,
        ..ImportSummary::default()
    };
    // PostgreSQL writes two batches at once on two connections, one server process
    // each: a batch spends most of its time in the server, one core per statement.
    // SQLite has one writer at a time; a second transaction would only wait.
    let in_flight = match deps.db.engine() {
        Engine::Postgres => 2,
        Engine::Sqlite => 1,
    };
    let chunks = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    // `buffered` hands results back in file order, so bad rows are reported in order.
    let mut done = chunks
        .map(|chunk| write_chunk(&state, &tenant, &domains, options, chunk))
        .buffered(in_flight);
    let mut outcome = Ok(());
    while let Some(result) = done.next().await {
        let mut chunk = match result {
            Ok(chunk) => chunk,
            Err(e) => {
                outcome = Err(e);
                break;
            }
        };
        summary.imported += chunk.imported;
        summary.already_imported += chunk.already_imported;
        summary.bad += chunk.bad.len() as u64;
        chunk.bad.sort_by_key(|b| b.line);
        bar.suspend(|| chunk.bad.iter().for_each(&mut on_bad));
        bar.set_position(chunk.bytes_read);
        bar.set_message(format!(
            "{} imported, {} already, {} bad",
            summary.imported, summary.already_imported, summary.bad
        ));
    }
    // Dropping the stream rolls back a batch still in flight and stops the reader at
    // its next send.
    drop(done);
    bar.finish_and_clear();
    let reader_result = reading.await;
    state.release_lease().await;
    deps.db.close().await;
    outcome?;
    reader_result?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Runs on a blocking thread: reads, validates and keys the rows, and sends them
/// on in chunks of `batch` good rows.
fn read_rows(
    mut reader: RowReader<std::fs::File>,
    batch: usize,
    policy: &UrlPolicy,
    domains: &Domains,
    tx: &mpsc::Sender<anyhow::Result<Chunk>>,
) {
    let mut keys = Keys::default();
    let mut chunk = Chunk::default();
    loop {
        let read = match reader.next_row() {
            Ok(Some(read)) => read,
            Ok(None) => break,
            Err(e) => {
                // The receiver reports it; if it is gone, so is the import.
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        match read {
            Read::Bad { line, reason } => chunk.bad.push(BadRow { line, reason }),
            Read::Row(row) => {
                let line = row.line;
                match validate(*row, policy, domains, now_ms()).and_then(|c| keys.assign(c)) {
                    Ok(candidate) => chunk.rows.push(candidate),
                    Err(reason) => chunk.bad.push(BadRow { line, reason }),
                }
            }
        }
        if chunk.rows.len() >= batch {
            chunk.bytes_read = reader.bytes_read();
            if tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_err() {
                return;
            }
        }
    }
    chunk.bytes_read = reader.bytes_read();
    let _ = tx.blocking_send(Ok(chunk));
}

/// An instant of the file: RFC 3339, read as the API reads it.
fn parse_instant(field: &str, text: Option<&str>, errors: &mut Vec<String>) -> Option<i64> {
    let text = text?;
    match text.parse::<DateTime<Utc>>() {
        Ok(at) => Some(at.timestamp_millis()),
        Err(_) => {
            errors.push(format!(
                "{field}: {text:?} is not an RFC 3339 timestamp (e.g. 2026-01-31T12:00:00Z)"
            ));
            None
        }
    }
}

/// Applies the API's rules to a row. Two differences, both for links that already
/// lived elsewhere: `expires_at` may be in the past (the link is imported expired and
/// answers 410, keeping its code taken, as at the source), and `created_at` is kept.
fn validate(
    row: SourceRow,
    policy: &UrlPolicy,
    domains: &Domains,
    now: i64,
) -> Result<Candidate, String> {
    let mut errors = Vec::new();
    let created_at = parse_instant("created_at", row.created_at.as_deref(), &mut errors);
    let expires_at = parse_instant("expires_at", row.expires_at.as_deref(), &mut errors);
    if created_at.is_some_and(|at| at > now + CLOCK_TOLERANCE_MS) {
        errors.push("created_at: is in the future".to_string());
    }
    let clicks = match row.clicks.map(i64::try_from).transpose() {
        Ok(clicks) => clicks.unwrap_or(0),
        Err(_) => {
            errors.push(format!("clicks: more than {}", i64::MAX));
            0
        }
    };
    let request = CreateLinkRequest {
        url: row.url,
        alias: row.alias,
        // Checked above with the import's rule instead of "must be in the future".
        expires_at: None,
        max_visits: None,
        redirect_status: None,
        tags: row.tags,
        domain: row.domain,
        forward_query: row.forward_query,
        rules: row.rules,
        variants: row.variants,
        password: None,
        reuse: None,
    };
    // A protected link comes with its hash, never its password.
    let password = match row.password_hash {
        Some(hash) if common::passwords::is_hash(&hash) => Some(Password::Hashed(hash)),
        Some(_) => {
            errors.push("password_hash: must be an argon2id hash, as an export writes it".into());
            None
        }
        None => None,
    };
    let link = match request.validate(policy, now) {
        Ok(mut link) => match domains.resolve(link.domain.as_ref()) {
            Ok(site) => {
                // Held as the branded domain it is, or not at all (the default).
                link.domain = site.map(|s| s.name.clone());
                link.password = password;
                Some(link)
            }
            Err(reason) => {
                errors.push(reason);
                None
            }
        },
        Err(fields) => {
            let problem = fields.into_problem();
            errors.insert(
                0,
                problem.detail.unwrap_or_else(|| problem.title.to_string()),
            );
            None
        }
    };
    match link {
        Some(mut link) if errors.is_empty() => {
            link.expires_at = expires_at;
            Ok(Candidate {
                line: row.line,
                key: String::new(),
                link,
                created_at,
                clicks,
            })
        }
        _ => Err(errors.join("; ")),
    }
}

/// Ledger keys, and the bookkeeping that makes them stable across runs of a file.
///
/// A row with an alias is keyed by its alias: one alias is one link. A row without
/// one is keyed by its normalised URL, its `created_at` as written (absent stays
/// absent, never "now") and how many rows with the same two came before it in the
/// file: two identical rows are two links, a rerun finds both, and rows added to or
/// edited in the file meanwhile leave the keys of rows with other content as they
/// were. Fields a source
/// changes over time (clicks, tags, expiry) are not part of the key: a rerun never
/// duplicates or updates a link it imported before.
#[derive(Default)]
struct Keys {
    /// First line of each alias in this file (128-bit digests: memory stays at a few
    /// dozen bytes per row for files of millions of rows).
    aliases: HashMap<u128, u64>,
    /// Rows so far per (URL, created_at) of rows without an alias.
    occurrences: HashMap<u128, u32>,
}

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        // Length-prefixed, so no two different field lists hash the same bytes.
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

fn head128(digest: &[u8; 32]) -> u128 {
    let mut head = [0u8; 16];
    head.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(head)
}

impl Keys {
    fn assign(&mut self, mut candidate: Candidate) -> Result<Candidate, String> {
        // A row on a branded domain keys under it too; rows on the default domain
        // keep the keys imports gave them before links had domains.
        let domain = candidate.link.domain.as_ref().map(|d| d.as_str());
        if let Some(alias) = &candidate.link.alias {
            let on = match domain {
                Some(domain) => format!("{domain}/{alias}"),
                None => alias.to_string(),
            };
            let id = head128(&digest(&[b"alias", on.as_bytes()]));
            if let Some(first) = self.aliases.get(&id) {
                return Err(format!(
                    "alias {:?} already appears on line {first}",
                    alias.as_str()
                ));
            }
            self.aliases.insert(id, candidate.line);
            candidate.key = format!("alias:{on}");
            return Ok(candidate);
        }
        let created = candidate
            .created_at
            .map(|at| at.to_string())
            .unwrap_or_default();
        let url = candidate.link.url.as_str().as_bytes();
        let mut parts: Vec<&[u8]> = vec![b"row", url, created.as_bytes()];
        if let Some(domain) = domain {
            parts.push(domain.as_bytes());
        }
        let identity = head128(&digest(&parts));
        let seen = self.occurrences.entry(identity).or_default();
        let occurrence = seen.to_le_bytes();
        *seen += 1;
        parts.insert(3, &occurrence);
        let key = digest(&parts);
        candidate.key = format!("row:{}", hex::encode(&key[..16]));
        Ok(candidate)
    }
}

/// A chunk once written: its counts and every bad row in it.
struct Done {
    imported: u64,
    already_imported: u64,
    bad: Vec<BadRow>,
    bytes_read: u64,
}

async fn write_chunk(
    state: &CreateState,
    tenant: &TenantId,
    domains: &Domains,
    options: &ImportOptions,
    chunk: anyhow::Result<Chunk>,
) -> anyhow::Result<Done> {
    let chunk = chunk?;
    let mut done = Done {
        imported: 0,
        already_imported: 0,
        bad: chunk.bad,
        bytes_read: chunk.bytes_read,
    };
    let (Some(first), Some(last)) = (chunk.rows.first(), chunk.rows.last()) else {
        return Ok(done);
    };
    let lines = format!("{}–{}", first.line, last.line);
    let written = write_batch(state, tenant, domains, chunk.rows, options.dry_run)
        .await
        .map_err(|e| {
            e.context(format!(
                "the batch of lines {lines} was rolled back; the batches committed \
                 before it stay in, and running the same command again imports the rest"
            ))
        })?;
    done.imported = written.imported;
    done.already_imported = written.already_imported;
    done.bad.extend(written.taken);
    Ok(done)
}

/// What one batch did.
struct Written {
    imported: u64,
    already_imported: u64,
    /// Rows whose alias turned out to belong to another link.
    taken: Vec<BadRow>,
}

/// Writes one batch in one transaction: claims its rows in the ledger, inserts the
/// links of the rows that were new, and adds their clicks. A failure rolls it all back.
async fn write_batch(
    state: &CreateState,
    tenant: &TenantId,
    domains: &Domains,
    rows: Vec<Candidate>,
    dry_run: bool,
) -> anyhow::Result<Written> {
    let mut records = Vec::with_capacity(rows.len());
    let mut meta = Vec::with_capacity(rows.len());
    for row in rows {
        let site = row.link.domain.as_ref().and_then(|d| domains.held.get(d));
        let record =
            create_service::http::record_for(state, tenant, row.link, site, row.created_at)
                .await
                .map_err(|e| anyhow::anyhow!("cannot issue ids: {e}"))?;
        meta.push((row.line, row.key, row.clicks));
        records.push(record);
    }
    let mut attempt = 1;
    loop {
        match write_records(state, tenant, &records, &meta, dry_run).await {
            Ok(written) => return Ok(written),
            Err(e) if e.is_unavailable() && attempt < ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "batch failed; retrying");
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn write_records(
    state: &CreateState,
    tenant: &TenantId,
    records: &[LinkRecord],
    meta: &[(u64, String, i64)],
    dry_run: bool,
) -> Result<Written, StoreError> {
    let entries: Vec<LedgerEntry> = records
        .iter()
        .zip(meta)
        .map(|(record, (_, key, _))| LedgerEntry {
            import_key: key.clone(),
            code: record.key(),
        })
        .collect();
    let mut tx = state.deps.db.begin_write().await?;
    let fresh = transfer::claim(&mut tx, tenant.as_str(), &entries, now_ms()).await?;
    let (new, known): (Vec<_>, Vec<_>) = records
        .iter()
        .zip(meta)
        .partition(|(_, (_, key, _))| fresh.contains(key));
    let new_records: Vec<LinkRecord> = new.iter().map(|(r, _)| (*r).clone()).collect();
    let inserted = links::insert_many(&mut tx, &new_records).await?;
    let mut written = Written {
        imported: 0,
        already_imported: known.len() as u64,
        taken: Vec::new(),
    };
    let mut released = Vec::new();
    let mut clicks = Vec::new();
    let mut audited = Vec::new();
    let actor = common::audit::operator();
    for ((record, (line, key, n)), ok) in new.iter().zip(inserted) {
        if ok {
            written.imported += 1;
            audited.push(audit::outside_request(
                &actor,
                tenant.as_str(),
                AuditAction::LinkImported,
                audit::link_target(record),
                audit::changes(None, Some(audit::link_state(record))),
            ));
            if *n > 0 {
                clicks.push((record.key(), *n));
            }
        } else {
            written.taken.push(BadRow {
                line: *line,
                reason: format!("alias {:?} is already taken", record.code.as_str()),
            });
            released.push(key.clone());
        }
    }
    if !released.is_empty() {
        transfer::unclaim(&mut tx, tenant.as_str(), &released).await?;
    }
    if !clicks.is_empty() {
        transfer::add_click_totals(&mut tx, &clicks).await?;
    }
    common::db::audit::insert_many(&mut tx, &audited).await?;
    if dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The default settings' default domain, and no branded ones.
    fn no_domains() -> Domains {
        let settings =
            Settings::load_from(common::config::ServiceKind::AllInOne, None, Vec::new()).unwrap();
        Domains {
            default: DefaultDomain::from_settings(&settings),
            held: HashMap::new(),
        }
    }

    fn row(line: u64, url: &str) -> SourceRow {
        SourceRow {
            line,
            url: url.into(),
            ..SourceRow::default()
        }
    }

    #[test]
    fn api_rules_with_past_expiry_allowed() {
        let policy = UrlPolicy::default();
        let now = 1_800_000_000_000;
        let mut past = row(2, "https://example.com/");
        past.expires_at = Some("2020-01-01T00:00:00Z".into());
        past.created_at = Some("2019-01-01T00:00:00+01:00".into());
        let ok = validate(past, &policy, &no_domains(), now).unwrap();
        assert_eq!(ok.link.expires_at, Some(1_577_836_800_000));
        assert_eq!(ok.created_at, Some(1_546_297_200_000));

        let mut bad = row(3, "javascript:alert(1)");
        bad.alias = Some("a".into());
        bad.expires_at = Some("tomorrow".into());
        let reason = validate(bad, &policy, &no_domains(), now).err().unwrap();
        assert!(
            reason.starts_with("url: url scheme \"javascript\""),
            "{reason}"
        );
        assert!(reason.contains("alias: alias is too short"), "{reason}");
        assert!(reason.contains("expires_at: \"tomorrow\""), "{reason}");

        let mut future = row(4, "https://example.com/");
        future.created_at = Some("2100-01-01T00:00:00Z".into());
        assert_eq!(
            validate(future, &policy, &no_domains(), now).err().unwrap(),
            "created_at: is in the future"
        );
    }

    #[test]
    fn keys_are_stable_and_tell_duplicates_apart() {
        let policy = UrlPolicy::default();
        let run = || {
            let mut keys = Keys::default();
            let mut out = Vec::new();
            for (line, url, alias) in [
                (2, "https://example.com/a", None),
                (3, "https://EXAMPLE.com/a", None),
                (4, "https://example.com/b", Some("b-link")),
                (5, "https://example.com/c", Some("b-link")),
            ] {
                let mut r = row(line, url);
                r.alias = alias.map(str::to_string);
                let candidate = validate(r, &policy, &no_domains(), 0).unwrap();
                out.push(keys.assign(candidate).map(|c| c.key));
            }
            out
        };
        let first = run();
        assert_eq!(first, run(), "same file, same keys");
        let (a, b) = (first[0].clone().unwrap(), first[1].clone().unwrap());
        assert!(a.starts_with("row:") && b.starts_with("row:") && a != b);
        assert_eq!(first[2], Ok("alias:b-link".to_string()));
        assert_eq!(
            first[3],
            Err("alias \"b-link\" already appears on line 4".to_string())
        );
    }
}
