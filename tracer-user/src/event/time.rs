//! Time in events: instants as ns since the Unix epoch, written as RFC 3339,
//! and event ids.
use jiff::{Timestamp, fmt::temporal::DateTimePrinter, tz::Offset};
use serde::Serialize;

/// `event_id`: wall-clock ns of the action, zero-padded so that ids sort as
/// strings in time order, then the thread id, which no other action can share in
/// the same nanosecond.
pub fn event_id(unix_ns: i128, tid: u32) -> String {
    // Written by hand: two of these formats per event were a tenth of the
    // tracer's CPU through `format!`.
    let Ok(ns) = u64::try_from(unix_ns.max(0)) else {
        return format!("{:019}-{tid:07}", unix_ns.max(0));
    };
    let mut out = Vec::with_capacity(28);
    push_padded(&mut out, ns, 19);
    out.push(b'-');
    push_padded(&mut out, u64::from(tid), 7);
    String::from_utf8(out).unwrap_or_default()
}

/// Decimal digits of `v`, zero-padded on the left to `width`.
pub(crate) fn push_padded(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let digits = buf.len() - i;
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(digits)));
    out.extend_from_slice(&buf[i..]);
}

/// A wall-clock instant in ns since the Unix epoch. Kept as a number from
/// the probe's timestamp to the output; written as RFC 3339 with ns.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnixNanos(pub i128);

impl UnixNanos {
    pub fn now() -> UnixNanos {
        UnixNanos(now_unix_ns())
    }

    /// Whole ms since the epoch (OCSF's time), rounded down.
    pub fn millis(self) -> i64 {
        i64::try_from(self.0.div_euclid(1_000_000)).unwrap_or(i64::MAX)
    }
}

impl std::fmt::Display for UnixNanos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&rfc3339_nanos(self.0))
    }
}

impl Serialize for UnixNanos {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339_nanos(self.0))
    }
}

/// An event's id: when the action happened and the thread that did it
/// (written by [`event_id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventId {
    pub time: UnixNanos,
    pub tid: u32,
}

impl EventId {
    pub fn new(time: UnixNanos, tid: u32) -> EventId {
        EventId { time, tid }
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&event_id(self.time.0, self.tid))
    }
}

impl Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&event_id(self.time.0, self.tid))
    }
}

/// Wall-clock now, in ns since the Unix epoch.
pub fn now_unix_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// RFC 3339 UTC with nanoseconds: `2026-11-23T20:21:47.123456789Z`.
pub fn rfc3339_nanos(unix_ns: i128) -> String {
    // Fixed nine digits: lines from one run have the same shape, and times of
    // the same length sort as text.
    const PRINTER: DateTimePrinter = DateTimePrinter::new().precision(Some(9));
    if unix_ns >= YEAR_0_NS
        && let Ok(ts) = Timestamp::from_nanosecond(unix_ns)
    {
        let mut out = String::with_capacity(30);
        if PRINTER.print_timestamp(&ts, &mut out).is_ok() {
            return out;
        }
    }
    beyond_four_digit_years(unix_ns)
}

/// 0000-01-01T00:00:00Z: jiff writes earlier years as `-00000Y` (RFC 9557).
const YEAR_0_NS: i128 = -62_167_219_200_000_000_000;

/// An instant jiff cannot hold (past 9999-12-30) or writes with six-digit
/// years (before year 0): garbage from the kernel, written without a panic in
/// the same shape, `{year:04}`. The Gregorian calendar repeats every 400
/// years, so jiff's calendar is used on the instant shifted into its range.
fn beyond_four_digit_years(unix_ns: i128) -> String {
    const CYCLE_SECS: i128 = 146_097 * 86_400;
    let secs = unix_ns.div_euclid(1_000_000_000);
    let nanos = unix_ns.rem_euclid(1_000_000_000);
    let cycles = secs.div_euclid(CYCLE_SECS);
    // In 1970..2370: always within jiff's range.
    let shifted = i64::try_from(secs.rem_euclid(CYCLE_SECS)).unwrap_or_default();
    let Ok(ts) = Timestamp::from_second(shifted) else {
        return format!("{unix_ns}ns");
    };
    let t = Offset::UTC.to_datetime(ts);
    let year = i128::from(t.year()) + 400 * cycles;
    format!(
        "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        for (ns, want) in [
            (0i128, "1970-01-01T00:00:00.000000000Z"),
            (1_000_000_001, "1970-01-01T00:00:01.000000001Z"),
            (951_782_400_000_000_000, "2000-02-29T00:00:00.000000000Z"),
            (1_795_465_307_123_456_789, "2026-11-23T20:21:47.123456789Z"),
            (4_102_444_799_999_999_999, "2099-12-31T23:59:59.999999999Z"),
            (-1, "1969-12-31T23:59:59.999999999Z"),
            (
                253_402_300_799_999_999_999,
                "9999-12-31T23:59:59.999999999Z",
            ),
            // Outside four-digit years (garbage from the kernel): still no panic.
            (
                253_402_300_800_000_000_000,
                "10000-01-01T00:00:00.000000000Z",
            ),
            (
                -62_167_219_200_000_000_001,
                "-001-12-31T23:59:59.999999999Z",
            ),
        ] {
            assert_eq!(rfc3339_nanos(ns), want, "{ns}");
        }
        // Extremes: no panic.
        for ns in [
            i128::MIN,
            i128::MAX,
            i128::from(i64::MIN),
            i128::from(i64::MAX),
        ] {
            assert!(rfc3339_nanos(ns).ends_with('Z'), "{ns}");
        }
        // jiff's printer and the shifted calendar agree wherever both apply,
        // and what is written reads back as the same instant.
        for ns in (0..2000).map(|i| i128::from(i) * 1_987_654_321_987_654_321 / 7) {
            let text = rfc3339_nanos(ns);
            assert_eq!(text, beyond_four_digit_years(ns), "{ns}");
            if let Ok(ts) = text.parse::<Timestamp>() {
                assert_eq!(ts.as_nanosecond(), ns, "{text}");
            }
        }
    }

    #[test]
    fn times_stay_numbers_until_written() {
        let t = UnixNanos(1_795_465_307_123_456_789);
        assert_eq!(t.millis(), 1_795_465_307_123);
        assert_eq!(UnixNanos(-1).millis(), -1);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            format!("\"{}\"", rfc3339_nanos(t.0))
        );
        let id = EventId::new(t, 42);
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            format!("\"{}\"", event_id(t.0, 42))
        );
        assert_eq!(id.to_string(), event_id(t.0, 42));
    }

    #[test]
    fn event_ids_sort_by_time() {
        let a = event_id(1_795_465_307_123_456_789, 4_194_304);
        let b = event_id(1_795_465_307_123_456_790, 1);
        assert!(a < b);
        assert_eq!(a, "1795465307123456789-4194304");
        assert_eq!(event_id(5, 42), "0000000000000000005-0000042");
        assert_eq!(event_id(-5, 0), "0000000000000000000-0000000");
        assert_eq!(
            event_id(i128::MAX, u32::MAX),
            format!("{}-{}", i128::MAX, u32::MAX)
        );
    }
}
