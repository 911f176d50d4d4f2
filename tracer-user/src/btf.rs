//! Minimal reader of kernel BTF (Documentation/bpf/btf.rst).
//!
//! rustc emits no CO-RE relocations for BPF targets, so the probes cannot have
//! kernel struct layouts patched in by the loader. Instead user space reads
//! `/sys/kernel/btf/vmlinux`, resolves the member offsets the probes need and
//! hands them over. Only what that needs is decoded: struct/union layouts, the
//! modifiers (typedef/const/...) between them, and enum values (indices such as
//! `enum cgroup_subsys_id`, which vary with the kernel's configuration). Every
//! length and offset taken
//! from the blob is bounds-checked, so malformed input yields an error, never a
//! panic.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

const BTF_MAGIC: u16 = 0xeb9f;
const BTF_VERSION: u8 = 1;
/// Size of the header fields we know; newer headers may be longer (hdr_len).
const BASE_HDR_LEN: usize = 24;
/// `struct btf_type`: name_off, info, size_or_type.
const TYPE_HDR_LEN: usize = 12;
/// Caps modifier chains and anonymous-member nesting so cyclic (malformed) BTF
/// cannot loop forever or overflow the stack. Real kernels nest a handful deep.
const MAX_DEPTH: usize = 64;

/// BTF kind numbers (bits 24..=28 of `info`).
mod kind {
    pub(super) const INT: u8 = 1;
    pub(super) const PTR: u8 = 2;
    pub(super) const ARRAY: u8 = 3;
    pub(super) const STRUCT: u8 = 4;
    pub(super) const UNION: u8 = 5;
    pub(super) const ENUM: u8 = 6;
    pub(super) const FWD: u8 = 7;
    pub(super) const TYPEDEF: u8 = 8;
    pub(super) const VOLATILE: u8 = 9;
    pub(super) const CONST: u8 = 10;
    pub(super) const RESTRICT: u8 = 11;
    pub(super) const FUNC: u8 = 12;
    pub(super) const FUNC_PROTO: u8 = 13;
    pub(super) const VAR: u8 = 14;
    pub(super) const DATASEC: u8 = 15;
    pub(super) const FLOAT: u8 = 16;
    pub(super) const DECL_TAG: u8 = 17;
    pub(super) const TYPE_TAG: u8 = 18;
    pub(super) const ENUM64: u8 = 19;
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum BtfError {
    #[error("cannot read BTF from {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed BTF: {0}")]
    Malformed(String),
    #[error("malformed BTF: type id {id} has unknown kind {kind}")]
    UnknownKind { id: u32, kind: u8 },
    #[error("no struct or union named `{0}` in BTF")]
    NoSuchType(String),
    #[error("`{ty}` has no member `{member}`")]
    NoSuchMember { ty: String, member: String },
    #[error("`{ty}.{member}` is not a struct or union, cannot descend into it")]
    NotComposite { ty: String, member: String },
    #[error(
        "`{ty}.{member}` is a bitfield (bit offset {bit_offset}, {bits} bits), which is not supported"
    )]
    Bitfield {
        ty: String,
        member: String,
        bit_offset: u64,
        bits: u32,
    },
    #[error("invalid member path `{0}`: empty component")]
    InvalidPath(String),
    #[error("no enum named `{0}` in BTF")]
    NoSuchEnum(String),
    #[error("enum `{ty}` has no value `{name}`")]
    NoSuchEnumerator { ty: String, name: String },
}

fn malformed(msg: impl Into<String>) -> BtfError {
    BtfError::Malformed(msg.into())
}

/// One decoded `struct btf_type`, with just the trailing data we use.
#[derive(Debug, Clone, Copy)]
struct Type {
    kind: u8,
    kind_flag: bool,
    vlen: u16,
    size_or_type: u32,
    /// INT: the encoding word. STRUCT/UNION: index of the first member in
    /// `Btf::members`. ENUM/ENUM64: index of the first value in
    /// `Btf::enumerators`. Unused otherwise.
    extra: u32,
}

/// One value of an ENUM or ENUM64.
#[derive(Debug, Clone, Copy)]
struct Enumerator {
    name_off: u32,
    value: i64,
}

#[derive(Debug, Clone, Copy)]
struct Member {
    name_off: u32,
    type_id: u32,
    /// Raw `offset` field; meaning depends on the parent's kind_flag.
    offset: u32,
}

/// A member found by name, with its bit offset relative to the searched type.
#[derive(Debug, Clone, Copy)]
struct Found {
    type_id: u32,
    bit_offset: u64,
    /// Non-zero only for kind_flag bitfields.
    bitfield_size: u32,
}

/// Result of resolving a whole dotted path.
struct Resolved {
    bit_offset: u64,
    bitfield_bits: Option<u32>,
}

/// Parsed BTF: types, struct/union members and the string section.
pub(crate) struct Btf {
    /// Index `i` holds type id `i + 1` (id 0 is void).
    types: Vec<Type>,
    members: Vec<Member>,
    enumerators: Vec<Enumerator>,
    strings: Vec<u8>,
    /// First STRUCT/UNION of each name; built once because vmlinux has ~10^5 types.
    composites: HashMap<Box<str>, u32>,
    /// First ENUM/ENUM64 of each name.
    enums: HashMap<Box<str>, u32>,
}

impl fmt::Debug for Btf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Btf")
            .field("types", &self.types.len())
            .field("members", &self.members.len())
            .field("enumerators", &self.enumerators.len())
            .field("string_bytes", &self.strings.len())
            .field("named_composites", &self.composites.len())
            .field("named_enums", &self.enums.len())
            .finish()
    }
}

fn le16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes(s.try_into().ok()?))
}

fn le32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(s.try_into().ok()?))
}

fn usize_from(v: u32) -> Result<usize, BtfError> {
    usize::try_from(v).map_err(|_| malformed("offset does not fit in usize"))
}

/// `body[off..off+len]` or an error naming the section.
fn section<'a>(body: &'a [u8], off: u32, len: u32, what: &str) -> Result<&'a [u8], BtfError> {
    let start = usize_from(off)?;
    let end = start
        .checked_add(usize_from(len)?)
        .ok_or_else(|| malformed(format!("{what} section bounds overflow")))?;
    body.get(start..end).ok_or_else(|| {
        malformed(format!(
            "{what} section {start}..{end} exceeds data length {}",
            body.len()
        ))
    })
}

fn is_composite(t: &Type) -> bool {
    t.kind == kind::STRUCT || t.kind == kind::UNION
}

