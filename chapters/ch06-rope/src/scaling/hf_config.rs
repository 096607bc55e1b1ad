//! Reading a Hugging Face `rope_parameters` dict (`rope_scaling` before transformers 5) from a
//! `config.json`, e.g. Llama 3.1's
//! `{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
//! "original_max_position_embeddings": 8192, "rope_theta": 500000.0}`.
//! Defaults are transformers': no `rope_type` means `default`, YaRN's `beta_fast`/`beta_slow`
//! are 32 and 1 when absent, null or 0 (`get("beta_fast") or 32`), `truncate` is true, a
//! YaRN `factor` of null is `max_position_embeddings / original_max_position_embeddings`, and a
//! missing `original_max_position_embeddings` of YaRN or Llama 3 is `max_position_embeddings`
//! (`standardize_rope_params`). A missing `factor` is an error, as transformers' `KeyError`.

use super::{RopeScaling, YARN_BETA_FAST, YARN_BETA_SLOW};
use attn_support::{Error, Result};
use serde_json::Value;

/// The `rope_type`s this chapter computes; transformers also has `longrope` (Phi-3) and
/// `proportional` (Gemma), which we reject by name.
pub const SUPPORTED_ROPE_TYPES: [&str; 5] = ["default", "linear", "dynamic", "yarn", "llama3"];

/// A config's RoPE parameters: the scaling and, when the dict carries it (transformers 5),
/// `rope_theta`.
#[derive(Clone, Debug, PartialEq)]
pub struct HfRopeParameters {
    pub rope_theta: Option<f64>,
    pub scaling: RopeScaling,
}

impl HfRopeParameters {
    /// Parse `params` (a JSON object). `max_position_embeddings` is the config's own (dynamic
    /// NTK's `L`, and YaRN's implicit factor); `seq_len` is dynamic NTK's current length (`None`
    /// at initialisation, i.e. `max_position_embeddings`).
    pub fn from_json(params: &Value, max_position_embeddings: usize, seq_len: Option<usize>) -> Result<Self> {
        let object = params.as_object().ok_or_else(|| {
            Error::InvalidArgument(format!("RoPE parameters must be a JSON object, got {params}"))
        })?;
        // transformers 4.x wrote `type`, 5.x `rope_type`.
        let rope_type = match object.get("rope_type").or_else(|| object.get("type")) {
            None | Some(Value::Null) => "default",
            Some(Value::String(s)) => s.as_str(),
            Some(other) => {
                return Err(Error::InvalidArgument(format!("rope_type must be a string, got {other}")));
            }
        };
        let field = Fields { object, rope_type };
        let scaling = match rope_type {
            "default" => RopeScaling::Default,
            "linear" => RopeScaling::Linear { factor: field.number("factor")? },
            "dynamic" => RopeScaling::DynamicNtk {
                factor: field.number("factor")?,
                max_position_embeddings,
                seq_len: seq_len.unwrap_or(max_position_embeddings),
            },
            "yarn" => {
                let original = field.original_context(max_position_embeddings)?;
                let factor = match field.optional_number("factor")? {
                    Some(f) => f,
                    None if original > 0 => max_position_embeddings as f64 / original as f64,
                    None => 0.0, // rejected by validate, naming original_max_position_embeddings
                };
                RopeScaling::Yarn {
                    factor,
                    original_max_position_embeddings: original,
                    beta_fast: field
                        .optional_number("beta_fast")?
                        .filter(|&b| b != 0.0)
                        .unwrap_or(YARN_BETA_FAST),
                    beta_slow: field
                        .optional_number("beta_slow")?
                        .filter(|&b| b != 0.0)
                        .unwrap_or(YARN_BETA_SLOW),
                    mscale: field.optional_number("mscale")?,
                    mscale_all_dim: field.optional_number("mscale_all_dim")?,
                    attention_factor: field.optional_number("attention_factor")?,
                    truncate: field.optional_bool("truncate")?.unwrap_or(true),
                }
            }
            "llama3" => RopeScaling::Llama3 {
                factor: field.number("factor")?,
                low_freq_factor: field.number("low_freq_factor")?,
                high_freq_factor: field.number("high_freq_factor")?,
                original_max_position_embeddings: field.original_context(max_position_embeddings)?,
            },
            unknown => {
                return Err(Error::InvalidArgument(format!(
                    "unknown RoPE type `{unknown}`: this chapter computes {}",
                    SUPPORTED_ROPE_TYPES.join(", ")
                )));
            }
        };
        let rope_theta = field.optional_number("rope_theta")?;
        Ok(Self { rope_theta, scaling })
    }
}

/// Typed access to the dict's fields, with errors that name the type, the key and the value.
struct Fields<'a> {
    object: &'a serde_json::Map<String, Value>,
    rope_type: &'a str,
}

impl Fields<'_> {
    fn optional_number(&self, key: &str) -> Result<Option<f64>> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(other) => Err(self.bad(key, other, "a number")),
        }
    }

    fn number(&self, key: &str) -> Result<f64> {
        self.optional_number(key)?.ok_or_else(|| self.missing(key))
    }

    /// `original_max_position_embeddings`, `max_position_embeddings` when absent.
    fn original_context(&self, max_position_embeddings: usize) -> Result<usize> {
        const KEY: &str = "original_max_position_embeddings";
        match self.object.get(KEY) {
            None | Some(Value::Null) => Ok(max_position_embeddings),
            Some(value) => self.length(KEY, value),
        }
    }

    /// A count of positions: a non-negative integer (a float with an integer value is accepted).
    fn length(&self, key: &str, value: &Value) -> Result<usize> {
        let as_integer = value
            .as_u64()
            .or_else(|| value.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64));
        as_integer.map(|n| n as usize).ok_or_else(|| self.bad(key, value, "a non-negative integer"))
    }

    fn optional_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.bad(key, other, "true or false")),
        }
    }

    fn missing(&self, key: &str) -> Error {
        Error::InvalidArgument(format!(
            "RoPE type `{}` needs `{key}`, which the parameters lack",
            self.rope_type
        ))
    }

    fn bad(&self, key: &str, value: &Value, wanted: &str) -> Error {
        Error::InvalidArgument(format!(
            "RoPE type `{}`: `{key}` must be {wanted}, got {value}",
            self.rope_type
        ))
    }
}
