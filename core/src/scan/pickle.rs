//! Static analysis of pickle streams, protocols 0 to 5 (`spec/scan.md` section 4).
//!
//! The stream is interpreted symbolically, opcode by opcode, the way `pickle`'s
//! unpickler would run it but without importing or calling anything: a stack of
//! symbolic values, the mark stack and the memo. This is what resolves `STACK_GLOBAL`,
//! whose module and name come from the stack and so possibly from the memo, and what
//! ties every call (`REDUCE`, `NEWOBJ`, `NEWOBJ_EX`, `OBJ`, `INST`, `BUILD`) to the
//! global it calls. Every global reference is judged against [`super::allow`].
//!
//! Anything that Python's unpickler would reject is an error here too, and so is
//! anything this analysis cannot follow: a stream that breaks after a malicious call
//! has still run that call in Python, so a broken stream is never "probably fine".
//! Hand-written because no Rust crate interprets pickle opcodes without building the
//! objects (serde-pickle refuses globals instead of reporting them).

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::allow::{self, Verdict};
use super::Severity;

mod error;
mod joblib;
mod opcodes;

pub use error::{shift, PickleError};
use opcodes as op;

/// How a stream is read.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Persistent ids are PyTorch storages (the stream is a PyTorch archive's
    /// `data.pkl`); elsewhere a persistent id is a finding.
    pub torch: bool,
    /// Read joblib's raw array data after each `NumpyArrayWrapper` (a file that
    /// `joblib.load` reads), rather than as opcodes.
    pub joblib: bool,
    /// The stream must end exactly at `STOP`.
    pub whole: bool,
    /// Most values held at once on the stack and in the memo: a bound on memory,
    /// since every opcode of one byte (`N`, `)`, ...) can add one.
    pub max_values: usize,
}

impl Default for Options {
    /// A stream read on its own terms: no PyTorch or joblib rules, trailing data
    /// allowed, and [`super::Limits`]'s default bound on values.
    fn default() -> Self {
        Options {
            torch: false,
            joblib: false,
            whole: false,
            max_values: super::Limits::default().max_pickle_values,
        }
    }
}

/// One finding inside a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawFinding {
    /// How bad.
    pub severity: Severity,
    /// Offset of the opcode in the scanned bytes.
    pub offset: usize,
    /// What was found.
    pub message: String,
}

/// What the analysis of one stream found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Offset just past `STOP` (or where the analysis stopped).
    pub end: usize,
    /// Global references seen (`GLOBAL`, `STACK_GLOBAL`, `INST`, `EXT*`).
    pub globals: usize,
    /// Calls that completed (`REDUCE`, `BUILD`, `NEWOBJ`, `OBJ`, `INST`, ...).
    pub calls: usize,
    /// Whether `STOP` was reached.
    pub stopped: bool,
    /// PyTorch storage keys named by persistent ids, in order.
    pub storage_keys: Vec<String>,
    /// Findings about globals, calls and persistent ids.
    pub findings: Vec<RawFinding>,
    /// Why the stream could not be followed to its end, if it could not.
    pub error: Option<PickleError>,
}

/// Dicts and tuples are only followed this far: enough for the few shapes the
/// analysis reads (persistent ids, joblib wrappers), and a bound on copying.
const TRACKED_ITEMS: usize = 64;

type GlobalRef = Rc<(String, String)>;

#[derive(Clone, Debug)]
enum V {
    Mark,
    None,
    Bool,
    Int(i64),
    Str(Rc<str>),
    Global(GlobalRef),
    Tuple(Rc<[V]>),
    Dict(Rc<Vec<(V, V)>>),
    Obj(Rc<Obj>),
    Other,
}

#[derive(Clone, Debug)]
struct Obj {
    class: GlobalRef,
    args: Option<Rc<[V]>>,
    state: Option<V>,
}

impl V {
    fn str(&self) -> Option<&str> {
        match self {
            V::Str(s) => Some(s),
            _ => None,
        }
    }
}

