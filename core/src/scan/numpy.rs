//! NumPy `.npy` headers (`spec/scan.md` section 5.3).
//!
//! An `.npy` file is the magic `\x93NUMPY`, a version, a header length, and a header
//! that is a Python dict literal: `{'descr': '<f4', 'fortran_order': False, 'shape':
//! (3, 4), }`. Plain dtypes are followed by exactly `prod(shape) * itemsize` bytes; a
//! dtype holding objects (`O`) is followed by a pickle, which `np.load(...,
//! allow_pickle=True)` runs. The header is parsed by hand: it is a tiny subset of
//! Python literals and no crate parses those.

use thiserror::Error;

/// Why an `.npy` file was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum NpyError {
    /// Shorter than its fixed prefix or declared header.
    #[error("npy file is truncated")]
    Truncated,
    /// A version other than 1.0, 2.0 or 3.0.
    #[error("unsupported npy version {major}.{minor}")]
    Version {
        /// Major.
        major: u8,
        /// Minor.
        minor: u8,
    },
    /// The header is longer than the limit.
    #[error("npy header of {len} bytes exceeds the limit of {limit}")]
    HeaderTooLarge {
        /// Declared length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The header is not the dict NumPy writes.
    #[error("invalid npy header: {0}")]
    Header(&'static str),
    /// The data does not have the size the header declares.
    #[error("npy data is {actual} bytes, the header declares {expected}")]
    DataSize {
        /// From shape and dtype.
        expected: u64,
        /// In the file.
        actual: u64,
    },
}

/// What follows an `.npy` header.
#[derive(Debug, PartialEq, Eq)]
pub struct Npy {
    /// Offset of the data.
    pub data_offset: usize,
    /// The dtype holds Python objects: the data is a pickle stream.
    pub object: bool,
}

/// The size of one element of a simple dtype, given without its byte-order
/// character (`f4`, `i8`, `b1`, `U10`, `S5`, `M8[ns]`); `None` for dtypes not
/// handled (objects, structured).
pub fn itemsize(kind: &str) -> Option<u64> {
    let mut chars = kind.chars();
    let k = chars.next()?;
    let rest = chars.as_str();
    let digits = rest.split('[').next().unwrap_or(rest);
    let n: u64 = digits.parse().ok()?;
    match k {
        'b' | 'i' | 'u' | 'f' | 'c' | 'M' | 'm' => Some(n),
        'U' => n.checked_mul(4),
        'S' | 'a' | 'V' => Some(n),
        '?' => Some(1),
        _ => None,
    }
}

#[derive(Debug)]
enum Lit {
    Str(String),
    Bool,
    Int(u64),
    Seq(Vec<Lit>),
    Dict(Vec<(Lit, Lit)>),
}

struct LitParser<'a> {
    s: &'a [u8],
    pos: usize,
}

const MAX_DEPTH: usize = 16;

impl LitParser<'_> {
    fn ws(&mut self) {
        while self
            .s
            .get(self.pos)
            .is_some_and(|b| b.is_ascii_whitespace())
        {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Lit, NpyError> {
        if depth > MAX_DEPTH {
            return Err(NpyError::Header("nested too deeply"));
        }
        self.ws();
        let c = *self.s.get(self.pos).ok_or(NpyError::Header("ends early"))?;
        match c {
            b'\'' | b'"' => {
                let start = self.pos + 1;
                let len = self.s[start..]
                    .iter()
                    .position(|&b| b == c)
                    .ok_or(NpyError::Header("unterminated string"))?;
                let text = &self.s[start..start + len];
                if text.contains(&b'\\') {
                    return Err(NpyError::Header("escaped string"));
                }
                self.pos = start + len + 1;
                Ok(Lit::Str(String::from_utf8_lossy(text).into_owned()))
            }
            b'(' | b'[' => {
                self.pos += 1;
                let close = if c == b'(' { b')' } else { b']' };
                let mut items = Vec::new();
                loop {
                    if self.eat(close) {
                        return Ok(Lit::Seq(items));
                    }
                    items.push(self.value(depth + 1)?);
                    if !self.eat(b',') {
                        if self.eat(close) {
                            return Ok(Lit::Seq(items));
                        }
                        return Err(NpyError::Header("expected , or closing bracket"));
                    }
                }
            }
            b'{' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    if self.eat(b'}') {
                        return Ok(Lit::Dict(items));
                    }
                    let k = self.value(depth + 1)?;
                    if !self.eat(b':') {
                        return Err(NpyError::Header("expected :"));
                    }
                    let v = self.value(depth + 1)?;
                    items.push((k, v));
                    if !self.eat(b',') {
                        if self.eat(b'}') {
                            return Ok(Lit::Dict(items));
                        }
                        return Err(NpyError::Header("expected , or }"));
                    }
                }
            }
            b'0'..=b'9' => {
                let start = self.pos;
                while self.s.get(self.pos).is_some_and(u8::is_ascii_digit) {
                    self.pos += 1;
                }
                // A trailing `L` is how Python 2 wrote longs.
                let digits = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
                if self.s.get(self.pos) == Some(&b'L') {
                    self.pos += 1;
                }
                digits
                    .parse()
                    .map(Lit::Int)
                    .map_err(|_| NpyError::Header("integer out of range"))
            }
            _ => {
                for word in ["True", "False"] {
                    if self.s[self.pos..].starts_with(word.as_bytes()) {
                        self.pos += word.len();
                        return Ok(Lit::Bool);
                    }
                }
                Err(NpyError::Header("unexpected character"))
            }
        }
    }
}

