//! Tamper-evident output: every record of an output carries a link of a SHA-256
//! hash chain, and optional ed25519-signed checkpoints vouch for the chain so far.
//!
//! The canonical form of a record is its line without the newline and without its
//! chain member, the exact text
//! `,"chain":{"seq":S,"prev":"P","hash":"H"}`,
//! which the writer puts last in the record (for OCSF, last in `unmapped`). Then
//! `H = hex(SHA-256(P || "\n" || canonical))`, where `P` is the previous record's `H`
//! (64 zeros for the first record of a chain) and `S` counts records from 0.
//!
//! The form is the bytes as written, so a verifier needs no JSON canonicalisation:
//! it cuts the member out and hashes what is left. Inside a JSON string every `"`
//! is escaped, so the member text can only occur as the member itself.
//!
//! A chain alone shows edits, deletions, reordering and cut-off lines, but anyone
//! can recompute it; the signed checkpoints (key held by the tracer only) are what
//! an attacker who rewrites the whole tail cannot forge.
use std::{
    path::Path,
    time::{Duration, Instant},
};

use ed25519_dalek::{
    Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey,
    pkcs8::{DecodePrivateKey as _, DecodePublicKey as _},
};
use sha2::{Digest as _, Sha256};

use crate::event::view::Line;

/// `prev` of the first record of a chain.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Domain separation for checkpoint signatures.
const CHECKPOINT_CONTEXT: &[u8] = b"tracer-checkpoint-v1\n";

#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    #[error("reading key file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "signing key {path} is readable or writable by group or others (mode {mode:04o}): anyone who can read it can sign forged checkpoints; run `chmod 600 {path}`"
    )]
    Exposed { path: String, mode: u32 },
    #[error(
        "{path}: not an ed25519 {what} key in PEM (PKCS#8 / SPKI, as written by `openssl genpkey -algorithm ed25519`): {detail}"
    )]
    Parse {
        path: String,
        what: &'static str,
        detail: String,
    },
}

/// The chain state of one output: the next record's sequence number and the
/// previous record's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chain {
    next_seq: u64,
    prev: String,
}

/// Where a record sits in its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    pub seq: u64,
    pub prev: String,
    pub hash: String,
}

