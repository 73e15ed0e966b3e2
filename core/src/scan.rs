//! Static inspection of model files for code that loading them would run
//! (`spec/scan.md`).
//!
//! [`scan`] takes one file's bytes and says whether loading it can execute code:
//! pickle streams (on their own, in PyTorch zip archives, in joblib files and in NumPy
//! object arrays) are interpreted symbolically and every global they reference is
//! judged against an allow-list; containers are recognised by magic bytes and opened
//! only when they are zip archives; safetensors headers are checked for bounds. Nothing
//! is imported, called or written; the caller reads files and passes bytes.
//!
//! The scan fails closed: whatever it cannot follow to the end is `unscannable`,
//! never `safe`, because Python runs a broken pickle up to the point where it breaks.

pub mod allow;
pub mod archive;
pub mod numpy;
pub mod pickle;
pub mod safetensors;

use serde::Serialize;

/// The bounds a scan keeps to (`spec/scan.md` section 7). Past any of them a file
/// is `unscannable`.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest pickle stream analysed.
    pub max_pickle_bytes: u64,
    /// Most values a pickle holds at once on its stack and in its memo.
    pub max_pickle_values: usize,
    /// Largest archive member decompressed into memory to be scanned.
    pub max_member_bytes: u64,
    /// Largest sum of the uncompressed sizes of all archive members, nested ones
    /// included.
    pub max_total_uncompressed_bytes: u64,
    /// Largest ratio of uncompressed to compressed size of a member above 1 MiB.
    pub max_compression_ratio: u64,
    /// Most members in one archive.
    pub max_entries: usize,
    /// Deepest nesting of archives in archives.
    pub max_depth: usize,
    /// Largest safetensors JSON header.
    pub max_safetensors_header_bytes: u64,
    /// Largest `.npy` header.
    pub max_npy_header_bytes: u64,
    /// Most findings kept per file; the rest are counted.
    pub max_findings: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pickle_bytes: 1 << 30,
            max_pickle_values: 8 << 20,
            max_member_bytes: 1 << 30,
            max_total_uncompressed_bytes: 64 << 30,
            max_compression_ratio: 100,
            max_entries: 65_536,
            max_depth: 3,
            max_safetensors_header_bytes: 100 << 20,
            max_npy_header_bytes: 1 << 16,
            max_findings: 100,
        }
    }
}

/// How bad a finding is, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A file of a format the scanner does not know: not inspected.
    Warning,
    /// Something could not be parsed fully: the file is unscannable.
    Error,
    /// A global off the allow-list or a construct that cannot be checked.
    High,
    /// A global known to execute code.
    Critical,
}

/// A file's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Known format, fully inspected, nothing found.
    Safe,
    /// Unknown format, not inspected (a `warning` finding).
    Unknown,
    /// Could not be inspected fully (an `error` finding).
    Unscannable,
    /// Loading it can run code (a `high` or `critical` finding).
    Unsafe,
}

impl Status {
    /// Whether the file passes the gate; unknown formats pass only when allowed.
    pub fn passes(self, allow_unknown: bool) -> bool {
        match self {
            Status::Safe => true,
            Status::Unknown => allow_unknown,
            Status::Unscannable | Status::Unsafe => false,
        }
    }
}

/// One thing found in a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// The archive member it is in (`archive/data.pkl`, `outer.zip/inner.pkl`),
    /// empty for the file itself.
    pub member: String,
    /// Byte offset within the member (or the file), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// What was found.
    pub message: String,
}

/// The result of scanning one file.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// What the file is (`pickle`, `pytorch-zip`, `safetensors`, `7z`, ...).
    pub format: &'static str,
    /// The verdict.
    pub status: Status,
    /// What was found, worst first.
    pub findings: Vec<Finding>,
    /// Findings left out past [`Limits::max_findings`].
    #[serde(skip_serializing_if = "is_zero")]
    pub findings_dropped: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Scans one file. `name` is its file name, used only to pick how to read a file
/// that no magic bytes identify (`.pkl`, `.pt`, ... are read as pickles).
pub fn scan(name: &str, bytes: &[u8], limits: &Limits) -> Report {
    let mut s = Scanner {
        limits,
        findings: Vec::new(),
        dropped: 0,
        total_uncompressed: 0,
    };
    let format = s.member("", name, bytes, 0);
    s.findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let status = match s.findings.first().map(|f| f.severity) {
        None => Status::Safe,
        Some(Severity::Warning) => Status::Unknown,
        Some(Severity::Error) => Status::Unscannable,
        Some(Severity::High | Severity::Critical) => Status::Unsafe,
    };
    Report {
        format,
        status,
        findings: s.findings,
        findings_dropped: s.dropped,
    }
}

