//! `pedigree scan` and `pedigree verify --scan` on files written to a temporary
//! directory: real CPython pickles (protocols 0 to 5, standard library only), a
//! PyTorch-like archive written by Python's pickler and zipfile, joblib files written
//! the way joblib's pickler writes them, and hand-made containers; exit codes and
//! `--json` output.

mod common;

use std::path::Path;
use std::process::Command;

use common::{generate_key, pedigree, s, write};
use serde_json::Value;

/// Writes the corpus with python3: `clean/` must pass, every file of `dirty/` fail.
const CORPUS: &str = r#"
import collections, io, os, pickle, struct, subprocess, sys, types, zipfile
root = sys.argv[1]
clean = os.path.join(root, "clean"); dirty = os.path.join(root, "dirty")
os.makedirs(clean); os.makedirs(dirty)

# A stand-in for torch so CPython's pickler writes what torch.save writes.
torch = types.ModuleType("torch"); tutils = types.ModuleType("torch._utils")
sys.modules["torch"] = torch; sys.modules["torch._utils"] = tutils
class FloatStorage: pass
FloatStorage.__module__ = "torch"; torch.FloatStorage = FloatStorage
def _rebuild_tensor_v2(*args): pass
_rebuild_tensor_v2.__module__ = "torch._utils"; tutils._rebuild_tensor_v2 = _rebuild_tensor_v2
class Storage:
    def __init__(self, key, numel): self.key, self.numel = key, numel
class Tensor:
    def __init__(self, storage, shape): self.storage, self.shape = storage, shape
    def __reduce_ex__(self, proto):
        return (_rebuild_tensor_v2, (self.storage, 0, self.shape, (self.shape[1], 1), False, collections.OrderedDict()))
class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", FloatStorage, obj.key, "cpu", obj.numel)
        return None
class Evil:
    def __init__(self, fn, arg): self.fn, self.arg = fn, arg
    def __reduce__(self): return (self.fn, (self.arg,))

def torch_zip(path, state):
    buf = io.BytesIO(); TorchPickler(buf, protocol=2).dump(state)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("model/data.pkl", buf.getvalue())
        z.writestr("model/byteorder", "little")
        z.writestr("model/data/0", bytes(24))
        z.writestr("model/data/1", bytes(8))
        z.writestr("model/version", "3\n")
        z.writestr("model/.data/serialization_id", "1234567890")

weights = collections.OrderedDict(weight=Tensor(Storage("0", 6), (2, 3)), bias=Tensor(Storage("1", 2), (2, 1)))
torch_zip(os.path.join(clean, "pytorch_model.bin"), weights)
benign = {"a": [1, 2.5, "x", b"y", None, True, (1, 2)], "s": {1, 2}, "f": frozenset([3]),
          "o": collections.OrderedDict(k=1), "big": 2 ** 100, "ba": bytearray(b"zz")}
for p in range(6):
    with open(os.path.join(clean, f"benign_p{p}.pkl"), "wb") as f: pickle.dump(benign, f, protocol=p)
with open(os.path.join(clean, "config.json"), "w") as f: f.write('{"hidden_size": 768}')
with open(os.path.join(clean, "tokenizer.txt"), "w") as f: f.write("cat\ndog\nbird\n")

payloads = {"os": (os.system, "id"), "subprocess": (subprocess.Popen, "id"), "exec": (exec, "print(1)"), "eval": (eval, "1")}
for name, (fn, arg) in payloads.items():
    for p in range(6):
        with open(os.path.join(dirty, f"{name}_p{p}.pkl"), "wb") as f: pickle.dump(Evil(fn, arg), f, protocol=p)
evil_weights = collections.OrderedDict(weight=Tensor(Storage("0", 6), (2, 3)), bias=Evil(os.system, "id"))
torch_zip(os.path.join(dirty, "evil_model.pt"), evil_weights)
good = pickle.dumps(benign, protocol=4)
with open(os.path.join(dirty, "truncated.pkl"), "wb") as f: f.write(good[:-3])
with open(os.path.join(dirty, "trailing.pkl"), "wb") as f: f.write(good + b"\x00junk")
with open(os.path.join(dirty, "broken_after_call.pkl"), "wb") as f: f.write(pickle.dumps(Evil(os.system, "id"), protocol=2)[:-1] + b"\xff")
with open(os.path.join(dirty, "model.7z"), "wb") as f: f.write(b"7z\xbc\xaf\x27\x1c\x00\x04" + pickle.dumps(Evil(os.system, "id")))
inner = io.BytesIO()
with zipfile.ZipFile(inner, "w") as z: z.writestr("payload.pkl", pickle.dumps(Evil(os.system, "id"), protocol=2))
with zipfile.ZipFile(os.path.join(dirty, "nested.zip"), "w") as z: z.writestr("inner.zip", inner.getvalue())
with zipfile.ZipFile(os.path.join(dirty, "bomb.zip"), "w", zipfile.ZIP_DEFLATED) as z: z.writestr("zeros", bytes(32 << 20))