impl Btf {
    /// Read and parse a BTF blob (e.g. /sys/kernel/btf/vmlinux).
    pub(crate) fn from_file(path: &Path) -> Result<Btf, BtfError> {
        let bytes = std::fs::read(path).map_err(|source| BtfError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Btf::parse(&bytes)
    }

    pub(crate) fn parse(bytes: &[u8]) -> Result<Btf, BtfError> {
        let magic = le16(bytes, 0).ok_or_else(|| malformed("shorter than the BTF header"))?;
        if magic != BTF_MAGIC {
            if magic == BTF_MAGIC.swap_bytes() {
                return Err(malformed("big-endian BTF is not supported"));
            }
            return Err(malformed(format!(
                "bad magic {magic:#06x}, expected 0xeb9f"
            )));
        }
        let version = bytes
            .get(2)
            .copied()
            .ok_or_else(|| malformed("shorter than the BTF header"))?;
        if version != BTF_VERSION {
            return Err(malformed(format!("unsupported BTF version {version}")));
        }
        let field =
            |off: usize| le32(bytes, off).ok_or_else(|| malformed("shorter than the BTF header"));
        let hdr_len = usize_from(field(4)?)?;
        let (type_off, type_len) = (field(8)?, field(12)?);
        let (str_off, str_len) = (field(16)?, field(20)?);
        if hdr_len < BASE_HDR_LEN {
            return Err(malformed(format!(
                "header length {hdr_len} < {BASE_HDR_LEN}"
            )));
        }
        // Section offsets are relative to the end of the (possibly longer) header.
        let body = bytes
            .get(hdr_len..)
            .ok_or_else(|| malformed(format!("header length {hdr_len} exceeds data")))?;
        let type_sec = section(body, type_off, type_len, "type")?;
        let strings = section(body, str_off, str_len, "string")?.to_vec();

        let mut btf = Btf {
            types: Vec::new(),
            members: Vec::new(),
            enumerators: Vec::new(),
            strings,
            composites: HashMap::new(),
            enums: HashMap::new(),
        };
        btf.parse_types(type_sec)?;
        Ok(btf)
    }

    fn parse_types(&mut self, sec: &[u8]) -> Result<(), BtfError> {
        let mut pos = 0usize;
        while pos < sec.len() {
            let id = u32::try_from(self.types.len())
                .ok()
                .and_then(|n| n.checked_add(1))
                .ok_or_else(|| malformed("too many types"))?;
            let truncated = || malformed(format!("type section truncated in type id {id}"));
            let name_off = le32(sec, pos).ok_or_else(truncated)?;
            let info = le32(sec, pos + 4).ok_or_else(truncated)?;
            let size_or_type = le32(sec, pos + 8).ok_or_else(truncated)?;
            pos += TYPE_HDR_LEN;

            let vlen = (info & 0xffff) as u16;
            let kind = ((info >> 24) & 0x1f) as u8;
            let kind_flag = info >> 31 == 1;
            let n = usize::from(vlen);
            let data_len = match kind {
                kind::INT | kind::VAR | kind::DECL_TAG => 4,
                kind::PTR
                | kind::FWD
                | kind::TYPEDEF
                | kind::VOLATILE
                | kind::CONST
                | kind::RESTRICT
                | kind::FUNC
                | kind::FLOAT
                | kind::TYPE_TAG => 0,
                kind::ARRAY => 12,
                kind::STRUCT | kind::UNION | kind::DATASEC | kind::ENUM64 => n * 12,
                kind::ENUM | kind::FUNC_PROTO => n * 8,
                // Includes 0 (UNKN) and kinds newer than this reader: their
                // trailing size is unknown, so the rest cannot be walked.
                _ => return Err(BtfError::UnknownKind { id, kind }),
            };
            let end = pos + data_len;
            let data = sec.get(pos..end).ok_or_else(truncated)?;
            pos = end;

            let mut extra = 0;
            if kind == kind::INT {
                extra = le32(data, 0).ok_or_else(truncated)?;
            } else if kind == kind::STRUCT || kind == kind::UNION {
                extra =
                    u32::try_from(self.members.len()).map_err(|_| malformed("too many members"))?;
                for m in data.chunks_exact(12) {
                    self.members.push(Member {
                        name_off: le32(m, 0).ok_or_else(truncated)?,
                        type_id: le32(m, 4).ok_or_else(truncated)?,
                        offset: le32(m, 8).ok_or_else(truncated)?,
                    });
                }
                if name_off != 0 {
                    let name = self.str_at(name_off)?;
                    if !name.is_empty() && !self.composites.contains_key(name) {
                        let name: Box<str> = name.into();
                        self.composites.insert(name, id);
                    }
                }
            } else if kind == kind::ENUM || kind == kind::ENUM64 {
                extra = u32::try_from(self.enumerators.len())
                    .map_err(|_| malformed("too many enum values"))?;
                // kind_flag: signed values (older BTF leaves it 0 and its values
                // are read as unsigned; kernel enum indices are small either way).
                if kind == kind::ENUM {
                    for v in data.chunks_exact(8) {
                        let raw = le32(v, 4).ok_or_else(truncated)?;
                        let value = if kind_flag {
                            i64::from(raw as i32)
                        } else {
                            i64::from(raw)
                        };
                        self.enumerators.push(Enumerator {
                            name_off: le32(v, 0).ok_or_else(truncated)?,
                            value,
                        });
                    }
                } else {
                    for v in data.chunks_exact(12) {
                        let lo = u64::from(le32(v, 4).ok_or_else(truncated)?);
                        let hi = u64::from(le32(v, 8).ok_or_else(truncated)?);
                        // Unsigned values above i64::MAX wrap; no index is that large.
                        self.enumerators.push(Enumerator {
                            name_off: le32(v, 0).ok_or_else(truncated)?,
                            value: ((hi << 32) | lo) as i64,
                        });
                    }
                }
                if name_off != 0 {
                    let name = self.str_at(name_off)?;
                    if !name.is_empty() && !self.enums.contains_key(name) {
                        let name: Box<str> = name.into();
                        self.enums.insert(name, id);
                    }
                }
            }
            self.types.push(Type {
                kind,
                kind_flag,
                vlen,
                size_or_type,
                extra,
            });
        }
        Ok(())
    }

    /// NUL-terminated string at `off` in the string section.
    fn str_at(&self, off: u32) -> Result<&str, BtfError> {
        let tail = self
            .strings
            .get(usize_from(off)?..)
            .ok_or_else(|| malformed(format!("string offset {off} out of range")))?;
        let len = tail
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| malformed(format!("string at {off} is not NUL-terminated")))?;
        let s = tail.get(..len).unwrap_or_default();
        std::str::from_utf8(s).map_err(|_| malformed(format!("string at {off} is not UTF-8")))
    }

