//! Go's build information block (`.go.buildinfo`): the toolchain version and the module /
//! build-settings text that `go version -m` prints.
//!
//! Layout (Go's `debug/buildinfo` and `cmd/link`): a 32-byte header starting with the magic
//! `"\xff Go buildinf:"`, then the pointer size (byte 14) and flags (byte 15: bit 0 big-endian,
//! bit 1 "inline strings"). Since Go 1.18 the two strings follow the header inline, each
//! prefixed with its uvarint length; older binaries store two pointers to Go string headers at
//! offset 16 instead, which the caller must follow through the file's segments. The modinfo
//! string is wrapped in 16 sentinel bytes on each side.

use serde::Serialize;

use super::{
    error::{GobinError, Result},
    version::GoVersion,
};

/// The 14-byte magic that starts the block.
pub const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
/// Strings are bounded so a corrupt length cannot make us allocate without limit.
const MAX_STRING: u64 = 1 << 20;

/// The two strings of the block, or where to find them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawBuildInfo {
    /// Go 1.18+: the strings themselves (modinfo still wrapped in sentinels).
    Inline {
        /// The runtime version, e.g. `go1.21.13`.
        version: String,
        /// The wrapped modinfo text (the sentinels are not UTF-8).
        modinfo: Vec<u8>,
    },
    /// Before 1.18: addresses of the Go string headers `{data, len}` of both strings.
    Pointers {
        /// Pointer size in bytes (4 or 8).
        ptr_size: u8,
        /// Address of the version string header.
        version_at: u64,
        /// Address of the modinfo string header.
        modinfo_at: u64,
    },
}

/// Decodes the block starting at its magic.
pub fn decode_block(block: &[u8]) -> Result<RawBuildInfo> {
    let bad = GobinError::BadBuildInfo;
    if block.len() < 32 || !block.starts_with(MAGIC) {
        return Err(bad("the block does not start with the build info magic"));
    }
    let ptr_size = block[14];
    let flags = block[15];
    if flags & 1 != 0 {
        return Err(bad("big-endian build info is not supported"));
    }
    if flags & 2 != 0 {
        let mut rest = &block[32..];
        let version = String::from_utf8_lossy(read_varint_bytes(&mut rest)?).into_owned();
        let modinfo = read_varint_bytes(&mut rest)?.to_vec();
        return Ok(RawBuildInfo::Inline { version, modinfo });
    }
    let read = |at: usize| -> Result<u64> {
        match ptr_size {
            8 => Ok(u64::from_le_bytes(
                block[at..at + 8].try_into().expect("8 bytes"),
            )),
            4 => Ok(u64::from(u32::from_le_bytes(
                block[at..at + 4].try_into().expect("4 bytes"),
            ))),
            _ => Err(bad("the pointer size is neither 4 nor 8")),
        }
    };
    Ok(RawBuildInfo::Pointers {
        ptr_size,
        version_at: read(16)?,
        modinfo_at: read(16 + usize::from(ptr_size))?,
    })
}

/// Reads an unsigned LEB128 (Go `binary.Uvarint`) from the front of `b`.
pub fn read_uvarint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        if i == 9 && byte > 1 {
            return None;
        }
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *b = &b[i + 1..];
            return Some(v);
        }
    }
    None
}

fn read_varint_bytes<'a>(b: &mut &'a [u8]) -> Result<&'a [u8]> {
    let bad = GobinError::BadBuildInfo;
    let len = read_uvarint(b).ok_or(bad("a string length is not a valid varint"))?;
    if len > MAX_STRING || len > b.len() as u64 {
        return Err(bad("a string is longer than the block"));
    }
    let (s, rest) = b.split_at(len as usize);
    *b = rest;
    Ok(s)
}

/// Limit for strings read through pointers (old format, `runtime.buildVersion`).
pub const MAX_POINTED_STRING: u64 = MAX_STRING;

/// A module line (`mod` / `dep`) of the modinfo text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Module {
    /// Module path.
    pub path: String,
    /// Version (`(devel)` for the main module built from a checkout).
    pub version: String,
    /// `h1:` checksum, if recorded.
    pub sum: Option<String>,
}

/// Build information of a Go binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildInfo {
    /// The runtime version string as stored (`go1.21.13`, `go1.22.1 X:loopvar`, `devel …`).
    pub go_version: String,
    /// The main package path (`path` line).
    pub path: Option<String>,
    /// The main module (`mod` line).
    pub main: Option<Module>,
    /// Dependencies (`dep` lines).
    pub deps: Vec<Module>,
    /// `build` settings in order (`-trimpath`→`true`, `CGO_ENABLED`, `GOARCH`, `vcs.*`, …).
    pub settings: Vec<(String, String)>,
}

