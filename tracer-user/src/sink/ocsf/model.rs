//! The OCSF objects we write, borrowing from the event they describe.
//!
//! Fields are declared in name order and absent ones are left out: the
//! output was once built as a `serde_json::Map` (sorted keys, no nulls), and
//! keeping that form keeps the lines byte for byte what they were.
use std::fmt::{self, Display, Write as _};

use serde::{Serialize, Serializer};

use crate::event::{Ancestor, EventId};

/// An OCSF enum value: (id, caption).
pub(super) type Enum = (u32, &'static str);

pub(super) struct Class {
    pub uid: u32,
    pub name: &'static str,
    pub category_uid: u32,
    pub category_name: &'static str,
}

/// One OCSF event of any class; `U` is what OCSF has no attribute for.
#[derive(Serialize)]
pub struct Record<'a, U> {
    pub activity_id: u32,
    pub activity_name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor<'a>>,
    pub category_name: &'static str,
    pub category_uid: u32,
    pub class_name: &'static str,
    pub class_uid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_info: Option<ConnectionInfo<'a>>,
    /// A summary of connects (`--aggregate-connects`): how many it stands
    /// for, and the first's and last's times (`start_time`, `end_time`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    pub device: Device<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_endpoint: Option<NetworkEndpoint<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_type_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub metadata: Metadata<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<Process<'a>>,
    pub severity: &'static str,
    pub severity_id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_endpoint: Option<NetworkEndpoint<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<i64>,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_detail: Option<&'a str>,
    pub status_id: u32,
    pub time: i64,
    pub timezone_offset: i32,
    pub type_name: TypeName,
    pub type_uid: u64,
    /// Last, and never empty: the sink puts the chain link at its end.
    pub unmapped: U,
}

impl<U> Record<'_, U> {
    pub fn set_status(&mut self, (id, caption): Enum) {
        self.status_id = id;
        self.status = caption;
    }

    pub fn set_severity(&mut self, (id, caption): Enum) {
        self.severity_id = id;
        self.severity = caption;
    }

    pub fn set_launch_type(&mut self, (id, caption): Enum) {
        self.launch_type_id = Some(id);
        self.launch_type = Some(caption);
    }
}

impl<'a, U> Record<'a, U> {
    /// The errno name, as the source reports it and as the detail.
    pub fn set_error(&mut self, error: Option<&'a str>) {
        self.status_code = error;
        self.status_detail = error;
    }
}

/// `<class name>: <activity name>`, written without building the string.
pub struct TypeName {
    pub class: &'static str,
    pub activity: &'static str,
}

impl Serialize for TypeName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}: {}", self.class, self.activity))
    }
}

/// A value written as a JSON string of its `Display` form (OCSF has ids as
/// strings: user and group uids, session uids).
#[derive(Clone, Copy)]
pub struct Text<T>(pub T);

impl<T: Display> Serialize for Text<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// argv joined with spaces, written without building the string.
#[derive(Clone, Copy)]
pub struct CmdLine<'a>(pub &'a [String]);

impl Display for CmdLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, arg) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_char(' ')?;
            }
            f.write_str(arg)?;
        }
        Ok(())
    }
}

impl Serialize for CmdLine<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Serialize)]
pub struct Metadata<'a> {
    pub event_code: &'a str,
    pub product: Product,
    pub profiles: &'static [&'static str],
    pub uid: EventId,
    pub version: &'static str,
}

#[derive(Serialize)]
pub struct Product {
    pub name: &'static str,
    pub vendor_name: &'static str,
    pub version: &'static str,
}

#[derive(Serialize)]
pub struct Device<'a> {
    pub boot_uid: &'a str,
    pub hostname: &'a str,
    pub os: Os,
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub type_id: u32,
}

#[derive(Serialize)]
pub struct Os {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub type_id: u32,
}

#[derive(Serialize)]
pub struct Actor<'a> {
    /// The automation system that invoked the activity
    /// (`executor.requestor.system`, e.g. `github-actions`); the run and who
    /// asked are in `unmapped.requestor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoked_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<Process<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<Session<'a>>,
    pub user: UserObject<'a>,
}

/// OCSF Process. Only `pid` is always known (a parent known by its pid alone).
#[derive(Default, Serialize)]
pub struct Process<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ancestry: Option<Ancestry<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd_line: Option<CmdLine<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerObject<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<File<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_process: Option<Box<Process<'a>>>,
    pub pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ptid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<Session<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminated_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserObject<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<&'a str>,
}

/// `process.ancestry`: an optional first entity, then the lineage's.
pub struct Ancestry<'a> {
    pub first: Option<Entity<'a>>,
    pub lineage: &'a [Ancestor],
}

impl Serialize for Ancestry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let rest = self.lineage.iter().map(|a| Entity {
            cmd_line: CmdLine(&a.argv),
            created_time: None,
            name: basename(&a.binary),
            path: &a.binary,
            pid: a.pid,
            uid: &a.exec_id,
        });
        s.collect_seq(self.first.iter().map(Entity::clone).chain(rest))
    }
}

/// OCSF Process Entity: a process without nested objects.
#[derive(Clone, Serialize)]
pub struct Entity<'a> {
    pub cmd_line: CmdLine<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_time: Option<i64>,
    pub name: &'a str,
    pub path: &'a str,
    pub pid: u32,
    pub uid: &'a str,
}

#[derive(Serialize)]
pub struct File<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hashes: Option<[Fingerprint<'a>; 1]>,
    pub name: &'a str,
    pub path: &'a str,
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub type_id: u32,
}

#[derive(Serialize)]
pub struct Fingerprint<'a> {
    pub algorithm: &'static str,
    pub algorithm_id: u32,
    pub value: &'a str,
}

#[derive(Serialize)]
pub struct UserObject<'a> {
    pub groups: [Group<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub uid: Text<u32>,
}

#[derive(Serialize)]
pub struct Group<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub uid: Text<u32>,
}

#[derive(Serialize)]
pub struct Session<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminal: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<Text<u32>>,
}

#[derive(Serialize)]
pub struct ContainerObject<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<Image<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orchestrator: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_uuid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<&'a str>,
    pub uid: &'a str,
}

#[derive(Serialize)]
pub struct Image<'a> {
    pub name: &'a str,
    pub uid: &'a str,
}

#[derive(Serialize)]
pub struct NetworkEndpoint<'a> {
    /// `destination.name`: the name a DNS answer gave the address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<&'a str>,
    pub ip: &'a str,
    /// A pod the address is an endpoint of: its name (namespace and SPIFFE
    /// ID are in `unmapped.action.destination.pod`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub port: u16,
    /// The Kubernetes Service of a destination, `namespace/name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub svc_name: Option<String>,
}

#[derive(Serialize)]
pub struct ConnectionInfo<'a> {
    pub direction: &'static str,
    pub direction_id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_num: Option<u8>,
    pub protocol_ver_id: u32,
}

pub(super) fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
