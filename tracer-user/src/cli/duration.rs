//! Durations on the command line: plain seconds (`30`, `0.5`) or with a unit (`500ms`, `30s`,
//! `2m`, `1h`), as operators type them.

use std::time::Duration;

/// Parses `30`, `2.5`, `500ms`, `30s`, `2m`, `1h` into a [`Duration`].
pub fn parse(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        format!("`{s}` is not a duration: use seconds (30) or a unit (500ms, 30s, 2m, 1h)")
    })?;
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" | "min" | "mins" => 60.0,
        "h" => 3600.0,
        u => return Err(format!("unknown unit `{u}` in `{s}`: use ms, s, m or h")),
    };
    let secs = n * scale;
    if !secs.is_finite() || secs <= 0.0 || secs > 366.0 * 86400.0 {
        return Err(format!(
            "`{s}` is out of range: give a positive duration up to a year"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_operator_forms() {
        for (s, ms) in [
            ("30", 30_000),
            ("0.5", 500),
            ("500ms", 500),
            ("30s", 30_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            (" 10s ", 10_000),
        ] {
            assert_eq!(parse(s).unwrap(), Duration::from_millis(ms), "{s}");
        }
    }

    #[test]
    fn rejects_nonsense() {
        for s in ["", "s", "abc", "10x", "-1", "0", "1e400", "1.2.3s"] {
            assert!(parse(s).is_err(), "{s}");
        }
    }
}