fn dict_get<'a>(d: &'a [(V, V)], key: &str) -> Option<&'a V> {
    d.iter()
        .rev()
        .find(|(k, _)| k.str() == Some(key))
        .map(|(_, v)| v)
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    /// Where the current protocol 4 frame ends.
    frame_end: usize,
    opcode: u8,
    at: usize,
    stack: Vec<V>,
    memo: HashMap<u64, V>,
    opts: Options,
    seen: HashSet<(String, String)>,
    out: Outcome,
}

/// Analyses the pickle stream at the start of `data`.
pub fn analyse(data: &[u8], opts: Options) -> Outcome {
    let mut m = Machine {
        data,
        pos: 0,
        frame_end: 0,
        opcode: 0,
        at: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
        opts,
        seen: HashSet::new(),
        out: Outcome::default(),
    };
    let result = m.run();
    m.out.end = m.pos;
    if let Err(e) = result {
        m.out.error = Some(e);
    }
    m.out
}

impl Machine<'_> {
    fn truncated(&self) -> PickleError {
        PickleError::Truncated { offset: self.pos }
    }

    fn bad(&self, reason: &'static str) -> PickleError {
        PickleError::BadArgument {
            offset: self.at,
            opcode: self.opcode,
            reason,
        }
    }

    fn underflow(&self) -> PickleError {
        PickleError::Underflow {
            offset: self.at,
            opcode: self.opcode,
        }
    }

    fn take(&mut self, n: u64) -> Result<&[u8], PickleError> {
        let n = usize::try_from(n).map_err(|_| self.truncated())?;
        let end = self.pos.checked_add(n).ok_or_else(|| self.truncated())?;
        if end > self.data.len() {
            return Err(self.truncated());
        }
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn le(&mut self, n: usize) -> Result<u64, PickleError> {
        let b = self.take(n as u64)?;
        Ok(b.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }

    /// A text argument up to `\n`, which must be there.
    fn line(&mut self) -> Result<&str, PickleError> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated {
                offset: self.data.len(),
            })?;
        self.pos += n + 1;
        std::str::from_utf8(&rest[..n]).map_err(|_| self.bad("text argument is not UTF-8"))
    }

    fn push(&mut self, v: V) {
        self.stack.push(v);
    }

    fn check_values(&self) -> Result<(), PickleError> {
        if self.stack.len() + self.memo.len() > self.opts.max_values {
            return Err(PickleError::TooManyValues {
                offset: self.at,
                limit: self.opts.max_values,
            });
        }
        Ok(())
    }

    fn pop(&mut self) -> Result<V, PickleError> {
        match self.stack.pop() {
            Some(V::Mark) | None => Err(self.underflow()),
            Some(v) => Ok(v),
        }
    }

    fn top(&mut self) -> Result<&mut V, PickleError> {
        match self.stack.last() {
            Some(V::Mark) | None => Err(self.underflow()),
            Some(_) => Ok(self.stack.last_mut().expect("checked above")),
        }
    }

    fn pop_mark(&mut self) -> Result<Vec<V>, PickleError> {
        let mark = self
            .stack
            .iter()
            .rposition(|v| matches!(v, V::Mark))
            .ok_or_else(|| self.underflow())?;
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items)
    }

    fn finding(&mut self, severity: Severity, message: String) {
        self.out.findings.push(RawFinding {
            severity,
            offset: self.at,
            message,
        });
    }

    /// Judges a global reference and returns it as a value.
    fn global(&mut self, module: &str, name: &str) -> V {
        self.out.globals += 1;
        let key = (module.to_owned(), name.to_owned());
        if !self.seen.contains(&key) {
            match allow::judge(module, name) {
                Verdict::Allowed => {}
                Verdict::Dangerous => self.finding(
                    Severity::Critical,
                    format!("global {module}.{name} can execute code"),
                ),
                Verdict::Unknown => self.finding(
                    Severity::High,
                    format!("global {module}.{name} is not on the allow-list"),
                ),
            }
            self.seen.insert(key.clone());
        }
        V::Global(Rc::new(key))
    }

    /// A call of `callable`: only a global (already judged) is followed.
    fn call(&mut self, callable: V, args: Option<Rc<[V]>>, what: &str) -> V {
        self.out.calls += 1;
        match callable {
            V::Global(g) => {
                // copyreg._reconstructor(cls, base, state) builds a `cls`.
                let class = match (g.0.as_str(), g.1.as_str(), args.as_deref()) {
                    ("copyreg" | "copy_reg", "_reconstructor", Some([V::Global(c), ..])) => {
                        c.clone()
                    }
                    _ => g,
                };
                V::Obj(Rc::new(Obj {
                    class,
                    args,
                    state: None,
                }))
            }
            _ => {
                self.finding(
                    Severity::High,
                    format!("{what} calls a value that is not a global, which cannot be checked"),
                );
                V::Other
            }
        }
    }

    fn tuple_args(v: &V) -> Option<Rc<[V]>> {
        match v {
            V::Tuple(t) => Some(t.clone()),
            _ => None,
        }
    }

    fn memo_get(&mut self, key: u64) -> Result<(), PickleError> {
        let v = self
            .memo
            .get(&key)
            .cloned()
            .ok_or(PickleError::MemoMissing {
                offset: self.at,
                key,
            })?;
        self.push(v);
        Ok(())
    }

    fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn decimal(&self, text: &str) -> Result<u64, PickleError> {
        text.parse::<u64>()
            .map_err(|_| self.bad("not a decimal memo key"))
    }

    /// Text integers as `int(text, 0)` accepts them in practice: an optional sign
    /// and decimal digits.
    fn text_int(&self, text: &str) -> Result<V, PickleError> {
        let t = text.trim();
        let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.bad("not a decimal integer"));
        }
        Ok(t.parse::<i64>().map_or(V::Other, V::Int))
    }

    fn text_str(&self, raw: &str, quoted: bool) -> Result<V, PickleError> {
        let inner = if quoted {
            let b = raw.as_bytes();
            if b.len() < 2 || b[0] != b[b.len() - 1] || !(b[0] == b'\'' || b[0] == b'"') {
                return Err(self.bad("string is not quoted"));
            }
            &raw[1..raw.len() - 1]
        } else {
            raw
        };
        // Escapes are not decoded: an escaped string is unknown text.
        Ok(if inner.contains('\\') {
            V::Other
        } else {
            V::Str(inner.into())
        })
    }

    fn bin_str(bytes: &[u8]) -> V {
        std::str::from_utf8(bytes).map_or(V::Other, |s| V::Str(s.into()))
    }

    fn long_bytes(bytes: &[u8]) -> V {
        if bytes.len() > 8 {
            return V::Other;
        }
        let mut buf = if bytes.last().is_some_and(|b| b & 0x80 != 0) {
            [0xff; 8]
        } else {
            [0; 8]
        };
        buf[..bytes.len()].copy_from_slice(bytes);
        V::Int(i64::from_le_bytes(buf))
    }

    fn run(&mut self) -> Result<(), PickleError> {
        loop {
            self.at = self.pos;
            if self.pos >= self.frame_end {
                self.frame_end = 0;
            }
            let opcode = self.byte()?;
            self.opcode = opcode;
            if opcode == op::STOP {
                let marks = self.stack.iter().filter(|v| matches!(v, V::Mark)).count();
                if self.stack.len() != 1 || marks != 0 {
                    return Err(PickleError::BadStop {
                        offset: self.at,
                        values: self.stack.len() - marks,
                        marks,
                    });
                }
                self.out.stopped = true;
                if self.opts.whole && self.pos != self.data.len() {
                    return Err(PickleError::TrailingData {
                        offset: self.pos,
                        len: self.data.len() - self.pos,
                    });
                }
                return Ok(());
            }
            self.step(opcode)?;
            self.check_values()?;
        }
    }

    fn step(&mut self, opcode: u8) -> Result<(), PickleError> {
        match opcode {
            op::PROTO => {
                if self.byte()? > 5 {
                    return Err(self.bad("unsupported protocol"));
                }
            }
            op::FRAME => {
                let len = self.le(8)?;
                if self.frame_end > self.pos {
                    return Err(self.bad("frame starts before the previous one ends"));
                }
                let end = usize::try_from(len)
                    .ok()
                    .and_then(|l| self.pos.checked_add(l))
                    .filter(|&e| e <= self.data.len())
                    .ok_or_else(|| self.truncated())?;
                self.frame_end = end;
            }
            op::MARK => self.push(V::Mark),
            op::POP => match self.stack.last() {
                Some(V::Mark) => {
                    self.stack.pop();
                }
                _ => {
                    self.pop()?;
                }
            },
            op::POP_MARK => {
                self.pop_mark()?;
            }
            op::DUP => {
                let v = self.top()?.clone();
                self.push(v);
            }
            op::NONE => self.push(V::None),
            op::NEWTRUE | op::NEWFALSE => self.push(V::Bool),
            op::INT => {
                let v = match self.line()? {
                    "00" | "01" => V::Bool,
                    t => {
                        let t = t.to_owned();
                        self.text_int(&t)?
                    }
                };
                self.push(v);
            }
            op::LONG => {
                let t = self.line()?.to_owned();
                let v = self.text_int(t.strip_suffix('L').unwrap_or(&t))?;
                self.push(v);
            }
            op::FLOAT => {
                let t = self.line()?.trim().to_ascii_lowercase();
                let named = ["nan", "inf", "-inf", "+inf", "infinity", "-infinity"];
                if t.parse::<f64>().is_err() && !named.contains(&t.as_str()) {
                    return Err(self.bad("not a float"));
                }
                self.push(V::Other);
            }
            op::BININT => {
                let v = self.le(4)? as u32 as i32;
                self.push(V::Int(v.into()));
            }
            op::BININT1 => {
                let v = self.le(1)?;
                self.push(V::Int(v as i64));
            }
            op::BININT2 => {
                let v = self.le(2)?;
                self.push(V::Int(v as i64));
            }
            op::LONG1 | op::LONG4 => {
                let n = if opcode == op::LONG1 {
                    self.le(1)?
                } else {
                    let n = self.le(4)? as u32 as i32;
                    u64::try_from(n).map_err(|_| self.bad("negative length"))?
                };
                let v = Self::long_bytes(self.take(n)?);
                self.push(v);
            }
            op::BINFLOAT => {
                self.take(8)?;
                self.push(V::Other);
            }
            op::STRING => {
                let raw = self.line()?.to_owned();
                let v = self.text_str(&raw, true)?;
                self.push(v);
            }
            op::UNICODE => {
                let raw = self.line()?.to_owned();
                let v = self.text_str(&raw, false)?;
                self.push(v);
            }
            op::BINSTRING
            | op::BINUNICODE
            | op::SHORT_BINSTRING
            | op::SHORT_BINUNICODE
            | op::BINUNICODE8 => {
                let n = match opcode {
                    op::SHORT_BINSTRING | op::SHORT_BINUNICODE => self.le(1)?,
                    op::BINUNICODE8 => self.le(8)?,
                    op::BINSTRING => {
                        let n = self.le(4)? as u32 as i32;
                        u64::try_from(n).map_err(|_| self.bad("negative length"))?
                    }
                    _ => self.le(4)?,
                };
                let v = Self::bin_str(self.take(n)?);
                self.push(v);
            }
            op::BINBYTES | op::SHORT_BINBYTES | op::BINBYTES8 | op::BYTEARRAY8 => {
                let n = match opcode {
                    op::SHORT_BINBYTES => self.le(1)?,
                    op::BINBYTES => self.le(4)?,
                    _ => self.le(8)?,
                };
                self.take(n)?;
                self.push(V::Other);
            }
            op::NEXT_BUFFER => return Err(self.bad("out-of-band buffers are not in the file")),
            op::READONLY_BUFFER => {
                self.top()?;
            }
            op::EMPTY_TUPLE => self.push(V::Tuple(Rc::from(Vec::new()))),
            op::EMPTY_LIST | op::EMPTY_SET => self.push(V::Other),
            op::EMPTY_DICT => self.push(V::Dict(Rc::new(Vec::new()))),
            op::TUPLE => {
                let items = self.pop_mark()?;
                self.push(V::Tuple(items.into()));
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let n = usize::from(opcode - op::TUPLE1 + 1);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                self.push(V::Tuple(items.into()));
            }
            op::LIST | op::FROZENSET => {
                self.pop_mark()?;
                self.push(V::Other);
            }
            op::DICT => {
                let items = self.pop_mark()?;
                let d = self.pairs(items)?;
                self.push(V::Dict(Rc::new(d)));
            }
            op::APPEND => {
                self.pop()?;
                self.top()?;
            }
            op::APPENDS | op::ADDITEMS => {
                self.pop_mark()?;
                self.top()?;
            }
            op::SETITEM => {
                let value = self.pop()?;
                let key = self.pop()?;
                self.set_items(vec![(key, value)])?;
            }
            op::SETITEMS => {
                let items = self.pop_mark()?;
                let pairs = self.pairs(items)?;
                self.set_items(pairs)?;
            }
            op::GET => {
                let t = self.line()?.to_owned();
                let key = self.decimal(&t)?;
                self.memo_get(key)?;
            }
            op::BINGET => {
                let key = self.le(1)?;
                self.memo_get(key)?;
            }
            op::LONG_BINGET => {
                let key = self.le(4)?;
                self.memo_get(key)?;
            }
            op::PUT => {
                let t = self.line()?.to_owned();
                let key = self.decimal(&t)?;
                self.memo_put(key)?;
            }
            op::BINPUT => {
                let key = self.le(1)?;
                self.memo_put(key)?;
            }
            op::LONG_BINPUT => {
                let key = self.le(4)?;
                self.memo_put(key)?;
            }
            op::MEMOIZE => {
                let key = self.memo.len() as u64;
                self.memo_put(key)?;
            }
            op::GLOBAL => {
                let module = self.line()?.to_owned();
                let name = self.line()?.to_owned();
                let v = self.global(&module, &name);
                self.push(v);
            }
            op::STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                let v = match (module.str(), name.str()) {
                    (Some(m), Some(n)) => {
                        let (m, n) = (m.to_owned(), n.to_owned());
                        self.global(&m, &n)
                    }
                    _ => {
                        self.out.globals += 1;
                        self.finding(
                            Severity::High,
                            "STACK_GLOBAL with a module or name that is not a literal string"
                                .into(),
                        );
                        V::Other
                    }
                };
                self.push(v);
            }
            op::EXT1 | op::EXT2 | op::EXT4 => {
                let code = match opcode {
                    op::EXT1 => self.le(1)?,
                    op::EXT2 => self.le(2)?,
                    _ => self.le(4)? as u32 as i32 as i64 as u64,
                };
                self.out.globals += 1;
                self.finding(
                    Severity::High,
                    format!(
                        "extension code {code} names a global through the copyreg registry, \
                         which cannot be resolved statically"
                    ),
                );
                self.push(V::Other);
            }
            op::INST => {
                let module = self.line()?.to_owned();
                let name = self.line()?.to_owned();
                let class = self.global(&module, &name);
                let args = self.pop_mark()?;
                let v = self.call(class, Some(args.into()), "INST");
                self.push(v);
            }
            op::OBJ => {
                let mut items = self.pop_mark()?;
                if items.is_empty() {
                    return Err(self.underflow());
                }
                let class = items.remove(0);
                let v = self.call(class, Some(items.into()), "OBJ");
                self.push(v);
            }
            op::REDUCE => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let v = self.call(callable, Self::tuple_args(&args), "REDUCE");
                self.push(v);
            }
            op::NEWOBJ => {
                let args = self.pop()?;
                let class = self.pop()?;
                let v = self.call(class, Self::tuple_args(&args), "NEWOBJ");
                self.push(v);
            }
            op::NEWOBJ_EX => {
                self.pop()?;
                let args = self.pop()?;
                let class = self.pop()?;
                let v = self.call(class, Self::tuple_args(&args), "NEWOBJ_EX");
                self.push(v);
            }
            op::BUILD => self.build()?,
            op::PERSID => {
                self.line()?;
                self.finding(
                    Severity::High,
                    "text persistent id: what it loads is up to the loader".into(),
                );
                self.push(V::Other);
            }
            op::BINPERSID => {
                let pid = self.pop()?;
                self.persistent_id(&pid);
                self.push(V::Other);
            }
            byte => {
                return Err(PickleError::UnknownOpcode {
                    offset: self.at,
                    byte,
                })
            }
        }
        Ok(())
    }

    fn pairs(&self, items: Vec<V>) -> Result<Vec<(V, V)>, PickleError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.bad("odd number of dict items"));
        }
        let mut it = items.into_iter();
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            out.push((k, v));
        }
        Ok(out)
    }

    fn set_items(&mut self, pairs: Vec<(V, V)>) -> Result<(), PickleError> {
        let top = self.top()?;
        if let V::Dict(d) = top {
            if d.len() + pairs.len() <= TRACKED_ITEMS {
                Rc::make_mut(d).extend(pairs);
            } else {
                *top = V::Other;
            }
        }
        Ok(())
    }

    fn build(&mut self) -> Result<(), PickleError> {
        let state = self.pop()?;
        self.top()?;
        self.out.calls += 1;
        let dict_state = match &state {
            V::Dict(d) => Some(d.clone()),
            V::Tuple(t) => match t.first() {
                Some(V::Dict(d)) => Some(d.clone()),
                _ => None,
            },
            _ => None,
        };
        let top = self.stack.last_mut().expect("checked by top()");
        let on_global = match top {
            V::Global(g) => Some(format!("{}.{}", g.0, g.1)),
            _ => None,
        };
        let wrapper = if let V::Obj(obj) = top {
            Rc::make_mut(obj).state = Some(state);
            let c = &obj.class;
            c.0 == "joblib.numpy_pickle" && c.1 == "NumpyArrayWrapper"
        } else {
            false
        };
        if let Some(global) = on_global {
            // setattr on a class or function changes it for the whole process.
            self.finding(
                Severity::High,
                format!("BUILD sets attributes of the global {global} itself"),
            );
        }
        let hooks = ["__setstate__", "__reduce__", "__reduce_ex__", "__getattr__"];
        if let Some(d) = dict_state {
            if let Some(hook) = hooks.iter().find(|h| dict_get(&d, h).is_some()) {
                self.finding(
                    Severity::High,
                    format!("BUILD sets {hook} on an object, which a later BUILD would call"),
                );
            }
        }
        if wrapper && self.opts.joblib {
            let wrapper = self.pop()?;
            self.joblib_array(&wrapper)?;
            self.push(V::Other);
        }
        Ok(())
    }

    fn persistent_id(&mut self, pid: &V) {
        if !self.opts.torch {
            self.finding(
                Severity::High,
                "persistent id outside a PyTorch archive: what it loads is up to the loader".into(),
            );
            return;
        }
        // torch.serialization: ('storage', StorageType, key, location, numel).
        let shape = match pid {
            V::Tuple(t) => match &t[..] {
                [V::Str(tag), V::Global(g), V::Str(key), V::Str(_), V::Int(n)]
                    if &**tag == "storage" && allow::is_torch_storage(&g.0, &g.1) && *n >= 0 =>
                {
                    Some(key.to_string())
                }
                _ => None,
            },
            _ => None,
        };
        match shape {
            Some(key) => self.out.storage_keys.push(key),
            None => self.finding(
                Severity::High,
                "persistent id is not a PyTorch storage reference \
                 ('storage', StorageType, key, location, numel)"
                    .into(),
            ),
        }
    }
}
