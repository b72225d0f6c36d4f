//! Rendering a captured panic value as the runtime prints it after `panic: `.
//!
//! The runtime (runtime/panic.go `printpanicval`, runtime/error.go `printanycustomtype`, and
//! `preprintpanics`, which replaces errors by their `Error()` text) prints basic values
//! directly, named basic types as `T(v)`, errors as their message, and anything else as
//! `(T) 0xADDR`. gtrace cannot call `Error()` in a process that may be gone, so the message
//! of every error type the runtime and the standard library raise for panics is rebuilt from
//! the captured bytes: `*errors.errorString`, `*fmt.wrapError(s)`, `runtime.Error`s
//! (`errorString`, `plainError`, `errorAddressString`, `boundsError`, `*TypeAssertionError`).
//!
//! Type names come from the binary file itself: `abi.Type.Str` is a `nameOff` into the
//! module's type data (`moduledata.types`), so no process memory is needed.

use tracer_common::panic::{PanicStart, STRING_BYTES, VALUE_BYTES};

use crate::gobin::{GoBinary, layout::RuntimeLayout};

/// `abi.Kind` values (internal/abi/type.go; unchanged since Go 1.0's reflect numbering).
mod kind {
    pub(super) const BOOL: u8 = 1;
    pub(super) const INT: u8 = 2;
    pub(super) const INT8: u8 = 3;
    pub(super) const INT16: u8 = 4;
    pub(super) const INT32: u8 = 5;
    pub(super) const INT64: u8 = 6;
    pub(super) const UINT: u8 = 7;
    pub(super) const UINT8: u8 = 8;
    pub(super) const UINT16: u8 = 9;
    pub(super) const UINT32: u8 = 10;
    pub(super) const UINT64: u8 = 11;
    pub(super) const UINTPTR: u8 = 12;
    pub(super) const FLOAT32: u8 = 13;
    pub(super) const FLOAT64: u8 = 14;
    pub(super) const STRING: u8 = 24;
    /// Low bits of `Kind_` holding the kind (`abi.KindMask`).
    pub(super) const MASK: u8 = 31;
}
/// `abi.TFlagExtraStar`: the name has an extra leading `*` to drop.
const TFLAG_EXTRA_STAR: u8 = 2;
/// Longest type name read.
const MAX_NAME: usize = 1024;

/// Reads type descriptors of one binary.
pub struct Types<'a> {
    bin: &'a GoBinary,
    layout: &'a RuntimeLayout,
    /// `moduledata.types` (link-time), when found.
    type_base: Option<u64>,
    /// Runtime address minus link-time address.
    bias: u64,
}

/// What is known about one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeInfo {
    /// The type's string as the runtime prints it (`main.point`, `*errors.errorString`).
    pub name: String,
    /// Its `abi.Kind`.
    pub kind: u8,
}

impl<'a> Types<'a> {
    /// Type reader for `bin` loaded with `bias` (runtime address minus link-time address).
    pub fn new(bin: &'a GoBinary, layout: &'a RuntimeLayout, bias: u64) -> Self {
        let type_base = bin.moduledata().and_then(|md| {
            bin.image()
                .read_ptr(md.addr.wrapping_add(u64::from(layout.moduledata.types)))
                .ok()
        });
        Self {
            bin,
            layout,
            type_base,
            bias,
        }
    }

    /// The type at runtime address `ptr`, if it lies in the binary.
    pub fn type_at(&self, ptr: u64) -> Option<TypeInfo> {
        if ptr == 0 {
            return None;
        }
        let t = ptr.wrapping_sub(self.bias);
        let tl = &self.layout.type_;
        let bytes = self.bin.read_vaddr(t, tl.size as usize).ok()?;
        let kind = *bytes.get(tl.kind as usize)? & kind::MASK;
        let tflag = *bytes.get(tl.tflag as usize)?;
        let off = tl.str_ as usize;
        let name_off = i32::from_le_bytes(bytes.get(off..off + 4)?.try_into().ok()?);
        let name_addr = self.type_base?.wrapping_add_signed(i64::from(name_off));
        let mut name = self.read_name(name_addr)?;
        if tflag & TFLAG_EXTRA_STAR != 0 && name.starts_with('*') {
            name.remove(0);
        }
        Some(TypeInfo { name, kind })
    }