/// Scans a safetensors file of `file_len` bytes from its first bytes `head`, which
/// must hold the 8-byte length and the header it declares (at most
/// [`Limits::max_safetensors_header_bytes`]); the tensor data is not needed.
pub fn scan_safetensors_header(head: &[u8], file_len: u64, limits: &Limits) -> Report {
    let findings =
        match safetensors::check_header(head, file_len, limits.max_safetensors_header_bytes) {
            Ok(_) => Vec::new(),
            Err(e) => vec![Finding {
                severity: Severity::Error,
                member: String::new(),
                offset: None,
                message: format!("safetensors: {e}"),
            }],
        };
    Report {
        format: "safetensors",
        status: if findings.is_empty() {
            Status::Safe
        } else {
            Status::Unscannable
        },
        findings,
        findings_dropped: 0,
    }
}

/// File name endings that mean "a pickle": read as one even without magic bytes.
const PICKLE_EXTENSIONS: &[&str] = &[
    ".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".joblib", ".bin", ".p", ".sav",
];

/// What magic bytes say a file is.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Zip,
    Npy,
    Safetensors,
    Gguf,
    Pickle,
    /// A format recognised but never opened: its name and why.
    Refused(&'static str, &'static str),
    Other,
}

fn detect(name: &str, b: &[u8]) -> Kind {
    const COMPRESSED: &str = "compressed container: its contents cannot be inspected";
    let starts = |m: &[u8]| b.starts_with(m);
    if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") {
        Kind::Zip
    } else if starts(b"7z\xbc\xaf\x27\x1c") {
        Kind::Refused("7z", COMPRESSED)
    } else if starts(b"\x1f\x8b") {
        Kind::Refused("gzip", COMPRESSED)
    } else if starts(b"BZh") {
        Kind::Refused("bzip2", COMPRESSED)
    } else if starts(b"\xfd7zXZ\x00") {
        Kind::Refused("xz", COMPRESSED)
    } else if starts(b"\x28\xb5\x2f\xfd") {
        Kind::Refused("zstd", COMPRESSED)
    } else if starts(b"\x04\x22\x4d\x18") {
        Kind::Refused("lz4", COMPRESSED)
    } else if starts(b"Rar!\x1a\x07") {
        Kind::Refused("rar", COMPRESSED)
    } else if starts(b"PK\x07\x08") || starts(b"PK\x06\x06") {
        Kind::Refused("zip (spanned or zip64 end first)", COMPRESSED)
    } else if b.get(257..262) == Some(b"ustar") {
        Kind::Refused("tar", "tar archives are not opened")
    } else if starts(b"\x89HDF\r\n\x1a\n") {
        Kind::Refused(
            "hdf5",
            "HDF5 (Keras) files can carry code in Lambda layers and are not inspected",
        )
    } else if starts(b"\x93NUMPY") {
        Kind::Npy
    } else if starts(b"GGUF") {
        Kind::Gguf
    } else if name.ends_with(".safetensors") || plausible_safetensors(b) {
        // Before the pickle magic: a header length can begin with 0x80 0x02.
        Kind::Safetensors
    } else if b.len() >= 2 && b[0] == 0x80 && (2..=5).contains(&b[1]) {
        Kind::Pickle
    } else {
        let lower = name.to_ascii_lowercase();
        if PICKLE_EXTENSIONS.iter().any(|e| lower.ends_with(e)) {
            Kind::Pickle
        } else {
            Kind::Other
        }
    }
}

/// Whether Python's unpickler, given these bytes, would reference a global and then
/// call something or finish: then the bytes are a pickle whatever else they are
/// (`spec/scan.md` section 3). A global that is only imported before the stream
/// breaks does not count, so text such as `cat\ndog\n` stays text.
fn runs_as_pickle(bytes: &[u8], limits: &Limits) -> bool {
    let opts = pickle::Options {
        max_values: limits.max_pickle_values,
        ..pickle::Options::default()
    };
    let probe = pickle::analyse(bytes, opts);
    probe.globals > 0 && (probe.calls > 0 || probe.stopped)
}

/// A little-endian header length that fits the file, then `{`.
fn plausible_safetensors(b: &[u8]) -> bool {
    match b.get(..9) {
        Some(prefix) => {
            let len = u64::from_le_bytes(prefix[..8].try_into().expect("8 bytes"));
            prefix[8] == b'{' && len >= 2 && len <= (b.len() - 8) as u64
        }
        None => false,
    }
}

/// Text is valid UTF-8 without NUL bytes (JSON, YAML, tokenizer files, READMEs).
fn is_text(b: &[u8]) -> bool {
    !b.contains(&0) && std::str::from_utf8(b).is_ok()
}

/// A scan in progress: the findings of one top-level file.
pub(crate) struct Scanner<'l> {
    pub(crate) limits: &'l Limits,
    findings: Vec<Finding>,
    dropped: usize,
    /// Uncompressed bytes of all archive members so far, nested ones included.
    pub(crate) total_uncompressed: u64,
}

