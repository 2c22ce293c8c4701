//! The bare actix-web reference of `bench/redirect`: every request answers
//! `302 Found`, `Location: https://example.com/`, `Cache-Control: private, max-age=0`
//! (the headers lookup-service sends for a 302 link), with no middleware, no state
//! and no lookup. What lookup-service adds on top of this is the cost of the service.
//!
//!   bare-actix [--port PORT] [--workers N] [--bind ADDR]
//!
//! Defaults: 127.0.0.1, port 8090, 1 worker.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, HeaderValue, LOCATION};
use actix_web::{App, HttpResponse, HttpServer, web};

const USAGE: &str = "usage: bare-actix [--port PORT] [--workers N] [--bind ADDR]";

async fn redirect() -> HttpResponse {
    HttpResponse::build(StatusCode::FOUND)
        .insert_header((LOCATION, HeaderValue::from_static("https://example.com/")))
        .insert_header((
            CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=0"),
        ))
        .finish()
}

struct Args {
    bind: String,
    port: u16,
    workers: usize,
}

fn parse() -> Result<Args, String> {
    let mut parsed = Args {
        bind: "127.0.0.1".to_string(),
        port: 8090,
        workers: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--bind" => parsed.bind = value()?,
            "--port" => {
                let v = value()?;
                parsed.port = v.parse().map_err(|_| format!("bad port {v:?}"))?;
            }
            "--workers" => {
                let v = value()?;
                parsed.workers = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("bad worker count {v:?}"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(parsed)
}

// Started the way lookup-service starts (a tokio main, actix workers on their own
// threads), so the two differ only in what a request does.
#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("bare-actix: {e}");
            }
            eprintln!("{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = async {
        let server = HttpServer::new(|| App::new().default_service(web::to(redirect)))
            .workers(args.workers)
            .bind((args.bind.as_str(), args.port))?;
        eprintln!(
            "bare-actix listening on http://{}:{} ({} worker(s))",
            args.bind, args.port, args.workers
        );
        server.run().await
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bare-actix: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
