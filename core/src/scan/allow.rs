//! Which pickle globals a scan lets through (`spec/scan.md` section 6).
//!
//! Two lists with different jobs. The allow-list is the gate: a global passes only when
//! it is on it, because anything a pickle imports may be called with arguments the
//! pickle chooses. The deny-list only grades what fails: a global on it is a known way
//! to run code (`critical`), anything else off the allow-list is `high`.
//!
//! The allow-list holds what `torch.save`, NumPy, joblib and the standard containers
//! write for plain weights and arrays, and nothing that calls a function it is given
//! unless that function is itself a global checked against this list. It follows the
//! globals that PyTorch's `weights_only` unpickler accepts and the safe lists of
//! picklescan and modelscan, trimmed to what model weights need.

/// How a global reference is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// On the allow-list.
    Allowed,
    /// A known way to run code or reach the system.
    Dangerous,
    /// Not on the allow-list.
    Unknown,
}

/// Modules that only load with Python 2 names; `pickle` maps them (`fix_imports`).
fn python3_module(module: &str) -> &str {
    match module {
        "__builtin__" | "exceptions" => "builtins",
        "cPickle" => "pickle",
        "commands" => "subprocess",
        "copy_reg" => "copyreg",
        _ => module,
    }
}

/// Globals allowed by exact `module`, `name`.
const ALLOWED: &[(&str, &[&str])] = &[
    (
        "collections",
        &["OrderedDict", "Counter", "defaultdict", "deque"],
    ),
    (
        "builtins",
        &[
            "set",
            "frozenset",
            "bytearray",
            "bytes",
            "complex",
            "slice",
            "range",
            "object",
            "int",
            "float",
            "bool",
            "str",
            "list",
            "dict",
            "tuple",
        ],
    ),
    // Used by protocol 2 pickles for bytes: encode(text, "latin1").
    ("_codecs", &["encode"]),
    // Protocol 0/1 object reconstruction; its class arguments are globals too.
    ("copyreg", &["_reconstructor"]),
    (
        "torch._utils",
        &[
            "_rebuild_tensor",
            "_rebuild_tensor_v2",
            "_rebuild_tensor_v3",
            "_rebuild_parameter",
            "_rebuild_parameter_with_state",
            "_rebuild_qtensor",
            "_rebuild_sparse_tensor",
            "_rebuild_meta_tensor_no_storage",
            "_rebuild_nested_tensor",
        ],
    ),
    ("torch._tensor", &["_rebuild_from_type_v2"]),
    ("torch.nn.parameter", &["Parameter"]),
    ("torch.serialization", &["_get_layout"]),
    (
        "torch",
        &[
            "Size",
            "Tensor",
            "device",
            "dtype",
            "layout",
            "memory_format",
            "UntypedStorage",
            "FloatStorage",
            "DoubleStorage",
            "HalfStorage",
            "BFloat16Storage",
            "LongStorage",
            "IntStorage",
            "ShortStorage",
            "CharStorage",
            "ByteStorage",
            "BoolStorage",
            "ComplexFloatStorage",
            "ComplexDoubleStorage",
            "QUInt8Storage",
            "QInt8Storage",
            "QInt32Storage",
            "QUInt4x2Storage",
            "QUInt2x4Storage",
            "float32",
            "float",
            "float64",
            "double",
            "float16",
            "half",
            "bfloat16",
            "complex32",
            "complex64",
            "complex128",
            "cfloat",
            "cdouble",
            "uint8",
            "uint16",
            "uint32",
            "uint64",
            "int8",
            "int16",
            "short",
            "int32",
            "int",
            "int64",
            "long",
            "bool",
            "quint8",
            "qint8",
            "qint32",
            "quint4x2",
            "quint2x4",
            "float8_e4m3fn",
            "float8_e5m2",
            "float8_e4m3fnuz",
            "float8_e5m2fnuz",
            "strided",
            "sparse_coo",
            "sparse_csr",
            "sparse_csc",
            "sparse_bsr",
            "sparse_bsc",
            "contiguous_format",
            "channels_last",
            "channels_last_3d",
            "preserve_format",
            "per_tensor_affine",
            "per_channel_affine",
            "per_tensor_symmetric",
            "per_channel_symmetric",
        ],
    ),
    ("numpy", &["ndarray", "dtype"]),
    ("numpy.core.multiarray", &["_reconstruct", "scalar"]),
    ("numpy._core.multiarray", &["_reconstruct", "scalar"]),
    (
        "numpy.dtypes",
        &[
            "Float64DType",
            "Float32DType",
            "Float16DType",
            "Int64DType",
            "Int32DType",
            "Int16DType",
            "Int8DType",
            "UInt64DType",
            "UInt32DType",
            "UInt16DType",
            "UInt8DType",
            "BoolDType",
            "Complex64DType",
            "Complex128DType",
        ],
    ),
    ("joblib.numpy_pickle", &["NumpyArrayWrapper"]),
];

