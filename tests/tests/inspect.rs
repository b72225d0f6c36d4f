//! `gtrace inspect`: a stripped build and a DWARF build of the same program must give the same
//! answers — version, build info, function table, layouts, wait reasons, probe sites — apart
//! from the fields that say where the answers came from.

use gtrace_tests::{
    fixture::{self, Variant},
    go, gtrace,
};
use serde_json::Value;

/// `gtrace inspect --json BINARY`, with the fields that legitimately differ between a
/// stripped and an unstripped build removed.
fn inspect(bin: &std::path::Path) -> Value {
    let out = gtrace::command(["inspect", "--json"])
        .arg(bin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let o = v.as_object_mut().unwrap();
    for k in [
        "path",
        "symbols",
        "data_symbols",
        "gnu_build_id",
        "go_build_id",
    ] {
        o.remove(k);
    }
    // The layout/wait-reason source says DWARF/binary vs table; the values must agree.
    for k in ["layout", "wait_reasons"] {
        if let Some(inner) = o
            .get_mut(k)
            .and_then(|r| r.get_mut("Ok"))
            .and_then(Value::as_object_mut)
        {
            inner.remove("source");
        }
    }
    // Data addresses may shift: `-s -w` is recorded in the build info, which lives in the
    // data segment, and Go 1.19 places the pclntab differently without symbols. Code must not.
    if let Some(p) = o.get_mut("pclntab").and_then(Value::as_object_mut) {
        p.remove("vaddr");
    }
    if let Some(m) = o.get_mut("moduledata").and_then(Value::as_object_mut) {
        m.remove("addr");
        m.remove("gofunc");
    }
    // `-s -w` changes the -ldflags build setting, nothing else.
    if let Some(settings) = o
        .get_mut("build_info")
        .and_then(|b| b.get_mut("settings"))
        .and_then(Value::as_array_mut)
    {
        settings.retain(|kv| kv[0] != "-ldflags");
    }
    v
}

#[test]
fn stripped_and_dwarf_builds_inspect_identically() {
    for tc in go::all().unwrap() {
        let full = inspect(&fixture::build("blocked", &tc, Variant::Default).unwrap());
        let stripped = inspect(&fixture::build("blocked", &tc, Variant::Stripped).unwrap());
        assert!(
            full["layout"]["Ok"].is_object(),
            "go{}: no layout: {}",
            tc.version,
            full["layout"]
        );
        assert!(
            full["wait_reasons"]["Ok"]["strings"]
                .as_array()
                .is_some_and(|s| s.len() > 20),
            "go{}",
            tc.version
        );
        if full != stripped {
            let (a, b) = (full.as_object().unwrap(), stripped.as_object().unwrap());
            let differing: Vec<_> = a.keys().filter(|k| a.get(*k) != b.get(*k)).collect();
            panic!(
                "go{}: inspect differs between default and stripped builds in {differing:?}",
                tc.version
            );
        }
    }
}

#[test]
fn unknown_version_is_refused_and_can_be_overridden() {
    let tc = go::newest().unwrap();
    let bin = fixture::build("blocked", &tc, Variant::Stripped).unwrap();
    let out = gtrace::command(["inspect", "--json", "--assume-go-version", "go1.3.0"])
        .arg(&bin)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let err = v["layout"]["Err"].as_str().unwrap_or_default().to_owned();
    assert!(
        err.contains("1.27") && err.contains("--assume-go-version"),
        "{err}"
    );
    let out = gtrace::command([
        "inspect",
        "--json",
        "--assume-go-version",
        &format!("go{}", tc.version),
    ])
    .arg(&bin)
    .output()
    .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["layout"]["Ok"].is_object(), "{}", v["layout"]);
}
