//! Unit tests of the layout API, the generated table and the sanity checks.
use super::*;
use crate::gobin::layout_table::TABLE;
use crate::gobin::version::GoVersion;

#[test]
fn lookup_by_minor() {
    let l = RuntimeLayout::for_version(&GoVersion::new(1, 23, 4)).unwrap();
    assert_eq!(
        l.source,
        Source::Table {
            version: GoVersion::new(1, 23, 9)
        }
    );
    // Documented in GO_RUNTIME_NOTES: goid 160 in 1.23–1.24, 152 otherwise.
    assert_eq!(l.g.goid, 160);
    assert_eq!(
        RuntimeLayout::for_version(&GoVersion::new(1, 25, 0))
            .unwrap()
            .g
            .goid,
        152
    );
    let rc: GoVersion = "go1.27rc1".parse().unwrap();
    assert!(RuntimeLayout::for_version(&rc).is_ok());
}

#[test]
fn unknown_minor_names_supported_versions() {
    let err = RuntimeLayout::for_version(&GoVersion::new(1, 20, 3)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("go1.20.3"), "{msg}");
    assert!(msg.contains("go1.19, go1.21"), "{msg}");
    assert!(msg.contains("--assume-go-version"), "{msg}");
    assert!(RuntimeLayout::for_version(&GoVersion::new(2, 0, 0)).is_err());
}

#[test]
fn every_table_entry_passes_its_checks() {
    // Also the only place a stale table (missing a field structs.rs now wants) shows up
    // without toolchains: `for_version` fails with MissingField.
    assert!(TABLE.len() >= 8);
    for e in TABLE {
        let layout = RuntimeLayout::for_version(&e.taken_from)
            .unwrap_or_else(|err| panic!("{}: {err}", e.taken_from));
        layout
            .check()
            .unwrap_or_else(|err| panic!("{}: {err}", e.taken_from));
        assert_eq!(
            layout.source,
            Source::Table {
                version: e.taken_from.clone()
            }
        );
    }
}

#[test]
fn check_catches_wrong_offsets() {
    let good = RuntimeLayout::for_version(&GoVersion::new(1, 27, 0)).unwrap();
    let mut l = good.clone();
    l.g.goid = l.g.waitsince + 8;
    let msg = l.check().unwrap_err().to_string();
    assert!(msg.contains("goid") && msg.contains("schedlink"), "{msg}");
    let mut l = good.clone();
    l.hchan.lock = l.hchan.size;
    assert!(
        l.check()
            .unwrap_err()
            .to_string()
            .contains("runtime.hchan.lock")
    );
    let mut l = good.clone();
    l.eface.data = 0;
    assert!(l.check().is_err());
    let mut l = good;
    l.g.sched = l.g.syscallsp - 8;
    assert!(l.check().unwrap_err().to_string().contains("overlaps"));
}

