//! The names of the running kernel's `enum skb_drop_reason`, read from its BTF.
//!
//! The numbering changes between kernels (6.3 inserted SKB_CONSUMED before NOT_SPECIFIED, and
//! new reasons land in the middle of the list), so a drop's reason number means something only
//! against the enum of the kernel that produced it: never a table compiled in.
//!
//! aya-obj parses BTF but keeps enum variants crate-private, so this is a small checked walk
//! over the BTF type section (the kernel's Documentation/bpf/btf.rst, "2. BTF Type and String
//! Encoding"): it skips every type by its kind's trailing size and decodes only `BTF_KIND_ENUM`
//! and `BTF_KIND_ENUM64` entries named `skb_drop_reason`.

use std::{collections::HashMap, path::Path};

/// Where the kernel publishes its own BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Why the reason names could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BtfError {
    /// The file could not be read.
    #[error("reading {path}: {detail} (the kernel needs CONFIG_DEBUG_INFO_BTF)")]
    Read {
        /// The path.
        path: String,
        /// The IO error.
        detail: String,
    },
    /// The bytes are not BTF, or a type record runs past the end.
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
    /// A kind number this reader does not know (a newer kernel): the types after it can't be
    /// walked.
    #[error("BTF type kind {0} is unknown to this reader")]
    UnknownKind(u32),
    /// No `enum skb_drop_reason` (kernels before 5.17 have none).
    #[error("the kernel's BTF has no enum skb_drop_reason (kernel older than 5.17?)")]
    NoEnum,
}

/// Reason number -> name without the `SKB_DROP_REASON_` prefix (e.g. 12 -> `NETFILTER_DROP`),
/// as the running kernel numbers them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropReasons {
    names: HashMap<u32, String>,
}

const PREFIX: &str = "SKB_DROP_REASON_";

impl DropReasons {
    /// Reads the running kernel's enum from [`VMLINUX_BTF`].
    pub fn from_kernel() -> Result<Self, BtfError> {
        Self::from_file(Path::new(VMLINUX_BTF))
    }

    /// Reads the enum from a raw BTF file.
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let data = std::fs::read(path).map_err(|e| BtfError::Read {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        Self::from_btf(&data)
    }

    /// Finds `enum skb_drop_reason` in raw BTF bytes.
    pub fn from_btf(data: &[u8]) -> Result<Self, BtfError> {
        let variants = enum_variants(data, "skb_drop_reason")?.ok_or(BtfError::NoEnum)?;
        let names = variants
            .into_iter()
            .filter_map(|(name, value)| {
                let v = u32::try_from(value).ok()?;
                // SKB_DROP_REASON_MAX and the subsystem mask are bounds, not reasons.
                if name == "SKB_DROP_REASON_MAX" || name == "SKB_DROP_REASON_SUBSYS_MASK" {
                    return None;
                }
                let short = name.strip_prefix(PREFIX).unwrap_or(&name).to_string();
                Some((v, short))
            })
            .collect();
        Ok(Self { names })
    }

    /// Builds the table from `(number, full kernel name)` pairs (tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (u32, &'a str)>) -> Self {
        Self {
            names: pairs
                .into_iter()
                .map(|(v, n)| (v, n.strip_prefix(PREFIX).unwrap_or(n).to_string()))
                .collect(),
        }
    }

    /// The name of `reason`, e.g. `NO_SOCKET`; None for a number this kernel does not name
    /// (e.g. a subsystem reason: those carry the subsystem in the high 16 bits).
    pub fn name(&self, reason: u32) -> Option<&str> {
        self.names.get(&reason).map(String::as_str)
    }

    /// The number the kernel gives `short` (a name without the prefix, or SKB_CONSUMED /
    /// SKB_NOT_DROPPED_YET as they are).
    pub fn number(&self, short: &str) -> Option<u32> {
        self.names
            .iter()
            .find(|(_, n)| n.as_str() == short)
            .map(|(v, _)| *v)
    }

