//! `tracer verify FILE...`: check the hash chain of event files (see [`crate::chain`])
//! and, given the public key, the signatures of their checkpoints. Reports the
//! first record that was edited, deleted, reordered or cut off.
use std::{
    collections::HashMap,
    fmt,
    fs::File,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
};

use crate::{
    chain::{self, GENESIS, Link},
    event::view::Line,
};
use anyhow::{Context as _, Result};
use ed25519_dalek::VerifyingKey;

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Event files (our JSON or OCSF), in any order: a shell glob such as
    /// `events.jsonl*` is fine, they are put in chain order.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// ed25519 public key (PEM) to check the signed checkpoints with. Records
    /// that no valid checkpoint covers then fail the check (exit 4).
    #[arg(long, value_name = "PATH")]
    pub public_key: Option<PathBuf>,
    /// With --public-key: accept records after the last checkpoint (a file
    /// still being written, or whose writer was killed) instead of exiting 4.
    /// They are still reported.
    #[arg(long, requires = "public_key")]
    pub accept_unsigned_tail: bool,
}

/// `tracer verify`'s exit status (2 is a usage error, from the parser).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Intact; with a key, every record covered by a valid checkpoint.
    Intact = 0,
    /// A record was edited, deleted, reordered..., or a checkpoint is bad.
    Tampered = 1,
    /// Intact, but the tracer declared gaps (records it could not write) or
    /// records it did not vouch for when it restarted.
    Declared = 3,
    /// Intact, but records after the last checkpoint are covered by no
    /// signature (with --public-key, without --accept-unsigned-tail).
    Unsigned = 4,
}

/// What is wrong with a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
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
    /// A gap or segment record that does not match the chain around it.
    BadDeclaration(String),
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
            Problem::BadDeclaration(why) => write!(f, "bad gap or segment record: {why}"),
        }
    }
}

/// Where the first problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub file: PathBuf,
    /// 1-based line number in `file`.
    pub line: u64,
    /// The record's own sequence number, when it could be read.
    pub seq: Option<u64>,
    pub problem: Problem,
}

#[derive(Debug, Default)]
pub(crate) struct Report {
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
    /// The last checkpoint record: (seq, hash) of its own link.
    pub last_checkpoint: Option<(u64, String)>,
    /// Gaps and unvouched stretches the tracer declared, in chain order.
    pub declared: Vec<Declared>,
    pub finding: Option<Finding>,
}

/// A stretch the tracer itself declared missing or not vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Declared {
    pub file: PathBuf,
    pub line: u64,
    /// Seq of the declaring record.
    pub seq: u64,
    pub what: DeclaredKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeclaredKind {
    /// A `loss` record with `gap`: records dropped unwritten (`sink_error`).
    SinkGap { records: u64 },
    /// A `chain_segment` record: records `first..=last` came after the last
    /// valid checkpoint when the tracer restarted.
    Unvouched {
        first: u64,
        last: u64,
        reason: String,
    },
}

impl Report {
    pub(crate) fn intact(&self) -> bool {
        self.finding.is_none()
    }

    pub(crate) fn verdict(&self, keyed: bool, accept_unsigned_tail: bool) -> Verdict {
        if !self.intact() {
            Verdict::Tampered
        } else if keyed && self.unsigned_tail > 0 && !accept_unsigned_tail {
            Verdict::Unsigned
        } else if !self.declared.is_empty() {
            Verdict::Declared
        } else {
            Verdict::Intact
        }
    }
}

pub(crate) fn run(args: VerifyArgs) -> Result<Verdict> {
    let key = args
        .public_key
        .as_deref()
        .map(chain::load_verifying_key)
        .transpose()?;
    let report = verify_files(&args.files, key.as_ref())?;
    print!(
        "{}",
        describe(&report, key.is_some(), args.accept_unsigned_tail)
    );
    Ok(report.verdict(key.is_some(), args.accept_unsigned_tail))
}