/// Modules every global of which runs code or reaches the system.
const DANGEROUS_MODULES: &[&str] = &[
    "os",
    "posix",
    "nt",
    "subprocess",
    "_posixsubprocess",
    "sys",
    "socket",
    "shutil",
    "runpy",
    "pty",
    "webbrowser",
    "ctypes",
    "importlib",
    "pickle",
    "_pickle",
    "marshal",
    "code",
    "codeop",
    "pdb",
    "bdb",
    "timeit",
    "asyncio",
    "multiprocessing",
    "signal",
    "commands",
    "popen2",
    "platform",
    "pydoc",
    "requests",
    "urllib",
    "http",
    "httplib",
    "ftplib",
    "smtplib",
    "telnetlib",
    "operator",
    "functools",
    "types",
    "dill",
    "cloudpickle",
];

/// Single globals that run code.
const DANGEROUS: &[(&str, &str)] = &[
    ("builtins", "eval"),
    ("builtins", "exec"),
    ("builtins", "execfile"),
    ("builtins", "compile"),
    ("builtins", "open"),
    ("builtins", "getattr"),
    ("builtins", "setattr"),
    ("builtins", "delattr"),
    ("builtins", "__import__"),
    ("builtins", "apply"),
    ("builtins", "breakpoint"),
    ("builtins", "input"),
    ("builtins", "globals"),
    ("builtins", "locals"),
    ("builtins", "vars"),
    ("torch", "load"),
    ("torch.hub", "load"),
    ("torch.hub", "load_state_dict_from_url"),
    ("torch.serialization", "load"),
    ("torch.jit", "load"),
    ("numpy", "load"),
    ("numpy.testing._private.utils", "runstring"),
];

/// Judges the global `module`.`name` as `pickle`'s `find_class` would resolve it.
pub fn judge(module: &str, name: &str) -> Verdict {
    let module = python3_module(module);
    let top = module.split('.').next().unwrap_or(module);
    let first = name.split('.').next().unwrap_or(name);
    if DANGEROUS_MODULES.contains(&top)
        || DANGEROUS
            .iter()
            .any(|(m, n)| *m == module && (*n == name || *n == first))
    {
        return Verdict::Dangerous;
    }
    let allowed = ALLOWED
        .iter()
        .any(|(m, names)| *m == module && names.contains(&name));
    if allowed {
        Verdict::Allowed
    } else {
        Verdict::Unknown
    }
}

/// Whether `module`.`name` is one of PyTorch's storage classes, the only globals a
/// persistent id may name.
pub fn is_torch_storage(module: &str, name: &str) -> bool {
    module == "torch" && name.ends_with("Storage") && judge(module, name) == Verdict::Allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_known_globals() {
        let cases = [
            ("os", "system", Verdict::Dangerous),
            ("posix", "system", Verdict::Dangerous),
            ("subprocess", "Popen", Verdict::Dangerous),
            ("builtins", "exec", Verdict::Dangerous),
            ("__builtin__", "eval", Verdict::Dangerous),
            ("os.path", "join", Verdict::Dangerous),
            ("torch._utils", "_rebuild_tensor_v2", Verdict::Allowed),
            ("collections", "OrderedDict", Verdict::Allowed),
            ("copy_reg", "_reconstructor", Verdict::Allowed),
            (
                "torch._utils",
                "_rebuild_tensor_v2.__globals__",
                Verdict::Unknown,
            ),
            ("mymodule", "Thing", Verdict::Unknown),
            ("builtins", "print", Verdict::Unknown),
        ];
        for (module, name, want) in cases {
            assert_eq!(judge(module, name), want, "{module}.{name}");
        }
        assert!(is_torch_storage("torch", "FloatStorage"));
        assert!(!is_torch_storage("torch", "Size"));
    }
}
