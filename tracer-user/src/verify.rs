//! `tracer verify FILE...`: check the hash chain of event files (see [`crate::chain`])
//! and, given the public key, the signatures of their checkpoints. Reports the
//! first record that was edited, deleted, reordered or cut off.
use std::{
    fmt,
    fs::File,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use ed25519_dalek::VerifyingKey;
use serde_json::Value;

use crate::chain::{self, GENESIS, Link};

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Event files (our JSON or OCSF), in any order: a shell glob such as
    /// `events.jsonl*` is fine, they are put in chain order.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// ed25519 public key (PEM) to check the signed checkpoints with.
    #[arg(long, value_name = "PATH")]
    pub public_key: Option<PathBuf>,
}

/// What is wrong with a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Its content no longer matches its hash, or it is no longer valid JSON.
    Edited(String),
    /// Records are missing before it (deleted, or moved further on).
    Deleted { first: u64, last: u64 },
    /// It comes after a record that should follow it, or twice.
    Reordered { after: u64 },
    /// Its link does not name the record before it.
    Unlinked,
    /// The file ends in the middle of a record.
    Truncated,
    /// It carries no chain link.
    NoLink,
    /// A checkpoint whose signature does not verify, or that vouches for a
    /// different record than the one before it.
    BadCheckpoint(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Edited(why) => write!(f, "record edited: {why}"),
            Problem::Deleted { first, last } if first == last => {
                write!(
                    f,
                    "record deleted or moved: seq {first} is missing before it"
                )
            }
            Problem::Deleted { first, last } => write!(
                f,
                "records deleted or moved: seq {first}..={last} are missing before it"
            ),
            Problem::Reordered { after } => {
                write!(f, "records reordered or repeated (it follows seq {after})")
            }
            Problem::Unlinked => write!(
                f,
                "chain broken: its link does not name the record before it (replaced or spliced in)"
            ),
            Problem::Truncated => write!(f, "truncated: the file ends inside this record"),
            Problem::NoLink => write!(f, "record has no chain link"),
            Problem::BadCheckpoint(why) => write!(f, "bad checkpoint: {why}"),
        }
    }
}

/// Where the first problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: PathBuf,
    /// 1-based line number in `file`.
    pub line: u64,
    /// The record's own sequence number, when it could be read.
    pub seq: Option<u64>,
    pub problem: Problem,
}

#[derive(Debug, Default)]
pub struct Report {
    /// The files in the order they were checked.
    pub files: Vec<PathBuf>,
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Checkpoints whose signature was checked with the given key.
    pub checkpoints_verified: u64,
    /// Checkpoints seen (consistent with the chain).
    pub checkpoints: u64,
    /// Records after the last checkpoint (no signature covers them).
    pub unsigned_tail: u64,
    pub finding: Option<Finding>,
}

impl Report {
    pub fn intact(&self) -> bool {
        self.finding.is_none()
    }
}

pub fn run(args: VerifyArgs) -> Result<bool> {
    let key = args
        .public_key
        .as_deref()
        .map(chain::load_verifying_key)
        .transpose()?;
    let report = verify_files(&args.files, key.as_ref())?;
    print!("{}", describe(&report, key.is_some()));
    Ok(report.intact())
}

