//! `GET /api/v1/links/{code}/stats?from=&to=&granularity=hour|day`: a link's clicks for
//! its owner, as JSON or (with `Accept: text/csv`) as a CSV time series. Links created
//! without a key have no owner: with `links.anonymous_stats` anyone may read theirs.

use std::collections::BTreeMap;

use actix_web::http::header::ACCEPT;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use common::auth::Authenticator;
use common::clicks::{DAY_MS, HOUR_MS};
use common::domain::access::{self, Action};
use common::link::{LinkCode, LinkRecord, TenantId};
use common::links::DomainName;
use std::time::Duration;

use common::db::replicas::Replicas;
use common::db::{Database, StoreError, clicks, links};
use common::domains::DefaultDomain;
use common::problem::Problem;

use crate::error::StatsError;
use common::time::{from_ms, now_ms};
use prometheus::{IntCounter, IntCounterVec, Opts};
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use utoipa::{IntoParams, ToSchema};

/// Longest range answered hour by hour.
const MAX_HOURS: i64 = 24 * 93;
/// Longest range at all.
const MAX_RANGE_MS: i64 = 5 * 366 * DAY_MS;

pub struct StatsState {
    pub db: Database,
    /// Where reads go first (see [`read`]).
    pub replicas: Replicas,
    /// Deadline of one answer's reads on a replica.
    pub replica_deadline: Duration,
    pub auth: Authenticator,
    /// `links.anonymous_stats`: a request without a key reads anonymous links.
    pub anonymous_stats: bool,
    pub reads: Reads,
    pub default_domain: DefaultDomain,
}

/// Stats reads by the pool that answered, each series resolved once.
pub struct Reads {
    replica: IntCounter,
    primary: IntCounter,
}

impl Reads {
    pub fn new(metrics: &common::metrics::Metrics) -> Reads {
        let reads = common::metrics::register(
            metrics.registry(),
            IntCounterVec::new(
                Opts::new(
                    "stats_reads_total",
                    "Stats API answers by the database that gave them (replica or primary).",
                ),
                &["pool"],
            ),
        );
        Reads {
            replica: reads.with_label_values(&["replica"]),
            primary: reads.with_label_values(&["primary"]),
        }
    }
}

/// What one stats answer is made of, read from one database.
struct Read {
    link: Option<links::LinkRecord>,
    hours: Vec<(i64, i64)>,
    dims: Vec<(String, String, i64)>,
    unique_visitors: i64,
}

async fn read_from(
    pool: &AnyPool,
    code: &str,
    from: i64,
    to: i64,
    day_from: i64,
) -> Result<Read, StoreError> {
    let Some(link) = links::get(pool, code).await? else {
        return Ok(Read {
            link: None,
            hours: Vec::new(),
            dims: Vec::new(),
            unique_visitors: 0,
        });
    };
    Ok(Read {
        hours: clicks::hours(pool, code, from, to).await?,
        dims: clicks::dimensions(pool, code, day_from, to).await?,
        unique_visitors: clicks::unique_visitors(pool, code, day_from, to).await?,
        link: Some(link),
    })
}

/// Reads a healthy replica, all of an answer from one database. The primary answers
/// instead when no replica is healthy, when the replica fails or misses its deadline
/// (it then leaves the rotation until its probe answers), and when it does not have
/// the link: a link created a moment ago may not have reached it yet, and its stats
/// must be readable the moment its create returned.
async fn read(
    state: &StatsState,
    code: &str,
    from: i64,
    to: i64,
    day_from: i64,
) -> Result<Read, StoreError> {
    if let Some(replica) = state.replicas.pick() {
        let attempt = tokio::time::timeout(
            state.replica_deadline,
            read_from(replica.pool(), code, from, to, day_from),
        )
        .await;
        match attempt {
            Ok(Ok(read)) if read.link.is_some() => {
                state.reads.replica.inc();
                return Ok(read);
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                replica.failed();
                tracing::warn!(error = %e, "stats read failed on a replica; reading the primary");
            }
            Err(_) => {
                replica.failed();
                tracing::warn!("stats read timed out on a replica; reading the primary");
            }
        }
    }
    state.reads.primary.inc();
    read_from(state.db.primary(), code, from, to, day_from).await
}

/// The parameters arrive as text so that a bad value is answered with a problem that
/// names it, rather than with the query parser's generic message.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Start of the range, RFC 3339 (default: 30 days before `to`).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub from: Option<String>,
    /// End of the range, RFC 3339 (default: now).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub to: Option<String>,
    /// Width of each point of the series (default `day`).
    #[param(value_type = Option<Granularity>, inline)]
    pub granularity: Option<String>,
    /// The link's domain; absent: the default domain.
    #[param(example = "go.acme.com")]
    pub domain: Option<String>,
}