# joblib files as joblib's NumpyPickler writes them, with stand-ins for numpy and joblib.
np = types.ModuleType("numpy"); sys.modules["numpy"] = np
jl = types.ModuleType("joblib"); jnp = types.ModuleType("joblib.numpy_pickle")
sys.modules["joblib"] = jl; sys.modules["joblib.numpy_pickle"] = jnp; jl.numpy_pickle = jnp
class ndarray: pass
ndarray.__module__ = "numpy"; np.ndarray = ndarray
class dtype:
    def __init__(self, code, align=False, copy=True): self.code = code
    def __reduce__(self): return (dtype, (self.code, False, True), (3, "<", None, None, None, -1, -1, 0))
    def __setstate__(self, state): pass
dtype.__module__ = "numpy"; np.dtype = dtype
class NumpyArrayWrapper:
    def __init__(self, subclass, shape, order, dtype, allow_mmap=False, numpy_array_alignment_bytes=16):
        self.subclass, self.shape, self.order, self.dtype = subclass, shape, order, dtype
        self.allow_mmap, self.numpy_array_alignment_bytes = allow_mmap, numpy_array_alignment_bytes
NumpyArrayWrapper.__module__ = "joblib.numpy_pickle"; jnp.NumpyArrayWrapper = NumpyArrayWrapper
class Array:
    """A stand-in array: float64 data, or objects pickled whole."""
    def __init__(self, values, objects=None): self.values, self.objects = values, objects
class NumpyPickler(pickle._Pickler):
    # As joblib's NumpyPickler.save: the wrapper, the frame committed, then the data.
    def __init__(self, f, protocol): super().__init__(f, protocol=protocol); self.file_handle = f
    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, Array):
            code = "O8" if obj.objects is not None else "f8"
            n = len(obj.objects) if obj.objects is not None else len(obj.values)
            w = NumpyArrayWrapper(ndarray, (n,), "C", dtype(code), allow_mmap=obj.objects is None)
            pickle._Pickler.save(self, w)
            if self.proto >= 4: self.framer.commit_frame(force=True)
            if obj.objects is not None:
                pickle.dump(obj.objects, self.file_handle, protocol=2)
            else:
                pad = 16 - (self.file_handle.tell() + 1) % 16
                self.file_handle.write(bytes([pad]) + b"\xff" * pad)
                self.file_handle.write(struct.pack(f"<{n}d", *obj.values))
            return
        return pickle._Pickler.save(self, obj, save_persistent_id)
def dump(path, obj, proto):
    with open(path, "wb") as f: NumpyPickler(f, proto).dump(obj)
dump(os.path.join(clean, "model.joblib"), {"coef": Array([1.0, 2.0, 3.0] * 50), "names": ["a", "b"], "objs": Array(None, ["x", 1])}, 4)
dump(os.path.join(clean, "model_p2.joblib"), [Array([0.5] * 7)], 2)
dump(os.path.join(dirty, "evil.joblib"), {"coef": Array([1.0]), "objs": Array(None, [Evil(os.system, "id")])}, 4)
with open(os.path.join(clean, "model.joblib"), "rb") as f: joblib_bytes = f.read()
with open(os.path.join(dirty, "truncated.joblib"), "wb") as f: f.write(joblib_bytes[:-40])
"#;

fn corpus() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let status = Command::new("python3")
        .arg("-c")
        .arg(CORPUS)
        .arg(tmp.path())
        .status()
        .expect("python3 runs");
    assert!(status.success());
    tmp
}

fn scan_json(path: &Path, extra: &[&str]) -> (i32, Value, String) {
    let mut args = vec!["scan", s(path), "--json"];
    args.extend_from_slice(extra);
    let run = pedigree(&args);
    let json = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    (run.code, json, run.stderr)
}

fn status_of<'a>(report: &'a Value, path: &str) -> &'a str {
    report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("{path} not in {report:#}"))["status"]
        .as_str()
        .unwrap()
}

#[test]
fn clean_model_directory_passes() {
    let tmp = corpus();
    let (code, report, stderr) = scan_json(&tmp.path().join("clean"), &[]);
    assert_eq!(code, 0, "{report:#} {stderr}");
    assert_eq!(report["passed"], true);
    assert_eq!(report["counts"]["safe"], 11);
    let torch = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "pytorch_model.bin")
        .unwrap();
    assert_eq!(torch["format"], "pytorch-zip");
    let human = pedigree(&["scan", s(&tmp.path().join("clean"))]).ok();
    assert!(human.contains("11 files: 11 safe, 0 unsafe"), "{human}");
}

