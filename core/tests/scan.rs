//! The model scanner (`pedigree_core::scan`) against a corpus built here: pickles
//! assembled opcode by opcode so each path to a global is exercised on purpose, and
//! archives, `.npy` and safetensors files written in the test.

use std::io::Write as _;

use pedigree_core::scan::{scan, Limits, Severity, Status};
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

/// Scans `bytes` as `name`, checks the status, and that some finding mentions `needle`.
fn check(name: &str, bytes: &[u8], want: Status, needle: &str) {
    let report = scan(name, bytes, &Limits::default());
    let text = format!("{report:#?}");
    assert_eq!(report.status, want, "{name}: {text}");
    assert!(
        report.findings.iter().any(|f| f.message.contains(needle)) || needle.is_empty(),
        "{name}: no finding mentions {needle:?}: {text}"
    );
}

// Pickle opcode helpers.
fn proto(v: u8) -> Vec<u8> {
    vec![0x80, v]
}
fn global(m: &str, n: &str) -> Vec<u8> {
    format!("c{m}\n{n}\n").into_bytes()
}
fn su(s: &str) -> Vec<u8> {
    let mut v = vec![0x8c, s.len() as u8];
    v.extend(s.as_bytes());
    v
}
fn bu(s: &str) -> Vec<u8> {
    let mut v = vec![b'X'];
    v.extend((s.len() as u32).to_le_bytes());
    v.extend(s.as_bytes());
    v
}
fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}
const TUPLE1: &[u8] = &[0x85];
const REDUCE: &[u8] = b"R";
const STOP: &[u8] = b".";

/// `callable(arg)` through GLOBAL and REDUCE.
fn call(m: &str, n: &str, arg: &str) -> Vec<u8> {
    cat(&[&proto(2), &global(m, n), &bu(arg), TUPLE1, REDUCE, STOP])
}

#[test]
fn code_execution_through_global_and_reduce_is_critical() {
    for (m, n) in [
        ("os", "system"),
        ("posix", "system"),
        ("nt", "system"),
        ("subprocess", "Popen"),
        ("builtins", "exec"),
        ("builtins", "eval"),
        ("__builtin__", "eval"),
        ("runpy", "run_path"),
    ] {
        let p = call(m, n, "id");
        check(
            "model.pkl",
            &p,
            Status::Unsafe,
            &format!("{m}.{n} can execute code"),
        );
        let report = scan("model.pkl", &p, &Limits::default());
        assert_eq!(report.findings[0].severity, Severity::Critical);
        assert_eq!(report.findings[0].offset, Some(2));
    }
}

#[test]
fn stack_global_is_resolved_directly_and_through_the_memo() {
    let direct = cat(&[
        &proto(4),
        &su("os"),
        &su("system"),
        &[0x93],
        &su("id"),
        TUPLE1,
        REDUCE,
        STOP,
    ]);
    check("a.pkl", &direct, Status::Unsafe, "os.system");
    // "os" memoized with MEMOIZE (key 0), "system" with BINPUT 5, both popped, then
    // fetched with BINGET and LONG_BINGET for STACK_GLOBAL.
    let memo = cat(&[
        &proto(4),
        &su("os"),
        &[0x94, b'0'],
        &su("system"),
        &[b'q', 5, b'0'],
        &[b'h', 0],
        &[b'j', 5, 0, 0, 0],
        &[0x93],
        &su("id"),
        TUPLE1,
        REDUCE,
        STOP,
    ]);
    check(
        "b.pkl",
        &memo,
        Status::Unsafe,
        "global os.system can execute code",
    );
    // BINUNICODE8 module name.
    let mut long_name = vec![0x8d];
    long_name.extend(10u64.to_le_bytes());
    long_name.extend(b"subprocess");
    let b8 = cat(&[
        &proto(4),
        &long_name,
        &su("Popen"),
        &[0x93],
        &su("id"),
        TUPLE1,
        REDUCE,
        STOP,
    ]);
    check("c.pkl", &b8, Status::Unsafe, "subprocess.Popen");
    // Operands that are not literal strings cannot be resolved.
    let computed = cat(&[&proto(4), &su("os"), b"K\x01", &[0x93], STOP]);
    check("d.pkl", &computed, Status::Unsafe, "not a literal string");
}