/// The report as an operator reads it.
pub(crate) fn describe(r: &Report, keyed: bool, accept_unsigned_tail: bool) -> String {
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
    for d in &r.declared {
        let at = format!("{} line {}, seq {}", d.file.display(), d.line, d.seq);
        match &d.what {
            DeclaredKind::SinkGap { records } => out.push_str(&format!(
                "DECLARED GAP: {at}: the tracer could not write {records} records here (output errors, cause sink_error); they are lost\n"
            )),
            DeclaredKind::Unvouched {
                first,
                last,
                reason,
            } => out.push_str(&format!(
                "NOT VOUCHED: {at}: the tracer restarted and does not vouch for seq {first}..={last} ({} records): {reason}; whoever could write the file may have written them\n",
                last + 1 - first
            )),
        }
    }
    if r.unsigned_tail > 0 && keyed {
        let (tag, hint) = if accept_unsigned_tail {
            ("note", "accepted (--accept-unsigned-tail)")
        } else {
            ("UNSIGNED", "not accepted without --accept-unsigned-tail")
        };
        out.push_str(&format!(
            "{tag}: the last {} records come after the last valid checkpoint; no signature covers them: {hint}\n",
            r.unsigned_tail
        ));
    } else if r.unsigned_tail > 0 && r.checkpoints > 0 {
        out.push_str(&format!(
            "note: the last {} records come after the last checkpoint\n",
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
    let v = Line::parse(line.strip_suffix(b"\n")?).ok()?;
    Link::of_record(&v).map(|l| l.seq)
}

/// `files` in chain order (by the seq of each file's first record); unreadable
/// or unlinked files go last, where they are reported.
pub(crate) fn chain_order(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut ordered: Vec<(Option<u64>, &PathBuf)> =
        files.iter().map(|p| (first_seq(p), p)).collect();
    ordered.sort_by_key(|(s, _)| s.unwrap_or(u64::MAX));
    ordered.into_iter().map(|(_, p)| p.clone()).collect()
}

pub(crate) fn verify_files(files: &[PathBuf], key: Option<&VerifyingKey>) -> Result<Report> {
    let mut v = Verifier::new(key);
    for path in chain_order(files) {
        v.start_file(&path);
        let f = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut reader = BufReader::with_capacity(256 * 1024, f);
        let mut line = Vec::new();
        loop {
            line.clear();
            let got = reader
                .read_until(b'\n', &mut line)
                .with_context(|| format!("reading {}", path.display()))?;
            if got == 0 {
                break;
            }
            if !v.line(&line) {
                return Ok(v.report);
            }
        }
    }
    Ok(v.report)
}

/// The chain check, one line at a time, so a reader of the files (`tracer
/// report`) can check them in the same pass. Stops checking at the first
/// problem, which it keeps in the report.
pub(crate) struct Verifier<'a> {
    key: Option<&'a VerifyingKey>,
    report: Report,
    prev: Option<Link>,
    /// seq -> hash of every checkpoint record seen, for segment records to name.
    checkpoints_seen: HashMap<u64, String>,
    /// File and line of the record being checked.
    at: (PathBuf, u64),
}

impl<'a> Verifier<'a> {
    pub(crate) fn new(key: Option<&'a VerifyingKey>) -> Verifier<'a> {
        Verifier {
            key,
            report: Report::default(),
            prev: None,
            checkpoints_seen: HashMap::new(),
            at: (PathBuf::new(), 0),
        }
    }

    /// The next lines come from `path` (files given in chain order).
    pub(crate) fn start_file(&mut self, path: &Path) {
        self.report.files.push(path.to_path_buf());
        self.at = (path.to_path_buf(), 0);
    }

    /// Check the next line (with its `\n`, if any); false once a problem was
    /// found (this line's or an earlier one's): later lines are not checked.
    pub(crate) fn line(&mut self, raw: &[u8]) -> bool {
        if self.report.finding.is_some() {
            return false;
        }
        self.at.1 += 1;
        if let Err(problem) = self.record(raw) {
            let seq = Line::parse(raw.strip_suffix(b"\n").unwrap_or(raw))
                .ok()
                .and_then(|x| Link::of_record(&x))
                .map(|l| l.seq);
            self.report.finding = Some(Finding {
                file: self.at.0.clone(),
                line: self.at.1,
                seq,
                problem,
            });
            return false;
        }
        true
    }

    pub(crate) fn finish(self) -> Report {
        self.report
    }

    fn record(&mut self, raw: &[u8]) -> Result<(), Problem> {
        let Some(line) = raw.strip_suffix(b"\n") else {
            return Err(Problem::Truncated);
        };
        let v = Line::parse(line).map_err(|e| Problem::Edited(format!("not valid JSON ({e})")))?;
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
                let expected = p.seq.saturating_add(1);
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
        match v.kind() {
            Some("checkpoint") => {
                self.checkpoint(&v)?;
                self.checkpoints_seen.insert(link.seq, link.hash.clone());
                self.report.last_checkpoint = Some((link.seq, link.hash.clone()));
            }
            Some("chain_segment") => {
                self.segment(&v, &link)?;
                // The unvouched records are reported as such, not as unsigned.
                self.report.unsigned_tail = 1;
            }
            Some("loss") if v.gap.is_some() => {
                self.gap(&v, &link)?;
                self.report.unsigned_tail += 1;
            }
            _ => self.report.unsigned_tail += 1,
        }
        self.report.records += 1;
        self.report.last_seq = Some(link.seq);
        self.prev = Some(link);
        Ok(())
    }

    fn declare(&mut self, seq: u64, what: DeclaredKind) {
        self.report.declared.push(Declared {
            file: self.at.0.clone(),
            line: self.at.1,
            seq,
            what,
        });
    }

    /// A `loss` record with `gap`: it must name the record before it.
    fn gap(&mut self, v: &Line, link: &Link) -> Result<(), Problem> {
        let g = v.gap.as_ref().and_then(|g| g.0.as_ref());
        let records = g.and_then(|g| g.records).filter(|&n| n > 0);
        let lost = v.lost.as_ref().and_then(|l| *l.get("sink_error")?);
        let (Some(records), Some(lost)) = (records, lost) else {
            return Err(Problem::BadDeclaration("gap without a record count".into()));
        };
        if lost != records {
            return Err(Problem::BadDeclaration(format!(
                "gap of {records} records but sink_error {lost}"
            )));
        }
        let named = (
            g.and_then(|g| g.after_seq),
            g.and_then(|g| g.after_hash.as_deref()),
        );
        let before = (link.seq.checked_sub(1), Some(link.prev.as_str()));
        let before = if link.prev == GENESIS {
            (None, None)
        } else {
            before
        };
        if named != before {
            return Err(Problem::BadDeclaration(
                "its gap does not name the record before it".into(),
            ));
        }
        self.declare(link.seq, DeclaredKind::SinkGap { records });
        Ok(())
    }

    /// A `chain_segment` record: the stretch it disowns must end right before
    /// it and start after a checkpoint that really is in the chain.
    fn segment(&mut self, v: &Line, link: &Link) -> Result<(), Problem> {
        let s = v.segment.as_ref();
        let bad = |why: String| Err(Problem::BadDeclaration(why));
        let unvouched = s.and_then(|s| s.unvouched.as_ref());
        let (Some(first), Some(last), Some(reason)) = (
            unvouched.and_then(|u| u.first_seq),
            unvouched.and_then(|u| u.last_seq),
            s.and_then(|s| s.reason.as_deref()),
        ) else {
            return bad("fields missing".into());
        };
        if last.checked_add(1) != Some(link.seq) || first > last {
            return bad(format!(
                "it disowns seq {first}..={last}, which does not end right before it"
            ));
        }
        let cp = s.and_then(|s| s.last_checkpoint.as_ref());
        if let (Some(cp_seq), Some(cp_hash)) =
            (cp.and_then(|c| c.seq), cp.and_then(|c| c.hash.as_deref()))
        {
            if cp_seq.checked_add(1) != Some(first) {
                return bad(format!(
                    "it disowns from seq {first}, not from after its checkpoint seq {cp_seq}"
                ));
            }
            // Seen in these files: it must be that checkpoint.
            let seen = self.report.first_seq.is_some_and(|f| f <= cp_seq);
            if seen && self.checkpoints_seen.get(&cp_seq).map(String::as_str) != Some(cp_hash) {
                return bad(format!(
                    "it names a checkpoint at seq {cp_seq} that is not in the chain"
                ));
            }
        }
        let detail = s.and_then(|s| s.detail.as_deref()).unwrap_or_default();
        self.declare(
            link.seq,
            DeclaredKind::Unvouched {
                first,
                last,
                // Text from the file: shown escaped.
                reason: format!("{}: {}", reason.escape_debug(), detail.escape_debug()),
            },
        );
        Ok(())
    }

    fn checkpoint(&mut self, v: &Line) -> Result<(), Problem> {
        let c = v.checkpoint.as_ref();
        let (Some(seq), Some(hash), Some(sig)) = (
            c.and_then(|c| c.seq),
            c.and_then(|c| c.hash.as_deref()),
            c.and_then(|c| c.signature.as_deref()),
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

    use serde_json::Value;

    use super::*;
    use crate::chain::{Chain, Checkpointer};

    use crate::testutil::TempDir as Tmp;
    fn tmp(name: &str) -> Tmp {
        Tmp::new(name)
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
        assert!(describe(&r, false, false).contains("starts at seq 12"));
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

    /// Builds a file as the tracer writes it: events, checkpoints, declared
    /// gaps and segments, each sealed into one chain.
    struct Writer {
        chain: Chain,
        key: SigningKey,
        lines: Vec<Vec<u8>>,
    }

    impl Writer {
        fn new() -> Writer {
            Writer {
                chain: Chain::genesis(),
                key: SigningKey::from_bytes(&[3u8; 32]),
                lines: Vec::new(),
            }
        }
        fn seal(&mut self, v: Value) -> Link {
            let rec = serde_json::to_string(&v).unwrap();
            let mut out = Vec::new();
            let l = self.chain.seal(rec.as_bytes(), rec.len() - 1, &mut out);
            self.lines.push(out);
            l
        }
        fn events(&mut self, n: usize) -> &mut Writer {
            for i in 0..n {
                self.seal(serde_json::json!({"kind": "exec", "i": i}));
            }
            self
        }
        fn checkpoint(&mut self) -> &mut Writer {
            let (seq, hash) = self.chain.head().unwrap();
            let hash = hash.to_owned();
            let mut cp = Checkpointer::new(self.key.clone(), 1, Duration::from_secs(1));
            let signed = cp.sign(seq, &hash, Instant::now());
            self.seal(serde_json::json!({"kind": "checkpoint", "checkpoint": signed}));
            self
        }
        fn gap(&mut self, records: u64) -> &mut Writer {
            let (seq, hash) = self.chain.head().unwrap();
            let hash = hash.to_owned();
            self.seal(
                serde_json::json!({"kind": "loss", "lost": {"sink_error": records},
                "gap": {"records": records, "after_seq": seq, "after_hash": hash}}),
            );
            self
        }
        /// A segment disowning everything after the last checkpoint.
        fn segment(&mut self) -> &mut Writer {
            let (head, _) = self.chain.head().unwrap();
            let cp = self
                .lines
                .iter()
                .rev()
                .map(|l| Line::parse(l).unwrap())
                .find(|v| v.kind() == Some("checkpoint"))
                .map(|v| Link::of_record(&v).unwrap());
            let first = cp.as_ref().map_or(0, |l| l.seq + 1);
            let last_checkpoint = cp.map(|l| serde_json::json!({"seq": l.seq, "hash": l.hash}));
            self.seal(serde_json::json!({"kind": "chain_segment", "segment": {
                "reason": "unsigned_tail", "detail": "test",
                "last_checkpoint": last_checkpoint,
                "unvouched": {"first_seq": first, "last_seq": head, "records": head + 1 - first}}}));
            self
        }
    }

    /// (name, lines, keyed, accept unsigned tail, verdict, text expected)
    type Case = (
        &'static str,
        Vec<Vec<u8>>,
        bool,
        bool,
        Verdict,
        &'static str,
    );
    type Edit = dyn Fn(&mut Value);

    #[test]
    fn verdicts_by_case() {
        let d = tmp("verdicts");
        let vk = SigningKey::from_bytes(&[3u8; 32]).verifying_key();
        let signed = || {
            let mut w = Writer::new();
            w.events(5).checkpoint();
            w
        };
        let cases: Vec<Case> = vec![
            (
                "signed to the end",
                signed().lines,
                true,
                false,
                Verdict::Intact,
                "OK:",
            ),
            (
                "unsigned tail, keyed",
                signed().events(3).lines.clone(),
                true,
                false,
                Verdict::Unsigned,
                "UNSIGNED: the last 3 records",
            ),
            (
                "unsigned tail accepted",
                signed().events(3).lines.clone(),
                true,
                true,
                Verdict::Intact,
                "accepted (--accept-unsigned-tail)",
            ),
            (
                "unsigned tail, no key: not judged",
                signed().events(3).lines.clone(),
                false,
                false,
                Verdict::Intact,
                "OK:",
            ),
            (
                "no checkpoint at all, keyed",
                Writer::new().events(4).lines.clone(),
                true,
                false,
                Verdict::Unsigned,
                "UNSIGNED: the last 4 records",
            ),
            (
                "declared gap, signed after",
                signed()
                    .events(2)
                    .gap(7)
                    .events(1)
                    .checkpoint()
                    .lines
                    .clone(),
                true,
                false,
                Verdict::Declared,
                "DECLARED GAP: ",
            ),
            (
                "segment after an unsigned tail, signed after",
                signed().events(3).segment().checkpoint().lines.clone(),
                true,
                false,
                Verdict::Declared,
                "does not vouch for seq 6..=8 (3 records)",
            ),
            (
                "segment without any checkpoint before it",
                {
                    let mut w = Writer::new();
                    w.events(3).segment().checkpoint();
                    w.lines
                },
                true,
                false,
                Verdict::Declared,
                "seq 0..=2 (3 records)",
            ),
        ];
        for (i, (name, lines, keyed, accept, verdict, text)) in cases.into_iter().enumerate() {
            let p = write(&d.0, &format!("case{i}"), &lines);
            let key = keyed.then_some(&vk);
            let r = check(&[p], key);
            assert_eq!(r.verdict(keyed, accept), verdict, "{name}: {r:?}");
            let out = describe(&r, keyed, accept);
            assert!(out.contains(text), "{name}: {text:?} not in:\n{out}");
        }
    }

    #[test]
    fn forged_declarations_are_tampering() {
        let d = tmp("forged-decl");
        let case = |name: &str, edit: &dyn Fn(&mut Value)| -> Finding {
            let mut w = Writer::new();
            w.events(5).checkpoint().events(2);
            let (seq, hash) = w.chain.head().unwrap();
            let mut cp_link = None;
            for l in &w.lines {
                let v = Line::parse(l).unwrap();
                if v.kind() == Some("checkpoint") {
                    cp_link = Link::of_record(&v);
                }
            }
            let cp = cp_link.unwrap();
            let mut gap = serde_json::json!({"kind": "loss", "lost": {"sink_error": 4},
                "gap": {"records": 4, "after_seq": seq, "after_hash": hash}});
            let mut seg = serde_json::json!({"kind": "chain_segment", "segment": {
                "reason": "unsigned_tail", "detail": "",
                "last_checkpoint": {"seq": cp.seq, "hash": cp.hash},
                "unvouched": {"first_seq": cp.seq + 1, "last_seq": seq, "records": seq - cp.seq}}});
            if name.starts_with("gap") {
                edit(&mut gap);
                w.seal(gap);
            } else {
                edit(&mut seg);
                w.seal(seg);
            }
            let p = write(&d.0, name, &w.lines);
            check(&[p], None)
                .finding
                .unwrap_or_else(|| panic!("{name}: not caught"))
        };
        let cases: [(&str, &Edit); 6] = [
            ("gap count differs from sink_error", &|v| {
                v["lost"]["sink_error"] = 5.into()
            }),
            ("gap naming another record", &|v| {
                v["gap"]["after_seq"] = 2.into()
            }),
            ("gap without records", &|v| v["gap"]["records"] = 0.into()),
            ("segment not ending before it", &|v| {
                v["segment"]["unvouched"]["last_seq"] = 3.into()
            }),
            ("segment naming a checkpoint not in the chain", &|v| {
                v["segment"]["last_checkpoint"]["hash"] = "ab".repeat(32).into()
            }),
            (
                "segment starting elsewhere than after its checkpoint",
                &|v| v["segment"]["unvouched"]["first_seq"] = 7.into(),
            ),
        ];
        for (name, edit) in cases {
            let f = case(name, edit);
            assert!(
                matches!(f.problem, Problem::BadDeclaration(_)),
                "{name}: {f:?}"
            );
            assert_eq!(f.line, 9, "{name}");
        }
    }

    #[test]
    fn a_forged_tail_with_a_correct_chain_is_not_signed() {
        // Anyone can compute the chain: lines appended after the last checkpoint
        // link correctly, and only the missing signature tells them apart.
        let d = tmp("forged-tail");
        let vk = SigningKey::from_bytes(&[3u8; 32]).verifying_key();
        let mut w = Writer::new();
        w.events(4).checkpoint();
        w.seal(serde_json::json!({"kind": "exec", "forged": true}));
        let p = write(&d.0, "f", &w.lines);
        let r = check(&[p], Some(&vk));
        assert!(r.intact());
        assert_eq!(r.unsigned_tail, 1);
        assert_eq!(r.verdict(true, false), Verdict::Unsigned);
        assert_eq!(r.last_checkpoint.map(|(s, _)| s), Some(4));
    }
}
