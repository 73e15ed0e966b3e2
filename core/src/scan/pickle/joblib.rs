//! joblib's raw array data inside a pickle stream (`spec/scan.md` section 5.5).

use super::{analyse, dict_get, shift, Machine, Options, PickleError, RawFinding, V};

impl Machine<'_> {
    /// joblib's `NumpyArrayWrapper.read`: after the wrapper's `BUILD`, the array's
    /// bytes follow in the file, outside any frame: for object arrays a whole nested
    /// pickle, otherwise an optional padding (a length byte, then that many bytes)
    /// and the raw elements.
    pub(super) fn joblib_array(&mut self, wrapper: &V) -> Result<(), PickleError> {
        if self.frame_end > self.pos {
            return Err(self.bad("joblib array data inside a frame"));
        }
        let state = match wrapper {
            V::Obj(o) => o.state.clone(),
            _ => None,
        };
        let Some(V::Dict(d)) = state else {
            return Err(self.bad("NumpyArrayWrapper state is not a dict"));
        };
        let code = match dict_get(&d, "dtype") {
            Some(V::Obj(o)) if o.class.1 == "dtype" => o
                .args
                .as_ref()
                .and_then(|a| a.first())
                .and_then(V::str)
                .map(str::to_owned),
            _ => None,
        }
        .ok_or_else(|| self.bad("NumpyArrayWrapper has no dtype"))?;
        let mut count: u64 = 1;
        match dict_get(&d, "shape") {
            Some(V::Tuple(dims)) => {
                for dim in dims.iter() {
                    let V::Int(n) = dim else {
                        return Err(self.bad("NumpyArrayWrapper shape is not integers"));
                    };
                    let n = u64::try_from(*n).map_err(|_| self.bad("negative dimension"))?;
                    count = count
                        .checked_mul(n)
                        .ok_or_else(|| self.bad("array size overflows"))?;
                }
            }
            _ => return Err(self.bad("NumpyArrayWrapper has no shape")),
        }
        let kind = code.trim_start_matches(['<', '>', '|', '=']);
        if kind.starts_with('O') {
            let nested = analyse(
                &self.data[self.pos..],
                Options {
                    torch: false,
                    joblib: false,
                    whole: false,
                    max_values: self.opts.max_values,
                },
            );
            let base = self.pos;
            self.out.globals += nested.globals;
            self.out.calls += nested.calls;
            self.out
                .findings
                .extend(nested.findings.into_iter().map(|f| RawFinding {
                    offset: f.offset + base,
                    ..f
                }));
            self.pos = base + nested.end;
            return match nested.error {
                None => Ok(()),
                Some(e) => Err(shift(e, base)),
            };
        }
        let itemsize = crate::scan::numpy::itemsize(kind)
            .ok_or_else(|| self.bad("unsupported dtype in a joblib array"))?;
        if matches!(dict_get(&d, "numpy_array_alignment_bytes"), Some(V::Int(_))) {
            let padding = self.le(1)?;
            self.take(padding)?;
        }
        let bytes = count
            .checked_mul(itemsize)
            .ok_or_else(|| self.bad("array size overflows"))?;
        self.take(bytes)?;
        Ok(())
    }
}