#[test]
fn every_call_opcode_reports_its_global() {
    // INST, protocol 0.
    check(
        "inst.pkl",
        b"(S'id'\nios\nsystem\n.",
        Status::Unsafe,
        "os.system",
    );
    // OBJ.
    check(
        "obj.pkl",
        b"(cos\nsystem\nS'id'\no.",
        Status::Unsafe,
        "os.system",
    );
    // NEWOBJ and NEWOBJ_EX.
    let newobj = cat(&[
        &proto(2),
        &global("subprocess", "Popen"),
        &bu("id"),
        TUPLE1,
        &[0x81],
        STOP,
    ]);
    check("newobj.pkl", &newobj, Status::Unsafe, "subprocess.Popen");
    let newobj_ex = cat(&[
        &proto(4),
        &global("builtins", "exec"),
        &bu("id"),
        TUPLE1,
        b"}",
        &[0x92],
        STOP,
    ]);
    check("newobj_ex.pkl", &newobj_ex, Status::Unsafe, "builtins.exec");
    // BUILD that installs __setstate__, then a BUILD that would call it.
    let build = cat(&[
        &proto(2),
        &global("collections", "OrderedDict"),
        b")",
        REDUCE,
        b"}",
        &bu("__setstate__"),
        &global("os", "system"),
        b"s",
        b"b",
        &bu("id"),
        b"b",
        STOP,
    ]);
    check("build.pkl", &build, Status::Unsafe, "os.system");
    check(
        "build.pkl",
        &build,
        Status::Unsafe,
        "BUILD sets __setstate__",
    );
    // BUILD on a global changes it for the whole process.
    let patch = cat(&[
        &proto(2),
        &global("collections", "OrderedDict"),
        b"N}",
        &bu("__init__"),
        &global("collections", "Counter"),
        b"s\x86b.",
    ]);
    check(
        "patch.pkl",
        &patch,
        Status::Unsafe,
        "sets attributes of the global collections.OrderedDict",
    );
    // A callable that is not a global cannot be checked.
    let indirect = cat(&[&proto(2), &bu("x"), &bu("id"), TUPLE1, REDUCE, STOP]);
    check("indirect.pkl", &indirect, Status::Unsafe, "not a global");
}

#[test]
fn extension_codes_are_unresolvable() {
    for ext in [&[0x82, 1][..], &[0x83, 1, 0], &[0x84, 1, 0, 0, 0]] {
        let p = cat(&[&proto(2), ext, &bu("id"), TUPLE1, REDUCE, STOP]);
        check("ext.pkl", &p, Status::Unsafe, "copyreg registry");
    }
}

#[test]
fn protocol_zero_text_pickle_is_found_even_as_a_text_file() {
    let p = b"cos\nsystem\n(S'echo hi'\ntR.";
    check("notes.txt", p, Status::Unsafe, "os.system");
    check("model.pkl", p, Status::Unsafe, "os.system");
}

#[test]
fn unknown_globals_are_high() {
    let p = call("mymodule", "Thing", "x");
    check("m.pkl", &p, Status::Unsafe, "not on the allow-list");
    let report = scan("m.pkl", &p, &Limits::default());
    assert_eq!(report.findings[0].severity, Severity::High);
}

fn benign_state_dict() -> Vec<u8> {
    // OrderedDict([("w", [1, 2.5, "x", b"y", None, True])]) with a memo.
    cat(&[
        &proto(2),
        &global("collections", "OrderedDict"),
        b"q\x00",
        b")",
        REDUCE,
        b"q\x01",
        &bu("w"),
        b"]q\x02(K\x01G\x40\x04\x00\x00\x00\x00\x00\x00",
        &su("x"),
        b"C\x01y",
        b"N\x88e",
        b"s",
        STOP,
    ])
}