/// The report as an operator reads it.
pub fn describe(r: &Report, keyed: bool) -> String {
    let mut out = String::new();
    let seqs = match (r.first_seq, r.last_seq) {
        (Some(a), Some(b)) => format!(" (seq {a}..={b})"),
        _ => String::new(),
    };
    if let Some(f) = &r.finding {
        let seq = f.seq.map(|s| format!(", seq {s}")).unwrap_or_default();
        out.push_str(&format!(
            "TAMPERED: {} line {}{seq}: {}\n",
            f.file.display(),
            f.line,
            f.problem
        ));
        out.push_str(&format!("{} records checked before it{seqs}\n", r.records));
        return out;
    }
    let sigs = if keyed {
        format!(
            "{} checkpoints, signatures verified",
            r.checkpoints_verified
        )
    } else if r.checkpoints > 0 {
        format!(
            "{} checkpoints (signatures not checked: no --public-key)",
            r.checkpoints
        )
    } else {
        "no checkpoints".to_owned()
    };
    out.push_str(&format!(
        "OK: {} files, {} records{seqs}, {sigs}\n",
        r.files.len(),
        r.records
    ));
    if let Some(first) = r.first_seq.filter(|&s| s > 0) {
        out.push_str(&format!(
            "note: the chain starts at seq {first}; earlier records are not in these files (rotated away?)\n"
        ));
    }
    if keyed && r.unsigned_tail > 0 {
        out.push_str(&format!(
            "note: the last {} records come after the last checkpoint; no signature covers them yet\n",
            r.unsigned_tail
        ));
    }
    out
}

/// The link of a file's first record, to put files in chain order.
fn first_seq(path: &Path) -> Option<u64> {
    let f = File::open(path).ok()?;
    let mut line = Vec::new();
    BufReader::new(f).read_until(b'\n', &mut line).ok()?;
    let v: Value = serde_json::from_slice(line.strip_suffix(b"\n")?).ok()?;
    Link::of_record(&v).map(|l| l.seq)
}

pub fn verify_files(files: &[PathBuf], key: Option<&VerifyingKey>) -> Result<Report> {
    let mut ordered: Vec<(Option<u64>, &PathBuf)> =
        files.iter().map(|p| (first_seq(p), p)).collect();
    // Unreadable or unlinked files go last, where they are reported.
    ordered.sort_by_key(|(s, _)| s.unwrap_or(u64::MAX));
    let mut v = Verifier {
        key,
        report: Report::default(),
        prev: None,
    };
    for (_, path) in ordered {
        v.report.files.push(path.clone());
        let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut reader = BufReader::with_capacity(256 * 1024, f);
        let mut line = Vec::new();
        let mut n = 0u64;
        loop {
            line.clear();
            let got = reader
                .read_until(b'\n', &mut line)
                .with_context(|| format!("reading {}", path.display()))?;
            if got == 0 {
                break;
            }
            n += 1;
            if let Err(problem) = v.record(&line) {
                let seq =
                    serde_json::from_slice::<Value>(line.strip_suffix(b"\n").unwrap_or(&line))
                        .ok()
                        .and_then(|x| Link::of_record(&x))
                        .map(|l| l.seq);
                v.report.finding = Some(Finding {
                    file: path.clone(),
                    line: n,
                    seq,
                    problem,
                });
                return Ok(v.report);
            }
        }
    }
    Ok(v.report)
}

struct Verifier<'a> {
    key: Option<&'a VerifyingKey>,
    report: Report,
    prev: Option<Link>,
}