/// One struct of a [`Literal`] source: Go name, size, `(field path, offset)`s.
type LiteralStruct = (&'static str, u32, &'static [(&'static str, u32)]);

/// A [`StructSource`] over literal data, to exercise name/path fallbacks without a binary.
struct Literal(&'static [LiteralStruct]);

impl StructSource for Literal {
    fn struct_size(&self, go_name: &str) -> Option<u32> {
        self.0.iter().find(|s| s.0 == go_name).map(|s| s.1)
    }
    fn field_offset(&self, go_name: &str, path: &str) -> Option<u32> {
        let s = self.0.iter().find(|s| s.0 == go_name)?;
        s.2.iter().find(|f| f.0 == path).map(|f| f.1)
    }
}

#[test]
fn old_names_and_optional_fields() {
    let src = Literal(&[
        (
            "runtime._type",
            48,
            &[
                ("size", 0),
                ("ptrdata", 8),
                ("hash", 16),
                ("tflag", 20),
                ("align", 21),
                ("fieldAlign", 22),
                ("kind", 23),
                ("equal", 24),
                ("gcdata", 32),
                ("str", 40),
                ("ptrToThis", 44),
            ],
        ),
        ("runtime.waitq", 16, &[("first", 0)]),
        ("runtime.eface", 16, &[("_type", 0), ("data", 8)]),
    ]);
    let t = TypeLayout::from_source(&src).unwrap().unwrap();
    assert_eq!((t.size, t.str_, t.ptr_to_this), (48, 40, 44));
    assert_eq!(
        WaitqLayout::from_source(&src).unwrap_err(),
        LayoutError::MissingField {
            go_name: "runtime.waitq",
            field: "last"
        }
    );
    assert_eq!(GLayout::from_source(&src).unwrap(), None);
    assert_eq!(
        RuntimeLayout::from_source(&src, None).unwrap_err(),
        LayoutError::MissingStruct {
            go_name: "runtime.g"
        }
    );
    let e = EfaceLayout::from_source(&src).unwrap().unwrap();
    assert_eq!(e.fields(), vec![("type_", Some(0)), ("data", Some(8))]);
}

#[test]
fn missing_structs_come_from_the_table() {
    let src = Literal(&[("runtime.eface", 16, &[("_type", 0), ("data", 8)])]);
    let v = GoVersion::new(1, 22, 1);
    let l = RuntimeLayout::from_source(&src, Some(&v)).unwrap();
    let Source::Dwarf { from_table } = &l.source else {
        panic!("{:?}", l.source)
    };
    assert!(from_table.contains(&"runtime.g") && !from_table.contains(&"runtime.eface"));
    assert_eq!(l.g, RuntimeLayout::for_version(&v).unwrap().g);
    l.check().unwrap();
}

#[test]
fn g_byte_checks() {
    let l = RuntimeLayout::for_version(&GoVersion::new(1, 27, 0)).unwrap();
    let g = l.g;
    let gp = 0x00c0_0000_71c0_u64;
    let mut raw = vec![0u8; g.size as usize];
    let put = |raw: &mut Vec<u8>, off: u32, v: u64| {
        raw[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes());
    };
    put(&mut raw, g.stack_lo, 0x00c0_0010_0000);
    put(&mut raw, g.stack_hi, 0x00c0_0010_0800);
    put(&mut raw, g.sched + l.gobuf.g, gp);
    put(&mut raw, g.goid, 7);
    put(&mut raw, g.atomicstatus, 4);
    raw[g.waitreason as usize] = 14;
    let s = l.check_g_bytes(gp, &raw).unwrap();
    assert_eq!((s.goid, s.status, s.is_dead()), (7, 4, false));
    assert_eq!(
        l.check_g_sample([(gp, &raw[..]), (gp, &raw[..])])
            .unwrap_err()
            .to_string(),
        "runtime layout fails a sanity check: two live goroutines read as goid 7"
    );
    let mut other = raw.clone();
    put(&mut other, g.sched + l.gobuf.g, gp + 8);
    assert!(
        l.check_g_bytes(gp, &other)
            .unwrap_err()
            .to_string()
            .contains("sched.g")
    );
    let mut dead = vec![0u8; g.size as usize];
    put(&mut dead, g.atomicstatus, 6);
    assert!(l.check_g_bytes(gp, &dead).unwrap().is_dead());
    assert!(
        l.check_g_sample([(gp, &dead[..])]).is_err(),
        "no live goroutine"
    );
    let idle = vec![0u8; g.size as usize];
    assert!(l.check_g_bytes(gp, &idle).is_err());
    assert!(l.check_g_bytes(gp, &raw[..10]).is_err());
}

#[test]
fn patch_exceptions_are_consistent() {
    use crate::gobin::layout_exceptions::PATCH_EXCEPTIONS;
    for e in PATCH_EXCEPTIONS {
        let minor = |v: &GoVersion| (v.major, v.minor);
        assert_eq!(minor(&e.first), minor(&e.last));
        assert_eq!(minor(&e.first), minor(&e.verified));
        assert!(e.first <= e.verified && e.verified <= e.last, "{e:?}");
        let layout = RuntimeLayout::from_source(&TableStructs(e.structs), None).unwrap();
        layout.check().unwrap();
        let entry = TABLE
            .iter()
            .find(|t| minor(&t.taken_from) == minor(&e.first))
            .unwrap();
        assert!(
            e.last < entry.taken_from,
            "exception overlaps its entry {}",
            entry.taken_from
        );
        let entry_layout = RuntimeLayout::for_version(&entry.taken_from).unwrap();
        assert_ne!(
            strip(&layout),
            strip(&entry_layout),
            "exception equals its entry"
        );
        for patch in e.first.patch..=e.last.patch {
            let v = GoVersion::new(e.first.major, e.first.minor, patch);
            let got = RuntimeLayout::for_version(&v).unwrap();
            assert_eq!(
                got.source,
                Source::Table {
                    version: e.verified.clone()
                }
            );
            assert_eq!(strip(&got), strip(&layout));
        }
        let after = GoVersion::new(e.last.major, e.last.minor, e.last.patch + 1);
        assert_eq!(RuntimeLayout::for_version(&after).unwrap(), entry_layout);
    }
}

#[test]
fn go_1_24_before_the_allp_snapshot_backport() {
    // go1.24.3 (probed) lacks m.allpSnapshot, which go1.24.6 added (go.dev/issue/74416):
    // 1.24.4 and 1.24.5 have go1.24.3's layout, 1.24.6 on go1.24.11's.
    let new = RuntimeLayout::for_version(&GoVersion::new(1, 24, 11)).unwrap();
    for patch in [0, 3, 4, 5] {
        let old = RuntimeLayout::for_version(&GoVersion::new(1, 24, patch)).unwrap();
        assert_eq!(
            old.source,
            Source::Table {
                version: GoVersion::new(1, 24, 3)
            },
            "go1.24.{patch}"
        );
        assert_eq!((old.m.size, old.m.lockedg), (1808, 344));
        assert_eq!(
            (old.g, old.m.curg, old.m.procid),
            (new.g, new.m.curg, new.m.procid)
        );
    }
    assert_eq!((new.m.size, new.m.lockedg), (1832, 368));
    assert_eq!(
        RuntimeLayout::for_version(&GoVersion::new(1, 24, 6)).unwrap(),
        new
    );
}

/// Every documented change between a probed exception and its minor's entry explains their
/// difference: only the structures it names differ, and the exception ends just before it.
#[test]
fn known_changes_explain_the_probed_differences() {
    use crate::gobin::layout_exceptions::PATCH_EXCEPTIONS;
    for e in PATCH_EXCEPTIONS {
        let entry = TABLE
            .iter()
            .find(|t| (t.taken_from.major, t.taken_from.minor) == (e.first.major, e.first.minor))
            .unwrap();
        let Some(change) = unseen_change(&entry.taken_from, &e.verified) else {
            continue;
        };
        assert_eq!(change.first.patch, e.last.patch + 1, "{e:?}");
        let differing: Vec<&str> = e
            .structs
            .iter()
            .filter(|s| !entry.structs.contains(s))
            .map(|s| s.0)
            .collect();
        assert!(!differing.is_empty());
        for name in differing {
            assert!(change.structs.contains(&name), "{name} differs, {change:?}");
        }
    }
}

#[test]
fn known_changes_bound_exceptions_and_flag_newer_patches() {
    // In release order, which `unseen_change` relies on to find the first.
    let changes = &known_changes::KNOWN_CHANGES;
    assert!(changes.windows(2).all(|w| w[0].first < w[1].first));
    let v = GoVersion::new;
    assert_eq!(exception_last(&v(1, 24, 3), &v(1, 24, 11)), v(1, 24, 5));
    // No documented change between them: the probed patch is the last one covered.
    assert_eq!(exception_last(&v(1, 25, 0), &v(1, 25, 5)), v(1, 25, 0));
    // go1.23.12 changed runtime.m after go1.23.9, the 1.23 entry's release.
    let change = unseen_change(&v(1, 23, 12), &v(1, 23, 9)).unwrap();
    assert_eq!(change.structs, ["runtime.m"]);
    assert!(unseen_change(&v(1, 23, 11), &v(1, 23, 9)).is_none());
    assert!(unseen_change(&v(1, 24, 11), &v(1, 24, 11)).is_none());
    assert!(unseen_change(&v(1, 24, 6), &v(1, 24, 3)).is_some());
    // The layout is still given (the fields gtrace reads do not move), with a warning.
    let l = RuntimeLayout::for_version(&v(1, 23, 12)).unwrap();
    assert_eq!(
        l.m.curg,
        RuntimeLayout::for_version(&v(1, 23, 9)).unwrap().m.curg
    );
}

fn strip(l: &RuntimeLayout) -> RuntimeLayout {
    let mut l = l.clone();
    l.source = Source::Dwarf {
        from_table: Vec::new(),
    };
    l
}