#[test]
fn benign_pickles_are_safe() {
    check("state.pkl", &benign_state_dict(), Status::Safe, "");
    check(
        "p0.pkl",
        b"(lp0\nI1\naI-2\naF1.5\naS'x'\nad.",
        Status::Unscannable,
        "",
    );
    check(
        "p0.pkl",
        b"(lp0\nI1\naI-2\naF1.5\naS'x'\na.",
        Status::Safe,
        "",
    );
}

#[test]
fn broken_streams_fail_closed() {
    let good = benign_state_dict();
    // Truncated.
    check(
        "t.pkl",
        &good[..good.len() - 1],
        Status::Unscannable,
        "truncated",
    );
    // Trailing data after STOP.
    let trailing = cat(&[&good, b"extra"]);
    check("t.pkl", &trailing, Status::Unscannable, "trailing data");
    // A broken opcode after a malicious call: Python runs os.system, then fails.
    let broken = cat(&[
        &proto(2),
        &global("os", "system"),
        &bu("id"),
        TUPLE1,
        REDUCE,
        &[0xff, 0xfe],
    ]);
    let report = scan("b.pkl", &broken, &Limits::default());
    assert_eq!(report.status, Status::Unsafe);
    assert!(report
        .findings
        .iter()
        .any(|f| f.severity == Severity::Error));
    // The same break in a benign stream is unscannable, never safe.
    let benign_broken = cat(&[&good[..good.len() - 1], &[0xff]]);
    check(
        "b.pkl",
        &benign_broken,
        Status::Unscannable,
        "unknown opcode 0xff",
    );
    // Stack underflow, a missing mark, a memo key never written, two values at STOP.
    for bad in [
        &b"\x80\x02R."[..],
        b"\x80\x02N]e.",
        b"\x80\x02h\x07.",
        b"\x80\x02NN.",
    ] {
        check("u.pkl", bad, Status::Unscannable, "");
    }
    // Out-of-band buffers are not in the file.
    check(
        "o.pkl",
        b"\x80\x05\x97.",
        Status::Unscannable,
        "out-of-band",
    );
}

#[test]
fn huge_declared_lengths_are_errors_not_allocations() {
    let mut cases = Vec::new();
    for opcode in [0x8d_u8, 0x8e, 0x96] {
        let mut p = proto(4);
        p.push(opcode);
        p.extend((1u64 << 62).to_le_bytes());
        cases.push(p);
    }
    cases.push(cat(&[&proto(4), &[0x95], &u64::MAX.to_le_bytes(), b"N."]));
    cases.push(cat(&[&proto(2), b"\x8b\xff\xff\xff\xff"]));
    cases.push(cat(&[&proto(2), b"X\xff\xff\xff\xff"]));
    for p in cases {
        check("h.pkl", &p, Status::Unscannable, "");
    }
}