    /// How many reasons the kernel names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

// BTF kinds (include/uapi/linux/btf.h).
const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

const BTF_MAGIC: u16 = 0xeb9f;
/// Bytes of `struct btf_type` (name_off, info, size/type).
const TYPE_LEN: usize = 12;

/// The variants `(name, value)` of the enum called `wanted`, or None when there is none.
fn enum_variants(data: &[u8], wanted: &str) -> Result<Option<Vec<(String, u64)>>, BtfError> {
    let u16_at = |off: usize| -> Result<u16, BtfError> {
        data.get(off..off + 2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
            .ok_or(BtfError::Malformed("truncated"))
    };
    let u32_at = |off: usize| -> Result<u32, BtfError> {
        data.get(off..off + 4)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(BtfError::Malformed("truncated"))
    };
    // struct btf_header: magic u16, version u8, flags u8, hdr_len u32, type_off, type_len,
    // str_off, str_len (offsets from the end of the header). Native byte order: this is the
    // running kernel's own BTF.
    if u16_at(0)? != BTF_MAGIC {
        return Err(BtfError::Malformed("bad magic (not native-endian BTF)"));
    }
    let hdr_len = u32_at(4)? as usize;
    let (type_off, type_len) = (u32_at(8)? as usize, u32_at(12)? as usize);
    let (str_off, str_len) = (u32_at(16)? as usize, u32_at(20)? as usize);
    let types = hdr_len + type_off;
    let types_end = types + type_len;
    let strings = data
        .get(hdr_len + str_off..hdr_len + str_off + str_len)
        .ok_or(BtfError::Malformed("string section out of bounds"))?;
    if types_end > data.len() {
        return Err(BtfError::Malformed("type section out of bounds"));
    }
    let name_at = |off: u32| -> Result<&str, BtfError> {
        let s = strings
            .get(off as usize..)
            .ok_or(BtfError::Malformed("name offset out of bounds"))?;
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        std::str::from_utf8(&s[..end]).map_err(|_| BtfError::Malformed("name is not UTF-8"))
    };
    let mut pos = types;
    while pos + TYPE_LEN <= types_end {
        let name_off = u32_at(pos)?;
        let info = u32_at(pos + 4)?;
        let vlen = (info & 0xffff) as usize;
        let kind = (info >> 24) & 0x1f;
        let body = pos + TYPE_LEN;
        let extra = match kind {
            KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
            KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
            | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
            KIND_ARRAY => 12,
            KIND_STRUCT | KIND_UNION | KIND_DATASEC => 12 * vlen,
            KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
            KIND_ENUM64 => 12 * vlen,
            other => return Err(BtfError::UnknownKind(other)),
        };
        if body + extra > types_end {
            return Err(BtfError::Malformed("type record runs past the section"));
        }
        if (kind == KIND_ENUM || kind == KIND_ENUM64) && name_at(name_off)? == wanted {
            let mut out = Vec::with_capacity(vlen);
            for i in 0..vlen {
                if kind == KIND_ENUM {
                    // struct btf_enum { name_off u32, val s32 }
                    let at = body + 8 * i;
                    let value = u32_at(at + 4)? as u64;
                    out.push((name_at(u32_at(at)?)?.to_string(), value));
                } else {
                    // struct btf_enum64 { name_off u32, val_lo32 u32, val_hi32 u32 }
                    let at = body + 12 * i;
                    let value = u32_at(at + 4)? as u64 | (u32_at(at + 8)? as u64) << 32;
                    out.push((name_at(u32_at(at)?)?.to_string(), value));
                }
            }
            return Ok(Some(out));
        }
        pos = body + extra;
    }
    Ok(None)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A BTF blob with an int, a struct of two members, and `enum NAME { variants }`.
    pub(crate) fn btf_with_enum(name: &str, variants: &[(&str, u32)]) -> Vec<u8> {
        let mut strings = vec![0u8];
        let mut add = |s: &str| {
            let off = strings.len() as u32;
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
            off
        };
        let int_name = add("int");
        let st_name = add("pair");
        let enum_name = add(name);
        let var_names: Vec<u32> = variants.iter().map(|(n, _)| add(n)).collect();
        let mut types = Vec::new();
        let mut ty = |name: u32, kind: u32, vlen: u32, size: u32| {
            types.extend_from_slice(&name.to_ne_bytes());
            types.extend_from_slice(&((kind << 24) | vlen).to_ne_bytes());
            types.extend_from_slice(&size.to_ne_bytes());
        };
        ty(int_name, KIND_INT, 0, 4);
        let mut int_extra = 32u32.to_ne_bytes().to_vec();
        ty(st_name, KIND_STRUCT, 2, 8);
        let mut members = Vec::new();
        for off in [0u32, 32] {
            members.extend_from_slice(&int_name.to_ne_bytes());
            members.extend_from_slice(&1u32.to_ne_bytes());
            members.extend_from_slice(&off.to_ne_bytes());
        }
        ty(enum_name, KIND_ENUM, variants.len() as u32, 4);
        // Reassemble in order: int + its extra, struct + members, enum + variants.
        let mut ordered = types[..12].to_vec();
        ordered.append(&mut int_extra);
        ordered.extend_from_slice(&types[12..24]);
        ordered.extend_from_slice(&members);
        ordered.extend_from_slice(&types[24..36]);
        for ((_, v), n) in variants.iter().zip(&var_names) {
            ordered.extend_from_slice(&n.to_ne_bytes());
            ordered.extend_from_slice(&v.to_ne_bytes());
        }
        let mut out = Vec::new();
        out.extend_from_slice(&BTF_MAGIC.to_ne_bytes());
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&24u32.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&(ordered.len() as u32).to_ne_bytes());
        out.extend_from_slice(&(ordered.len() as u32).to_ne_bytes());
        out.extend_from_slice(&(strings.len() as u32).to_ne_bytes());
        out.extend_from_slice(&ordered);
        out.extend_from_slice(&strings);
        out
    }

    #[test]
    fn reads_the_enum_after_other_kinds() {
        let btf = btf_with_enum(
            "skb_drop_reason",
            &[
                ("SKB_NOT_DROPPED_YET", 0),
                ("SKB_CONSUMED", 1),
                ("SKB_DROP_REASON_NOT_SPECIFIED", 2),
                ("SKB_DROP_REASON_NO_SOCKET", 3),
                ("SKB_DROP_REASON_MAX", 4),
            ],
        );
        let r = DropReasons::from_btf(&btf).unwrap();
        assert_eq!(r.name(3), Some("NO_SOCKET"));
        assert_eq!(r.name(1), Some("SKB_CONSUMED"));
        assert_eq!(r.number("NOT_SPECIFIED"), Some(2));
        assert_eq!(r.number("SKB_CONSUMED"), Some(1));
        // The bound is not a reason.
        assert_eq!(r.name(4), None);
        assert_eq!(r.len(), 4);
    }

    #[test]
    fn another_kernel_numbers_differently() {
        // 6.1: no SKB_CONSUMED, NOT_SPECIFIED is 1.
        let btf = btf_with_enum(
            "skb_drop_reason",
            &[
                ("SKB_NOT_DROPPED_YET", 0),
                ("SKB_DROP_REASON_NOT_SPECIFIED", 1),
                ("SKB_DROP_REASON_NO_SOCKET", 2),
            ],
        );
        let r = DropReasons::from_btf(&btf).unwrap();
        assert_eq!(r.name(2), Some("NO_SOCKET"));
        assert_eq!(r.number("SKB_CONSUMED"), None);
    }

    #[test]
    fn missing_enum_and_bad_bytes_are_errors() {
        let btf = btf_with_enum("other", &[("A", 0)]);
        assert_eq!(DropReasons::from_btf(&btf), Err(BtfError::NoEnum));
        assert!(matches!(
            DropReasons::from_btf(&[0u8; 30]),
            Err(BtfError::Malformed(_))
        ));
        let mut cut = btf_with_enum("skb_drop_reason", &[("A", 0)]);
        cut.truncate(40);
        assert!(DropReasons::from_btf(&cut).is_err());
    }

    /// The running kernel's own BTF, where it has one (every kernel this agent supports for
    /// drops does): NO_SOCKET is there whatever its number.
    #[test]
    fn reads_the_running_kernel() {
        if !Path::new(VMLINUX_BTF).exists() {
            return;
        }
        let r = DropReasons::from_kernel().unwrap();
        let n = r.number("NO_SOCKET").expect("NO_SOCKET");
        assert_eq!(r.name(n), Some("NO_SOCKET"));
        assert!(r.len() > 10);
    }
}
