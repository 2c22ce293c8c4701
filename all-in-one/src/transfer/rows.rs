//! Reading and writing the rows of a links file: CSV with a header, or JSON Lines,
//! both in the columns of [`super::COLUMNS`].
//!
//! Reading only splits a row into its fields and checks their shapes (a tags list, a
//! whole number of clicks); the link rules themselves are the API's, applied by the
//! import. A row that cannot be read is a [`Read::Bad`] with its line number, and
//! reading goes on with the next one.

use std::io::{self, BufRead, Write};

use serde::Serialize;
use serde_json::{Map, Value};

use common::domain::route::{Rule, Variant};

use super::{COLUMNS, Format};

/// One row of a file with its fields still as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceRow {
    /// 1-based line of the file where the row starts (the CSV header is line 1).
    pub line: u64,
    pub url: String,
    pub alias: Option<String>,
    pub created_at: Option<String>,
    pub expires_at: Option<String>,
    pub tags: Option<Vec<String>>,
    pub clicks: Option<u64>,
    pub domain: Option<String>,
    pub forward_query: Option<bool>,
    pub rules: Option<Vec<Value>>,
    pub variants: Option<Vec<Value>>,
    pub password_hash: Option<String>,
}

/// What the next row of a file turned out to be.
#[derive(Debug)]
pub enum Read {
    Row(Box<SourceRow>),
    Bad { line: u64, reason: String },
}

const CLICKS_RULE: &str = "clicks: must be a whole number, 0 or more";
const FORWARD_RULE: &str = "forward_query: must be true or false";

/// Rows of one file, in file order.
pub enum RowReader<R: io::Read> {
    Csv {
        reader: csv::Reader<R>,
        /// Column of each field of a record, by position.
        columns: Vec<usize>,
        record: csv::ByteRecord,
    },
    Jsonl {
        reader: io::BufReader<R>,
        line: u64,
        bytes: u64,
        buf: Vec<u8>,
    },
}

impl<R: io::Read> RowReader<R> {
    /// Starts reading; for CSV this reads and checks the header, so a file whose
    /// columns are wrong is refused before anything is imported.
    pub fn new(format: Format, input: R) -> anyhow::Result<RowReader<R>> {
        match format {
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .flexible(false)
                    .from_reader(input);
                let header = reader.byte_headers()?.clone();
                let columns = header_columns(&header)?;
                Ok(RowReader::Csv {
                    reader,
                    columns,
                    record: csv::ByteRecord::new(),
                })
            }
            Format::Jsonl => Ok(RowReader::Jsonl {
                reader: io::BufReader::with_capacity(256 * 1024, input),
                line: 0,
                bytes: 0,
                buf: Vec::new(),
            }),
        }
    }

    /// Bytes of the file consumed so far (for progress).
    pub fn bytes_read(&self) -> u64 {
        match self {
            RowReader::Csv { reader, .. } => reader.position().byte(),
            RowReader::Jsonl { bytes, .. } => *bytes,
        }
    }

    /// The next row, `None` at the end of the file; `Err` only when the file itself
    /// cannot be read any further.
    pub fn next_row(&mut self) -> anyhow::Result<Option<Read>> {
        match self {
            RowReader::Csv {
                reader,
                columns,
                record,
            } => match reader.read_byte_record(record) {
                Ok(false) => Ok(None),
                Ok(true) => {
                    let line = record.position().map_or(0, csv::Position::line);
                    Ok(Some(csv_row(line, columns, record)))
                }
                Err(e) => match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        pos,
                        expected_len,
                        len,
                    } => Ok(Some(Read::Bad {
                        line: pos.as_ref().map_or(0, csv::Position::line),
                        reason: format!("expected {expected_len} fields, found {len}"),
                    })),
                    _ => Err(anyhow::Error::new(e).context("reading the CSV file")),
                },
            },
            RowReader::Jsonl {
                reader,
                line,
                bytes,
                buf,
            } => loop {
                buf.clear();
                let n = reader.read_until(b'\n', buf)?;
                if n == 0 {
                    return Ok(None);
                }
                *line += 1;
                *bytes += n as u64;
                // Blank lines (a trailing newline, spacing) carry no row.
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                // Without its line break, an error at the end of the line is
                // reported at the last column rather than past it.
                let text = buf.strip_suffix(b"\n").unwrap_or(buf);
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                return Ok(Some(json_row(*line, text)));
            },
        }
    }
}