fn zip_of(members: &[(&str, &[u8])], method: CompressionMethod) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in members {
        w.start_file(
            *name,
            SimpleFileOptions::default().compression_method(method),
        )
        .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// `data.pkl` as `torch.save` writes it: an OrderedDict of one tensor, rebuilt by
/// `_rebuild_tensor_v2` from a persistent-id storage.
fn torch_data_pkl(pid_tag: &str) -> Vec<u8> {
    cat(&[
        &proto(2),
        &global("collections", "OrderedDict"),
        b")",
        REDUCE,
        &bu("weight"),
        &global("torch._utils", "_rebuild_tensor_v2"),
        b"(",
        b"(",
        &bu(pid_tag),
        &global("torch", "FloatStorage"),
        &bu("0"),
        &bu("cpu"),
        b"K\x04",
        b"t",
        b"Q",
        b"K\x00",
        b"K\x02K\x02\x86",
        b"K\x02K\x01\x86",
        b"\x89",
        &global("collections", "OrderedDict"),
        b")",
        REDUCE,
        b"t",
        REDUCE,
        b"s",
        STOP,
    ])
}

fn torch_zip(data_pkl: &[u8], with_storage: bool) -> Vec<u8> {
    let storage = [0u8; 16];
    let mut members: Vec<(&str, &[u8])> = vec![
        ("archive/data.pkl", data_pkl),
        ("archive/byteorder", b"little"),
        ("archive/version", b"3\n"),
    ];
    if with_storage {
        members.push(("archive/data/0", &storage));
    }
    zip_of(&members, CompressionMethod::Stored)
}

#[test]
fn pytorch_archives_allow_storage_persistent_ids_only() {
    let good = torch_zip(&torch_data_pkl("storage"), true);
    let report = scan("model.pt", &good, &Limits::default());
    assert_eq!(report.format, "pytorch-zip");
    assert_eq!(report.status, Status::Safe, "{report:#?}");
    // A storage named but absent.
    check(
        "model.pt",
        &torch_zip(&torch_data_pkl("storage"), false),
        Status::Unscannable,
        "not in the archive",
    );
    // A persistent id of another shape.
    check(
        "model.pt",
        &torch_zip(&torch_data_pkl("other"), true),
        Status::Unsafe,
        "not a PyTorch storage",
    );
    // The same pickle outside an archive: the loader decides what a persistent id is.
    check(
        "data.pkl",
        &torch_data_pkl("storage"),
        Status::Unsafe,
        "outside a PyTorch archive",
    );
    // A malicious data.pkl inside the archive.
    check(
        "model.pt",
        &torch_zip(&call("os", "system", "id"), true),
        Status::Unsafe,
        "os.system",
    );
}

#[test]
fn nested_and_refused_containers() {
    let evil = call("os", "system", "id");
    let inner = zip_of(&[("evil.pkl", &evil)], CompressionMethod::Deflated);
    let outer = zip_of(&[("inner.zip", &inner)], CompressionMethod::Stored);
    let report = scan("outer.zip", &outer, &Limits::default());
    assert_eq!(report.status, Status::Unsafe);
    assert_eq!(report.findings[0].member, "inner.zip!/evil.pkl");
    // Deeper than the limit.
    let mut nested = outer;
    for _ in 0..3 {
        nested = zip_of(&[("n.zip", &nested)], CompressionMethod::Stored);
    }
    check("deep.zip", &nested, Status::Unscannable, "nested deeper");
    // 7z and friends are never opened.
    let mut sevenz = b"7z\xbc\xaf\x27\x1c\x00\x04".to_vec();
    sevenz.extend(&evil);
    let report = scan("model.pt", &sevenz, &Limits::default());
    assert_eq!((report.format, report.status), ("7z", Status::Unscannable));
    for (magic, format) in [
        (&b"\x1f\x8b\x08\x00"[..], "gzip"),
        (b"BZh91AY", "bzip2"),
        (b"\xfd7zXZ\x00\x00", "xz"),
        (b"\x28\xb5\x2f\xfd\x00", "zstd"),
    ] {
        let report = scan("model.bin", magic, &Limits::default());
        assert_eq!(
            (report.format, report.status),
            (format, Status::Unscannable)
        );
    }
}

#[test]
fn zip_bombs_and_limits_are_refused() {
    let zeros = vec![0u8; 20 << 20];
    let bomb = zip_of(&[("zeros.bin", &zeros)], CompressionMethod::Deflated);
    check("bomb.zip", &bomb, Status::Unscannable, "zip bomb");
    let small = Limits {
        max_entries: 2,
        ..Limits::default()
    };
    let many = zip_of(
        &[("a", b"1"), ("b", b"2"), ("c", b"3")],
        CompressionMethod::Stored,
    );
    let report = scan("many.zip", &many, &small);
    assert_eq!(report.status, Status::Unscannable);
    let tiny = Limits {
        max_total_uncompressed_bytes: 2,
        ..Limits::default()
    };
    assert_eq!(scan("many.zip", &many, &tiny).status, Status::Unscannable);
    // A corrupted member fails its CRC check.
    let mut corrupt = zip_of(&[("a.json", b"{\"a\": 1}")], CompressionMethod::Stored);
    let at = corrupt.windows(8).position(|w| w == b"{\"a\": 1}").unwrap();
    corrupt[at + 6] = b'2';
    check("corrupt.zip", &corrupt, Status::Unscannable, "");
}

fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((h.len() as u16).to_le_bytes());
    out.extend(h.as_bytes());
    out.extend(data);
    out
}

