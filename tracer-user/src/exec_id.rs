//! `exec_id`: one stable id per process image.
//!
//! ```text
//! exec_id = base64url_nopad( SHA-256(
//!     "<boot_id>:<tgid>:<start_ticks>:<arg_start>:<start_code>:<start_brk>:<at_random>" )[0..16] )
//! ```
//! - `boot_id`: /proc/sys/kernel/random/boot_id; makes ids unique across boots and hosts.
//! - `tgid`, `start_ticks`: the process id and its start time in clock ticks since
//!   boot (`/proc/<pid>/stat` field 22; in the kernel `start_boottime / (1e9/USER_HZ)`).
//! - `arg_start`, `start_code`, `start_brk`: where the image's argv, code and heap
//!   start (`/proc/<pid>/stat` fields 48, 26 and 47; `mm->arg_start`, `mm->start_code`,
//!   `mm->start_brk` in the kernel), randomised independently by ASLR.
//! - `at_random`: 32 lowercase hex digits of the 16 random bytes the kernel draws
//!   for every ELF image and points to from the auxiliary vector (`AT_RANDOM`).
//!   The probe reads them at `sched_process_exec`, before the image runs; a
//!   /proc scan reads the address from `/proc/<pid>/auxv` (the kernel's copy)
//!   and the bytes from `/proc/<pid>/mem`. They differ between two execs of the
//!   same binary even with address randomisation off (`setarch -R`), which
//!   the addresses alone did not. All zeros where there are none (not ELF) or
//!   they could not be read.
//!
//! Limits: the bytes live in the image's own memory. The probe's copy is taken
//! before the image runs, so it cannot be chosen; a /proc scan (processes that
//! predate the tracer, or whose exec record was lost) reads them later, and an
//! image that overwrote them gets another id from the scan than the probe gave
//! it (it can make its id change, never take another image's: that needs the
//! same pid, start time and layout). Where /proc/<pid>/mem is closed to the
//! tracer (Yama ptrace_scope 3) the scan uses zeros, and the ids of those
//! processes differ from what a probe would say.
use sha2::{Digest, Sha256};

/// Where an image's argv, code and heap start, and its `AT_RANDOM` bytes:
/// what tells images apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ImageLayout {
    pub arg_start: u64,
    pub start_code: u64,
    pub start_brk: u64,
    pub at_random: [u8; 16],
}

pub(crate) fn exec_id(boot_id: &str, tgid: u32, start_ticks: u64, image: ImageLayout) -> String {
    let ImageLayout {
        arg_start,
        start_code,
        start_brk,
        at_random,
    } = image;
    // The text `{boot_id}:{tgid}:{start_ticks}:{arg_start}:{start_code}:{start_brk}`,
    // written without `format!` (this runs for every new image).
    let mut text = Vec::with_capacity(boot_id.len() + 80);
    text.extend_from_slice(boot_id.as_bytes());
    for v in [
        u64::from(tgid),
        start_ticks,
        arg_start,
        start_code,
        start_brk,
    ] {
        text.push(b':');
        crate::event::push_padded(&mut text, v, 0);
    }
    text.push(b':');
    let mut at_random_hex = [0u8; 32];
    // 16 bytes always fit 32 digits: the error cannot happen.
    let _ = hex::encode_to_slice(at_random, &mut at_random_hex);
    text.extend_from_slice(&at_random_hex);
    let digest = Sha256::digest(&text);
    base64url(&digest[..16])
}

/// Kernel start time (ns since boot) to /proc clock ticks, exactly as
/// `nsec_to_clock_t` does it.
pub(crate) fn ns_to_ticks(ns: u64, ticks_per_second: u64) -> u64 {
    let per_tick = 1_000_000_000 / ticks_per_second.max(1);
    ns / per_tick.max(1)
}