/// Maps the header's names to columns; unknown or repeated names refuse the file (a
/// misspelt `expires_at` must not silently import links that never expire).
fn header_columns(header: &csv::ByteRecord) -> anyhow::Result<Vec<usize>> {
    let mut columns = Vec::with_capacity(header.len());
    for field in header {
        let name = std::str::from_utf8(field).unwrap_or_default().trim();
        let Some(column) = COLUMNS.iter().position(|c| *c == name) else {
            anyhow::bail!(
                "line 1: unknown column {name:?} in the header; the columns are {}",
                COLUMNS.join(", ")
            );
        };
        if columns.contains(&column) {
            anyhow::bail!("line 1: column {name:?} appears twice in the header");
        }
        columns.push(column);
    }
    if !columns.contains(&0) {
        anyhow::bail!(
            "line 1: the header has no `url` column (expected some of {})",
            COLUMNS.join(", ")
        );
    }
    Ok(columns)
}

fn csv_row(line: u64, columns: &[usize], record: &csv::ByteRecord) -> Read {
    let bad = |reason: String| Read::Bad { line, reason };
    let mut row = SourceRow {
        line,
        ..SourceRow::default()
    };
    for (field, &column) in record.iter().zip(columns) {
        let Ok(text) = std::str::from_utf8(field) else {
            return bad(format!("{}: not valid UTF-8", COLUMNS[column]));
        };
        // An empty cell is an absent value; the URL alone is required, and an empty
        // one is refused by the URL rules like any other.
        if text.is_empty() && column != 0 {
            continue;
        }
        match column {
            0 => row.url = text.to_string(),
            1 => row.alias = Some(text.to_string()),
            2 => row.created_at = Some(text.to_string()),
            3 => row.expires_at = Some(text.to_string()),
            4 => match serde_json::from_str::<Vec<String>>(text) {
                Ok(tags) => row.tags = Some(tags),
                Err(_) => {
                    return bad(r#"tags: must be a JSON array of strings, e.g. ["a","b"]"#.into());
                }
            },
            5 => match text.parse::<u64>() {
                Ok(n) => row.clicks = Some(n),
                Err(_) => return bad(CLICKS_RULE.into()),
            },
            6 => row.domain = Some(text.to_string()),
            10 => row.password_hash = Some(text.to_string()),
            7 => match text.parse::<bool>() {
                Ok(forward) => row.forward_query = Some(forward),
                Err(_) => return bad(FORWARD_RULE.into()),
            },
            column => match serde_json::from_str::<Vec<Value>>(text) {
                Ok(items) if column == 8 => row.rules = Some(items),
                Ok(items) => row.variants = Some(items),
                Err(_) => return bad(format!("{}: must be a JSON array", COLUMNS[column])),
            },
        }
    }
    Read::Row(Box::new(row))
}

fn json_row(line: u64, text: &[u8]) -> Read {
    let bad = |reason: String| Read::Bad { line, reason };
    let object: Map<String, Value> = match serde_json::from_slice(text) {
        Ok(object) => object,
        Err(e) => {
            // serde_json counts lines within the one line it was given: only the
            // column means anything here.
            let message = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let message = message.strip_suffix(&suffix).unwrap_or(&message);
            return bad(if e.is_data() {
                "not a JSON object".to_string()
            } else {
                format!("invalid JSON at column {}: {message}", e.column())
            });
        }
    };
    let mut row = SourceRow {
        line,
        ..SourceRow::default()
    };
    let mut seen_url = false;
    for (key, value) in object {
        let Some(column) = COLUMNS.iter().position(|c| *c == key) else {
            return bad(format!(
                "unknown field {key:?}; the fields are {}",
                COLUMNS.join(", ")
            ));
        };
        if value.is_null() && column != 0 {
            continue;
        }
        let name = COLUMNS[column];
        match (column, value) {
            (0, Value::String(s)) => {
                row.url = s;
                seen_url = true;
            }
            (0, _) => return bad("url: must be a string".into()),
            (1, Value::String(s)) => row.alias = Some(s),
            (2, Value::String(s)) => row.created_at = Some(s).filter(|s| !s.is_empty()),
            (3, Value::String(s)) => row.expires_at = Some(s).filter(|s| !s.is_empty()),
            (6, Value::String(s)) => row.domain = Some(s).filter(|s| !s.is_empty()),
            (10, Value::String(s)) => row.password_hash = Some(s).filter(|s| !s.is_empty()),
            (1..=3 | 6 | 10, _) => return bad(format!("{name}: must be a string")),
            (4, Value::Array(items)) => {
                let tags: Option<Vec<String>> = items
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => Some(s),
                        _ => None,
                    })
                    .collect();
                match tags {
                    Some(tags) => row.tags = Some(tags),
                    None => return bad("tags: must be an array of strings".into()),
                }
            }
            (4, _) => return bad("tags: must be an array of strings".into()),
            (7, Value::Bool(forward)) => row.forward_query = Some(forward),
            (7, _) => return bad(FORWARD_RULE.into()),
            (8, Value::Array(items)) => row.rules = Some(items),
            (9, Value::Array(items)) => row.variants = Some(items),
            (8 | 9, _) => return bad(format!("{name}: must be an array")),
            (_, value) => match value.as_u64() {
                Some(n) => row.clicks = Some(n),
                None => return bad(CLICKS_RULE.into()),
            },
        }
    }
    if !seen_url {
        return bad("url: missing".into());
    }
    Read::Row(Box::new(row))
}