#[test]
fn numpy_files() {
    let plain = npy("<f4", "(2, 2)", &[0; 16]);
    check("a.npy", &plain, Status::Safe, "");
    check(
        "a.npy",
        &plain[..plain.len() - 1],
        Status::Unscannable,
        "npy data",
    );
    let npz = zip_of(
        &[("a.npy", &plain), ("b.npy", &plain)],
        CompressionMethod::Deflated,
    );
    check("arrays.npz", &npz, Status::Safe, "");
    // An object array: the data is a pickle.
    let benign = cat(&[
        &proto(3),
        &global("numpy.core.multiarray", "_reconstruct"),
        &global("numpy", "ndarray"),
        b"K\x00\x85C\x01b\x87",
        REDUCE,
        b"(K\x01K\x02\x85",
        &global("numpy", "dtype"),
        &bu("O8"),
        b"\x89\x88\x87",
        REDUCE,
        b"\x89]K\x01aK\x02at",
        b"b",
        STOP,
    ]);
    check("o.npy", &npy("|O", "(2,)", &benign), Status::Safe, "");
    check(
        "o.npy",
        &npy("|O", "(2,)", &call("os", "system", "id")),
        Status::Unsafe,
        "os.system",
    );
    let npz = zip_of(
        &[("x.npy", &npy("|O", "(1,)", &call("builtins", "eval", "1")))],
        CompressionMethod::Stored,
    );
    check("evil.npz", &npz, Status::Unsafe, "builtins.eval");
}

/// A joblib file holding one float64 array of 3 elements: the wrapper pickled with
/// NEWOBJ and BUILD, then the padding and the raw bytes, then STOP.
fn joblib_file(raw: &[u8], object: bool) -> Vec<u8> {
    let dtype = if object { "O8" } else { "f8" };
    let mut head = cat(&[
        &proto(4),
        &global("joblib.numpy_pickle", "NumpyArrayWrapper"),
        b")\x81}(",
        &su("subclass"),
        &global("numpy", "ndarray"),
        &su("shape"),
        b"K\x03\x85",
        &su("order"),
        &su("C"),
        &su("dtype"),
        &global("numpy", "dtype"),
        &su(dtype),
        b"\x89\x88\x87R(K\x03",
        &su("<"),
        b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb",
        &su("allow_mmap"),
        b"\x88",
    ]);
    if !object {
        head.extend(cat(&[&su("numpy_array_alignment_bytes"), b"K\x10"]));
    }
    head.extend(b"ub");
    if !object {
        let pad = 16 - (head.len() + 1) % 16;
        head.push(pad as u8);
        head.extend(vec![0xff; pad]);
    }
    cat(&[&head, raw, STOP])
}

#[test]
fn joblib_arrays_are_read_as_data() {
    // Array bytes that look like opcodes are data, as joblib reads them.
    let raw = b"cos\nsystem\n(S'a'\ntR.";
    let mut raw24 = raw.to_vec();
    raw24.resize(24, b'.');
    check(
        "model.joblib",
        &joblib_file(&raw24, false),
        Status::Safe,
        "",
    );
    check(
        "model.joblib",
        &joblib_file(&raw24[..20], false),
        Status::Unscannable,
        "",
    );
    // Object arrays are nested pickles, which are scanned.
    check(
        "model.joblib",
        &joblib_file(&call("os", "system", "id"), true),
        Status::Unsafe,
        "os.system",
    );
    check(
        "model.joblib",
        &joblib_file(b"\x80\x02]q\x00.", true),
        Status::Safe,
        "",
    );
}

