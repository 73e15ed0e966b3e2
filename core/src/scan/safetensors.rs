//! safetensors header checks (`spec/scan.md` section 5.4).
//!
//! safetensors holds no code, but loaders trust its header: an 8-byte little-endian
//! length, a JSON object mapping tensor names to `dtype`, `shape` and `data_offsets`,
//! then the data. A header whose offsets point past the file, overlap, leave gaps or
//! disagree with the shape is rejected here with the same rules as the `safetensors`
//! crate's own validation, so a file that passes loads the same everywhere.

use serde_json::Value;
use thiserror::Error;

/// Why a safetensors file was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SafetensorsError {
    /// Shorter than the 8-byte length prefix or the header it declares.
    #[error("header of {declared} bytes runs past the end of the {file} byte file")]
    HeaderPastEnd {
        /// Declared header length.
        declared: u64,
        /// File length.
        file: u64,
    },
    /// The header length is over the limit.
    #[error("header of {declared} bytes exceeds the limit of {limit}")]
    HeaderTooLarge {
        /// Declared.
        declared: u64,
        /// Limit.
        limit: u64,
    },
    /// Not a JSON object of the expected shape.
    #[error("invalid header: {0}")]
    Header(String),
    /// A tensor's byte range does not fit its dtype and shape.
    #[error("tensor {name:?}: {reason}")]
    Tensor {
        /// Tensor name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The byte ranges overlap, leave a gap or do not end at the end of the file.
    #[error("data offsets are not contiguous: {0}")]
    Offsets(String),
}

fn dtype_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" | "C64" => 8,
        _ => return None,
    })
}

/// Checks a whole safetensors file; returns how many tensors it holds.
///
/// # Errors
///
/// A [`SafetensorsError`] naming the first problem.
pub fn check(bytes: &[u8], max_header_bytes: u64) -> Result<usize, SafetensorsError> {
    check_header(bytes, bytes.len() as u64, max_header_bytes)
}

/// Checks a safetensors file of `file_len` bytes from its start `head`, which holds
/// the length prefix and the whole header (more is ignored): the data itself is
/// never read, so a caller can check a large file by reading only its header.
///
/// # Errors
///
/// A [`SafetensorsError`] naming the first problem; `HeaderPastEnd` when `head` is
/// shorter than the header it declares.
pub fn check_header(
    bytes: &[u8],
    file_len: u64,
    max_header_bytes: u64,
) -> Result<usize, SafetensorsError> {
    let file = file_len;
    let prefix: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or(SafetensorsError::HeaderPastEnd { declared: 8, file })?;
    let declared = u64::from_le_bytes(prefix);
    if declared > max_header_bytes {
        return Err(SafetensorsError::HeaderTooLarge {
            declared,
            limit: max_header_bytes,
        });
    }
    let header = usize::try_from(declared)
        .ok()
        .and_then(|n| bytes.get(8..8 + n))
        .filter(|_| declared <= file.saturating_sub(8))
        .ok_or(SafetensorsError::HeaderPastEnd { declared, file })?;
    if header.first() != Some(&b'{') {
        return Err(SafetensorsError::Header("does not start with {".into()));
    }
    let header: serde_json::Map<String, Value> =
        serde_json::from_slice(header).map_err(|e| SafetensorsError::Header(e.to_string()))?;
    let data_len = file - 8 - declared;
    let mut ranges = Vec::with_capacity(header.len());
    for (name, info) in &header {
        let bad = |reason: &str| SafetensorsError::Tensor {
            name: name.clone(),
            reason: reason.into(),
        };
        if name == "__metadata__" {
            let ok = info
                .as_object()
                .is_some_and(|m| m.values().all(Value::is_string));
            if !ok {
                return Err(SafetensorsError::Header(
                    "__metadata__ is not a map of strings".into(),
                ));
            }
            continue;
        }
        let info = info.as_object().ok_or_else(|| bad("is not an object"))?;
        if info.len() != 3 {
            return Err(bad("must have exactly dtype, shape and data_offsets"));
        }
        let dtype = info
            .get("dtype")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no dtype"))?;
        let size = dtype_size(dtype).ok_or_else(|| bad("unknown dtype"))?;
        let shape = info
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no shape"))?;
        let mut count: u64 = 1;
        for d in shape {
            let d = d
                .as_u64()
                .ok_or_else(|| bad("shape is not non-negative integers"))?;
            count = count.checked_mul(d).ok_or_else(|| bad("shape overflows"))?;
        }
        let offsets = info
            .get("data_offsets")
            .and_then(Value::as_array)
            .filter(|a| a.len() == 2)
            .ok_or_else(|| bad("data_offsets is not [begin, end]"))?;
        let (Some(begin), Some(end)) = (offsets[0].as_u64(), offsets[1].as_u64()) else {
            return Err(bad("data_offsets is not [begin, end]"));
        };
        if end < begin {
            return Err(bad("data_offsets end before they begin"));
        }
        let want = count
            .checked_mul(size)
            .ok_or_else(|| bad("size overflows"))?;
        if end - begin != want {
            return Err(SafetensorsError::Tensor {
                name: name.clone(),
                reason: format!(
                    "{} bytes at data_offsets, dtype {dtype} and shape need {want}",
                    end - begin
                ),
            });
        }
        ranges.push((begin, end, name));
    }
    ranges.sort();
    let mut at = 0;
    for (begin, end, name) in &ranges {
        if *begin != at {
            return Err(SafetensorsError::Offsets(format!(
                "tensor {name:?} begins at {begin}, expected {at}"
            )));
        }
        at = *end;
    }
    if at != data_len {
        return Err(SafetensorsError::Offsets(format!(
            "tensors end at {at}, the data section is {data_len} bytes"
        )));
    }
    Ok(ranges.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data_len: usize) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend(header.as_bytes());
        out.extend(vec![0u8; data_len]);
        out
    }

    #[test]
    fn well_formed_file_passes() {
        let h = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"I8","shape":[3],"data_offsets":[16,19]}}"#;
        assert_eq!(check(&file(h, 19), 1 << 20), Ok(2));
    }

    #[test]
    fn bad_headers_are_rejected() {
        let t = |o: &str| format!(r#"{{"a":{{"dtype":"F32","shape":[2],"data_offsets":{o}}}}}"#);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (file(&t("[0,8]"), 7), "offsets past end"),
            (file(&t("[0,12]"), 12), "shape mismatch"),
            (file(&t("[4,12]"), 12), "gap"),
            (
                file(
                    r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                    12,
                ),
                "overlap",
            ),
            (
                file(
                    r#"{"a":{"dtype":"X9","shape":[1],"data_offsets":[0,1]}}"#,
                    1,
                ),
                "dtype",
            ),
            (file("[]", 0), "not an object"),
            (
                {
                    let mut f = u64::MAX.to_le_bytes().to_vec();
                    f.extend(b"{}");
                    f
                },
                "huge header",
            ),
            (
                {
                    let mut f = 100u64.to_le_bytes().to_vec();
                    f.extend(b"{}");
                    f
                },
                "header past end",
            ),
        ];
        for (bytes, what) in cases {
            assert!(check(&bytes, 1 << 20).is_err(), "{what}");
        }
    }
}