#[test]
fn every_dirty_file_fails_with_its_reason() {
    let tmp = corpus();
    let dirty = tmp.path().join("dirty");
    let (code, report, stderr) = scan_json(&dirty, &[]);
    assert_eq!(code, 1);
    assert_eq!(report["passed"], false);
    assert!(stderr.starts_with("pedigree: scan failed: "), "{stderr}");
    for p in 0..6 {
        for name in ["os", "subprocess", "exec", "eval"] {
            assert_eq!(status_of(&report, &format!("{name}_p{p}.pkl")), "unsafe");
        }
    }
    for (file, status) in [
        ("evil_model.pt", "unsafe"),
        ("broken_after_call.pkl", "unsafe"),
        ("nested.zip", "unsafe"),
        ("truncated.pkl", "unscannable"),
        ("trailing.pkl", "unscannable"),
        ("model.7z", "unscannable"),
        ("bomb.zip", "unscannable"),
        ("evil.joblib", "unsafe"),
        ("truncated.joblib", "unscannable"),
    ] {
        assert_eq!(status_of(&report, file), status, "{file}");
    }
    let files = report["files"].as_array().unwrap();
    let nested = files.iter().find(|f| f["path"] == "nested.zip").unwrap();
    assert_eq!(nested["findings"][0]["member"], "inner.zip!/payload.pkl");
    assert_eq!(nested["findings"][0]["severity"], "critical");
    let exec = files.iter().find(|f| f["path"] == "exec_p4.pkl").unwrap();
    assert!(
        exec["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("builtins.exec"),
        "{exec:#}"
    );
    assert_eq!(report["counts"]["safe"], 0);
}

#[test]
fn single_files_and_unknown_formats() {
    let tmp = corpus();
    let run = pedigree(&["scan", s(&tmp.path().join("dirty/os_p2.pkl"))]);
    assert!(run.stdout.contains("critical"), "{}", run.stdout);
    run.fails_with("os_p2.pkl is unsafe: global posix.system can execute code");
    write(tmp.path(), "blob/model.onnx", b"\x08\x07\x12\x00\xff\xfe");
    let blob = tmp.path().join("blob");
    pedigree(&["scan", s(&blob)]).fails_with("model.onnx is unknown");
    let (code, report, _) = scan_json(&blob, &["--allow-unknown"]);
    assert_eq!((code, &report["passed"]), (0, &Value::Bool(true)));
    assert_eq!(status_of(&report, "model.onnx"), "unknown");
}

#[test]
fn verify_scan_fails_on_a_signed_but_unsafe_model() {
    let tmp = corpus();
    let model = tmp.path().join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::copy(
        tmp.path().join("clean/pytorch_model.bin"),
        model.join("pytorch_model.bin"),
    )
    .unwrap();
    let (key, public) = generate_key(tmp.path(), "signer", "ed25519");
    let sig = tmp.path().join("model.sig");
    let sign = |m: &Path| {
        pedigree(&["sign", s(m), "--key", s(&key), "--signature", s(&sig)]).ok();
    };
    sign(&model);
    let verify = |extra: &[&str]| {
        let mut args = vec![
            "verify",
            s(&model),
            "--signature",
            s(&sig),
            "--key",
            s(&public),
        ];
        args.extend_from_slice(extra);
        pedigree(&args)
    };
    let out = verify(&["--scan", "--json"]).ok();
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["scan"]["safe"], 1);

    // The signer signed a malicious pickle: the signature verifies, the scan refuses.
    std::fs::copy(
        tmp.path().join("dirty/eval_p3.pkl"),
        model.join("extra.pkl"),
    )
    .unwrap();
    sign(&model);
    verify(&[]).ok();
    verify(&["--scan"]).fails_with("model scan failed: extra.pkl is unsafe: global builtins.eval");
}

#[test]
fn large_files_are_scanned_through_a_map_with_the_same_verdicts() {
    // Above the 4 MiB at which the CLI maps files instead of reading them: a protocol 2
    // pickle whose payload is a 5 MiB byte string, then a call of posix.system.
    let tmp = tempfile::tempdir().unwrap();
    let payload = vec![b'x'; 5 << 20];
    let mut pickle = vec![0x80, 2, b'B'];
    pickle.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_le_bytes());
    pickle.extend_from_slice(&payload);
    pickle.push(b'0'); // POP: the bytes are only ballast
    let mut benign = pickle.clone();
    benign.extend_from_slice(b"N.");
    pickle.extend_from_slice(b"cposix\nsystem\nX\x02\x00\x00\x00id\x85R.");
    write(tmp.path(), "big/evil.pkl", &pickle);
    write(tmp.path(), "ok/benign.pkl", &benign);
    let (code, report, _) = scan_json(&tmp.path().join("big"), &[]);
    assert_ne!(code, 0, "{report:#}");
    assert_eq!(status_of(&report, "evil.pkl"), "unsafe");
    let (code, report, _) = scan_json(&tmp.path().join("ok"), &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(status_of(&report, "benign.pkl"), "safe");
    // Cut short, the large stream is unscannable, never safe.
    write(tmp.path(), "cut/evil.pkl", &pickle[..pickle.len() - 3]);
    let (code, report, _) = scan_json(&tmp.path().join("cut"), &[]);
    assert_ne!(code, 0);
    assert_ne!(status_of(&report, "evil.pkl"), "safe");
}
