//! Go release versions (`go1.21.13`, `go1.27rc1`, `devel …`) as gtrace compares them.
//!
//! Everything version-dependent (runtime layouts, wait-reason tables, probe signatures) is
//! keyed by [`GoVersion`]; parsing is strict so an odd string is reported, never guessed.

use std::{fmt, str::FromStr};

/// A Go release, e.g. `go1.23.9` → `{ major: 1, minor: 23, patch: 9 }`.
///
/// Pre-releases (`go1.27rc1`, `go1.26beta2`) keep `patch = 0` and their suffix in `pre`.
/// gtrace keys tables by (major, minor) only, so how a pre-release sorts against its release
/// does not matter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GoVersion {
    /// Always 1 so far.
    pub major: u32,
    /// The minor release: layouts change between minors.
    pub minor: u32,
    /// The patch release (0 for `go1.21` and pre-releases).
    pub patch: u32,
    /// `None` for a release; `Some("rc1")` and the like otherwise.
    pub pre: Option<String>,
}

/// Raised for a string that is not a Go release version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a Go release version (expected e.g. go1.23.9)")]
pub struct BadGoVersion(pub String);

impl GoVersion {
    /// A release version.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
            pre: None,
        }
    }

    /// True for this minor or a later one (`v.at_least(1, 23)`).
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl FromStr for GoVersion {
    type Err = BadGoVersion;

    /// Accepts `go1.21.13`, `1.21.13`, `go1.21`, `go1.27rc1`, and ignores a trailing
    /// ` X:…` experiment list or `-suffix` (`go1.22.1 X:loopvar`, `go1.21.0-bigcorp`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadGoVersion(s.to_owned());
        let t = s.trim();
        let t = t.strip_prefix("go").unwrap_or(t);
        let t = t.split([' ', '-', '+']).next().ok_or_else(bad)?;
        let split_num = |p: &str| -> (String, String) {
            let n: String = p.chars().take_while(char::is_ascii_digit).collect();
            let rest = p[n.len()..].to_owned();
            (n, rest)
        };
        let mut parts = t.split('.');
        let major: u32 = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let (minor, pre_minor) = split_num(parts.next().ok_or_else(bad)?);
        let minor: u32 = minor.parse().map_err(|_| bad())?;
        let (patch, pre) = match parts.next() {
            Some(p) => {
                let (n, rest) = split_num(p);
                (n.parse().map_err(|_| bad())?, rest)
            }
            None => (0, pre_minor.clone()),
        };
        if parts.next().is_some() || (!pre_minor.is_empty() && pre != pre_minor) {
            return Err(bad());
        }
        if !pre.is_empty() && !pre.starts_with("rc") && !pre.starts_with("beta") {
            return Err(bad());
        }
        Ok(Self {
            major,
            minor,
            patch,
            pre: (!pre.is_empty()).then_some(pre),
        })
    }
}

impl fmt::Display for GoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "go{}.{}", self.major, self.minor)?;
        match &self.pre {
            Some(pre) => write!(f, "{pre}"),
            None if self.patch == 0 && !self.at_least(1, 21) => Ok(()),
            None => write!(f, ".{}", self.patch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (s, v, shown) in [
            ("go1.21.13", GoVersion::new(1, 21, 13), "go1.21.13"),
            ("go1.19.8", GoVersion::new(1, 19, 8), "go1.19.8"),
            ("go1.19", GoVersion::new(1, 19, 0), "go1.19"),
            ("go1.21.0", GoVersion::new(1, 21, 0), "go1.21.0"),
            ("1.27.3", GoVersion::new(1, 27, 3), "go1.27.3"),
            ("go1.22.1 X:loopvar", GoVersion::new(1, 22, 1), "go1.22.1"),
        ] {
            let parsed: GoVersion = s.parse().unwrap();
            assert_eq!(parsed, v, "{s}");
            assert_eq!(parsed.to_string(), shown);
        }
        let rc: GoVersion = "go1.27rc1".parse().unwrap();
        assert_eq!(rc.pre.as_deref(), Some("rc1"));
        assert_eq!(rc.to_string(), "go1.27rc1");
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "go",
            "devel +abc",
            "go1",
            "goX.1",
            "go1.2.3.4",
            "go1.21.x",
        ] {
            assert!(s.parse::<GoVersion>().is_err(), "{s}");
        }
    }

    #[test]
    fn orders() {
        let v = |s: &str| s.parse::<GoVersion>().unwrap();
        assert!(v("go1.21.13") < v("go1.22.0"));
        assert!(v("go1.23.9") > v("go1.23.4"));
        assert!(v("go1.24.11").at_least(1, 24));
        assert!(!v("go1.23.9").at_least(1, 24));
    }
}
