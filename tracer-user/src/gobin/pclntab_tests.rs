//! Unit tests on a synthetic Go 1.20-format table: varints, pc-value decoding, lookups,
//! inline expansion, and every truncation / many mutations of it (errors, never panics).

use super::*;

const TEXT: u64 = 0x40_1000;
const GOFUNC: u64 = 0x50_0000;

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
    let header_len = 8 + 8 * 8;
    let funcname = header_len;
    let cu = funcname + names.len();
    let filetab_off = cu + cutab.len();
    let pctab_off = filetab_off + filetab.len();
    let pcln = pctab_off + pctab.len();
    let mut t = Vec::new();
    t.extend(0xffff_fff1u32.to_le_bytes());
    t.extend([0, 0, 1, 8]);
    for w in [
        2u64,
        2,
        TEXT,
        funcname as u64,
        cu as u64,
        filetab_off as u64,
        pctab_off as u64,
        pcln as u64,
    ] {
        t.extend(w.to_le_bytes());
    }
    t.extend(&names);
    t.extend(&cutab);
    t.extend(&filetab);
    t.extend(&pctab);
    // functab: 3 entries (2 functions + end sentinel) of (entryoff, funcoff).
    let ftab_len = 3 * 8;
    let fa = ftab_len as u32;
    let fb = fa + 44;
    for (e, f) in [(0u32, fa), (0x20, fb), (0x40, 0)] {
        t.extend(e.to_le_bytes());
        t.extend(f.to_le_bytes());
    }
    let func = |t: &mut Vec<u8>,
                entry: u32,
                name: i32,
                file: u32,
                line: u32,
                npcdata: u32,
                nfuncdata: u8| {
        for w in [entry, name as u32, 0, 0, 0, file, line, npcdata, 0, 1] {
            t.extend(w.to_le_bytes());
        }
        t.extend([0, 0, 0, nfuncdata]);
    };
    func(&mut t, 0, 0, a_file, a_line, 0, 0);
    func(&mut t, 0x20, 7, b_file, b_line, 3, 4);
    t.extend([0u32, 0, b_inl].iter().flat_map(|v| v.to_le_bytes()));
    t.extend(
        [u32::MAX, u32::MAX, u32::MAX, 0]
            .iter()
            .flat_map(|v| v.to_le_bytes()),
    );
    let mut inl_tree = vec![0u8; 4];
    inl_tree.extend(14i32.to_le_bytes()); // nameOff of main.inl
    inl_tree.extend(0x10i32.to_le_bytes()); // parentPc, from main.b's entry
    inl_tree.extend(5i32.to_le_bytes()); // startLine
    Synthetic { table: t, inl_tree }
}

fn tab(s: &Synthetic) -> Pclntab<'_> {
    let layout = PclnLayout::parse(&s.table, 0x48_0000).unwrap();
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
    let Ok(layout) = PclnLayout::parse(table, 0x48_0000) else {
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
    for _ in 0..5_000 {
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