    /// Up to `len` bytes at runtime address `addr` read from the binary file, when the
    /// address lies in one of its file-backed segments (bss is not).
    pub fn file_bytes(&self, addr: u64, len: usize) -> Option<&'a [u8]> {
        if addr == 0 {
            return None;
        }
        self.bin
            .image()
            .read_vaddr_upto(addr.wrapping_sub(self.bias), len)
            .ok()
            .filter(|b| !b.is_empty())
    }

    /// An `abi.Name`: one flag byte, a varint length, the bytes.
    fn read_name(&self, addr: u64) -> Option<String> {
        let head = self.bin.image().read_vaddr_upto(addr, 11).ok()?;
        let mut len = 0usize;
        let mut shift = 0;
        let mut i = 1;
        loop {
            let b = *head.get(i)?;
            len |= usize::from(b & 0x7f) << shift;
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 28 {
                return None;
            }
        }
        let len = len.min(MAX_NAME);
        let bytes = self.bin.read_vaddr(addr.wrapping_add(i as u64), len).ok()?;
        Some(String::from_utf8_lossy(bytes).into_owned())
    }
}

/// A rendered panic value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// What the runtime prints after `panic: `.
    pub text: String,
    /// The dynamic type's name (`string`, `*errors.errorString`, `?` when unknown).
    pub type_name: String,
    /// False when gtrace could only approximate the runtime's text (an unknown error type,
    /// a truncated string).
    pub exact: bool,
}

/// Captured bytes of one value.
struct Captured<'a> {
    value: &'a [u8],
    string: Option<(&'a [u8], u64)>,
    data_ptr: u64,
}

impl Captured<'_> {
    fn u64_at(&self, off: usize) -> Option<u64> {
        Some(u64::from_le_bytes(
            self.value.get(off..off + 8)?.try_into().ok()?,
        ))
    }

    fn str(&self) -> Option<(String, bool)> {
        let (bytes, full) = self.string?;
        Some((
            String::from_utf8_lossy(bytes).into_owned(),
            bytes.len() as u64 == full,
        ))
    }
}

/// Renders the value captured by a `gopanic` event.
///
/// The kernel cannot fault pages in for a probe: bytes on a page of the binary the process
/// never touched (a static error value, a string literal) fail to read there. Those are
/// read from the binary file instead, which holds them unchanged when they are read-only
/// data or statically initialized.
pub fn render(types: &Types<'_>, e: &PanicStart) -> Rendered {
    let mut value = e.value.get(..e.value_len as usize).unwrap_or(&[]);
    if value.len() < 16
        && let Some(v) = types.file_bytes(e.data_ptr, VALUE_BYTES)
    {
        value = v;
    }
    let mut string = (e.string_len != u32::MAX)
        .then(|| e.string.get(..e.string_len as usize))
        .flatten()
        .map(|s| (s, e.string_full_len));
    if string.is_none()
        && let (Some(ptr), Some(len)) = (le_u64(value, 0), le_u64(value, 8))
        && len <= 1 << 30
    {
        let n = usize::try_from(len)
            .unwrap_or(STRING_BYTES)
            .min(STRING_BYTES);
        string = types.file_bytes(ptr, n).map(|s| (s, len));
    }
    let c = Captured {
        value,
        string,
        data_ptr: e.data_ptr,
    };
    render_captured(types, e.type_ptr, &c)
}

/// The message of a `throw` / `fatal` event (`fatal error: MESSAGE`).
pub fn render_throw(types: &Types<'_>, e: &PanicStart) -> Rendered {
    let value = e.value.get(..e.value_len as usize).unwrap_or(&[]);
    let mut string = (e.string_len != u32::MAX)
        .then(|| e.string.get(..e.string_len as usize))
        .flatten();
    if string.is_none()
        && let Some(ptr) = le_u64(value, 0)
    {
        let n = usize::try_from(e.string_full_len)
            .unwrap_or(STRING_BYTES)
            .min(STRING_BYTES);
        string = types.file_bytes(ptr, n);
    }
    let text = string.map(|s| String::from_utf8_lossy(s).into_owned());
    Rendered {
        exact: text
            .as_ref()
            .is_some_and(|t| t.len() as u64 == e.string_full_len),
        text: text.unwrap_or_else(|| "?".into()),
        type_name: "fatal error".into(),
    }
}

