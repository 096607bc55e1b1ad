//! GGUF's typed key/value metadata.
//!
//! Each entry is a key (a GGUF string), a u32 value type, and the value. Scalars are stored
//! little-endian at their natural width; a bool is one byte (0 or 1); a string is a u64 length
//! and UTF-8 bytes; an array is the u32 type of its elements, a u64 count, and the elements
//! back to back (arrays of strings hold the 49 152 tokens of the vocabulary, arrays of arrays
//! are allowed).

use super::cursor::Cursor;
use super::error::GgufError;

/// How deep arrays of arrays may nest before the file is called corrupt (real files use 1).
const MAX_ARRAY_DEPTH: usize = 8;

/// One metadata value, with its GGUF type.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    /// The GGUF value type id (`gguf_type` in the specification).
    pub fn type_id(&self) -> u32 {
        match self {
            Value::U8(_) => 0,
            Value::I8(_) => 1,
            Value::U16(_) => 2,
            Value::I16(_) => 3,
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::String(_) => 8,
            Value::Array(_) => 9,
            Value::U64(_) => 10,
            Value::I64(_) => 11,
            Value::F64(_) => 12,
        }
    }

    /// A non-negative integer of any width, as u64.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// A float (or an integer) as f64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        if let Value::Bool(b) = *self { Some(b) } else { None }
    }

    pub fn as_str(&self) -> Option<&str> {
        if let Value::String(s) = self { Some(s) } else { None }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        if let Value::Array(a) = self { Some(a) } else { None }
    }

    /// What the value is, shortly, for error messages: `U32 7`, `an array of 3 values`.
    pub fn describe(&self) -> String {
        match self {
            Value::String(s) if s.len() > 40 => format!("a string of {} bytes", s.len()),
            Value::String(s) => format!("the string {s:?}"),
            Value::Array(a) => format!("an array of {} values", a.len()),
            other => format!("{other:?}"),
        }
    }
}

/// The metadata of a file, in file order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metadata {
    entries: Vec<(String, Value)>,
}

impl Metadata {
    /// Metadata from (key, value) pairs; a key twice is an error.
    pub fn from_entries(entries: Vec<(String, Value)>) -> Result<Self, GgufError> {
        let mut seen = std::collections::HashSet::new();
        if let Some((key, _)) = entries.iter().find(|(k, _)| !seen.insert(k.as_str())) {
            return Err(GgufError::DuplicateKey { key: key.clone() });
        }
        Ok(Metadata { entries })
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value of `key`, or [`GgufError::MissingKey`].
    pub fn require(&self, key: &str) -> Result<&Value, GgufError> {
        self.get(key).ok_or_else(|| GgufError::MissingKey { key: key.to_string() })
    }

    pub fn u64(&self, key: &str) -> Result<u64, GgufError> {
        let v = self.require(key)?;
        v.as_u64().ok_or_else(|| wrong_type(key, "a non-negative integer", v))
    }

    pub fn f64(&self, key: &str) -> Result<f64, GgufError> {
        let v = self.require(key)?;
        v.as_f64().ok_or_else(|| wrong_type(key, "a number", v))
    }

    pub fn bool(&self, key: &str) -> Result<bool, GgufError> {
        let v = self.require(key)?;
        v.as_bool().ok_or_else(|| wrong_type(key, "a bool", v))
    }

    pub fn str(&self, key: &str) -> Result<&str, GgufError> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| wrong_type(key, "a string", v))
    }

    /// An array of strings (the vocabulary, the merges).
    pub fn strings(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        let v = self.require(key)?;
        let items = v.as_array().ok_or_else(|| wrong_type(key, "an array of strings", v))?;
        items
            .iter()
            .map(|item| item.as_str().ok_or_else(|| wrong_type(key, "an array of strings", item)))
            .collect()
    }

    /// An array of integers (the token types).
    pub fn integers(&self, key: &str) -> Result<Vec<i64>, GgufError> {
        let v = self.require(key)?;
        let items = v.as_array().ok_or_else(|| wrong_type(key, "an array of integers", v))?;
        let as_i64 = |item: &Value| match *item {
            Value::I8(x) => Some(x.into()),
            Value::I16(x) => Some(x.into()),
            Value::I32(x) => Some(x.into()),
            Value::I64(x) => Some(x),
            _ => item.as_u64().and_then(|x| i64::try_from(x).ok()),
        };
        items
            .iter()
            .map(|item| as_i64(item).ok_or_else(|| wrong_type(key, "an array of integers", item)))
            .collect()
    }
}