impl Verifier<'_> {
    fn record(&mut self, raw: &[u8]) -> Result<(), Problem> {
        let Some(line) = raw.strip_suffix(b"\n") else {
            return Err(Problem::Truncated);
        };
        let v: Value = serde_json::from_slice(line)
            .map_err(|e| Problem::Edited(format!("not valid JSON ({e})")))?;
        let link = Link::of_record(&v).ok_or(Problem::NoLink)?;
        let canonical = chain::canonical(line, &link).ok_or_else(|| {
            Problem::Edited("its chain link is not where the tracer writes it".into())
        })?;
        if chain::record_hash(&link.prev, &canonical) != link.hash {
            return Err(Problem::Edited(
                "its content does not match its hash".into(),
            ));
        }
        match &self.prev {
            None => {
                // The first record given: a chain's start, or the oldest record
                // kept (earlier files rotated away).
                if link.seq == 0 && link.prev != GENESIS {
                    return Err(Problem::Unlinked);
                }
                self.report.first_seq = Some(link.seq);
            }
            Some(p) => {
                let expected = p.seq + 1;
                if link.seq > expected {
                    return Err(Problem::Deleted {
                        first: expected,
                        last: link.seq - 1,
                    });
                }
                if link.seq < expected {
                    return Err(Problem::Reordered { after: p.seq });
                }
                if link.prev != p.hash {
                    return Err(Problem::Unlinked);
                }
            }
        }
        if v.get("kind").and_then(Value::as_str) == Some("checkpoint") {
            self.checkpoint(&v)?;
        } else {
            self.report.unsigned_tail += 1;
        }
        self.report.records += 1;
        self.report.last_seq = Some(link.seq);
        self.prev = Some(link);
        Ok(())
    }

    fn checkpoint(&mut self, v: &Value) -> Result<(), Problem> {
        let c = &v["checkpoint"];
        let (Some(seq), Some(hash), Some(sig)) = (
            c["seq"].as_u64(),
            c["hash"].as_str(),
            c["signature"].as_str(),
        ) else {
            return Err(Problem::BadCheckpoint("fields missing".into()));
        };
        match &self.prev {
            Some(p) if p.seq == seq && p.hash == hash => {}
            _ => {
                return Err(Problem::BadCheckpoint(format!(
                    "it vouches for seq {seq}, which is not the record before it"
                )));
            }
        }
        if let Some(key) = self.key {
            if !chain::verify_checkpoint(key, seq, hash, sig) {
                return Err(Problem::BadCheckpoint(
                    "the signature does not verify with the given public key".into(),
                ));
            }
            self.report.checkpoints_verified += 1;
        }
        self.report.checkpoints += 1;
        self.report.unsigned_tail = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::chain::{Chain, Checkpointer};

    struct Tmp(PathBuf);
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn tmp(name: &str) -> Tmp {
        let d = std::env::temp_dir().join(format!("tracer-verify-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Tmp(d)
    }

    /// `n` sealed records (a checkpoint after every 4th when signing), as lines.
    fn sealed(n: usize, key: Option<&SigningKey>) -> Vec<Vec<u8>> {
        let mut c = Chain::genesis();
        let mut cp = key.map(|k| Checkpointer::new(k.clone(), 4, Duration::from_secs(3600)));
        let mut lines = Vec::new();
        for i in 0..n {
            let rec = format!(r#"{{"kind":"exec","i":{i},"s":"x\"y"}}"#);
            let mut out = Vec::new();
            c.seal(rec.as_bytes(), rec.len() - 1, &mut out);
            lines.push(out);
            if let Some(cp) = &mut cp
                && let Some((seq, hash)) =
                    c.head().filter(|&h| cp.due(Some(h), Instant::now(), false))
            {
                let signed = cp.sign(seq, hash, Instant::now());
                let rec = serde_json::to_string(&serde_json::json!({
                    "kind": "checkpoint", "checkpoint": signed
                }))
                .unwrap();
                let mut out = Vec::new();
                let l = c.seal(rec.as_bytes(), rec.len() - 1, &mut out);
                cp.sealed(l.seq);
                lines.push(out);
            }
        }
        lines
    }

    fn write(dir: &Path, name: &str, lines: &[Vec<u8>]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, lines.concat()).unwrap();
        p
    }

    fn check(files: &[PathBuf], key: Option<&VerifyingKey>) -> Report {
        verify_files(files, key).unwrap()
    }

    #[test]
    fn intact_files_in_any_order_verify() {
        let d = tmp("intact");
        let lines = sealed(30, None);
        let a = write(&d.0, "e.jsonl.1", &lines[..12]);
        let b = write(&d.0, "e.jsonl", &lines[12..]);
        // Glob order (newest first) is put right.
        let r = check(&[b.clone(), a.clone()], None);
        assert!(r.intact(), "{r:?}");
        assert_eq!(
            (r.records, r.first_seq, r.last_seq),
            (30, Some(0), Some(29))
        );
        assert_eq!(r.files, vec![a, b.clone()]);
        // The oldest file rotated away: fine, with a note.
        let r = check(&[b], None);
        assert!(r.intact());
        assert_eq!(r.first_seq, Some(12));
        assert!(describe(&r, false).contains("starts at seq 12"));
    }

    #[test]
    fn each_kind_of_tampering_is_found_at_the_first_bad_record() {
        let d = tmp("tamper");
        let lines = sealed(10, None);
        let case = |name: &str, edit: &dyn Fn(&mut Vec<Vec<u8>>)| -> Finding {
            let mut l = lines.clone();
            edit(&mut l);
            let p = write(&d.0, name, &l);
            check(&[p], None)
                .finding
                .unwrap_or_else(|| panic!("{name}: not caught"))
        };
        let f = case("edit", &|l| {
            l[4] = String::from_utf8(l[4].clone())
                .unwrap()
                .replace("\"i\":4", "\"i\":5")
                .into_bytes()
        });
        assert_eq!((f.line, f.seq), (5, Some(4)));
        assert!(matches!(f.problem, Problem::Edited(_)));
        let f = case("delete", &|l| {
            l.remove(3);
        });
        assert_eq!(f.line, 4);
        assert_eq!(f.problem, Problem::Deleted { first: 3, last: 3 });
        let f = case("reorder", &|l| l.swap(6, 7));
        assert_eq!(f.line, 7);
        assert_eq!(f.problem, Problem::Deleted { first: 6, last: 6 });
        let f = case("duplicate", &|l| l.insert(5, l[4].clone()));
        assert_eq!(f.problem, Problem::Reordered { after: 4 });
        let f = case("truncate", &|l| {
            let last = l.last_mut().unwrap();
            last.truncate(last.len() / 2);
        });
        assert_eq!((f.line, f.problem), (10, Problem::Truncated));
        let f = case("unlinked", &|l| {
            // A record sealed in another chain at the right seq.
            let mut c = Chain::genesis();
            let mut out = Vec::new();
            for _ in 0..3 {
                out.clear();
                c.seal(b"{\"kind\":\"exec\",\"forged\":1}", 25, &mut out);
            }
            l[2] = out.clone();
        });
        assert_eq!((f.line, f.problem), (3, Problem::Unlinked));
        let f = case("nolink", &|l| l[0] = b"{\"kind\":\"exec\"}\n".to_vec());
        assert_eq!((f.line, f.problem), (1, Problem::NoLink));
        let f = case("garbage", &|l| l[8] = b"{\"kind\":\n".to_vec());
        assert!(matches!(f.problem, Problem::Edited(_)), "{f:?}");
    }

    #[test]
    fn signed_checkpoints_verify_and_forgeries_fail() {
        let d = tmp("signed");
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let vk = key.verifying_key();
        let lines = sealed(10, Some(&key));
        let p = write(&d.0, "ok", &lines);
        let r = check(std::slice::from_ref(&p), Some(&vk));
        assert!(r.intact(), "{r:?}");
        assert_eq!(r.checkpoints_verified, 2);
        assert_eq!(r.unsigned_tail, 2);
        // Another key: the signatures fail.
        let other = SigningKey::from_bytes(&[4u8; 32]).verifying_key();
        let r = check(&[p], Some(&other));
        assert!(matches!(
            r.finding.map(|f| f.problem),
            Some(Problem::BadCheckpoint(_))
        ));
        // A rewritten chain (attacker re-seals after an edit) has valid links but
        // its checkpoint no longer matches: caught.
        let forged = sealed(10, Some(&SigningKey::from_bytes(&[9u8; 32])));
        let p = write(&d.0, "forged", &forged);
        let r = check(&[p], Some(&vk));
        assert!(matches!(
            r.finding.map(|f| f.problem),
            Some(Problem::BadCheckpoint(_))
        ));
    }
}
