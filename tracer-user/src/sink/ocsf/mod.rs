//! Our event model as OCSF 1.8.0: exec, fork and exit as Process Activity (1007),
//! connect as Network Activity (4001), loss records as Application Error (6008).
//!
//! Attributes come from the core schema and the `host` and `container` profiles
//! (declared in `metadata.profiles`); deprecated ones (`process.lineage`,
//! `process.tid`, `image.tag`) are not used. What OCSF has no place for goes
//! under `unmapped`, named as in our JSON. tests/ocsf/validate_ocsf.py checks
//! the output against the official schema.
//!
//! Records are typed ([`model`]), borrow from the event and are written
//! straight to the line: nothing is built as a JSON tree first.
use serde::Serialize;

use self::{
    model::{Class, Device, Enum, Metadata, Os, Product, TypeName},
    process::EventRecord,
    unmapped::{BudgetView, GapView, LostView, PolicyView},
};
use crate::event::{Action, Event, EventId, Host, LossRecord, Policy, UnixNanos};

mod model;
mod network;
mod process;
mod unmapped;

/// The records, to name them outside (they are only serialized).
pub use self::{
    model::Record,
    unmapped::{EventUnmapped, LossUnmapped},
};

pub const OCSF_VERSION: &str = "1.8.0";

const APPLICATION_ERROR: Class = Class {
    uid: 6008,
    name: "Application Error",
    category_uid: 6,
    category_name: "Application Activity",
};

/// Application Error has only General and Translation errors; Other with a name says more.
const EVENTS_LOST: Enum = (99, "Events Lost");

const SUCCESS: Enum = (1, "Success");
const FAILURE: Enum = (2, "Failure");

const INFORMATIONAL: Enum = (1, "Informational");
/// Lost events are a gap in the audit trail someone should look at.
const MEDIUM: Enum = (3, "Medium");

pub fn event_to_ocsf(ev: &Event) -> EventRecord<'_> {
    match &ev.action {
        Action::Exec(a) => process::exec(ev, a),
        Action::Connect(a) => network::connect(ev, a),
        Action::Fork(a) => process::fork(ev, a),
        Action::Exit(a) => process::exit(ev, a),
        Action::Usage(a) => process::usage(ev, a),
    }
}

pub fn loss_to_ocsf(l: &LossRecord) -> Record<'_, LossUnmapped<'_>> {
    let origin = Origin {
        time: l.time,
        event_id: l.event_id,
        kind: l.kind,
        host: &l.host,
        policy: &l.policy,
    };
    let unmapped = LossUnmapped {
        budget: (!l.budget.is_zero()).then(|| BudgetView::from(&l.budget)),
        gap: l.gap.as_ref().map(GapView::from),
        lost: LostView::from(&l.lost),
        policy: PolicyView::from(&*l.policy),
    };
    let mut r = header(&APPLICATION_ERROR, EVENTS_LOST, origin, &["host"], unmapped);
    r.set_severity(MEDIUM);
    r.set_status(FAILURE);
    let total = l.lost.total();
    let noun = if total == 1 { "event" } else { "events" };
    r.message = Some(if l.budget.is_zero() {
        format!("{total} {noun} lost")
    } else {
        format!("{total} {noun} lost; state dropped or cut to stay within the memory budget")
    });
    r
}

/// Writes `rec` as one line into `out` (cleared first); returns where the
/// chain link goes: last inside `unmapped` (OCSF allows no attribute of ours
/// at the top level), which is the last member and never empty.
pub fn write<U: Serialize>(rec: &Record<'_, U>, out: &mut Vec<u8>) -> usize {
    out.clear();
    // Into memory, from types with string keys only: it cannot fail.
    let _ = crate::escape::to_writer(&mut *out, rec);
    out.len().saturating_sub(2)
}

/// What the header needs from an event or a loss record.
struct Origin<'a> {
    time: UnixNanos,
    event_id: EventId,
    kind: &'a str,
    host: &'a Host,
    policy: &'a Policy,
}

impl<'a> Origin<'a> {
    fn of(ev: &'a Event) -> Origin<'a> {
        Origin {
            time: ev.time,
            event_id: ev.event_id,
            kind: ev.kind.as_str(),
            host: &ev.host,
            policy: &ev.policy,
        }
    }
}

/// What every class shares: classification, time, metadata, the device; the
/// class's builder sets the rest.
fn header<'a, U>(
    class: &Class,
    (activity_id, activity_name): Enum,
    o: Origin<'a>,
    profiles: &'static [&'static str],
    unmapped: U,
) -> Record<'a, U> {
    Record {
        activity_id,
        activity_name,
        actor: None,
        category_name: class.category_name,
        category_uid: class.category_uid,
        class_name: class.name,
        class_uid: class.uid,
        connection_info: None,
        count: None,
        device: device(o.host),
        dst_endpoint: None,
        end_time: None,
        exit_code: None,
        launch_type: None,
        launch_type_id: None,
        message: None,
        metadata: Metadata {
            event_code: o.kind,
            product: Product {
                name: "tracer",
                vendor_name: "tracer project",
                version: o.policy.tracer_version,
            },
            profiles,
            uid: o.event_id,
            version: OCSF_VERSION,
        },
        process: None,
        severity: INFORMATIONAL.1,
        severity_id: INFORMATIONAL.0,
        src_endpoint: None,
        start_time: None,
        // Each class sets its own.
        status: SUCCESS.1,
        status_code: None,
        status_detail: None,
        status_id: SUCCESS.0,
        time: o.time.millis(),
        // Our times are UTC.
        timezone_offset: 0,
        type_name: TypeName {
            class: class.name,
            activity: activity_name,
        },
        type_uid: u64::from(class.uid) * 100 + u64::from(activity_id),
        unmapped,
    }
}

fn device(host: &Host) -> Device<'_> {
    Device {
        boot_uid: &host.boot_id,
        hostname: &host.name,
        os: Os {
            name: "Linux",
            type_: "Linux",
            type_id: 200,
        },
        // Laptop, server or VM: the tracer cannot tell.
        type_: "Unknown",
        type_id: 0,
    }
}

#[cfg(test)]
mod tests;