impl BuildInfo {
    /// Parses the version and the (possibly sentinel-wrapped) modinfo bytes.
    pub fn parse(go_version: &str, modinfo: &[u8]) -> Self {
        let mut info = Self {
            go_version: go_version.to_owned(),
            path: None,
            main: None,
            deps: Vec::new(),
            settings: Vec::new(),
        };
        let bytes = if modinfo.len() >= 33 && modinfo[modinfo.len() - 17] == b'\n' {
            &modinfo[16..modinfo.len() - 16]
        } else {
            modinfo
        };
        let text = String::from_utf8_lossy(bytes);
        for line in text.lines() {
            let mut f = line.split('\t');
            let module = |f: &mut std::str::Split<'_, char>| -> Option<Module> {
                Some(Module {
                    path: f.next()?.to_owned(),
                    version: f.next().unwrap_or("").to_owned(),
                    sum: f.next().filter(|s| !s.is_empty()).map(str::to_owned),
                })
            };
            match f.next() {
                Some("path") => info.path = f.next().map(str::to_owned),
                Some("mod") => info.main = module(&mut f),
                Some("dep") => info.deps.extend(module(&mut f)),
                Some("build") => {
                    let kv = f.collect::<Vec<_>>().join("\t");
                    let (k, v) = split_setting(&kv);
                    info.settings.push((k, v));
                }
                _ => {}
            }
        }
        info
    }

    /// The parsed Go version, if the string is a release version.
    pub fn version(&self) -> Option<GoVersion> {
        self.go_version.parse().ok()
    }

    /// A `build` setting by key.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `GOARCH` (recorded since Go 1.18).
    pub fn goarch(&self) -> Option<&str> {
        self.setting("GOARCH")
    }

    /// True if built with `-trimpath`.
    pub fn trimpath(&self) -> bool {
        self.setting("-trimpath") == Some("true")
    }

    /// `CGO_ENABLED`, if recorded.
    pub fn cgo_enabled(&self) -> Option<bool> {
        self.setting("CGO_ENABLED").map(|v| v == "1")
    }

    /// The `vcs.*` settings (`vcs`, `vcs.revision`, `vcs.time`, `vcs.modified`).
    pub fn vcs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.settings
            .iter()
            .filter(|(k, _)| k == "vcs" || k.starts_with("vcs."))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Splits `key=value`, undoing Go's quoting of keys/values that contain special characters.
fn split_setting(kv: &str) -> (String, String) {
    let (k, v) = if let Some(rest) = kv.strip_prefix('"') {
        match unquote_prefix(rest) {
            Some((k, rest)) => (k, rest.strip_prefix('=').unwrap_or(rest).to_owned()),
            None => (kv.to_owned(), String::new()),
        }
    } else {
        match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.to_owned(), String::new()),
        }
    };
    let v = match v.strip_prefix('"').and_then(unquote_prefix) {
        Some((u, "")) => u,
        _ => v,
    };
    (k, v)
}

/// Decodes a Go-quoted string body (after the opening quote) up to its closing quote.
fn unquote_prefix(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                c => out.push(c),
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(version: &str, modinfo: &[u8]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend([8, 2]);
        b.resize(32, 0);
        for s in [version.as_bytes(), modinfo] {
            let mut n = s.len();
            loop {
                let byte = (n & 0x7f) as u8;
                n >>= 7;
                b.push(if n == 0 { byte } else { byte | 0x80 });
                if n == 0 {
                    break;
                }
            }
            b.extend(s);
        }
        b
    }

    const SENT: &str = "0123456789abcdef";

    #[test]
    fn inline_form() {
        let text = "path\texample.com/m\nmod\texample.com/m\t(devel)\t\ndep\tgolang.org/x/y\tv1.2.3\th1:abc=\nbuild\t-trimpath=true\nbuild\tCGO_ENABLED=0\nbuild\tGOARCH=amd64\nbuild\tvcs.revision=deadbeef\nbuild\t\"-ldflags\"=\"-s -w\"\n";
        let modinfo = format!("{SENT}{text}{SENT}").into_bytes();
        let raw = decode_block(&block("go1.22.10", &modinfo)).unwrap();
        let RawBuildInfo::Inline { version, modinfo } = raw else {
            panic!("inline")
        };
        let info = BuildInfo::parse(&version, &modinfo);
        assert_eq!(info.version(), Some(GoVersion::new(1, 22, 10)));
        assert_eq!(info.path.as_deref(), Some("example.com/m"));
        assert_eq!(info.main.as_ref().unwrap().version, "(devel)");
        assert_eq!(info.deps[0].sum.as_deref(), Some("h1:abc="));
        assert!(info.trimpath());
        assert_eq!(info.cgo_enabled(), Some(false));
        assert_eq!(info.goarch(), Some("amd64"));
        assert_eq!(info.setting("-ldflags"), Some("-s -w"));
        assert_eq!(info.vcs().count(), 1);
    }

    #[test]
    fn pointer_form() {
        let mut b = MAGIC.to_vec();
        b.extend([8, 0]);
        b.extend(0x1000u64.to_le_bytes());
        b.extend(0x2000u64.to_le_bytes());
        let raw = decode_block(&b).unwrap();
        assert_eq!(
            raw,
            RawBuildInfo::Pointers {
                ptr_size: 8,
                version_at: 0x1000,
                modinfo_at: 0x2000
            }
        );
    }

    #[test]
    fn malformed() {
        let good = block("go1.21.0", b"x");
        for n in 0..good.len() {
            // Truncations never panic; the inline ones before the end are errors.
            let r = decode_block(&good[..n]);
            assert!(r.is_err(), "{n}");
        }
        let mut huge = good[..32].to_vec();
        huge.extend([0xff; 10]);
        assert!(decode_block(&huge).is_err());
        let mut badptr = MAGIC.to_vec();
        badptr.extend([3, 0]);
        badptr.resize(40, 0);
        assert!(decode_block(&badptr).is_err());
    }

    #[test]
    fn uvarint() {
        let mut b: &[u8] = &[0xac, 0x02, 7];
        assert_eq!(read_uvarint(&mut b), Some(300));
        assert_eq!(b, &[7]);
        let mut b: &[u8] = &[0x80];
        assert_eq!(read_uvarint(&mut b), None);
    }
}
