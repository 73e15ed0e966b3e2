//! Why a pickle stream could not be followed to its end (`spec/scan.md` section 4,
//! rule 6).

use thiserror::Error;

/// Why a pickle stream could not be followed to its end. The messages leave out the
/// offset, which findings carry on their own ([`PickleError::offset`]).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum PickleError {
    /// The stream ends inside an opcode or before `STOP`.
    #[error("stream is truncated")]
    Truncated {
        /// Where the missing bytes were expected.
        offset: usize,
    },
    /// A byte that is no pickle opcode.
    #[error("unknown opcode 0x{byte:02x}")]
    UnknownOpcode {
        /// Where.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// An opcode found too few values or no mark on the stack.
    #[error("stack underflow at opcode 0x{opcode:02x}")]
    Underflow {
        /// Where.
        offset: usize,
        /// The opcode.
        opcode: u8,
    },
    /// An opcode's argument is malformed.
    #[error("bad argument of opcode 0x{opcode:02x}: {reason}")]
    BadArgument {
        /// Where.
        offset: usize,
        /// The opcode.
        opcode: u8,
        /// What is wrong.
        reason: &'static str,
    },
    /// A memo read of a key never written.
    #[error("memo key {key} is read but was never written")]
    MemoMissing {
        /// Where.
        offset: usize,
        /// The key.
        key: u64,
    },
    /// `STOP` found a stack that is not exactly one value.
    #[error("STOP leaves {values} values and {marks} marks on the stack")]
    BadStop {
        /// Where.
        offset: usize,
        /// Values left.
        values: usize,
        /// Marks left.
        marks: usize,
    },
    /// More values on the stack and in the memo than the limit.
    #[error("more than {limit} values on the stack and in the memo")]
    TooManyValues {
        /// Where.
        offset: usize,
        /// The limit.
        limit: usize,
    },
    /// Bytes after `STOP` where the stream should end.
    #[error("{len} bytes of trailing data after STOP")]
    TrailingData {
        /// Offset of the first trailing byte.
        offset: usize,
        /// How many.
        len: usize,
    },
}

/// Moves an error's offsets by `base` (a nested stream's position in its file).
pub fn shift(e: PickleError, base: usize) -> PickleError {
    use PickleError as E;
    match e {
        E::Truncated { offset } => E::Truncated {
            offset: offset + base,
        },
        E::UnknownOpcode { offset, byte } => E::UnknownOpcode {
            offset: offset + base,
            byte,
        },
        E::Underflow { offset, opcode } => E::Underflow {
            offset: offset + base,
            opcode,
        },
        E::BadArgument {
            offset,
            opcode,
            reason,
        } => E::BadArgument {
            offset: offset + base,
            opcode,
            reason,
        },
        E::MemoMissing { offset, key } => E::MemoMissing {
            offset: offset + base,
            key,
        },
        E::BadStop {
            offset,
            values,
            marks,
        } => E::BadStop {
            offset: offset + base,
            values,
            marks,
        },
        E::TrailingData { offset, len } => E::TrailingData {
            offset: offset + base,
            len,
        },
        E::TooManyValues { offset, limit } => E::TooManyValues {
            offset: offset + base,
            limit,
        },
    }
}

impl PickleError {
    /// Where in the stream the problem is.
    pub fn offset(&self) -> usize {
        match self {
            PickleError::Truncated { offset }
            | PickleError::UnknownOpcode { offset, .. }
            | PickleError::Underflow { offset, .. }
            | PickleError::BadArgument { offset, .. }
            | PickleError::MemoMissing { offset, .. }
            | PickleError::BadStop { offset, .. }
            | PickleError::TrailingData { offset, .. }
            | PickleError::TooManyValues { offset, .. } => *offset,
        }
    }
}
