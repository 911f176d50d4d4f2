//! `tracer tail`: show the events of a running tracer (its Unix socket) or of an
//! event file (followed across rotations), filtered, as compact lines or raw JSON.
mod args;
mod described;
mod filter;
#[cfg(test)]
mod fixtures;
mod follow;
mod render;

use std::{
    io::{self, IsTerminal as _},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use tokio::io::AsyncBufReadExt as _;

pub(crate) use args::TailArgs;
pub(crate) use filter::Filter;
use render::Printer;

use crate::event::view::Line;

pub(crate) async fn run(args: TailArgs) -> anyhow::Result<()> {
    let filter = Filter::from_args(&args)?;
    let color = !args.json
        && io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut printer = Printer::new(filter, args.json, color, args.count);
    if args.count == Some(0) {
        return Ok(());
    }
    match &args.file {
        Some(path) => {
            printer.join_references();
            follow::follow_file(path, args.from_start, &mut printer).await
        }
        None => {
            let path = args
                .socket
                .clone()
                .unwrap_or_else(|| PathBuf::from(crate::sink::socket::DEFAULT_PATH));
            read_socket(&path, &mut printer).await
        }
    }
}

async fn read_socket(path: &Path, printer: &mut Printer) -> anyhow::Result<()> {
    let stream = tokio::net::UnixStream::connect(path)
        .await
        .with_context(|| {
            format!(
                "cannot connect to {} (is `tracer run --socket {}` running, and may you open it?)",
                path.display(),
                path.display()
            )
        })?;
    let mut reader = tokio::io::BufReader::with_capacity(256 * 1024, stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .await
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            printer.flush()?;
            return Ok(());
        }
        let text = String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(&line));
        if text.starts_with("{\"kind\":\"refused\"") {
            let v = Line::parse(text.as_bytes()).unwrap_or_default();
            bail!(
                "{}: {}",
                path.display(),
                v.error
                    .as_deref()
                    .unwrap_or("the tracer turned this reader away")
            );
        }
        let done = printer.line(&text);
        // Write when nothing more is waiting: one write per burst, not per line.
        if done || reader.buffer().is_empty() {
            let open = printer.flush()?;
            if done || !open {
                return Ok(());
            }
        }
    }
}

/// The last path component (the whole string if there is no `/`).
fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::fixtures::TempDir;
    use super::*;

    #[tokio::test]
    async fn socket_errors_name_the_path() {
        let dir = TempDir::new("sock");
        let path = dir.0.join("none.sock");
        let args = TailArgs {
            socket: Some(path.clone()),
            ..TailArgs::default()
        };
        let err = format!("{:#}", run(args).await.err().unwrap());
        assert!(err.contains(&path.display().to_string()), "{err}");
        let args = TailArgs {
            file: Some(dir.0.join("none.json")),
            ..TailArgs::default()
        };
        let err = format!("{:#}", run(args).await.err().unwrap());
        assert!(err.contains("none.json"), "{err}");
    }

    #[tokio::test]
    async fn reads_the_socket_until_eof() {
        let dir = TempDir::new("eof");
        let path = dir.0.join("t.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"{\"kind\":\"loss\",\"lost\":{}}\n")
                .await
                .unwrap();
        });
        // Filtered out: nothing reaches the test's stdout.
        let args = TailArgs {
            socket: Some(path),
            kind: vec!["exec".into()],
            ..TailArgs::default()
        };
        run(args).await.unwrap();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_refused_reader_says_why() {
        let dir = TempDir::new("refused");
        let path = dir.0.join("t.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(
                b"{\"kind\":\"refused\",\"error\":\"too many tail readers (--tail-clients 1)\"}\n",
            )
            .await
            .unwrap();
        });
        let args = TailArgs {
            socket: Some(path),
            ..TailArgs::default()
        };
        let err = format!("{:#}", run(args).await.err().unwrap());
        assert!(err.contains("too many tail readers"), "{err}");
        server.await.unwrap();
    }
}