fn render_captured(types: &Types<'_>, type_ptr: u64, c: &Captured<'_>) -> Rendered {
    if type_ptr == 0 {
        return Rendered {
            text: "nil".into(),
            type_name: "nil".into(),
            exact: true,
        };
    }
    let Some(t) = types.type_at(type_ptr) else {
        return Rendered {
            text: format!("(?) {:#x}", c.data_ptr),
            type_name: "?".into(),
            exact: false,
        };
    };
    let (text, exact) = text_of(types, &t, c).unwrap_or_else(|| (unreadable(&t, c), false));
    Rendered {
        text,
        type_name: t.name,
        exact,
    }
}

fn unreadable(t: &TypeInfo, c: &Captured<'_>) -> String {
    format!("({}) {:#x}", t.name, c.data_ptr)
}

/// The runtime's text for a value of type `t`; `None` when the bytes needed are missing.
fn text_of(types: &Types<'_>, t: &TypeInfo, c: &Captured<'_>) -> Option<(String, bool)> {
    let string_msg = |prefix: &str| c.str().map(|(s, ok)| (format!("{prefix}{s}"), ok));
    match t.name.as_str() {
        "*errors.errorString" | "*fmt.wrapError" | "*fmt.wrapErrors" | "runtime.plainError" => {
            return string_msg("");
        }
        "runtime.errorString" | "runtime.errorAddressString" => {
            return string_msg("runtime error: ");
        }
        "runtime.boundsError" => return bounds_error(c.value).map(|s| (s, true)),
        "*runtime.TypeAssertionError" => return type_assertion(types, c),
        _ => {}
    }
    let basic = |k: u8| -> Option<String> {
        let v = c.value;
        let le = |n: usize| -> Option<u64> {
            let mut b = [0u8; 8];
            b[..n].copy_from_slice(v.get(..n)?);
            Some(u64::from_le_bytes(b))
        };
        Some(match k {
            kind::BOOL => (le(1)? != 0).to_string(),
            kind::INT | kind::INT64 => (le(8)? as i64).to_string(),
            kind::INT8 => i64::from(le(1)? as u8 as i8).to_string(),
            kind::INT16 => i64::from(le(2)? as u16 as i16).to_string(),
            kind::INT32 => i64::from(le(4)? as u32 as i32).to_string(),
            kind::UINT | kind::UINT64 | kind::UINTPTR => le(8)?.to_string(),
            kind::UINT8 => le(1)?.to_string(),
            kind::UINT16 => le(2)?.to_string(),
            kind::UINT32 => le(4)?.to_string(),
            kind::FLOAT64 => go_float(f64::from_bits(le(8)?)),
            kind::FLOAT32 => go_float(f64::from(f32::from_bits(le(4)? as u32))),
            _ => return None,
        })
    };
    let builtin = !t.name.contains('.');
    if t.kind == kind::STRING {
        let (s, ok) = c.str()?;
        let s = s.replace('\n', "\n\t");
        return Some(if builtin {
            (s, ok)
        } else {
            (format!("{}(\"{s}\")", t.name), ok)
        });
    }
    if let Some(v) = basic(t.kind) {
        return Some(if builtin {
            (v, true)
        } else {
            (format!("{}({v})", t.name), true)
        });
    }
    // Errors and Stringers of other types: their method cannot run here.
    Some((unreadable(t, c), false))
}

