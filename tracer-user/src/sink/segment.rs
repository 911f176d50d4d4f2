//! Going on with a file after a restart: what of its tail no checkpoint of
//! our key vouches for, and the `chain_segment` record that disowns it.

use std::path::Path;

use serde::Serialize;

use super::file;
use crate::{
    chain::Chain,
    event::{EventId, UnixNanos},
};
/// What a tracer going on with `path` (whose chain's head `chain` is) cannot
/// vouch for: records after the last checkpoint that verifies with `key`, in
/// `path` or, when it has none, `path.1`. `None` when the file ends with such
/// a checkpoint, or is new.
pub(super) fn unvouched_tail(
    path: &Path,
    chain: &Chain,
    key: &ed25519_dalek::VerifyingKey,
) -> anyhow::Result<Option<Segment>> {
    let Some((head, _)) = chain.head() else {
        return Ok(None);
    };
    let mut files = vec![path.to_owned()];
    let mut report = crate::verify::verify_files(&files, Some(key))?;
    let rotated = file::rotated_path(path, 1);
    if report.last_checkpoint.is_none() && rotated.exists() {
        files.insert(0, rotated);
        report = crate::verify::verify_files(&files, Some(key))?;
    }
    let names = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let last_checkpoint = report
        .last_checkpoint
        .clone()
        .map(|(seq, hash)| ChainRef { seq, hash });
    let (reason, detail) = match (&report.finding, &last_checkpoint) {
        (None, Some(cp)) if cp.seq == head => return Ok(None),
        (Some(f), _) => (
            "chain_broken",
            format!("{} line {}: {}", f.file.display(), f.line, f.problem),
        ),
        (None, Some(cp)) => (
            "unsigned_tail",
            format!(
                "{} records after checkpoint seq {} are covered by no signature (the previous run stopped without a last checkpoint, or someone else wrote them)",
                head - cp.seq,
                cp.seq
            ),
        ),
        (None, None) => (
            "no_checkpoint",
            format!("no checkpoint signed by this key in {names}"),
        ),
    };
    // Clamped: with a broken chain the head's seq may be anything.
    let first_seq = match &last_checkpoint {
        Some(cp) => cp.seq.saturating_add(1),
        None => report.first_seq.unwrap_or(0),
    }
    .min(head);
    Ok(Some(Segment {
        reason,
        detail,
        last_checkpoint,
        unvouched: Unvouched {
            first_seq,
            last_seq: head,
            records: (head - first_seq).saturating_add(1),
        },
    }))
}

/// A `chain_segment` record: written first when the tracer goes on with a
/// file whose tail no valid checkpoint of its key covers.
#[derive(Debug, Serialize)]
pub(super) struct SegmentRecord<'a> {
    pub(super) event_id: EventId,
    pub(super) time: UnixNanos,
    pub(super) kind: &'static str,
    pub(super) segment: &'a Segment,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// `unsigned_tail` (chain intact, no checkpoint after it), `no_checkpoint`
    /// (none signed by this key in the files read) or `chain_broken`.
    pub reason: &'static str,
    pub detail: String,
    /// The last record vouched for: a checkpoint record's own link.
    pub last_checkpoint: Option<ChainRef>,
    pub unvouched: Unvouched,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainRef {
    pub seq: u64,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unvouched {
    pub first_seq: u64,
    pub last_seq: u64,
    pub records: u64,
}

#[cfg(test)]
mod tests {
    use std::{
        io::Write as _,
        path::Path,
        time::{Duration, Instant},
    };

    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::chain::{Chain, Checkpointer};
    use crate::sink::output::tests::{output, push};

    #[test]
    fn a_tail_no_checkpoint_of_this_key_covers_is_disowned() {
        let key = SigningKey::from_bytes(&[5u8; 32]);
        let other = SigningKey::from_bytes(&[6u8; 32]);
        let append = |p: &Path, text: &[u8]| {
            let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
            f.write_all(text).unwrap();
        };
        // A line linked onto the file's last, as anyone can compute it.
        let forge = |p: &Path| {
            let text = std::fs::read(p).unwrap();
            let last = text[..text.len() - 1]
                .rsplit(|&b| b == b'\n')
                .next()
                .unwrap();
            let mut c = Chain::after(Some(last));
            let mut out = Vec::new();
            c.seal(br#"{"kind":"exec","forged":1}"#, 25, &mut out);
            append(p, &out);
        };
        // (name, signing key of the earlier run, records, then what happens to
        // the file) -> reason (None: nothing to disown), first and last seq.
        type Edit<'a> = &'a dyn Fn(&Path);
        type Want = Option<(&'static str, u64, u64)>;
        let cases: [(&str, Option<&SigningKey>, Edit, Want); 5] = [
            ("ends with a checkpoint", Some(&key), &|_| {}, None),
            (
                "forged line after it",
                Some(&key),
                &forge,
                Some(("unsigned_tail", 4, 4)),
            ),
            (
                "no key before",
                None,
                &|_| {},
                Some(("no_checkpoint", 0, 2)),
            ),
            (
                "another key",
                Some(&other),
                &|_| {},
                Some(("chain_broken", 0, 3)),
            ),
            // No link on the last line: the chain starts over at 0 and verify
            // reports the tampering itself; there is nothing to disown.
            (
                "garbage appended",
                Some(&key),
                &|p| append(p, b"{\"kind\":\"exec\"}\n"),
                None,
            ),
        ];
        for (name, signed_by, edit, want) in cases {
            let (_d, path, mut o) = output(&format!("tail-{}", name.replace(' ', "-")), 1 << 20);
            o.checkpoints =
                signed_by.map(|k| Checkpointer::new(k.clone(), 1000, Duration::from_secs(3600)));
            for i in 0..3 {
                push(&mut o, i);
            }
            o.checkpoint(Instant::now(), true);
            o.flush();
            edit(&path);
            let f = file::RotatingFile::open(&path, 0, 1).unwrap();
            let chain = Chain::after(f.last_record().unwrap().as_deref());
            let got = unvouched_tail(&path, &chain, &key.verifying_key()).unwrap();
            let got = got.map(|s| (s.reason, s.unvouched.first_seq, s.unvouched.last_seq));
            assert_eq!(got, want, "{name}");
        }
    }
}
