//! Unit tests on a synthetic Go 1.20-format table: varints, pc-value decoding, lookups,
//! inline expansion, and every truncation / many mutations of it (errors, never panics).

use super::*;

const TEXT: u64 = 0x40_1000;
const GOFUNC: u64 = 0x50_0000;
const TABLE_VADDR: u64 = 0x48_0004;

/// Encodes a pc-value table from (value, pc-range length) pairs, as the linker does.
fn pcvalue_table(pairs: &[(i32, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev = -1i32;
    for &(v, len) in pairs {
        let d = v - prev;
        let uv = ((d << 1) ^ (d >> 31)) as u32;
        put_varint(&mut out, uv);
        put_varint(&mut out, len);
        prev = v;
    }
    out.push(0);
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Synthetic {
    table: Vec<u8>,
    inl_tree: Vec<u8>,
}

impl Memory for Synthetic {
    fn read(&self, vaddr: u64, len: usize) -> Option<&[u8]> {
        let start = usize::try_from(vaddr.checked_sub(GOFUNC)?).ok()?;
        self.inl_tree.get(start..start.checked_add(len)?)
    }
}

/// Two functions: `main.a` [TEXT, +0x20) in a.go, lines 10 then 12; `main.b` [+0x20, +0x40)
/// in b.go, line 20, with `main.inl` inlined at [+0x28, +0x30) (line 30, a.go), called from
/// pc +0x30 (line 21).
fn synthetic() -> Synthetic {
    synthetic_as(PclnFormat::Go120)
}

/// [`synthetic`] in one of the formats: Go 1.20 (`startLine`, new inline entries), Go 1.18
/// (no `startLine`, old 20-byte inline entries, u32 funcdata offsets) or Go 1.16 (absolute
/// entries and funcdata pointers, 8-aligned). The table sits at link address `TABLE_VADDR`.
fn synthetic_as(format: PclnFormat) -> Synthetic {
    let names = b"main.a\0main.b\0main.inl\0".to_vec();
    let cutab: Vec<u8> = [0u32, 5].iter().flat_map(|v| v.to_le_bytes()).collect();
    let filetab = b"a.go\0b.go\0".to_vec();
    let mut pctab = vec![0u8];
    let mut add = |t: Vec<u8>| {
        let off = pctab.len() as u32;
        pctab.extend(t);
        off
    };
    let a_file = add(pcvalue_table(&[(0, 0x20)]));
    let a_line = add(pcvalue_table(&[(10, 0x10), (12, 0x10)]));
    let b_file = add(pcvalue_table(&[(1, 0x08), (0, 0x08), (1, 0x10)]));
    let b_line = add(pcvalue_table(&[(20, 0x08), (30, 0x08), (21, 0x10)]));
    let b_inl = add(pcvalue_table(&[(-1, 0x08), (0, 0x08), (-1, 0x10)]));
    let relative = format.relative_entries();
    let header_len = if relative { 8 + 8 * 8 } else { 8 + 7 * 8 };
    // Keep the function records 8-aligned in memory, as the linker does.
    let used = |pctab: &[u8]| {
        TABLE_VADDR as usize + header_len + names.len() + cutab.len() + filetab.len() + pctab.len()
    };
    while !used(&pctab).is_multiple_of(8) {
        pctab.push(0);
    }
    let funcname = header_len;
    let cu = funcname + names.len();
    let filetab_off = cu + cutab.len();
    let pctab_off = filetab_off + filetab.len();
    let pcln = pctab_off + pctab.len();
    let mut t = Vec::new();
    let magic: u32 = match format {
        PclnFormat::Go120 => 0xffff_fff1,
        PclnFormat::Go118 => 0xffff_fff0,
        _ => 0xffff_fffa,
    };
    t.extend(magic.to_le_bytes());
    t.extend([0, 0, 1, 8]);
    let offsets = [funcname, cu, filetab_off, pctab_off, pcln].map(|o| o as u64);
    let lead: &[u64] = if relative { &[2, 2, TEXT] } else { &[2, 2] };
    for w in lead.iter().chain(&offsets) {
        t.extend(w.to_le_bytes());
    }
    t.extend(&names);
    t.extend(&cutab);
    t.extend(&filetab);
    t.extend(&pctab);
    // functab: 3 entries (2 functions + end sentinel) of (entry, funcoff).
    let fixed = match format {
        PclnFormat::Go118 => 40,
        _ => 44,
    };
    let ftab_len = if relative { 3 * 8 } else { 3 * 16 };
    let fa = ftab_len as u32;
    // main.a has no pcdata/funcdata; main.b: 3 pcdata, then 4 funcdata (8-aligned pointers
    // before 1.18).
    let fb = fa + fixed;
    for (e, f) in [(0u32, fa), (0x20, fb), (0x40, 0)] {
        if relative {
            t.extend(e.to_le_bytes());
            t.extend(f.to_le_bytes());
        } else {
            t.extend((TEXT + u64::from(e)).to_le_bytes());
            t.extend(u64::from(f).to_le_bytes());
        }
    }
    let func = |t: &mut Vec<u8>,
                entry: u32,
                name: i32,
                file: u32,
                line: u32,
                npcdata: u32,
                nfuncdata: u8| {
        if relative {
            t.extend(entry.to_le_bytes());
        } else {
            t.extend((TEXT + u64::from(entry)).to_le_bytes());
        }
        let mut words = vec![name as u32, 0, 0, 0, file, line, npcdata, 0];
        if format == PclnFormat::Go120 {
            words.push(1);
        }
        for w in words {
            t.extend(w.to_le_bytes());
        }
        t.extend([0, 0, 0, nfuncdata]);
    };
    func(&mut t, 0, 0, a_file, a_line, 0, 0);
    func(&mut t, 0x20, 7, b_file, b_line, 3, 4);
    t.extend([0u32, 0, b_inl].iter().flat_map(|v| v.to_le_bytes()));
    if relative {
        t.extend(
            [u32::MAX, u32::MAX, u32::MAX, 0]
                .iter()
                .flat_map(|v| v.to_le_bytes()),
        );
    } else {
        while !(TABLE_VADDR + t.len() as u64).is_multiple_of(8) {
            t.push(0xee);
        }
        t.extend([0u64, 0, 0, GOFUNC].iter().flat_map(|v| v.to_le_bytes()));
    }
    let mut inl_tree = Vec::new();
    if format == PclnFormat::Go120 {
        inl_tree.extend([0u8; 4]); // funcID, padding
        inl_tree.extend(14i32.to_le_bytes()); // nameOff of main.inl
        inl_tree.extend(0x10i32.to_le_bytes()); // parentPc, from main.b's entry
        inl_tree.extend(5i32.to_le_bytes()); // startLine
    } else {
        inl_tree.extend((-1i16).to_le_bytes()); // parent
        inl_tree.extend([0u8; 2]); // funcID, padding
        inl_tree.extend(0i32.to_le_bytes()); // file
        inl_tree.extend(21i32.to_le_bytes()); // line
        inl_tree.extend(14i32.to_le_bytes()); // func_ (name offset)
        inl_tree.extend(0x10i32.to_le_bytes()); // parentPc
    }
    Synthetic { table: t, inl_tree }
}

fn tab(s: &Synthetic) -> Pclntab<'_> {
    let layout = PclnLayout::parse(&s.table, TABLE_VADDR).unwrap();
    Pclntab::new(
        &s.table,
        PclnLayout {
            gofunc: Some(GOFUNC),
            ..layout
        },
        s,
    )
    .unwrap()
}

#[test]
fn varints() {
    assert_eq!(read_varint32(&[0x05]), Some((5, 1)));
    assert_eq!(read_varint32(&[0xac, 0x02]), Some((300, 2)));
    assert_eq!(
        read_varint32(&[0xff, 0xff, 0xff, 0xff, 0x0f]),
        Some((u32::MAX, 5))
    );
    assert_eq!(read_varint32(&[0x80, 0x80]), None);
    assert_eq!(read_varint32(&[0xff; 6]), None);
    assert_eq!(read_varint32(&[]), None);
}

#[test]
fn pcvalue_decoding() {
    let t = pcvalue_table(&[(10, 4), (7, 4), (300, 100)]);
    let at = |pc: u64| eval_pcvalue(&t, 0x100, 0x100 + pc, 1).unwrap();
    assert_eq!(at(0), Some(10));
    assert_eq!(at(3), Some(10));
    assert_eq!(at(4), Some(7));
    assert_eq!(at(8), Some(300));
    assert_eq!(at(107), Some(300));
    assert_eq!(at(108), None);
    // Quantum scales pc deltas.
    assert_eq!(eval_pcvalue(&t, 0, 7, 2).unwrap(), Some(10));
    // Truncated tables are errors, not panics.
    for n in 0..t.len() - 1 {
        let r = eval_pcvalue(&t[..n], 0, 1000, 1);
        assert!(r.is_err(), "{n}: {r:?}");
    }
}

#[test]
fn lookups_and_lines() {
    let s = synthetic();
    let t = tab(&s);
    assert_eq!(t.len(), 2);
    assert_eq!(t.find_func(TEXT - 1).unwrap(), None);
    assert_eq!(t.find_func(TEXT + 0x40).unwrap(), None);
    let a = t.find_func(TEXT + 0x1f).unwrap().unwrap();
    assert_eq!(
        (t.name(&a).unwrap().as_ref(), a.entry, a.end),
        ("main.a", TEXT, TEXT + 0x20)
    );
    assert_eq!(a.start_line, 1);
    assert_eq!(t.file_line(&a, TEXT + 0x0f).unwrap(), ("a.go".into(), 10));
    assert_eq!(t.file_line(&a, TEXT + 0x10).unwrap(), ("a.go".into(), 12));
    let b = t.find_func(TEXT + 0x20).unwrap().unwrap();
    assert_eq!(t.name(&b).unwrap(), "main.b");
}

#[test]
fn inline_expansion() {
    let s = synthetic();
    let t = tab(&s);
    let frame = |f: &str, file: &str, line, inlined| Frame {
        function: f.into(),
        file: file.into(),
        line,
        inlined,
    };
    assert_eq!(
        t.frames(TEXT + 0x21).unwrap(),
        [frame("main.b", "b.go", 20, false)]
    );
    assert_eq!(
        t.frames(TEXT + 0x2a).unwrap(),
        [
            frame("main.inl", "a.go", 30, true),
            frame("main.b", "b.go", 21, false)
        ]
    );
    // Without memory for the tree, the physical frame alone (with the innermost position).
    let layout = PclnLayout::parse(&s.table, 0).unwrap();
    let bare = Pclntab::new(
        &s.table,
        PclnLayout {
            gofunc: None,
            ..layout
        },
        &NoMemory,
    )
    .unwrap();
    assert_eq!(
        bare.frames(TEXT + 0x2a).unwrap(),
        [frame("main.b", "a.go", 30, false)]
    );
    assert!(matches!(
        t.frames(TEXT + 0x40),
        Err(GobinError::NoFunctionForPc(_))
    ));
}

#[test]
fn older_formats_expand_alike() {
    let frame = |f: &str, file: &str, line, inlined| Frame {
        function: f.into(),
        file: file.into(),
        line,
        inlined,
    };
    for format in [PclnFormat::Go118, PclnFormat::Go116] {
        let s = synthetic_as(format);
        let t = tab(&s);
        assert_eq!(t.layout().format, format);
        let a = t.find_func(TEXT + 0x1f).unwrap().unwrap();
        assert_eq!(
            (t.name(&a).unwrap().as_ref(), a.entry, a.end),
            ("main.a", TEXT, TEXT + 0x20),
            "{format:?}"
        );
        assert_eq!(
            t.file_line(&a, TEXT + 0x10).unwrap(),
            ("a.go".into(), 12),
            "{format:?}"
        );
        assert_eq!(
            t.frames(TEXT + 0x2a).unwrap(),
            [
                frame("main.inl", "a.go", 30, true),
                frame("main.b", "b.go", 21, false)
            ],
            "{format:?}"
        );
        for n in 0..s.table.len() {
            exercise(&s.table[..n], &s);
        }
    }
}

#[test]
fn header_validation() {
    let s = synthetic();
    let mut bad = s.table.clone();
    bad[0] = 0xfe;
    assert!(matches!(
        PclnLayout::parse(&bad, 0),
        Err(GobinError::BadPclntabMagic(_))
    ));
    let mut bad = s.table.clone();
    bad[7] = 3;
    assert!(PclnLayout::parse(&bad, 0).is_err());
    let mut zero_text = s.table.clone();
    zero_text[24..32].fill(0);
    let l = PclnLayout::parse(&zero_text, 0).unwrap();
    assert!(matches!(
        Pclntab::new(&zero_text, l, &NoMemory),
        Err(GobinError::NoTextStart)
    ));
}

/// Runs lookups over a possibly corrupt table; must not panic.
fn exercise(table: &[u8], mem: &dyn Memory) {
    let Ok(layout) = PclnLayout::parse(table, TABLE_VADDR) else {
        return;
    };
    let Ok(t) = Pclntab::new(
        table,
        PclnLayout {
            gofunc: Some(GOFUNC),
            ..layout
        },
        mem,
    ) else {
        return;
    };
    for pc in (TEXT - 1)..(TEXT + 0x41) {
        let _ = t.frames(pc);
    }
    for f in t.funcs().flatten() {
        let _ = t.name(&f);
    }
}

#[test]
fn truncations_and_mutations_never_panic() {
    let s = synthetic();
    for n in 0..s.table.len() {
        exercise(&s.table[..n], &s);
    }
    for n in 0..s.inl_tree.len() {
        let short = Synthetic {
            table: s.table.clone(),
            inl_tree: s.inl_tree[..n].to_vec(),
        };
        exercise(&short.table, &short);
    }
    // Deterministic pseudo-random byte mutations (xorshift).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..2_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut m = Synthetic {
            table: s.table.clone(),
            inl_tree: s.inl_tree.clone(),
        };
        let pos = (x % m.table.len() as u64) as usize;
        m.table[pos] = (x >> 32) as u8;
        let pos2 = ((x >> 16) % m.inl_tree.len() as u64) as usize;
        m.inl_tree[pos2] ^= (x >> 40) as u8;
        exercise(&m.table, &m);
        crate::gobin::fuzzing::pclntab(&m.table);
        crate::gobin::fuzzing::buildinfo(&m.table);
    }
}