impl Link {
    /// The member text written into the record (and cut out to verify it).
    pub(crate) fn member(&self) -> String {
        // By hand rather than format!: one per record. `prev` and `hash` are hex.
        let mut out = Vec::with_capacity(170);
        out.extend_from_slice(br#","chain":{"seq":"#);
        crate::event::push_padded(&mut out, self.seq, 0);
        out.extend_from_slice(br#","prev":""#);
        out.extend_from_slice(self.prev.as_bytes());
        out.extend_from_slice(br#"","hash":""#);
        out.extend_from_slice(self.hash.as_bytes());
        out.extend_from_slice(br#""}"#);
        String::from_utf8(out).unwrap_or_default()
    }

    /// The link a record carries: `chain`, or `unmapped.chain` in OCSF.
    pub(crate) fn of_record(line: &Line) -> Option<Link> {
        let c = line.link()?;
        let hash = |s: Option<&str>| s.filter(|s| is_hash(s)).map(str::to_owned);
        Some(Link {
            seq: c.seq?,
            prev: hash(c.prev.as_deref())?,
            hash: hash(c.hash.as_deref())?,
        })
    }
}

fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `hex(SHA-256(prev || "\n" || canonical))`.
pub(crate) fn record_hash(prev: &str, canonical: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(canonical);
    hex(&h.finalize())
}

/// Lowercase hex, as hashes, keys and signatures are written.
pub(crate) fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

impl Default for Chain {
    fn default() -> Self {
        Chain::genesis()
    }
}

impl Chain {
    pub(crate) fn genesis() -> Chain {
        Chain {
            next_seq: 0,
            prev: GENESIS.to_owned(),
        }
    }

    /// Go on after the last record of an existing file, so a restart or a
    /// rotation does not break the chain. A record without a link (another
    /// writer, an older version) starts a new chain.
    pub(crate) fn after(last_record: Option<&[u8]>) -> Chain {
        last_record
            .and_then(|l| Line::parse(l).ok())
            .and_then(|v| Link::of_record(&v))
            .map_or_else(Chain::genesis, |l| Chain {
                next_seq: l.seq.saturating_add(1),
                prev: l.hash,
            })
    }

    /// Seal one record: `record` is its JSON text without the newline, and the
    /// member goes in at byte `at` (just before the closing brace of the object
    /// that holds it). Appends the sealed line, newline included, to `out`.
    pub(crate) fn seal(&mut self, record: &[u8], at: usize, out: &mut Vec<u8>) -> Link {
        let hash = record_hash(&self.prev, record);
        let link = Link {
            seq: self.next_seq,
            prev: std::mem::replace(&mut self.prev, hash.clone()),
            hash,
        };
        self.next_seq += 1;
        let at = at.min(record.len());
        out.extend_from_slice(&record[..at]);
        out.extend_from_slice(link.member().as_bytes());
        out.extend_from_slice(&record[at..]);
        out.push(b'\n');
        link
    }

    /// The last sealed record: (seq, hash); `None` before the first.
    pub(crate) fn head(&self) -> Option<(u64, &str)> {
        self.next_seq
            .checked_sub(1)
            .map(|s| (s, self.prev.as_str()))
    }
}

/// The message a checkpoint signs: the chain up to and including record `seq`.
pub(crate) fn checkpoint_message(seq: u64, hash: &str) -> Vec<u8> {
    let mut m = CHECKPOINT_CONTEXT.to_vec();
    m.extend_from_slice(format!("{seq}\n{hash}").as_bytes());
    m
}

/// Signs checkpoints every `every_records` records or `every` time, whichever
/// comes first (and at shutdown).
pub(crate) struct Checkpointer {
    key: SigningKey,
    public_hex: String,
    every_records: u64,
    every: Duration,
    last_seq: Option<u64>,
    last_at: Instant,
}

/// A signed checkpoint, as written in a `kind: "checkpoint"` record.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Checkpoint {
    pub seq: u64,
    pub hash: String,
    pub public_key: String,
    pub signature: String,
}

impl Checkpointer {
    pub(crate) fn new(key: SigningKey, every_records: u64, every: Duration) -> Checkpointer {
        let public_hex = hex(key.verifying_key().as_bytes());
        Checkpointer {
            key,
            public_hex,
            every_records: every_records.max(1),
            every,
            last_seq: None,
            last_at: Instant::now(),
        }
    }

    /// Count records from after `seq` (the head of a chain this run goes on
    /// with), not from the start of the chain.
    pub(crate) fn starting_after(mut self, seq: Option<u64>) -> Checkpointer {
        self.last_seq = seq;
        self
    }

    /// Records sealed since the last checkpoint (or the start of this run), the
    /// head being `seq`.
    fn since(&self, seq: u64) -> u64 {
        match self.last_seq {
            Some(last) => seq.saturating_sub(last),
            None => seq.saturating_add(1),
        }
    }

    /// Whether the chain, whose head is `head`, is due a checkpoint.
    pub(crate) fn due(&self, head: Option<(u64, &str)>, now: Instant, force: bool) -> bool {
        let Some((seq, _)) = head else {
            return false;
        };
        let since = self.since(seq);
        since > 0
            && (force
                || since >= self.every_records
                || now.duration_since(self.last_at) >= self.every)
    }

    /// Due by count alone: checked after each record, so a checkpoint follows
    /// exactly every `every_records` records however records are batched.
    pub(crate) fn due_by_count(&self, seq: u64) -> bool {
        self.since(seq) >= self.every_records
    }

    pub(crate) fn sign(&mut self, seq: u64, hash: &str, now: Instant) -> Checkpoint {
        let sig = self.key.sign(&checkpoint_message(seq, hash));
        self.last_at = now;
        Checkpoint {
            seq,
            hash: hash.to_owned(),
            public_key: self.public_hex.clone(),
            signature: hex(&sig.to_bytes()),
        }
    }

    /// Remember that the checkpoint record itself took a place in the chain, so
    /// it alone does not make the next checkpoint due.
    pub(crate) fn sealed(&mut self, checkpoint_seq: u64) {
        self.last_seq = Some(checkpoint_seq);
    }
}

fn read_key(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// A PKCS#8 PEM private key (`openssl genpkey -algorithm ed25519 -out key.pem`),
/// refused when group or others may read or write it.
pub(crate) fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    use std::{io::Read as _, os::unix::fs::PermissionsExt as _};
    let read_err = |source| KeyError::Read {
        path: path.display().to_string(),
        source,
    };
    // The mode of the file actually opened (a symlink, as in a Kubernetes
    // secret volume, is followed: what matters is who can read the key).
    let mut f = std::fs::File::open(path).map_err(read_err)?;
    let mode = f.metadata().map_err(read_err)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed {
            path: path.display().to_string(),
            mode: mode & 0o7777,
        });
    }
    let mut pem = String::new();
    f.read_to_string(&mut pem).map_err(read_err)?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| KeyError::Parse {
        path: path.display().to_string(),
        what: "private",
        detail: e.to_string(),
    })
}