/// `runtime.boundsError{x int64, y int, signed bool, code uint8}.Error()`.
fn bounds_error(v: &[u8]) -> Option<String> {
    const FMT: [&str; 9] = [
        "index out of range [%x] with length %y",
        "slice bounds out of range [:%x] with length %y",
        "slice bounds out of range [:%x] with capacity %y",
        "slice bounds out of range [%x:%y]",
        "slice bounds out of range [::%x] with length %y",
        "slice bounds out of range [::%x] with capacity %y",
        "slice bounds out of range [:%x:%y]",
        "slice bounds out of range [%x:%y:]",
        "cannot convert slice with length %y to array or pointer to array with length %x",
    ];
    const NEG: [&str; 9] = [
        "index out of range [%x]",
        "slice bounds out of range [:%x]",
        "slice bounds out of range [:%x]",
        "slice bounds out of range [%x:]",
        "slice bounds out of range [::%x]",
        "slice bounds out of range [::%x]",
        "slice bounds out of range [:%x:]",
        "slice bounds out of range [%x::]",
        "",
    ];
    let x = i64::from_le_bytes(v.get(0..8)?.try_into().ok()?);
    let y = i64::from_le_bytes(v.get(8..16)?.try_into().ok()?);
    let signed = *v.get(16)? != 0;
    let code = usize::from(*v.get(17)?);
    let fmt = if signed && x < 0 {
        NEG.get(code)?
    } else {
        FMT.get(code)?
    };
    let xs = if signed {
        x.to_string()
    } else {
        (x as u64).to_string()
    };
    Some(format!(
        "runtime error: {}",
        fmt.replace("%x", &xs).replace("%y", &y.to_string())
    ))
}

/// *runtime.TypeAssertionError{_interface, concrete, asserted *_type; missingMethod string}.
fn type_assertion(types: &Types<'_>, c: &Captured<'_>) -> Option<(String, bool)> {
    let name = |p: u64| types.type_at(p).map(|t| t.name);
    let inter = match c.u64_at(0)? {
        0 => "interface".to_string(),
        p => name(p)?,
    };
    let asserted = name(c.u64_at(16)?)?;
    let missing_len = c.u64_at(32)?;
    Some(match c.u64_at(8)? {
        0 => (
            format!("interface conversion: {inter} is nil, not {asserted}"),
            true,
        ),
        p if missing_len == 0 => {
            let concrete = name(p)?;
            // Same-named types from different packages get their paths printed by the
            // runtime; gtrace does not read package paths (approximate then).
            let exact = concrete != asserted;
            (
                format!("interface conversion: {inter} is {concrete}, not {asserted}"),
                exact,
            )
        }
        p => (
            format!(
                "interface conversion: {} is not {asserted}: missing method ?",
                name(p)?
            ),
            false,
        ),
    })
}

fn le_u64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// A float as the runtime's `print` writes it: `+1.500000e+000`, `NaN`, `+Inf`.
fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let s = format!("{v:+.6e}");
    // Rust writes `+1.500000e0`; Go pads the exponent to a sign and three digits.
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = exp.parse().unwrap_or(0);
    let sign = if e < 0 { '-' } else { '+' };
    format!("{mant}e{sign}{:03}", e.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_messages() {
        let mut v = [0u8; 18];
        v[0..8].copy_from_slice(&5i64.to_le_bytes());
        v[8..16].copy_from_slice(&3i64.to_le_bytes());
        v[16] = 1;
        assert_eq!(
            bounds_error(&v).unwrap(),
            "runtime error: index out of range [5] with length 3"
        );
        v[0..8].copy_from_slice(&(-1i64).to_le_bytes());
        assert_eq!(
            bounds_error(&v).unwrap(),
            "runtime error: index out of range [-1]"
        );
        v[17] = 3;
        v[16] = 0;
        v[0..8].copy_from_slice(&4i64.to_le_bytes());
        assert_eq!(
            bounds_error(&v).unwrap(),
            "runtime error: slice bounds out of range [4:3]"
        );
        v[17] = 200;
        assert_eq!(bounds_error(&v), None);
    }

    #[test]
    fn floats_as_go_prints_them() {
        assert_eq!(go_float(1.5), "+1.500000e+000");
        assert_eq!(go_float(-0.001), "-1.000000e-003");
        assert_eq!(go_float(f64::NAN), "NaN");
    }
}
