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
    assert!(TABLE.len() >= 8);
    for e in TABLE {
        e.layout
            .check()
            .unwrap_or_else(|err| panic!("{}: {err}", e.taken_from));
        assert_eq!(
            e.layout.source,
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