/// An SPKI PEM public key (`openssl pkey -in key.pem -pubout -out key.pub`).
pub(crate) fn load_verifying_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    VerifyingKey::from_public_key_pem(&read_key(path)?).map_err(|e| KeyError::Parse {
        path: path.display().to_string(),
        what: "public",
        detail: e.to_string(),
    })
}

/// Check a checkpoint's signature with `key`.
pub(crate) fn verify_checkpoint(key: &VerifyingKey, seq: u64, hash: &str, signature: &str) -> bool {
    let mut sig = [0u8; 64];
    if hex::decode_to_slice(signature, &mut sig).is_err() {
        return false;
    }
    key.verify(&checkpoint_message(seq, hash), &Signature::from_bytes(&sig))
        .is_ok()
}

/// The canonical form of a sealed line (no newline): the line with its member cut
/// out. `None` when the member does not occur exactly once after a comma.
pub(crate) fn canonical(line: &[u8], link: &Link) -> Option<Vec<u8>> {
    let member = link.member();
    let m = member.as_bytes();
    let mut found = line.windows(m.len()).enumerate().filter(|(_, w)| *w == m);
    let (at, _) = found.next()?;
    if found.next().is_some() {
        return None;
    }
    let mut out = Vec::with_capacity(line.len() - m.len());
    out.extend_from_slice(&line[..at]);
    out.extend_from_slice(&line[at + m.len()..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    #[test]
    fn sealed_records_verify_and_link() {
        let mut c = Chain::genesis();
        let mut out = Vec::new();
        let a = br#"{"kind":"exec","x":1}"#;
        let b = br#"{"kind":"connect","unmapped":{"y":"z"}}"#;
        let la = c.seal(a, a.len() - 1, &mut out);
        let lb = c.seal(b, b.len() - 2, &mut out);
        assert_eq!((la.seq, la.prev.as_str()), (0, GENESIS));
        assert_eq!((lb.seq, lb.prev.as_str()), (1, la.hash.as_str()));
        let lines: Vec<&[u8]> = out
            .split(|&x| x == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        for (line, (orig, link)) in lines.iter().zip([(&a[..], &la), (&b[..], &lb)]) {
            let v = Line::parse(line).unwrap();
            assert_eq!(Link::of_record(&v).as_ref(), Some(link));
            let canon = canonical(line, link).unwrap();
            assert_eq!(canon, orig);
            assert_eq!(record_hash(&link.prev, &canon), link.hash);
        }
        // Resuming after the last record continues the chain.
        let resumed = Chain::after(lines.last().copied());
        assert_eq!(resumed, c);
        assert_eq!(Chain::after(Some(b"{\"no\":\"chain\"}")), Chain::genesis());
        assert_eq!(Chain::after(Some(b"garbage")), Chain::genesis());
        // The member text, exactly (verifiers elsewhere cut it out byte for byte).
        let l = Link {
            seq: 12345678901,
            prev: "ab".repeat(32),
            hash: "cd".repeat(32),
        };
        assert_eq!(
            l.member(),
            format!(
                r#","chain":{{"seq":12345678901,"prev":"{}","hash":"{}"}}"#,
                l.prev, l.hash
            )
        );
    }

    #[test]
    fn member_inside_a_string_is_escaped_and_not_found() {
        let mut c = Chain::genesis();
        let mut out = Vec::new();
        let link = c.seal(b"{\"a\":1}", 6, &mut out);
        // A value quoting the member as text: serde escapes its quotes.
        let quoted = serde_json::to_string(&link.member()).unwrap();
        let line = format!("{{\"s\":{quoted}}}");
        assert!(canonical(line.as_bytes(), &link).is_none());
    }

    #[test]
    fn checkpoints_sign_the_head_and_fail_on_change() {
        let mut cp = Checkpointer::new(key(), 3, Duration::from_secs(3600));
        let now = Instant::now();
        let h = "ab".repeat(32);
        assert!(!cp.due(None, now, true));
        assert!(!cp.due(Some((1, &h)), now, false));
        assert!(cp.due(Some((2, &h)), now, false));
        assert!(cp.due(Some((0, &h)), now, true));
        let c = cp.sign(2, &h, now);
        cp.sealed(3);
        assert!(!cp.due(Some((3, &h)), now, true), "nothing new since");
        assert!(cp.due(Some((4, &h)), now, true));
        let vk = key().verifying_key();
        assert_eq!(c.public_key, hex(vk.as_bytes()));
        assert!(verify_checkpoint(&vk, 2, &h, &c.signature));
        assert!(!verify_checkpoint(&vk, 3, &h, &c.signature));
        assert!(!verify_checkpoint(&vk, 2, &"cd".repeat(32), &c.signature));
        assert!(!verify_checkpoint(&vk, 2, &h, "00"));
        let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        assert!(!verify_checkpoint(&other, 2, &h, &c.signature));
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(&[0, 1, 0xfe, 0xff]), "0001feff");
        assert_eq!(
            hex::decode(hex(&[0, 1, 0xfe, 0xff])).ok(),
            Some(vec![0, 1, 0xfe, 0xff])
        );
        // A signature that is not hex (odd length, not digits) never verifies.
        let vk = key().verifying_key();
        let h = "ab".repeat(32);
        for bad in ["abc", "zz", &"z".repeat(128)] {
            assert!(!verify_checkpoint(&vk, 2, &h, bad), "{bad}");
        }
    }

    #[test]
    fn checkpoints_by_count_follow_exactly_every_n_records() {
        // (every, records already in the chain when this run starts, records
        // this run seals) -> seqs of the checkpoint records.
        let cases: [(u64, u64, u64, &[u64]); 4] = [
            (3, 0, 10, &[3, 7, 11]),
            (1, 0, 3, &[1, 3, 5]),
            (4, 0, 3, &[]),
            // Going on with a file: counted from this run's first record.
            (3, 10, 6, &[13, 17]),
        ];
        for (every, existing, n, want) in cases {
            let mut c = Chain::genesis();
            let mut out = Vec::new();
            for _ in 0..existing {
                c.seal(b"{}", 1, &mut out);
            }
            let mut cp = Checkpointer::new(key(), every, Duration::from_secs(3600))
                .starting_after(c.head().map(|(s, _)| s));
            let mut got = Vec::new();
            for _ in 0..n {
                let l = c.seal(b"{}", 1, &mut out);
                if cp.due_by_count(l.seq) {
                    let h = c.head().map(|(_, h)| h.to_owned()).unwrap();
                    cp.sign(l.seq, &h, Instant::now());
                    let l = c.seal(b"{}", 1, &mut out);
                    cp.sealed(l.seq);
                    got.push(l.seq);
                }
            }
            assert_eq!(got, want, "every {every}, {existing} existing, {n} records");
        }
    }

    #[test]
    fn signing_key_readable_by_others_is_refused() {
        use ed25519_dalek::pkcs8::{EncodePrivateKey as _, spki::der::pem::LineEnding};
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("tracer-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pem = key().to_pkcs8_pem(LineEnding::LF).unwrap();
        // (mode of the key file, through a symlink, accepted)
        let cases = [
            (0o600, false, true),
            (0o400, false, true),
            (0o640, false, false),
            (0o604, false, false),
            (0o620, false, false),
            (0o600, true, true),
            (0o644, true, false),
        ];
        for (i, (mode, link, ok)) in cases.into_iter().enumerate() {
            let file = dir.join(format!("key{i}.pem"));
            std::fs::write(&file, pem.as_bytes()).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            let path = if link {
                let l = dir.join(format!("link{i}.pem"));
                std::os::unix::fs::symlink(&file, &l).unwrap();
                l
            } else {
                file
            };
            let r = load_signing_key(&path);
            assert_eq!(r.is_ok(), ok, "mode {mode:o}, link {link}: {r:?}");
            if let Err(e) = r {
                let text = e.to_string();
                assert!(matches!(e, KeyError::Exposed { .. }), "{text}");
                assert!(
                    text.contains(&format!("{mode:04o}")) && text.contains("chmod 600"),
                    "{text}"
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
