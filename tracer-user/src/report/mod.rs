//! `tracer report FILE...`: who shares a credential, and what each executor
//! did, over a period of event files (ours, across rotations). Reads each line
//! once: the hash chain is checked ([`crate::verify::Verifier`]) in the same
//! pass that groups the events, with memory bounded whatever the files hold.
mod group;
mod read;
mod render_html;
mod render_table;
mod root;
mod summary;

use std::{
    fs::File,
    io::{self, BufRead as _, BufReader, IsTerminal as _, Read as _, Write as _},
    path::PathBuf,
};

use anyhow::{Context as _, Result};

pub(crate) use group::Limits;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    /// Aligned columns for a terminal.
    Table,
    /// One JSON document (shape in README.md, "tracer report").
    Json,
    /// One self-contained HTML page (no network fetches): needs --output.
    Html,
}

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Event files (our JSON lines), in any order: a shell glob such as
    /// `events.jsonl*` is fine, they are read in chain order.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
    /// Write the report here instead of stdout.
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// ed25519 public key (PEM) to check the signed checkpoints with, as
    /// `tracer verify --public-key`.
    #[arg(long, value_name = "PATH")]
    pub public_key: Option<PathBuf>,
}

pub(crate) fn run(args: ReportArgs) -> Result<()> {
    if args.format == ReportFormat::Html && args.output.is_none() {
        anyhow::bail!("--format html needs --output FILE.html");
    }
    let key = args
        .public_key
        .as_deref()
        .map(crate::chain::load_verifying_key)
        .transpose()?;
    let summary = read_files(&args.files, key.as_ref(), Limits::default())?;
    let mut out: Box<dyn io::Write> = match &args.output {
        Some(p) => Box::new(io::BufWriter::new(
            File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(io::BufWriter::new(io::stdout().lock())),
    };
    match args.format {
        ReportFormat::Table => {
            let color = args.output.is_none() && io::stdout().is_terminal();
            out.write_all(render_table::render(&summary, color).as_bytes())?;
        }
        ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &summary)?;
            out.write_all(b"\n")?;
        }
        ReportFormat::Html => out.write_all(render_html::render(&summary)?.as_bytes())?,
    }
    out.flush().context("writing the report")?;
    Ok(())
}

/// Read `files` in chain order, checking the chain and grouping as it goes.
pub(crate) fn read_files(
    files: &[PathBuf],
    key: Option<&ed25519_dalek::VerifyingKey>,
    limits: Limits,
) -> Result<summary::Summary> {
    let mut verifier = crate::verify::Verifier::new(key);
    let mut grouper = group::Grouper::new(limits);
    for path in crate::verify::chain_order(files) {
        verifier.start_file(&path);
        let f = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut reader = BufReader::with_capacity(1 << 20, f);
        let mut line = Vec::with_capacity(64 * 1024);
        let reading = || format!("reading {}", path.display());
        loop {
            line.clear();
            let got = (&mut reader)
                .take(limits.line_bytes)
                .read_until(b'\n', &mut line)
                .with_context(reading)?;
            if got == 0 {
                break;
            }
            if got as u64 >= limits.line_bytes && line.last() != Some(&b'\n') {
                // Longer than any line the tracer writes: skipped (counted
                // unreadable), and the chain check fails on it as on any
                // record that is not what was sealed.
                skip_line(&mut reader).with_context(reading)?;
                line.push(b'\n');
                verifier.line(&line);
                grouper.unreadable();
                continue;
            }
            verifier.line(&line);
            grouper.line(line.strip_suffix(b"\n").unwrap_or(&line));
        }
    }
    Ok(summary::summarise(&grouper, &verifier.finish()))
}

/// Consume the rest of the current line (through its newline, if any).
fn skip_line(r: &mut impl io::BufRead) -> io::Result<()> {
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match memchr::memchr(b'\n', buf) {
            Some(i) => {
                r.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                r.consume(n);
            }
        }
    }
}

#[cfg(test)]
mod tests;