    fn ty(&self, id: u32) -> Result<&Type, BtfError> {
        if id == 0 {
            return Err(malformed("void used where a type is required"));
        }
        self.types
            .get(usize_from(id - 1)?)
            .ok_or_else(|| malformed(format!("type id {id} out of range")))
    }

    /// Follow typedef/const/volatile/restrict/type_tag to the underlying type.
    fn skip_modifiers(&self, mut id: u32) -> Result<&Type, BtfError> {
        for _ in 0..MAX_DEPTH {
            let t = self.ty(id)?;
            match t.kind {
                kind::TYPEDEF | kind::CONST | kind::VOLATILE | kind::RESTRICT | kind::TYPE_TAG => {
                    id = t.size_or_type
                }
                _ => return Ok(t),
            }
        }
        Err(malformed(format!(
            "modifier chain at type id {id} too long or cyclic"
        )))
    }

    fn members_of(&self, t: &Type) -> Result<&[Member], BtfError> {
        let start = usize_from(t.extra)?;
        start
            .checked_add(usize::from(t.vlen))
            .and_then(|end| self.members.get(start..end))
            .ok_or_else(|| malformed("member index out of range"))
    }

    /// Find `name` among `t`'s members, looking through anonymous struct/union
    /// members (C requires the flattened names to be unique, so order is moot).
    fn find_in(&self, t: &Type, name: &str, depth: usize) -> Result<Option<Found>, BtfError> {
        if depth > MAX_DEPTH {
            return Err(malformed("anonymous members nested too deeply (cyclic?)"));
        }
        for m in self.members_of(t)? {
            let (bit_offset, bitfield_size) = if t.kind_flag {
                (m.offset & 0x00ff_ffff, m.offset >> 24)
            } else {
                (m.offset, 0)
            };
            let m_name = if m.name_off == 0 {
                ""
            } else {
                self.str_at(m.name_off)?
            };
            if m_name.is_empty() {
                let mt = self.skip_modifiers(m.type_id)?;
                if is_composite(mt)
                    && let Some(f) = self.find_in(mt, name, depth + 1)?
                {
                    let bit_offset = f
                        .bit_offset
                        .checked_add(u64::from(bit_offset))
                        .ok_or_else(|| malformed("member offset overflow"))?;
                    return Ok(Some(Found { bit_offset, ..f }));
                }
            } else if m_name == name {
                return Ok(Some(Found {
                    type_id: m.type_id,
                    bit_offset: u64::from(bit_offset),
                    bitfield_size,
                }));
            }
        }
        Ok(None)
    }

    /// Bitfield width if the member is a kind_flag=0 style bitfield, which is
    /// encoded in its INT type (fewer bits than the storage, or a bit offset).
    fn int_bitfield_bits(&self, type_id: u32) -> Result<Option<u32>, BtfError> {
        let t = self.skip_modifiers(type_id)?;
        if t.kind != kind::INT {
            return Ok(None);
        }
        let bits = t.extra & 0xff;
        let int_offset = (t.extra >> 16) & 0xff;
        let storage_bits = u64::from(t.size_or_type) * 8;
        Ok((int_offset != 0 || u64::from(bits) != storage_bits).then_some(bits))
    }

    fn resolve(&self, type_name: &str, path: &str) -> Result<Resolved, BtfError> {
        let mut id = *self
            .composites
            .get(type_name)
            .ok_or_else(|| BtfError::NoSuchType(type_name.to_string()))?;
        let mut bit_offset = 0u64;
        let mut bitfield_bits = None;
        for (i, comp) in path.split('.').enumerate() {
            if comp.is_empty() {
                return Err(BtfError::InvalidPath(path.to_string()));
            }
            let t = self.skip_modifiers(id)?;
            if !is_composite(t) || bitfield_bits.is_some() {
                return Err(BtfError::NotComposite {
                    ty: type_name.to_string(),
                    member: path.split('.').take(i).collect::<Vec<_>>().join("."),
                });
            }
            let f = self
                .find_in(t, comp, 0)?
                .ok_or_else(|| BtfError::NoSuchMember {
                    ty: type_name.to_string(),
                    member: path.to_string(),
                })?;
            if f.bitfield_size != 0 {
                bitfield_bits = Some(f.bitfield_size);
            } else if let Some(bits) = self.int_bitfield_bits(f.type_id)? {
                bitfield_bits = Some(bits);
            }
            bit_offset = bit_offset
                .checked_add(f.bit_offset)
                .ok_or_else(|| malformed("member offset overflow"))?;
            id = f.type_id;
        }
        // A member not on a byte boundary can only be read as a bitfield.
        if bitfield_bits.is_none() && !bit_offset.is_multiple_of(8) {
            bitfield_bits = Some(0);
        }
        Ok(Resolved {
            bit_offset,
            bitfield_bits,
        })
    }

    /// Byte offset of a member path inside a named struct or union, e.g.
    /// `member_offset("task_struct", "real_parent")`,
    /// `member_offset("sock", "__sk_common.skc_rcv_saddr")`.
    ///
    /// Dotted paths descend into member types (through typedef/const/volatile).
    /// Members of anonymous structs/unions are found transparently at any
    /// depth. The first STRUCT/UNION with that name is used (FWD is ignored).
    /// Bitfield members give [`BtfError::Bitfield`].
    pub(crate) fn member_offset(&self, type_name: &str, path: &str) -> Result<u32, BtfError> {
        let r = self.resolve(type_name, path)?;
        if let Some(bits) = r.bitfield_bits {
            return Err(BtfError::Bitfield {
                ty: type_name.to_string(),
                member: path.to_string(),
                bit_offset: r.bit_offset,
                bits,
            });
        }
        u32::try_from(r.bit_offset / 8)
            .map_err(|_| malformed(format!("offset of {type_name}.{path} overflows u32")))
    }

    /// Byte size of a named struct/union (e.g. "upid").
    pub(crate) fn type_size(&self, type_name: &str) -> Result<u32, BtfError> {
        let id = *self
            .composites
            .get(type_name)
            .ok_or_else(|| BtfError::NoSuchType(type_name.to_string()))?;
        Ok(self.ty(id)?.size_or_type)
    }