#[test]
fn safetensors_headers_are_checked() {
    let header = r#"{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#;
    let mut good = (header.len() as u64).to_le_bytes().to_vec();
    good.extend(header.as_bytes());
    good.extend([0; 4]);
    check("model.safetensors", &good, Status::Safe, "");
    check(
        "model.safetensors",
        &good[..good.len() - 1],
        Status::Unscannable,
        "safetensors",
    );
    // Found by its shape even without the extension.
    check("weights", &good, Status::Safe, "");
    let mut huge = (200u64 << 20).to_le_bytes().to_vec();
    huge.extend(b"{}");
    check(
        "model.safetensors",
        &huge,
        Status::Unscannable,
        "exceeds the limit",
    );
}

#[test]
fn text_and_unknown_files() {
    check("config.json", br#"{"hidden_size": 768}"#, Status::Safe, "");
    check("labels.txt", b"cat\ndog\nbird\n", Status::Safe, "");
    check("README.md", b"compile\nwith care\n", Status::Safe, "");
    check(
        "model.onnx",
        b"\x08\x07\x12\x00\xff\xfe",
        Status::Unknown,
        "unknown binary format",
    );
    let mut gguf = b"GGUF".to_vec();
    gguf.extend(3u32.to_le_bytes());
    gguf.extend([0; 16]);
    check("m.gguf", &gguf, Status::Safe, "");
    check(
        "keras.h5",
        b"\x89HDF\r\n\x1a\n\0\0",
        Status::Unscannable,
        "Lambda",
    );
}

#[test]
fn polyglots_are_judged_as_the_pickles_they_also_are() {
    // GGUF magic whose bytes Python reads as BINFLOAT, POP, then a call of os.system.
    let gguf = cat(&[
        b"GGUF\x03\0\0\0\0",
        b"0",
        b"cos\nsystem\n(S'id'\ntR.",
        &[0; 16],
    ]);
    check("model.gguf", &gguf, Status::Unsafe, "polyglot");
    check("model.gguf", &gguf, Status::Unsafe, "os.system");
    // Zip magic read as a persistent id line, then the same call.
    let zip = cat(&[b"PK\x03\x04\n0", b"cos\nsystem\n(S'id'\ntR."]);
    check("model.pt", &zip, Status::Unsafe, "os.system");
}

#[test]
fn values_on_the_stack_and_in_the_memo_are_bounded() {
    let limits = Limits {
        max_pickle_values: 100,
        ..Limits::default()
    };
    let mut many = proto(2);
    many.extend([b'('; 1]);
    many.extend([b'N'; 150]);
    many.extend(b"l.");
    let report = scan("m.pkl", &many, &limits);
    assert_eq!(report.status, Status::Unscannable);
    assert!(
        report.findings[0].message.contains("more than 100 values"),
        "{report:#?}"
    );
    assert_eq!(
        scan("m.pkl", &many, &Limits::default()).status,
        Status::Safe
    );
}

#[test]
fn a_zip_is_a_pytorch_archive_only_when_every_member_shares_its_folder() {
    let pkl = torch_data_pkl("storage");
    let storage = [0u8; 16];
    let stray = zip_of(
        &[
            ("archive/data.pkl", &pkl),
            ("archive/data/0", &storage),
            ("other/readme.txt", b"hi"),
        ],
        CompressionMethod::Stored,
    );
    let report = scan("model.pt", &stray, &Limits::default());
    assert_eq!(report.format, "zip");
    assert_eq!(report.status, Status::Unsafe, "{report:#?}");
    assert!(report.findings[0]
        .message
        .contains("outside a PyTorch archive"));
    // A directory entry that holds bytes is refused.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file("evil.pkl/", SimpleFileOptions::default())
        .unwrap();
    w.write_all(&call("os", "system", "id")).unwrap();
    let dir = w.finish().unwrap().into_inner();
    let report = scan("d.zip", &dir, &Limits::default());
    assert_ne!(report.status, Status::Safe, "{report:#?}");
}