impl Scanner<'_> {
    pub(crate) fn report(
        &mut self,
        severity: Severity,
        member: &str,
        offset: Option<u64>,
        message: String,
    ) {
        if self.findings.len() >= self.limits.max_findings {
            self.dropped += 1;
            return;
        }
        self.findings.push(Finding {
            severity,
            member: member.to_owned(),
            offset,
            message,
        });
    }

    /// Scans the file or member `member` (its path inside archives; `name` is its
    /// own file name) and returns its format.
    pub(crate) fn member(
        &mut self,
        member: &str,
        name: &str,
        bytes: &[u8],
        depth: usize,
    ) -> &'static str {
        let kind = detect(name, bytes);
        if !matches!(kind, Kind::Pickle | Kind::Other) && runs_as_pickle(bytes, self.limits) {
            // `torch.load` and `pickle.load` read any file as a pickle, whatever its
            // magic says: a file that is also a working pickle is judged as one too.
            self.report(
                Severity::High,
                member,
                None,
                "file is also a pickle stream that calls globals (a polyglot)".into(),
            );
            self.pickle(member, bytes, 0, pickle::Options::default());
        }
        match kind {
            Kind::Zip => {
                if depth >= self.limits.max_depth {
                    self.report(
                        Severity::Error,
                        member,
                        None,
                        format!(
                            "archive nested deeper than the limit of {}",
                            self.limits.max_depth
                        ),
                    );
                    return "zip";
                }
                archive::scan_zip(self, member, bytes, depth + 1)
            }
            Kind::Refused(format, why) => {
                self.report(Severity::Error, member, None, format!("{format}: {why}"));
                format
            }
            Kind::Npy => {
                self.npy(member, bytes);
                "npy"
            }
            Kind::Safetensors => {
                let limit = self.limits.max_safetensors_header_bytes;
                if let Err(e) = safetensors::check(bytes, limit) {
                    self.report(Severity::Error, member, None, format!("safetensors: {e}"));
                }
                "safetensors"
            }
            Kind::Gguf => {
                let version = bytes
                    .get(4..8)
                    .map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]]));
                if !matches!(version, Some(1..=3)) || bytes.len() < 24 {
                    self.report(
                        Severity::Error,
                        member,
                        None,
                        "gguf: unsupported version or truncated header".into(),
                    );
                }
                "gguf"
            }
            Kind::Pickle => {
                self.pickle(
                    member,
                    bytes,
                    0,
                    pickle::Options {
                        torch: false,
                        joblib: true,
                        whole: true,
                        ..pickle::Options::default()
                    },
                );
                "pickle"
            }
            Kind::Other => self.other(member, bytes),
        }
    }

    /// A file no magic identifies: still a pickle if, read as one, it reaches a call
    /// of a global or a `STOP` after one (`spec/scan.md` section 3).
    fn other(&mut self, member: &str, bytes: &[u8]) -> &'static str {
        let opts = pickle::Options {
            torch: false,
            joblib: false,
            whole: true,
            ..pickle::Options::default()
        };
        if runs_as_pickle(bytes, self.limits) {
            self.pickle(member, bytes, 0, opts);
            return "pickle";
        }
        if is_text(bytes) {
            return "text";
        }
        self.report(
            Severity::Warning,
            member,
            None,
            "unknown binary format: not inspected".into(),
        );
        "unknown"
    }

    /// Analyses the pickle stream `bytes[start..]`; returns the outcome for callers
    /// that need the storage keys.
    pub(crate) fn pickle(
        &mut self,
        member: &str,
        bytes: &[u8],
        start: usize,
        opts: pickle::Options,
    ) -> pickle::Outcome {
        let stream = &bytes[start..];
        if stream.len() as u64 > self.limits.max_pickle_bytes {
            self.report(
                Severity::Error,
                member,
                None,
                format!(
                    "pickle of {} bytes exceeds the limit of {}",
                    stream.len(),
                    self.limits.max_pickle_bytes
                ),
            );
            return pickle::Outcome::default();
        }
        let opts = pickle::Options {
            max_values: self.limits.max_pickle_values,
            ..opts
        };
        let mut outcome = pickle::analyse(stream, opts);
        for f in std::mem::take(&mut outcome.findings) {
            self.report(
                f.severity,
                member,
                Some((f.offset + start) as u64),
                f.message,
            );
        }
        if let Some(e) = &outcome.error {
            let e = pickle::shift(e.clone(), start);
            self.report(
                Severity::Error,
                member,
                Some(e.offset() as u64),
                format!("pickle: {e}"),
            );
        }
        outcome
    }

    fn npy(&mut self, member: &str, bytes: &[u8]) {
        match numpy::parse(bytes, self.limits.max_npy_header_bytes) {
            Ok(npy) if npy.object => {
                self.pickle(
                    member,
                    bytes,
                    npy.data_offset,
                    pickle::Options {
                        torch: false,
                        joblib: false,
                        whole: true,
                        ..pickle::Options::default()
                    },
                );
            }
            Ok(_) => {}
            Err(e) => self.report(Severity::Error, member, None, format!("npy: {e}")),
        }
    }
}