/// RFC 4648 base64url without padding: URL- and file-name-safe.
fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(arg_start: u64) -> ImageLayout {
        ImageLayout {
            arg_start,
            start_code: 0x5555_5555_4000,
            start_brk: 0x5555_5666_0000,
            at_random: [7; 16],
        }
    }

    #[test]
    fn stable_and_distinct() {
        let boot = "8c1f1d3e-5b8a-4c55-9c59-7f0e3a2f4b10";
        let a = exec_id(boot, 4242, 123456, at(0x7ffd_1234_5000));
        assert_eq!(a, exec_id(boot, 4242, 123456, at(0x7ffd_1234_5000)));
        assert_eq!(a.len(), 22);
        // pid reuse: same pid, later start
        assert_ne!(a, exec_id(boot, 4242, 123457, at(0x7ffd_1234_5000)));
        // a second exec in the same process: new stack address
        assert_ne!(a, exec_id(boot, 4242, 123456, at(0x7ffe_0000_1000)));
        // same stack address, another code or heap base
        let mut other = at(0x7ffd_1234_5000);
        other.start_code += 0x1000;
        assert_ne!(a, exec_id(boot, 4242, 123456, other));
        let mut other = at(0x7ffd_1234_5000);
        other.start_brk += 0x1000;
        assert_ne!(a, exec_id(boot, 4242, 123456, other));
        // a re-exec with randomisation off: same addresses, new random bytes
        let mut other = at(0x7ffd_1234_5000);
        other.at_random[15] ^= 1;
        assert_ne!(a, exec_id(boot, 4242, 123456, other));
        // another boot
        assert_ne!(
            a,
            exec_id(
                "00000000-0000-0000-0000-000000000000",
                4242,
                123456,
                at(0x7ffd_1234_5000)
            )
        );
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn known_vector() {
        // sha256("b:1:2:3:4:5:000102...0f")[..16], base64url: computed independently with
        // `printf b:1:2:3:4:5:000102030405060708090a0b0c0d0e0f | sha256sum | head -c32 |
        //  xxd -r -p | base64 | tr +/ -_`
        let image = ImageLayout {
            arg_start: 3,
            start_code: 4,
            start_brk: 5,
            at_random: std::array::from_fn(|i| i as u8),
        };
        assert_eq!(exec_id("b", 1, 2, image), KNOWN);
    }
    const KNOWN: &str = "N3RPDoh3oCrbmclCrgOuZQ";

    /// The digits are written by hand: the same text as the documented formula
    /// for zeros, many-digit and extreme values.
    #[test]
    fn text_is_the_documented_formula() {
        let boot = "8c1f1d3e-5b8a-4c55-9c59-7f0e3a2f4b10";
        for (tgid, ticks, a, c, b) in [
            (0u32, 0u64, 0u64, 0u64, 0u64),
            (
                4_194_304,
                987_654_321,
                0x7ffd_1234_5000,
                0x5555_5555_4000,
                0x5555_5556_0000,
            ),
            (u32::MAX, u64::MAX, u64::MAX, 1, 10),
        ] {
            let text =
                format!("{boot}:{tgid}:{ticks}:{a}:{c}:{b}:00ff00ff00ff00ff00ff00ff00ff00ff");
            let want = base64url(&Sha256::digest(text.as_bytes())[..16]);
            let image = ImageLayout {
                arg_start: a,
                start_code: c,
                start_brk: b,
                at_random: std::array::from_fn(|i| if i % 2 == 1 { 0xff } else { 0 }),
            };
            assert_eq!(exec_id(boot, tgid, ticks, image), want, "{text}");
        }
    }

    #[test]
    fn ticks() {
        assert_eq!(ns_to_ticks(0, 100), 0);
        assert_eq!(ns_to_ticks(9_999_999, 100), 0);
        assert_eq!(ns_to_ticks(10_000_000, 100), 1);
        assert_eq!(ns_to_ticks(123_456_789_012, 100), 12_345);
        assert_eq!(ns_to_ticks(5_000_000, 1000), 5);
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foob"), "Zm9vYg");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }
}
