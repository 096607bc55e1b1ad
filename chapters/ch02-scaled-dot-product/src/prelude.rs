//! Everything notebook 02 uses, in one `use`: the support crate's prelude and this chapter's
//! items.

pub use attn_support::prelude::*;
