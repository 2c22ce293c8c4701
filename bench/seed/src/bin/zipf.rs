//! Draws a Zipf-distributed request mix over seeded codes for `bench/redirect`.
//!
//!   zipf --codes FILE --samples N --out FILE [--ranked FILE] [--exponent S]
//!        [--seed X] [--skip K]
//!
//! Reads the codes `seed` wrote (one a line), gives them popularity ranks in a
//! random order (so popular links are spread over the table, as real ones are, not
//! clustered by creation time), and writes N codes drawn with P(rank r) ∝ 1/r^S
//! (default S = 1.0) to --out, for a load generator that picks lines at random.
//! --ranked writes the codes in rank order, most popular first, for one that draws
//! ranks itself (and so never runs out of fresh tail links, as a replayed sample
//! does). The first K codes (default 0) are left out: the benchmark keeps them for
//! its hot set. Deterministic for a given --seed (default 1).
//!
//! On stderr it prints what a cache of a given size could hit at best: the share of
//! the draws that fall on the K most popular links, for a few K.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const USAGE: &str = "usage: zipf --codes FILE --samples N --out FILE [--ranked FILE] [--exponent S] [--seed X] [--skip K]";

struct Args {
    codes: PathBuf,
    samples: u64,
    out: PathBuf,
    ranked: Option<PathBuf>,
    exponent: f64,
    seed: u64,
    skip: usize,
}

fn parse() -> Result<Args> {
    let mut codes = None;
    let mut samples = None;
    let mut out = None;
    let mut ranked = None;
    let mut exponent: f64 = 1.0;
    let mut seed = 1;
    let mut skip = 0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--codes" => codes = Some(PathBuf::from(value()?)),
            "--samples" => samples = Some(value()?.parse().context("--samples")?),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--ranked" => ranked = Some(PathBuf::from(value()?)),
            "--exponent" => exponent = value()?.parse().context("--exponent")?,
            "--seed" => seed = value()?.parse().context("--seed")?,
            "--skip" => skip = value()?.parse().context("--skip")?,
            other => bail!("unknown argument {other:?}"),
        }
    }
    if !(exponent > 0.0 && exponent.is_finite()) {
        bail!("--exponent must be a positive number");
    }
    Ok(Args {
        codes: codes.context("--codes FILE is required")?,
        samples: samples.context("--samples N is required")?,
        out: out.context("--out FILE is required")?,
        ranked,
        exponent,
        seed,
        skip,
    })
}

fn run(args: &Args) -> Result<()> {
    let file = std::fs::File::open(&args.codes)
        .with_context(|| format!("opening {}", args.codes.display()))?;
    let mut codes = Vec::new();
    for line in std::io::BufReader::new(file).lines().skip(args.skip) {
        let line = line?;
        if !line.is_empty() {
            codes.push(line);
        }
    }
    if codes.is_empty() {
        bail!(
            "no codes in {} after skipping {}",
            args.codes.display(),
            args.skip
        );
    }
    let mut rng = StdRng::seed_from_u64(args.seed);
    codes.shuffle(&mut rng);
    if let Some(path) = &args.ranked {
        let mut ranked = BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        for code in &codes {
            writeln!(ranked, "{code}")?;
        }
        ranked.flush()?;
    }

    // Cumulative weights by rank; a draw is a binary search for a uniform point.
    let mut cumulative = Vec::with_capacity(codes.len());
    let mut total = 0.0_f64;
    for rank in 1..=codes.len() {
        total += (rank as f64).powf(-args.exponent);
        cumulative.push(total);
    }

    let mut out = BufWriter::new(
        std::fs::File::create(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?,
    );
    let mut seen = vec![false; codes.len()];
    let mut distinct = 0_u64;
    for _ in 0..args.samples {
        let point = rng.random::<f64>() * total;
        let rank = cumulative
            .partition_point(|&c| c < point)
            .min(codes.len() - 1);
        if !seen[rank] {
            seen[rank] = true;
            distinct += 1;
        }
        writeln!(out, "{}", codes[rank])?;
    }
    out.flush()?;

    let mass = |k: usize| cumulative[k.min(codes.len()) - 1] / total;
    let mut tops = String::new();
    for k in [1_000, 10_000, 100_000, 250_000, 500_000] {
        if k < codes.len() {
            tops.push_str(&format!(", top {k}: {:.1}%", mass(k) * 100.0));
        }
    }
    eprintln!(
        "zipf: {} draws over {} links (exponent {}), {distinct} distinct{tops}",
        args.samples,
        codes.len(),
        args.exponent
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("zipf: {e:#}\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zipf: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