/// One link as an export writes it; every field already in its written form.
#[derive(Debug, Clone, Serialize)]
pub struct OutRow {
    pub url: String,
    pub alias: Option<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub tags: Vec<String>,
    pub clicks: i64,
    /// `None`: the default domain (left out of a JSON line, as files of links
    /// without domains always were).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Left out of a JSON line when `true` (the default), as are empty lists.
    #[serde(skip_serializing_if = "is_true")]
    pub forward_query: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<Variant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

fn is_true(value: &bool) -> bool {
    *value
}

/// A CSV cell of a list: empty for none, as a person would write it.
fn json_cell<T: Serialize>(items: &[T]) -> anyhow::Result<String> {
    Ok(if items.is_empty() {
        String::new()
    } else {
        serde_json::to_string(items)?
    })
}

/// Writes rows in `format` to `out`: a CSV header first, then one row per link.
pub enum RowWriter<W: Write> {
    Csv(Box<csv::Writer<W>>),
    Jsonl(W),
}

impl<W: Write> RowWriter<W> {
    pub fn new(format: Format, out: W) -> anyhow::Result<RowWriter<W>> {
        Ok(match format {
            Format::Csv => {
                let mut writer = csv::Writer::from_writer(out);
                writer.write_record(COLUMNS)?;
                RowWriter::Csv(Box::new(writer))
            }
            Format::Jsonl => RowWriter::Jsonl(out),
        })
    }