    /// Value of `name` in the named enum (ENUM or ENUM64; the first of that
    /// name), e.g. `enum_value("cgroup_subsys_id", "memory_cgrp_id")`.
    pub(crate) fn enum_value(&self, enum_name: &str, name: &str) -> Result<i64, BtfError> {
        let id = *self
            .enums
            .get(enum_name)
            .ok_or_else(|| BtfError::NoSuchEnum(enum_name.to_string()))?;
        let t = self.ty(id)?;
        let start = usize_from(t.extra)?;
        let values = start
            .checked_add(usize::from(t.vlen))
            .and_then(|end| self.enumerators.get(start..end))
            .ok_or_else(|| malformed("enum value index out of range"))?;
        for v in values {
            if v.name_off != 0 && self.str_at(v.name_off)? == name {
                return Ok(v.value);
            }
        }
        Err(BtfError::NoSuchEnumerator {
            ty: enum_name.to_string(),
            name: name.to_string(),
        })
    }

    #[cfg(test)]
    /// Number of types (not counting void).
    pub(crate) fn type_count(&self) -> usize {
        self.types.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::process::Command;
    use std::time::Instant;

    /// Test-only BTF encoder: header + type section + string section.
    struct Enc {
        types: Vec<u8>,
        strs: Vec<u8>,
        next_id: u32,
    }

    impl Enc {
        fn new() -> Self {
            Enc {
                types: Vec::new(),
                strs: vec![0],
                next_id: 1,
            }
        }

        fn s(&mut self, name: &str) -> u32 {
            if name.is_empty() {
                return 0;
            }
            let off = self.strs.len() as u32;
            self.strs.extend_from_slice(name.as_bytes());
            self.strs.push(0);
            off
        }

        fn raw(
            &mut self,
            name: &str,
            kind: u8,
            kflag: bool,
            vlen: u32,
            sot: u32,
            extra: &[u32],
        ) -> u32 {
            let name_off = self.s(name);
            let info = (u32::from(kflag) << 31) | (u32::from(kind) << 24) | vlen;
            for w in [name_off, info, sot].iter().chain(extra) {
                self.types.extend_from_slice(&w.to_le_bytes());
            }
            self.next_id += 1;
            self.next_id - 1
        }

        fn int(&mut self, name: &str, size: u32, bits: u32) -> u32 {
            self.raw(name, kind::INT, false, 0, size, &[bits])
        }

        fn modifier(&mut self, kind: u8, name: &str, target: u32) -> u32 {
            self.raw(name, kind, false, 0, target, &[])
        }

        /// Members: (name, type, raw offset field).
        fn composite(
            &mut self,
            kind: u8,
            name: &str,
            size: u32,
            kflag: bool,
            members: &[(&str, u32, u32)],
        ) -> u32 {
            let mut extra = Vec::new();
            for &(n, t, off) in members {
                extra.extend([self.s(n), t, off]);
            }
            self.raw(name, kind, kflag, members.len() as u32, size, &extra)
        }

        fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
            self.composite(kind::STRUCT, name, size, false, members)
        }

        fn build(&self, hdr_len: u32) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
            out.push(1);
            out.push(0);
            let tl = self.types.len() as u32;
            for w in [hdr_len, 0, tl, tl, self.strs.len() as u32] {
                out.extend_from_slice(&w.to_le_bytes());
            }
            out.resize(hdr_len as usize, 0);
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strs);
            out
        }
    }

    /// A blob exercising every kind (so skipping is tested) plus the layouts
    /// the table below queries.
    fn sample() -> Enc {
        let mut e = Enc::new();
        let int = e.int("int", 4, 32); // 1
        let int3 = e.int("unsigned int", 4, 3); // 2: kind_flag=0 bitfield encoding
        let vptr = e.modifier(kind::PTR, "", 0); // 3
        e.raw("", kind::ARRAY, false, 0, 0, &[int, int, 16]); // 4
        e.raw("e", kind::ENUM, false, 2, 4, &[0, 0, 0, 1]); // 5
        e.raw("e64", kind::ENUM64, false, 1, 8, &[0, 1, 2]); // 6
        let proto = e.raw("", kind::FUNC_PROTO, false, 2, int, &[0, int, 0, vptr]); // 7
        e.raw("f", kind::FUNC, false, 1, proto, &[]); // 8: vlen is linkage, no data
        let var = e.raw("v", kind::VAR, false, 0, int, &[1]); // 9
        e.raw(".data", kind::DATASEC, false, 1, 4, &[var, 0, 4]); // 10
        e.raw("tag", kind::DECL_TAG, false, 0, int, &[u32::MAX]); // 11
        e.modifier(kind::TYPE_TAG, "tt", int); // 12
        e.raw("double", kind::FLOAT, false, 0, 8, &[]); // 13
        let vint = e.modifier(kind::VOLATILE, "", int); // 14
        e.modifier(kind::RESTRICT, "", vptr); // 15
        e.modifier(kind::FWD, "ns_common", 0); // 16: must not shadow the struct
        let ns = e.strukt("ns_common", 8, &[("count", int, 0), ("inum", vint, 32)]); // 17
        let ns_t = e.modifier(kind::TYPEDEF, "ns_common_t", ns); // 18
        let ns_c = e.modifier(kind::CONST, "", ns_t); // 19
        e.strukt(
            "pid_namespace",
            24,
            &[("level", int, 0), ("ns", ns_c, 64), ("p", vptr, 128)],
        ); // 20
        // sock_common: anon struct { skc_num; anon union { skc_addrpair; anon struct { daddr; rcv_saddr } } }
        let pair = e.strukt("", 8, &[("skc_daddr", int, 0), ("skc_rcv_saddr", int, 32)]); // 21
        let un = e.composite(
            kind::UNION,
            "",
            8,
            false,
            &[("skc_addrpair", int, 0), ("", pair, 0)],
        ); // 22
        let anon = e.strukt("", 16, &[("skc_num", int, 0), ("", un, 64)]); // 23
        let sc = e.strukt("sock_common", 24, &[("skc_family", int, 0), ("", anon, 64)]); // 24
        e.strukt("sock", 32, &[("__sk_common", sc, 0), ("sk_x", int, 192)]); // 25
        e.composite(
            kind::STRUCT,
            "bits",
            12,
            true,
            &[("a", int, (3 << 24) | 5), ("b", int, 32), ("c", int, 64)],
        ); // 26
        e.strukt(
            "oldbits",
            8,
            &[("x", int3, 0), ("y", int, 32), ("z", int, 36)],
        ); // 27
        e.strukt("dup", 4, &[("first", int, 0)]); // 28
        e.strukt("dup", 8, &[("second", int, 32)]); // 29
        e.composite(kind::UNION, "u", 8, false, &[("a", int, 0), ("b", vptr, 0)]); // 30
        e
    }

    #[derive(Debug)]
    enum Want {
        Off(u32),
        NoType,
        NoMember,
        Bitfield,
        NotComposite,
        BadPath,
    }

    fn check_table(btf: &Btf) {
        use Want::*;
        let cases: &[(&str, &str, Want)] = &[
            ("ns_common", "count", Off(0)),
            ("ns_common", "inum", Off(4)),
            ("pid_namespace", "level", Off(0)),
            ("pid_namespace", "ns", Off(8)),
            ("pid_namespace", "ns.inum", Off(12)),
            ("pid_namespace", "p", Off(16)),
            ("sock_common", "skc_family", Off(0)),
            ("sock_common", "skc_num", Off(8)),
            ("sock_common", "skc_addrpair", Off(16)),
            ("sock_common", "skc_daddr", Off(16)),
            ("sock_common", "skc_rcv_saddr", Off(20)),
            ("sock", "__sk_common.skc_rcv_saddr", Off(20)),
            ("sock", "sk_x", Off(24)),
            ("bits", "a", Bitfield),
            ("bits", "b", Off(4)),
            ("bits", "c", Off(8)),
            ("oldbits", "x", Bitfield),
            ("oldbits", "y", Off(4)),
            ("oldbits", "z", Bitfield),
            ("dup", "first", Off(0)),
            ("dup", "second", NoMember),
            ("u", "b", Off(0)),
            ("ns_common", "nope", NoMember),
            ("pid_namespace", "ns.nope", NoMember),
            ("sock", "nope.x", NoMember),
            ("nosuch", "x", NoType),
            ("f", "x", NoType),
            ("pid_namespace", "level.x", NotComposite),
            ("pid_namespace", "p.x", NotComposite),
            ("bits", "a.x", NotComposite),
            ("pid_namespace", "", BadPath),
            ("pid_namespace", "ns..inum", BadPath),
            ("pid_namespace", "ns.", BadPath),
        ];
        for (ty, path, want) in cases {
            let got = btf.member_offset(ty, path);
            let ok = match (want, &got) {
                (Off(w), Ok(g)) => w == g,
                (NoType, Err(BtfError::NoSuchType(_))) => true,
                (NoMember, Err(BtfError::NoSuchMember { .. })) => true,
                (Bitfield, Err(BtfError::Bitfield { .. })) => true,
                (NotComposite, Err(BtfError::NotComposite { .. })) => true,
                (BadPath, Err(BtfError::InvalidPath(_))) => true,
                _ => false,
            };
            assert!(ok, "{ty}.{path}: want {want:?}, got {got:?}");
            // Errors must render (exercises the thiserror messages).
            if let Err(e) = got {
                assert!(!e.to_string().is_empty());
            }
        }
        assert!(btf.resolve("bits", "a").is_ok());
        assert!(btf.resolve("sock_common", "skc_rcv_saddr").is_ok());
        assert!(btf.resolve("sock", "__sk_common.skc_num").is_ok());
        assert!(btf.resolve("sock_common", "nope").is_err());
        assert!(btf.resolve("nosuch", "x").is_err());
        assert_eq!(btf.type_size("ns_common").unwrap(), 8);
        assert_eq!(btf.type_size("dup").unwrap(), 4);
        assert_eq!(btf.type_size("u").unwrap(), 8);
        assert!(matches!(
            btf.type_size("nosuch"),
            Err(BtfError::NoSuchType(_))
        ));
        assert!(matches!(
            btf.type_size("ns_common_t"),
            Err(BtfError::NoSuchType(_))
        ));
        assert_eq!(btf.type_count(), 30);
    }

    #[test]
    fn table_on_hand_built_blob() {
        let blob = sample().build(24);
        let btf = Btf::parse(&blob).unwrap();
        check_table(&btf);
    }

    #[test]
    fn longer_header_is_honoured() {
        let blob = sample().build(32);
        let btf = Btf::parse(&blob).unwrap();
        check_table(&btf);
    }

    #[test]
    fn header_errors() {
        let good = sample().build(24);
        assert!(Btf::parse(&[]).is_err());
        let mut b = good.clone();
        b[0] = 0;
        assert!(matches!(Btf::parse(&b), Err(BtfError::Malformed(m)) if m.contains("magic")));
        let mut b = good.clone();
        b.swap(0, 1);
        assert!(matches!(Btf::parse(&b), Err(BtfError::Malformed(m)) if m.contains("big-endian")));
        let mut b = good.clone();
        b[2] = 2;
        assert!(matches!(Btf::parse(&b), Err(BtfError::Malformed(m)) if m.contains("version")));
        let mut b = good.clone();
        b[4] = 20;
        assert!(Btf::parse(&b).is_err());
        let mut b = good;
        b[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Btf::parse(&b).is_err());
    }

    #[test]
    fn unknown_kinds_are_errors() {
        for k in [0u8, 20, 31] {
            let mut e = sample();
            e.raw("x", k, false, 0, 0, &[]);
            let err = Btf::parse(&e.build(24)).unwrap_err();
            assert!(
                matches!(err, BtfError::UnknownKind { id: 31, kind } if kind == k),
                "{err}"
            );
        }
    }

    #[test]
    fn cycles_and_bad_references_are_errors() {
        let mut e = Enc::new();
        let int = e.int("int", 4, 32); // 1
        e.modifier(kind::TYPEDEF, "loop", 2); // 2: typedef to itself
        e.strukt("a", 8, &[("m", 2, 0)]); // 3
        e.strukt("self", 8, &[("", 4, 0)]); // 4: anonymous member of its own type
        e.strukt("dangling", 8, &[("m", 99, 0), ("v", 0, 32)]); // 5
        e.strukt("ok", 4, &[("i", int, 0)]); // 6
        let btf = Btf::parse(&e.build(24)).unwrap();
        assert!(matches!(
            btf.member_offset("a", "m.x"),
            Err(BtfError::Malformed(_))
        ));
        assert!(matches!(
            btf.member_offset("self", "x"),
            Err(BtfError::Malformed(_))
        ));
        assert!(matches!(
            btf.member_offset("dangling", "m"),
            Err(BtfError::Malformed(_))
        ));
        assert!(matches!(
            btf.member_offset("dangling", "v"),
            Err(BtfError::Malformed(_))
        ));
        assert!(btf.resolve("self", "x").is_err());
        assert_eq!(btf.member_offset("ok", "i").unwrap(), 0);

        // Bad string offsets: out of range and unterminated.
        let mut e = Enc::new();
        e.raw("", kind::STRUCT, false, 0, 4, &[]);
        let mut blob = e.build(24);
        blob[24..28].copy_from_slice(&1000u32.to_le_bytes());
        assert!(matches!(Btf::parse(&blob), Err(BtfError::Malformed(_))));
    }

    #[test]
    fn truncation_never_panics() {
        let blob = sample().build(24);
        for len in 0..blob.len() {
            assert!(Btf::parse(&blob[..len]).is_err(), "len {len} parsed");
        }
        assert!(Btf::parse(&blob).is_ok());
    }

    #[test]
    fn garbage_never_panics() {
        let blob = sample().build(24);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let queries = [
            ("sock", "__sk_common.skc_rcv_saddr"),
            ("pid_namespace", "ns.inum"),
            ("bits", "a"),
            ("oldbits", "x"),
            ("sock_common", "skc_num"),
        ];
        for _ in 0..20_000 {
            let mut b = blob.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() % b.len() as u64) as usize;
                b[i] = next() as u8;
            }
            if let Ok(btf) = Btf::parse(&b) {
                for (t, p) in queries {
                    let _ = btf.member_offset(t, p);
                    let _ = btf.resolve(t, p);
                    let _ = btf.type_size(t);
                }
            }
        }
        // Pure noise, with and without a valid magic.
        for n in 0..2000usize {
            let mut b: Vec<u8> = (0..n % 200).map(|_| next() as u8).collect();
            if n % 2 == 0 && b.len() >= 4 {
                b[..4].copy_from_slice(&[0x9f, 0xeb, 1, 0]);
            }
            let _ = Btf::parse(&b);
        }
    }

    #[test]
    fn enum_values() {
        let mut e = Enc::new();
        let int = e.int("int", 4, 32); // 1
        let (a, b, c, n) = (e.s("a_id"), e.s("b_id"), e.s("COUNT"), e.s("neg"));
        // enum with an unnamed value; value words: name_off, val.
        e.raw(
            "cgroup_subsys_id",
            kind::ENUM,
            false,
            4,
            4,
            &[a, 0, 0, 7, b, 4, c, 5],
        ); // 2
        // kind_flag: signed.
        e.raw("signed_e", kind::ENUM, true, 1, 4, &[n, (-5i32) as u32]); // 3
        // The same 32-bit value unsigned (older BTF never sets kind_flag).
        e.raw("unsigned_e", kind::ENUM, false, 1, 4, &[n, (-5i32) as u32]); // 4
        // ENUM64: name_off, lo, hi.
        e.raw("big", kind::ENUM64, false, 2, 8, &[a, 1, 2, b, 0, 0]); // 5
        // A second enum of the same name does not shadow the first.
        e.raw("cgroup_subsys_id", kind::ENUM, false, 1, 4, &[a, 9]); // 6
        e.raw("", kind::ENUM, false, 1, 4, &[a, 3]); // 7: anonymous
        e.strukt("cgroup_subsys_id_s", 4, &[("x", int, 0)]); // 8
        let btf = Btf::parse(&e.build(24)).unwrap();
        assert_eq!(btf.enum_value("cgroup_subsys_id", "a_id").unwrap(), 0);
        assert_eq!(btf.enum_value("cgroup_subsys_id", "b_id").unwrap(), 4);
        assert_eq!(btf.enum_value("cgroup_subsys_id", "COUNT").unwrap(), 5);
        assert_eq!(btf.enum_value("signed_e", "neg").unwrap(), -5);
        assert_eq!(btf.enum_value("unsigned_e", "neg").unwrap(), 0xffff_fffb);
        assert_eq!(btf.enum_value("big", "a_id").unwrap(), (2 << 32) | 1);
        assert_eq!(btf.enum_value("big", "b_id").unwrap(), 0);
        assert!(matches!(
            btf.enum_value("cgroup_subsys_id", "nope"),
            Err(BtfError::NoSuchEnumerator { .. })
        ));
        assert!(matches!(
            btf.enum_value("cgroup_subsys_id", ""),
            Err(BtfError::NoSuchEnumerator { .. })
        ));
        for missing in ["", "nosuch", "cgroup_subsys_id_s", "int"] {
            let err = btf.enum_value(missing, "a_id").unwrap_err();
            assert!(matches!(err, BtfError::NoSuchEnum(_)), "{missing}: {err}");
            assert!(!err.to_string().is_empty());
        }
        // Enums are not structs.
        assert!(matches!(
            btf.member_offset("cgroup_subsys_id", "a_id"),
            Err(BtfError::NoSuchType(_))
        ));
        // The sample blob's enums have unnamed values only.
        let btf = Btf::parse(&sample().build(24)).unwrap();
        assert!(matches!(
            btf.enum_value("e", ""),
            Err(BtfError::NoSuchEnumerator { .. })
        ));
        assert!(btf.enum_value("e64", "x").is_err());
    }

    #[test]
    fn io_error_names_path() {
        let err = Btf::from_file(Path::new("/nonexistent/btf")).unwrap_err();
        assert!(matches!(err, BtfError::Io { .. }));
        assert!(err.to_string().contains("/nonexistent/btf"));
    }

    // ---- comparison with bpftool on the running kernel ----

    #[derive(Default)]
    struct RawType {
        kind: String,
        name: String,
        size: u32,
        type_id: u32,
        /// (name, type_id, bits_offset, bitfield_size)
        members: Vec<(String, u32, u64, u32)>,
        /// ENUM/ENUM64: (name, value as bpftool prints it)
        values: Vec<(String, String)>,
        /// `encoding=SIGNED` (ints and enums)
        signed: bool,
    }

    /// Parse `bpftool btf dump ... format raw` into id -> type.
    fn parse_bpftool(text: &str) -> HashMap<u32, RawType> {
        let mut out = HashMap::new();
        let mut cur: Option<u32> = None;
        let kv = |tok: &str, key: &str| tok.strip_prefix(key).and_then(|v| v.parse::<u64>().ok());
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix('[') {
                let (id, rest) = rest.split_once("] ").unwrap();
                let id: u32 = id.parse().unwrap();
                let (kind, rest) = rest.split_once(' ').unwrap();
                let rest = rest.strip_prefix('\'').unwrap();
                let (name, attrs) = rest.split_once('\'').unwrap();
                let mut t = RawType {
                    kind: kind.to_string(),
                    name: name.to_string(),
                    ..Default::default()
                };
                for tok in attrs.split_whitespace() {
                    if let Some(v) = kv(tok, "size=") {
                        t.size = v as u32;
                    }
                    if let Some(v) = kv(tok, "type_id=") {
                        t.type_id = v as u32;
                    }
                    t.signed |= tok == "encoding=SIGNED";
                }
                out.insert(id, t);
                cur = Some(id);
            } else if let Some(rest) = line.strip_prefix('\t') {
                let Some(t) = cur.and_then(|id| out.get_mut(&id)) else {
                    continue;
                };
                if t.kind == "ENUM" || t.kind == "ENUM64" {
                    let rest = rest.strip_prefix('\'').unwrap();
                    let (name, attrs) = rest.split_once('\'').unwrap();
                    let val = attrs.trim().strip_prefix("val=").unwrap();
                    t.values.push((name.to_string(), val.to_string()));
                    continue;
                }
                if t.kind != "STRUCT" && t.kind != "UNION" {
                    continue;
                }
                let rest = rest.strip_prefix('\'').unwrap();
                let (name, attrs) = rest.split_once('\'').unwrap();
                let (mut ty, mut off, mut bf) = (0, 0, 0);
                for tok in attrs.split_whitespace() {
                    ty = kv(tok, "type_id=").map_or(ty, |v| v as u32);
                    off = kv(tok, "bits_offset=").unwrap_or(off);
                    bf = kv(tok, "bitfield_size=").map_or(bf, |v| v as u32);
                }
                t.members.push((name.to_string(), ty, off, bf));
            }
        }
        out
    }

    /// Independent reference resolver over bpftool's view.
    struct Reference {
        types: HashMap<u32, RawType>,
        first: HashMap<String, u32>,
    }

    impl Reference {
        fn new(types: HashMap<u32, RawType>) -> Self {
            let mut ids: Vec<_> = types.keys().copied().collect();
            ids.sort_unstable();
            let mut first = HashMap::new();
            for id in ids {
                let t = &types[&id];
                if (t.kind == "STRUCT" || t.kind == "UNION") && t.name != "(anon)" {
                    first.entry(t.name.clone()).or_insert(id);
                }
            }
            Reference { types, first }
        }

        fn strip(&self, mut id: u32) -> u32 {
            while let Some(t) = self.types.get(&id) {
                match t.kind.as_str() {
                    "TYPEDEF" | "CONST" | "VOLATILE" | "RESTRICT" | "TYPE_TAG" => id = t.type_id,
                    _ => break,
                }
            }
            id
        }

        /// (type_id, bits, bitfield_size)
        fn find(&self, id: u32, name: &str) -> Option<(u32, u64, u32)> {
            for (n, ty, off, bf) in &self.types[&id].members {
                if n == "(anon)" {
                    let inner = self.strip(*ty);
                    if matches!(self.types[&inner].kind.as_str(), "STRUCT" | "UNION")
                        && let Some((t, o, b)) = self.find(inner, name)
                    {
                        return Some((t, o + off, b));
                    }
                } else if n == name {
                    return Some((*ty, *off, *bf));
                }
            }
            None
        }

        fn offset(&self, ty: &str, path: &str) -> Option<u32> {
            let mut id = self.first[ty];
            let mut bits = 0;
            for comp in path.split('.') {
                let (t, o, bf) = self.find(self.strip(id), comp)?;
                assert_eq!(bf, 0, "{ty}.{path} is a bitfield in bpftool");
                bits += o;
                id = t;
            }
            assert_eq!(bits % 8, 0);
            Some((bits / 8) as u32)
        }
    }

    #[test]
    fn matches_bpftool_on_running_kernel() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        assert!(
            path.exists(),
            "{} missing: the tracer (and this test) needs a kernel built with CONFIG_DEBUG_INFO_BTF=y",
            path.display()
        );
        // Where `cargo xtask setup` puts it; it installs bpftool wherever apt can.
        let Some(bpftool) = ["/usr/sbin/bpftool", "/usr/bin/bpftool", "/sbin/bpftool"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists())
        else {
            assert!(
                !Path::new("/usr/bin/apt-get").exists(),
                "bpftool missing: run `cargo xtask setup`, which installs it"
            );
            crate::skip(
                "matches_bpftool_on_running_kernel",
                "no bpftool, and no apt-get for `cargo xtask setup` to install it with",
            );
            return;
        };
        let bytes = std::fs::read(path).unwrap();
        let t0 = Instant::now();
        let btf = Btf::parse(&bytes).unwrap();
        let parse_time = t0.elapsed();
        eprintln!(
            "parsed {} ({} bytes, {} types) in {:.2?}",
            path.display(),
            bytes.len(),
            btf.type_count(),
            parse_time
        );

        let out = Command::new(bpftool)
            .args(["btf", "dump", "file"])
            .arg(path)
            .args(["format", "raw"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} btf dump failed: {}",
            bpftool.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let reference = Reference::new(parse_bpftool(&String::from_utf8(out.stdout).unwrap()));
        assert_eq!(btf.type_count(), reference.types.len());

        let wanted: &[(&str, &[&str])] = &[
            (
                "task_struct",
                &[
                    "pid",
                    "tgid",
                    "real_parent",
                    "group_leader",
                    "real_cred",
                    "loginuid",
                    "sessionid",
                    "nsproxy",
                    "thread_pid",
                    "mm",
                    "start_boottime",
                    "comm",
                    "signal",
                    "files",
                    "exit_code",
                ],
            ),
            ("cred", &["uid", "gid", "euid", "egid"]),
            ("nsproxy", &["mnt_ns", "net_ns"]),
            ("mnt_namespace", &["ns.inum"]),
            ("net", &["ns.inum"]),
            ("pid_namespace", &["ns.inum"]),
            ("pid", &["level", "numbers"]),
            ("upid", &["ns"]),
            ("mm_struct", &["arg_start", "arg_end"]),
            ("signal_struct", &["tty", "live", "live.counter"]),
            ("tty_struct", &["name"]),
            ("files_struct", &["fdt"]),
            ("fdtable", &["max_fds", "fd"]),
            ("file", &["private_data"]),
            ("socket", &["sk"]),
            (
                "sock",
                &[
                    "__sk_common.skc_family",
                    "__sk_common.skc_rcv_saddr",
                    "__sk_common.skc_num",
                    "__sk_common.skc_v6_rcv_saddr",
                ],
            ),
            ("linux_binprm", &["filename"]),
        ];
        for (ty, members) in wanted {
            for m in *members {
                let Some(want) = reference.offset(ty, m) else {
                    // Config-dependent members (e.g. loginuid without CONFIG_AUDIT).
                    eprintln!("{ty}.{m}: absent in this kernel");
                    assert!(btf.resolve(ty, m).is_err());
                    continue;
                };
                let got = btf.member_offset(ty, m).unwrap();
                eprintln!("{ty}.{m} = {got}");
                assert_eq!(got, want, "{ty}.{m}");
                assert!(btf.resolve(ty, m).is_ok());
            }
        }
        // Hand-checked nesting: sock_common's skc_num sits in anonymous union/struct.
        assert_eq!(
            btf.member_offset("sock", "__sk_common.skc_num").unwrap(),
            btf.member_offset("sock_common", "skc_num").unwrap()
        );
        assert_eq!(
            btf.type_size("upid").unwrap(),
            reference.types[&reference.first["upid"]].size
        );

        // Sweep: every named member of every first-of-name struct/union.
        let (mut checked, mut bitfields) = (0, 0);
        for (name, &id) in &reference.first {
            let t = &reference.types[&id];
            assert_eq!(btf.type_size(name).unwrap(), t.size, "size of {name}");
            for (m, _, off, bf) in &t.members {
                if m == "(anon)" {
                    continue;
                }
                match btf.member_offset(name, m) {
                    Err(BtfError::Bitfield { .. }) => {
                        assert!(*bf != 0 || off % 8 != 0, "{name}.{m} wrongly a bitfield");
                        bitfields += 1;
                    }
                    Ok(got) => {
                        assert_eq!(*bf, 0, "{name}.{m} is a bitfield");
                        assert_eq!(u64::from(got) * 8, *off, "{name}.{m}");
                        checked += 1;
                    }
                    Err(e) => panic!("{name}.{m}: {e}"),
                }
            }
        }
        eprintln!(
            "sweep: {} structs/unions, {checked} member offsets and {bitfields} bitfields agree with bpftool",
            reference.first.len()
        );

        // Enum values: the cgroup subsystem indices the probes use, by hand, then
        // every value of every first-of-name enum.
        let mut ids: Vec<_> = reference.types.keys().copied().collect();
        ids.sort_unstable();
        let mut first_enum: HashMap<&str, u32> = HashMap::new();
        for id in ids {
            let t = &reference.types[&id];
            if (t.kind == "ENUM" || t.kind == "ENUM64") && t.name != "(anon)" {
                first_enum.entry(t.name.as_str()).or_insert(id);
            }
        }
        let subsys = &reference.types[&first_enum["cgroup_subsys_id"]];
        for name in [
            "memory_cgrp_id",
            "pids_cgrp_id",
            "cpu_cgrp_id",
            "CGROUP_SUBSYS_COUNT",
        ] {
            let (_, want) = subsys.values.iter().find(|(n, _)| n == name).unwrap();
            let got = btf.enum_value("cgroup_subsys_id", name).unwrap();
            eprintln!("cgroup_subsys_id.{name} = {got}");
            assert_eq!(got.to_string(), *want, "{name}");
        }
        let mut values = 0;
        for (name, id) in &first_enum {
            let t = &reference.types[id];
            for (v, want) in &t.values {
                // bpftool: "5", "-1", "16ULL", "-1LL"; duplicates keep the first.
                if t.values.iter().find(|(n, _)| n == v).map(|(_, w)| w) != Some(want) {
                    continue;
                }
                let want = want.trim_end_matches("ULL").trim_end_matches("LL");
                let got = btf.enum_value(name, v).unwrap();
                let got = if !t.signed && got < 0 {
                    (got as u64).to_string()
                } else {
                    got.to_string()
                };
                assert_eq!(got, want, "{name}.{v}");
                values += 1;
            }
        }
        eprintln!(
            "sweep: {} enums, {values} values agree with bpftool",
            first_enum.len()
        );
    }

    /// The executor's authority degrades part by part: a kernel without
    /// `task_struct.seccomp.mode` (CONFIG_SECCOMP off: an empty struct) or
    /// without the uid map layout the probes know still has its capabilities,
    /// no_new_privs and user namespace read; sets that are not adjacent are
    /// read one by one.
    #[test]
    fn authority_parts_the_kernel_lacks_stay_unread() {
        use tracer_common::*;
        fn kernel(caps_apart: bool, uid_map: bool) -> Btf {
            let mut e = Enc::new();
            let u32t = e.int("unsigned int", 4, 32);
            let u64t = e.int("long unsigned int", 8, 64);
            let cap = e.strukt("", 8, &[("val", u64t, 0)]);
            let ptr = e.modifier(kind::PTR, "", 0);
            let bset = if caps_apart { 832 } else { 576 };
            e.strukt(
                "cred",
                112,
                &[
                    ("uid", u32t, 64),
                    ("cap_inheritable", cap, 384),
                    ("cap_permitted", cap, 448),
                    ("cap_effective", cap, 512),
                    ("cap_bset", cap, bset),
                    ("cap_ambient", cap, 640),
                    ("user_ns", ptr, 704),
                ],
            );
            let seccomp = e.strukt("seccomp", 0, &[]);
            e.strukt(
                "task_struct",
                16,
                &[("atomic_flags", u64t, 0), ("seccomp", seccomp, 64)],
            );
            let ns = e.strukt("ns_common", 8, &[("inum", u32t, 32)]);
            let mut members = vec![("level", u32t, 0), ("owner", u32t, 32), ("ns", ns, 64)];
            if uid_map {
                let ext = e.strukt(
                    "uid_gid_extent",
                    12,
                    &[
                        ("first", u32t, 0),
                        ("lower_first", u32t, 32),
                        ("count", u32t, 64),
                    ],
                );
                let arr = e.raw("", kind::ARRAY, false, 0, 0, &[ext, u32t, 5]);
                let map = e.strukt(
                    "uid_gid_map",
                    64,
                    &[("extent", arr, 0), ("nr_extents", u32t, 480)],
                );
                members.push(("uid_map", map, 128));
            }
            e.strukt("user_namespace", 80, &members);
            Btf::parse(&e.build(24)).expect("synthetic BTF")
        }
        let mut o = Offsets::default();
        crate::probes::offsets::authority(&kernel(false, true), &mut o);
        assert_eq!(
            o.authority,
            READ_CAPS | READ_CAPS_ADJACENT | READ_NNP | READ_USERNS | READ_USERNS_UID
        );
        assert_eq!((o.cred_cap_inheritable, o.cred_cap_ambient), (48, 80));
        assert_eq!(
            (o.cred_user_ns, o.user_ns_inum, o.user_ns_owner),
            (88, 12, 4)
        );
        assert_eq!((o.user_ns_uid_extent, o.user_ns_uid_nr), (16, 76));
        assert_eq!(o.task_seccomp_mode, 0, "no seccomp.mode: unread");

        let mut o = Offsets::default();
        crate::probes::offsets::authority(&kernel(true, false), &mut o);
        assert_eq!(o.authority, READ_CAPS | READ_NNP | READ_USERNS);
        assert_eq!(o.cred_cap_bset, 104);
    }
}