/// Whether a `descr` (a dtype string or a structured list) holds objects.
fn has_object(descr: &Lit) -> bool {
    match descr {
        Lit::Str(s) => s.trim_start_matches(['<', '>', '|', '=']).starts_with('O'),
        Lit::Seq(items) => items.iter().any(has_object),
        _ => false,
    }
}

/// Parses an `.npy` file's header and checks its data size.
///
/// # Errors
///
/// An [`NpyError`] when the header is malformed or longer than
/// `max_header_bytes`, or when plain data does not have the declared size.
/// Structured dtypes without objects are refused (`Header`), not guessed at.
pub fn parse(bytes: &[u8], max_header_bytes: u64) -> Result<Npy, NpyError> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(NpyError::Truncated);
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (len, start) = match (major, minor) {
        (1, 0) => (u64::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        (2 | 3, 0) => {
            let b = bytes.get(8..12).ok_or(NpyError::Truncated)?;
            (u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])), 12)
        }
        _ => return Err(NpyError::Version { major, minor }),
    };
    if len > max_header_bytes {
        return Err(NpyError::HeaderTooLarge {
            len,
            limit: max_header_bytes,
        });
    }
    let end = start + len as usize;
    let header = bytes.get(start..end).ok_or(NpyError::Truncated)?;
    if header.last() != Some(&b'\n') {
        return Err(NpyError::Header("does not end with a newline"));
    }
    let mut p = LitParser { s: header, pos: 0 };
    let Lit::Dict(items) = p.value(0)? else {
        return Err(NpyError::Header("not a dict"));
    };
    p.ws();
    if p.pos != header.len() {
        return Err(NpyError::Header("text after the dict"));
    }
    let get = |key: &str| {
        items
            .iter()
            .find(|(k, _)| matches!(k, Lit::Str(s) if s == key))
            .map(|(_, v)| v)
    };
    if items.len() != 3 {
        return Err(NpyError::Header("keys are not descr, fortran_order, shape"));
    }
    let descr = get("descr").ok_or(NpyError::Header("no descr"))?;
    if !matches!(get("fortran_order"), Some(Lit::Bool)) {
        return Err(NpyError::Header("no fortran_order"));
    }
    let Some(Lit::Seq(dims)) = get("shape") else {
        return Err(NpyError::Header("no shape"));
    };
    let mut count: u64 = 1;
    for d in dims {
        let Lit::Int(n) = d else {
            return Err(NpyError::Header("shape is not integers"));
        };
        count = count
            .checked_mul(*n)
            .ok_or(NpyError::Header("shape overflows"))?;
    }
    if has_object(descr) {
        return Ok(Npy {
            data_offset: end,
            object: true,
        });
    }
    let Lit::Str(code) = descr else {
        return Err(NpyError::Header("structured dtypes are not supported"));
    };
    let size = itemsize(code.trim_start_matches(['<', '>', '|', '=']))
        .ok_or(NpyError::Header("unsupported dtype"))?;
    let expected = count
        .checked_mul(size)
        .ok_or(NpyError::Header("shape overflows"))?;
    let actual = (bytes.len() - end) as u64;
    if expected != actual {
        return Err(NpyError::DataSize { expected, actual });
    }
    Ok(Npy {
        data_offset: end,
        object: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
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
    fn plain_arrays_must_have_their_declared_size() {
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        assert!(!parse(&npy(h, &[0; 24]), 65536).unwrap().object);
        assert_eq!(
            parse(&npy(h, &[0; 23]), 65536),
            Err(NpyError::DataSize {
                expected: 24,
                actual: 23
            })
        );
        let scalar = "{'descr': '|b1', 'fortran_order': False, 'shape': (), }";
        assert!(parse(&npy(scalar, &[1]), 65536).is_ok());
    }

    #[test]
    fn object_arrays_are_pickles() {
        let h = "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }";
        let parsed = parse(&npy(h, b"\x80\x03N."), 65536).unwrap();
        assert!(parsed.object);
        let structured =
            "{'descr': [('a', '<f4'), ('b', '|O')], 'fortran_order': False, 'shape': (1,), }";
        assert!(parse(&npy(structured, b""), 65536).unwrap().object);
    }

    #[test]
    fn malformed_headers_are_rejected() {
        for h in [
            "{'descr': '<f4', 'fortran_order': False}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 'x'), }",
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
            "[1, 2]",
        ] {
            assert!(parse(&npy(h, &[0; 4]), 65536).is_err(), "{h}");
        }
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }";
        assert!(matches!(
            parse(&npy(h, &[0; 4]), 16),
            Err(NpyError::HeaderTooLarge { .. })
        ));
    }
}