    pub fn write(&mut self, row: &OutRow) -> anyhow::Result<()> {
        match self {
            RowWriter::Csv(writer) => {
                let tags = json_cell(&row.tags)?;
                let rules = json_cell(&row.rules)?;
                let variants = json_cell(&row.variants)?;
                let clicks = row.clicks.to_string();
                writer.write_record([
                    row.url.as_str(),
                    row.alias.as_deref().unwrap_or_default(),
                    row.created_at.as_str(),
                    row.expires_at.as_deref().unwrap_or_default(),
                    tags.as_str(),
                    clicks.as_str(),
                    row.domain.as_deref().unwrap_or_default(),
                    if row.forward_query { "true" } else { "false" },
                    rules.as_str(),
                    variants.as_str(),
                    row.password_hash.as_deref().unwrap_or_default(),
                ])?;
            }
            RowWriter::Jsonl(out) => {
                serde_json::to_writer(&mut *out, row)?;
                out.write_all(b"\n")?;
            }
        }
        Ok(())
    }

    /// Flushes and hands back the output (to sync and rename a file).
    pub fn finish(self) -> anyhow::Result<W> {
        match self {
            RowWriter::Csv(writer) => writer
                .into_inner()
                .map_err(|e| anyhow::anyhow!("writing the CSV file: {}", e.error())),
            RowWriter::Jsonl(mut out) => {
                out.flush()?;
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use common::domain::route::{Os, When};

    fn read_all(format: Format, text: &str) -> Vec<Read> {
        let mut reader = RowReader::new(format, text.as_bytes()).unwrap();
        let mut out = Vec::new();
        while let Some(row) = reader.next_row().unwrap() {
            out.push(row);
        }
        out
    }

    fn lines_and_reasons(reads: &[Read]) -> Vec<(u64, String)> {
        reads
            .iter()
            .map(|r| match r {
                Read::Row(row) => (row.line, String::new()),
                Read::Bad { line, reason } => (*line, reason.clone()),
            })
            .collect()
    }

    #[test]
    fn csv_columns_in_any_order_and_empty_cells_absent() {
        let reads = read_all(
            Format::Csv,
            "clicks,url,tags,alias\n7,https://a.example/,\"[\"\"x\"\"]\",\n,https://b.example/,,b-link\n",
        );
        let Read::Row(first) = &reads[0] else {
            panic!("{reads:?}")
        };
        assert_eq!(first.line, 2);
        assert_eq!(first.url, "https://a.example/");
        assert_eq!(first.clicks, Some(7));
        assert_eq!(first.tags, Some(vec!["x".to_string()]));
        assert_eq!(first.alias, None);
        let Read::Row(second) = &reads[1] else {
            panic!("{reads:?}")
        };
        assert_eq!(second.alias.as_deref(), Some("b-link"));
        assert_eq!(second.clicks, None);
    }

    #[test]
    fn csv_bad_rows_keep_their_line_and_reading_goes_on() {
        let text = "url,alias,tags,clicks\n\
                    https://a.example/,,,\n\
                    https://b.example/,too,many,fields,here\n\
                    \"https://c.example/\nstill the same row\",,,\n\
                    https://d.example/,,notjson,\n\
                    https://e.example/,,,-3\n\
                    https://f.example/,,,\n";
        let got = lines_and_reasons(&read_all(Format::Csv, text));
        assert_eq!(
            got,
            vec![
                (2, String::new()),
                (3, "expected 4 fields, found 5".into()),
                (4, String::new()),
                (
                    6,
                    r#"tags: must be a JSON array of strings, e.g. ["a","b"]"#.into()
                ),
                (7, CLICKS_RULE.into()),
                (8, String::new()),
            ]
        );
    }

    #[test]
    fn csv_header_is_checked_up_front() {
        let typo = RowReader::new(Format::Csv, "url,expire_at\n".as_bytes()).err();
        assert!(typo.unwrap().to_string().contains("\"expire_at\""));
        let twice = RowReader::new(Format::Csv, "url,url\n".as_bytes()).err();
        assert!(twice.unwrap().to_string().contains("twice"));
        let no_url = RowReader::new(Format::Csv, "alias\n".as_bytes()).err();
        assert!(no_url.unwrap().to_string().contains("no `url` column"));
    }

    #[test]
    fn jsonl_rows_and_their_faults() {
        let text = "{\"url\":\"https://a.example/\",\"tags\":[\"t\"],\"clicks\":3,\"alias\":null}\n\
                    \n\
                    {\"url\":\"https://b.example/\"\n\
                    [1,2]\n\
                    {\"url\":\"https://c.example/\",\"colour\":\"red\"}\n\
                    {\"url\":\"https://d.example/\",\"tags\":\"t\"}\n\
                    {\"url\":\"https://e.example/\",\"clicks\":1.5}\n\
                    {\"alias\":\"x-y-z\"}\n\
                    {\"url\":5}\n";
        let got = lines_and_reasons(&read_all(Format::Jsonl, text));
        assert_eq!(got[0], (1, String::new()));
        assert_eq!(got[1].0, 3);
        assert!(got[1].1.starts_with("invalid JSON at column"), "{got:?}");
        assert_eq!(got[2], (4, "not a JSON object".into()));
        assert_eq!(got[3].0, 5);
        assert!(got[3].1.starts_with("unknown field \"colour\""));
        assert_eq!(got[4], (6, "tags: must be an array of strings".into()));
        assert_eq!(got[5], (7, CLICKS_RULE.into()));
        assert_eq!(got[6], (8, "url: missing".into()));
        assert_eq!(got[7], (9, "url: must be a string".into()));
    }

    #[test]
    fn written_rows_read_back_the_same() {
        let rows = vec![
            OutRow {
                url: "https://a.example/?q=1,2".into(),
                alias: Some("a-link".into()),
                created_at: "2026-01-02T03:04:05.678Z".into(),
                expires_at: Some("2027-01-01T00:00:00.000Z".into()),
                tags: vec!["x".into(), "y, \"z\"".into()],
                clicks: 42,
                domain: Some("go.acme.com".into()),
                forward_query: false,
                rules: vec![Rule {
                    when: When {
                        os: vec![Os::Ios],
                        country: vec!["DE".into()],
                        ..When::default()
                    },
                    url: "https://apps.example/, \"x\"".into(),
                }],
                variants: vec![
                    Variant {
                        url: "https://a.example/1".into(),
                        weight: 60,
                    },
                    Variant {
                        url: "https://a.example/2".into(),
                        weight: 40,
                    },
                ],
                password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
            },
            OutRow {
                url: "https://b.example/".into(),
                alias: None,
                created_at: "2026-01-02T03:04:05.000Z".into(),
                expires_at: None,
                tags: vec![],
                clicks: 0,
                domain: None,
                forward_query: true,
                rules: vec![],
                variants: vec![],
                password_hash: None,
            },
        ];
        for format in [Format::Csv, Format::Jsonl] {
            let mut writer = RowWriter::new(format, Vec::new()).unwrap();
            for row in &rows {
                writer.write(row).unwrap();
            }
            let text = String::from_utf8(writer.finish().unwrap()).unwrap();
            let back = read_all(format, &text);
            for (row, read) in rows.iter().zip(&back) {
                let Read::Row(read) = read else {
                    panic!("{read:?}")
                };
                assert_eq!(read.url, row.url);
                assert_eq!(read.alias, row.alias);
                assert_eq!(read.created_at.as_deref(), Some(row.created_at.as_str()));
                assert_eq!(read.expires_at, row.expires_at);
                assert_eq!(read.tags.clone().unwrap_or_default(), row.tags);
                assert_eq!(read.clicks.unwrap_or_default(), row.clicks as u64);
                assert_eq!(read.domain, row.domain);
                assert_eq!(read.forward_query.unwrap_or(true), row.forward_query);
                assert_eq!(read.password_hash, row.password_hash);
                let json = |items: Option<&Vec<Value>>| {
                    serde_json::to_value(items.cloned().unwrap_or_default()).unwrap()
                };
                assert_eq!(
                    json(read.rules.as_ref()),
                    serde_json::to_value(&row.rules).unwrap()
                );
                assert_eq!(
                    json(read.variants.as_ref()),
                    serde_json::to_value(&row.variants).unwrap()
                );
            }
        }
    }
}