fn wrong_type(key: &str, expected: &'static str, found: &Value) -> GgufError {
    GgufError::WrongType { key: key.to_string(), expected, found: found.describe() }
}

/// Read one key/value entry at the cursor.
pub(crate) fn read_entry(cur: &mut Cursor, index: u64) -> Result<(String, Value), GgufError> {
    let key = cur.string(&format!("the key of metadata entry {index}"))?;
    let type_id = cur.u32(&format!("the value type of metadata key {key:?}"))?;
    let value = read_value(cur, &key, type_id, 0)?;
    Ok((key, value))
}

fn read_value(cur: &mut Cursor, key: &str, type_id: u32, depth: usize) -> Result<Value, GgufError> {
    let what = format!("the value of metadata key {key:?}");
    Ok(match type_id {
        0 => Value::U8(cur.u8(&what)?),
        1 => Value::I8(cur.u8(&what)? as i8),
        2 => Value::U16(cur.u16(&what)?),
        3 => Value::I16(cur.u16(&what)? as i16),
        4 => Value::U32(cur.u32(&what)?),
        5 => Value::I32(cur.u32(&what)? as i32),
        6 => Value::F32(cur.f32(&what)?),
        7 => match cur.u8(&what)? {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            value => return Err(GgufError::InvalidBool { key: key.to_string(), value }),
        },
        8 => Value::String(cur.string(&what)?),
        9 => {
            if depth >= MAX_ARRAY_DEPTH {
                return Err(GgufError::NestingTooDeep { key: key.to_string(), max_depth: MAX_ARRAY_DEPTH });
            }
            let item_type = cur.u32(&format!("the element type of array {key:?}"))?;
            let count = cur.u64(&format!("the length of array {key:?}"))?;
            // Every element takes at least one byte, so a corrupt count cannot make us reserve
            // more than the file holds; a count past the end fails as truncation below.
            let mut items = Vec::with_capacity(count.min(cur.remaining()) as usize);
            for _ in 0..count {
                items.push(read_value(cur, key, item_type, depth + 1)?);
            }
            Value::Array(items)
        }
        10 => Value::U64(cur.u64(&what)?),
        11 => Value::I64(cur.u64(&what)? as i64),
        12 => Value::F64(cur.f64(&what)?),
        _ => return Err(GgufError::UnknownValueType { key: key.to_string(), type_id }),
    })
}

/// Append `value`'s bytes (without its type id) to `out`: the inverse of reading it.
pub(crate) fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::U8(v) => out.push(*v),
        Value::I8(v) => out.push(*v as u8),
        Value::U16(v) => out.extend(v.to_le_bytes()),
        Value::I16(v) => out.extend(v.to_le_bytes()),
        Value::U32(v) => out.extend(v.to_le_bytes()),
        Value::I32(v) => out.extend(v.to_le_bytes()),
        Value::F32(v) => out.extend(v.to_le_bytes()),
        Value::Bool(v) => out.push(u8::from(*v)),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            // An empty array's element type is not recorded in `Value`; U8 is as good as any.
            let item_type = items.first().map_or(0, Value::type_id);
            out.extend(item_type.to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            for item in items {
                write_value(out, item);
            }
        }
        Value::U64(v) => out.extend(v.to_le_bytes()),
        Value::I64(v) => out.extend(v.to_le_bytes()),
        Value::F64(v) => out.extend(v.to_le_bytes()),
    }
}

pub(crate) fn write_string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}
