//! `shortener links export`: a tenant's links as CSV or JSON Lines, in the columns an
//! import reads, so an export imports into another tenant or database as it is.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::SecondsFormat;
use common::config::Settings;
use common::db::transfer::{self, ExportedLink};
use common::ids::looks_like_generated_code;
use common::time::from_ms;

use super::rows::{OutRow, RowWriter};
use super::{Format, progress_bar};

/// Links read per query.
const PAGE: i64 = 1000;

/// What to export, and where.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub tenant: String,
    /// `None`: from the output file's extension, else CSV.
    pub format: Option<Format>,
    /// `None` (or `-`): standard output.
    pub output: Option<PathBuf>,
    /// Draw a progress bar on stderr when it is a terminal.
    pub progress: bool,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportSummary {
    pub links: u64,
    pub seconds: f64,
}

impl std::fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = if self.seconds > 0.0 {
            self.links as f64 / self.seconds
        } else {
            0.0
        };
        write!(
            f,
            "exported {}, {:.1} s, {rate:.0} rows/s",
            self.links, self.seconds
        )
    }
}

fn instant(ms: i64) -> String {
    from_ms(ms).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The row of a link. A generated code is not exported as an alias: it is derived
/// from this deployment's id and code key, and the importing side gives the link a
/// code of its own (an alias in that shape would be refused anyway).
fn out_row(link: ExportedLink) -> OutRow {
    let code = match link.domain.is_empty() {
        true => link.key.as_str(),
        // The key of a link on a branded domain is `domain/code`.
        false => link.key.rsplit_once('/').map_or("", |(_, code)| code),
    };
    let alias = (!looks_like_generated_code(code)).then(|| code.to_string());
    OutRow {
        domain: (!link.domain.is_empty()).then_some(link.domain),
        url: link.url,
        alias,
        created_at: instant(link.created_at),
        expires_at: link.expires_at.map(instant),
        tags: link.tags,
        clicks: link.clicks,
        forward_query: link.routing.forward_query,
        rules: link.routing.rules,
        variants: link.routing.variants,
        password_hash: link.routing.password_hash,
    }
}

/// Writes `options.tenant`'s live and expired links (deleted and disabled ones are
/// left out: the columns cannot say so, and an import would bring them back). A
/// file output is written beside its name and renamed into place when complete, so
/// it is never seen half-written.
pub async fn export_links(
    settings: Settings,
    options: &ExportOptions,
) -> anyhow::Result<ExportSummary> {
    let started = Instant::now();
    let output = options
        .output
        .as_deref()
        .filter(|path| *path != Path::new("-"));
    let format = match (options.format, output) {
        (Some(format), _) => format,
        (None, Some(path)) => Format::from_path(path).unwrap_or(Format::Csv),
        (None, None) => Format::Csv,
    };
    let deps = crate::connect(settings).await?;
    let result = match output {
        Some(path) => {
            let partial = partial_path(path);
            let file = std::fs::File::create(&partial)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", partial.display()))?;
            let written = write_all(&deps, options, format, std::io::BufWriter::new(file)).await;
            let renamed = written.and_then(|(links, out)| {
                let file = out.into_inner().map_err(|e| e.into_error())?;
                file.sync_all()?;
                std::fs::rename(&partial, path)?;
                Ok(links)
            });
            if renamed.is_err() {
                let _ = std::fs::remove_file(&partial);
            }
            renamed
        }
        None => {
            let stdout = std::io::stdout();
            write_all(&deps, options, format, std::io::BufWriter::new(stdout))
                .await
                .map(|(links, _)| links)
        }
    };
    deps.db.close().await;
    Ok(ExportSummary {
        links: result?,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `links.csv` → `links.csv.partial`, in the same directory (so the rename is atomic).
fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

async fn write_all<W: Write>(
    deps: &common::deps::Deps,
    options: &ExportOptions,
    format: Format,
    out: W,
) -> anyhow::Result<(u64, W)> {
    let pool = deps.db.primary();
    let total = transfer::export_count(pool, &options.tenant).await?;
    let bar = progress_bar(u64::try_from(total).unwrap_or(0), options.progress, false);
    let mut writer = RowWriter::new(format, out)?;
    let mut after = 0;
    let mut links = 0u64;
    loop {
        let page = transfer::export_page(pool, &options.tenant, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        let n = page.len();
        // Buffered writes of one page: too short to hand to a blocking thread.
        for link in page {
            writer.write(&out_row(link))?;
        }
        links += n as u64;
        bar.set_position(links);
        if n < PAGE as usize {
            break;
        }
    }
    bar.finish_and_clear();
    Ok((links, writer.finish()?))
}