/// The widths a series can be counted in.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Granularity {
    Hour,
    Day,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Point {
    pub t: DateTime<Utc>,
    pub clicks: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Count {
    pub value: String,
    pub clicks: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    /// The link's domain (the default domain's host for links without a branded one).
    pub domain: String,
    pub code: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub granularity: String,
    pub total: i64,
    pub series: Vec<Point>,
    pub referrers: Vec<Count>,
    pub browsers: Vec<Count>,
    pub os: Vec<Count>,
    pub devices: Vec<Count>,
    pub countries: Vec<Count>,
    /// For a link with rules or variants: what answered each click (`url`,
    /// `rules[i]`, `variants[i]`, by their index when the click was counted).
    pub routes: Vec<Count>,
    pub bots: i64,
    /// Sum over the days in range of each day's distinct visitors.
    pub unique_visitors: i64,
}

fn parse_instant(name: &str, value: Option<&String>, default: i64) -> Result<i64, StatsError> {
    match value {
        None => Ok(default),
        Some(v) => DateTime::parse_from_rfc3339(v)
            .map(|t| t.timestamp_millis())
            .map_err(|_| {
                StatsError::InvalidQuery(format!("`{name}` must be an RFC 3339 timestamp"))
            }),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/links/{code}/stats",
    tag = "stats",
    params(
        ("code" = String, Path, description = "Generated code or alias"),
        StatsQuery,
        ("Accept" = Option<String>, Header, description = "`text/csv` asks for the series alone, as CSV"),
    ),
    responses(
        (status = 200, description = "The link's clicks in the range",
            content(
                (Stats = "application/json"),
                (String = "text/csv"),
            )
        ),
        (status = 400, description = "Bad `from`, `to` or `granularity`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid, revoked or expired API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks `stats:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such link of yours", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable; retry later", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security((), ("api_key" = []))
)]
pub async fn link_stats(
    req: HttpRequest,
    state: web::Data<StatsState>,
    code: web::Path<String>,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, StatsError> {
    let tenant = match state.auth.authenticate(&req).await? {
        Some(principal) if access::permits(&principal.grant, Action::ReadStats) => {
            principal.tenant_id
        }
        Some(_) => return Err(StatsError::Forbidden),
        None if state.anonymous_stats => TenantId::anonymous(),
        None => return Err(StatsError::Unauthorized),
    };
    // Text no link or domain could have reaches no database.
    let code = LinkCode::parse(&code).ok_or(StatsError::NotFound)?;
    let domain = match &query.domain {
        Some(text) => state
            .default_domain
            .branded(DomainName::parse(text).map_err(|_| StatsError::NotFound)?),
        None => None,
    };
    // The key clicks are counted under; a domain the caller does not hold has no
    // link of the caller's, so it answers 404 below like any other.
    let key = LinkRecord::key_of(domain.as_ref(), &code);
    let granularity = query.granularity.as_deref().unwrap_or("day");
    let step = match granularity {
        "hour" => HOUR_MS,
        "day" => DAY_MS,
        _ => {
            return Err(StatsError::InvalidQuery(
                "`granularity` must be `hour` or `day`".into(),
            ));
        }
    };
    let now = now_ms();
    let to = parse_instant("to", query.to.as_ref(), now)?;
    let from = parse_instant("from", query.from.as_ref(), to - 30 * DAY_MS)?;
    if from >= to {
        return Err(StatsError::InvalidQuery(
            "`from` must be before `to`".into(),
        ));
    }
    if to - from > MAX_RANGE_MS || (step == HOUR_MS && (to - from) / HOUR_MS > MAX_HOURS) {
        return Err(StatsError::InvalidQuery(
            "the range is too long for this granularity".into(),
        ));
    }
    // Buckets are whole hours/days: widen the range to them.
    let from = from - from.rem_euclid(step);
    let to = to + (step - to.rem_euclid(step)) % step;

    let day_from = from - from.rem_euclid(DAY_MS);
    let Read {
        link,
        hours,
        dims,
        unique_visitors,
    } = read(&state, &key, from, to, day_from).await?;
    let link = match link {
        Some(link) if link.tenant_id == tenant && link.deleted_at.is_none() => link,
        _ => return Err(StatsError::NotFound),
    };
    let mut buckets: BTreeMap<i64, i64> = BTreeMap::new();
    let mut t = from;
    while t < to {
        buckets.insert(t, 0);
        t += step;
    }
    let mut total = 0;
    for (hour, n) in hours {
        total += n;
        *buckets.entry(hour - hour.rem_euclid(step)).or_default() += n;
    }
    let pick = |dim: &str| -> Vec<Count> {
        dims.iter()
            .filter(|(d, _, _)| d == dim)
            .map(|(_, value, clicks)| Count {
                value: value.clone(),
                clicks: *clicks,
            })
            .collect()
    };
    let bots = dims
        .iter()
        .filter(|(d, v, _)| d == "bot" && v == "bot")
        .map(|(_, _, n)| n)
        .sum();
    let stats = Stats {
        domain: match link.domain {
            Some(name) => name.into_string(),
            None => state.default_domain.name().to_string(),
        },
        code: code.into_string(),
        from: from_ms(from),
        to: from_ms(to),
        granularity: granularity.to_string(),
        total,
        series: buckets
            .into_iter()
            .map(|(t, clicks)| Point {
                t: from_ms(t),
                clicks,
            })
            .collect(),
        referrers: pick("referrer"),
        browsers: pick("browser"),
        os: pick("os"),
        devices: pick("device"),
        countries: pick("country"),
        routes: pick("route"),
        bots,
        unique_visitors,
    };
    let wants_csv = req
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"));
    if wants_csv {
        let mut csv = String::from("timestamp,clicks\n");
        for point in &stats.series {
            csv.push_str(&format!("{},{}\n", point.t.to_rfc3339(), point.clicks));
        }
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .body(csv));
    }
    Ok(HttpResponse::Ok().json(stats))
}
