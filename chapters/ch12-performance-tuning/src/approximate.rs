//! The algorithm level: exact attention against two ways of not computing all of it.
//!
//! Exact attention `O = softmax(Q Kᵀ/√d) V` costs O(Nq·Nk·d): every query meets every key.
//! FlashAttention (chapter 3) makes that cost cheap in memory traffic but does not change it.
//! Changing the algorithm changes the cost, at the price of computing something else.
//!
//! # Block-sparse attention ([`block_sparse`], [`pattern`])
//!
//! Cut the (Nq × Nk) score matrix into `block × block` tiles and keep only some tiles: each
//! query's own neighbourhood (a sliding window), a few *global* key blocks at the start that
//! every query sees, optionally every `stride`-th key block — the Longformer / BigBird /
//! Sparse Transformer patterns. With K kept key blocks per query block, the cost is
//! O(Nq·K·block·d) instead of O(Nq·Nk·d): linear in N for a fixed pattern.
//!
//! What is computed is *exact softmax attention under a mask*: the dropped tiles get score
//! −∞, so for query i with kept key set Kᵢ
//!
//! `oᵢ = Σ_{j∈Kᵢ} e^{sᵢⱼ} vⱼ / Σ_{j∈Kᵢ} e^{sᵢⱼ}`.
//!
//! Nothing is approximated on the kept tiles, and when every tile is kept this is exact
//! attention, bit for bit up to rounding. The error comes only from the probability mass the
//! exact softmax puts on dropped keys, `δᵢ = Σ_{j∉Kᵢ} pᵢⱼ`: the output is renormalised over
//! Kᵢ, so `‖oᵢ − oᵢ^exact‖ ≤ 2 δᵢ max_j ‖vⱼ‖`. When attention is peaked near the diagonal (most
//! mass local) δ is tiny and the approximation is excellent; when it is spread evenly, δ is
//! about 1 − |Kᵢ|/Nk and the output is the average of the wrong keys.
//!
//! # Linear attention ([`linear`], [`performer`])
//!
//! Replace `e^{q·k}` by a product of feature maps, `sim(q, k) = φ(q)ᵀφ(k)` with φ: ℝᵈ → ℝᵐ₊.
//! Then associativity moves the sum over keys inside:
//!
//! `oᵢ = Σⱼ (φ(qᵢ)ᵀφ(kⱼ)) vⱼᵀ / Σⱼ φ(qᵢ)ᵀφ(kⱼ) = φ(qᵢ)ᵀ S / φ(qᵢ)ᵀ z`,
//! `S = Σⱼ φ(kⱼ) vⱼᵀ` (m × dv), `z = Σⱼ φ(kⱼ)` (m).
//!
//! S and z are computed once in O(Nk·m·dv), each query then costs O(m·dv): O(N·m·d) in all,
//! never forming the N × N matrix. Causal attention keeps running prefix sums of S and z,
//! adding one key at a time — a recurrent network with an m × dv state.
//!
//! - Katharopoulos et al. (2020) take φ(x) = elu(x) + 1 (m = d, so O(N d²)). That is a
//!   *different* attention, not an approximation of softmax: φ(q)ᵀφ(k) grows linearly, not
//!   exponentially, with q·k, and the rank of the N × N weight matrix is at most d, so it cannot
//!   focus on one key among many. It is trained as its own model.
//! - Performer's FAVOR+ (Choromanski et al., 2021) picks random positive features whose
//!   expectation *is* the softmax kernel, `E_w[φ_w(q)ᵀφ_w(k)] = e^{q·k/√d}`; the error is Monte
//!   Carlo error, shrinking like 1/√m, and largest where attention is peaked.
//!
//! # The experiment ([`experiment`], [`figures`])
//!
//! Time and error against exact attention, on random inputs (spread attention) and on inputs
//! with local structure (peaked attention), so the reader sees where each method wins.
//!
//! Inputs are (batch, heads, seq, dim) f32 as in chapter 2; masks follow chapter 2's
//! bottom-right aligned causal rule: key j is visible to query i iff `j ≤ i + Nk − Nq`.

pub mod block_sparse;
pub mod experiment;
pub mod figures;
pub mod linear;
pub mod pattern;
pub mod performer;

pub use block_sparse::{attention_over_layout, block_sparse_attention, block_sparse_attention_with_lse};
pub use experiment::{ApproxConfig, ApproxErrors, ApproxPoint, InputKind, approx_experiment, approx_inputs};
pub use figures::{approx_figure, pattern_heatmap};
pub use linear::{elu_feature_map, elu_plus_one, kernel_attention, linear_attention};
pub use pattern::{BlockLayout, BlockSparsity};
pub use performer::{RandomFeatures, performer_attention};
