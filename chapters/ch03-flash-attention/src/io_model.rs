//! How many elements attention moves between HBM (the GPU's large, slow memory) and on-chip
//! memory (shared memory and registers, M elements), counted in two ways that must agree:
//!
//! - a **model**: formulas in N, d, the tile sizes and the loop order ([`standard_traffic`],
//!   [`tiled_traffic`]);
//! - a **measurement**: the CPU implementations count every element they copy between their
//!   input/output arrays ("HBM") and their tile buffers ("on-chip"):
//!   [`standard_attention_counted`], [`crate::tiled::flash_attention_counted`] and
//!   [`crate::tiled::kv_outer::flash_attention_kv_outer_counted`].
//!
//! Counts are in **elements** (of f32, 4 bytes each: [`HbmTraffic::bytes`]), per operand.
//!
//! Standard attention (the FlashAttention paper's Algorithm 0) writes the (N × N) scores S to
//! HBM, reads them back for the softmax, writes P, reads P again for P V:
//! `4Nd + 4N² + N` elements with N = Nq = Nk (the `+ N` is the log-sum-exp), Θ(Nd + N²).
//!
//! Tiled attention never writes S or P. What it re-reads depends on the loop order:
//!
//! - **K/V outer** (FlashAttention, Algorithm 1): each K_j, V_j tile is read once; for each of
//!   the Tc = ⌈N/Bc⌉ key tiles, every Q_i, O_i, m_i, l_i is read and O_i, m_i, l_i written
//!   back. With the paper's Bc = ⌈M/4d⌉: about `3·Tc·N·d ≈ 12 N²d²/M`, Θ(N²d²/M).
//! - **Q outer** (FlashAttention-2, the GPU kernel and [`crate::tiled`]): each Q_i is read
//!   once and O_i written once; K and V are read once per query tile, Tr = ⌈N/Br⌉ times.
//!   With Br = ⌈M/4d⌉ (the large tile is now the query tile): about `2·Tr·N·d ≈ 8 N²d²/M`.
//!
//! Both are Θ(Nd + N²d²/M); for d² ≪ M that is far below standard attention's N².

use crate::tiled::TileSizes;
use attn_support::ndarray::{Array2, Array3, Array4, ArrayView4, Axis, s};
use attn_support::{Error, Result};
use ch02_scaled_dot_product::{SdpaDims, SdpaMask, SdpaOptions, check_inputs, softmax_row_in_place};
use std::fmt;

/// What an element that crosses between HBM and on-chip memory belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operand {
    Q,
    K,
    V,
    /// The scores S = Q Kᵀ·scale (standard attention only).
    Scores,
    /// The weights P = softmax(S) (standard attention only).
    Weights,
    /// The output O.
    Out,
    /// The running row maximum m (kept in HBM between steps by the K/V-outer order only).
    RowMax,
    /// The running row sum l (likewise).
    RowSum,
    /// The log-sum-exp of each row, an output.
    Lse,
}

impl Operand {
    pub const ALL: [Operand; 9] = [
        Operand::Q,
        Operand::K,
        Operand::V,
        Operand::Scores,
        Operand::Weights,
        Operand::Out,
        Operand::RowMax,
        Operand::RowSum,
        Operand::Lse,
    ];

    pub fn name(self) -> &'static str {
        ["Q", "K", "V", "S", "P", "O", "m", "l", "lse"][self as usize]
    }
}

/// Elements read from and written to HBM, per operand.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HbmTraffic {
    reads: [u64; Operand::ALL.len()],
    writes: [u64; Operand::ALL.len()],
}

impl HbmTraffic {
    /// Count `elements` read from HBM.
    pub fn read(&mut self, operand: Operand, elements: usize) {
        self.reads[operand as usize] += elements as u64;
    }

    /// Count `elements` written to HBM.
    pub fn write(&mut self, operand: Operand, elements: usize) {
        self.writes[operand as usize] += elements as u64;
    }

    pub fn reads_of(&self, operand: Operand) -> u64 {
        self.reads[operand as usize]
    }

    pub fn writes_of(&self, operand: Operand) -> u64 {
        self.writes[operand as usize]
    }

    /// All elements read.
    pub fn reads(&self) -> u64 {
        self.reads.iter().sum()
    }

    /// All elements written.
    pub fn writes(&self) -> u64 {
        self.writes.iter().sum()
    }

    /// Reads plus writes, in elements.
    pub fn total(&self) -> u64 {
        self.reads() + self.writes()
    }

    /// Reads plus writes in bytes, for elements of `element_bytes` bytes (4 for f32).
    pub fn bytes(&self, element_bytes: u64) -> u64 {
        self.total() * element_bytes
    }

    /// Every count multiplied by `factor` (one head's traffic → all B·H heads).
    fn times(mut self, factor: u64) -> HbmTraffic {
        self.reads.iter_mut().chain(self.writes.iter_mut()).for_each(|x| *x *= factor);
        self
    }
}

impl fmt::Display for HbmTraffic {
    /// `reads Q 12 K 40 …, writes O 12 lse 3` (operands with a zero count left out).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (what, counts) in [("reads", &self.reads), ("writes", &self.writes)] {
            write!(f, "{what}")?;
            for op in Operand::ALL.iter().filter(|op| counts[**op as usize] > 0) {
                write!(f, " {} {}", op.name(), counts[*op as usize])?;
            }
            if what == "reads" {
                write!(f, "; ")?;
            }
        }
        Ok(())
    }
}

/// Which loop of tiled attention is the outer one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoopOrder {
    /// FlashAttention (2022), Algorithm 1: K/V tiles outside, query tiles inside.
    KvOuter,
    /// FlashAttention-2: query tiles outside, K/V tiles inside (the GPU kernel's order).
    QOuter,
}

// ANCHOR: standard_model
/// Model of standard attention: Q and K read to form S, S written; S read, P written (with the
/// lse); P and V read, O written. Causal masks change nothing: S and P are stored whole.
pub fn standard_traffic(dims: &SdpaDims) -> HbmTraffic {
    let (nq, nk, d, dv) = (dims.nq, dims.nk, dims.head_dim, dims.v_dim);
    let mut t = HbmTraffic::default();
    t.read(Operand::Q, nq * d);
    t.read(Operand::K, nk * d);
    t.write(Operand::Scores, nq * nk);
    t.read(Operand::Scores, nq * nk);
    t.write(Operand::Weights, nq * nk);
    t.write(Operand::Lse, nq);
    t.read(Operand::Weights, nq * nk);
    t.read(Operand::V, nk * dv);
    t.write(Operand::Out, nq * dv);
    t.times((dims.batch * dims.heads) as u64)
}
// ANCHOR_END: standard_model

// ANCHOR: tiled_model
/// Model of tiled attention in the given loop order, with causal tile skipping when `causal`
/// (key padding skips nothing). Per query tile i of r_i rows, the causal end of its last row
/// `e_i = clamp(last + 1 + Nk − Nq, 0, Nk)` leaves `n_i = ⌈e_i/Bc⌉` key tiles to visit,
/// covering `min(n_i·Bc, Nk)` keys; without a mask `n_i = Tc = ⌈Nk/Bc⌉`.
///
/// - Q outer: Q_i read once, the keys of its n_i tiles read (K and V), O_i and lse_i written.
/// - K/V outer: O, m, l initialised in HBM; K and V read once; per visited (i, j) pair, Q_i,
///   O_i, m_i, l_i read and O_i, m_i, l_i written; a last pass reads m, l and writes lse.
pub fn tiled_traffic(
    dims: &SdpaDims,
    tiles: TileSizes,
    causal: bool,
    order: LoopOrder,
) -> Result<HbmTraffic> {
    tiles.check()?;
    let (nq, nk, d, dv) = (dims.nq, dims.nk, dims.head_dim, dims.v_dim);
    let mut t = HbmTraffic::default();
    if order == LoopOrder::KvOuter {
        t.write(Operand::Out, nq * dv);
        t.write(Operand::RowMax, nq);
        t.write(Operand::RowSum, nq);
    }
    let mut keys_read_once = 0;
    for first in (0..nq).step_by(tiles.br) {
        let rows = tiles.br.min(nq - first);
        let key_tiles = if causal {
            let end_of_last_row = (first + rows + nk).saturating_sub(nq).min(nk);
            end_of_last_row.div_ceil(tiles.bc)
        } else {
            nk.div_ceil(tiles.bc)
        };
        let keys = (key_tiles * tiles.bc).min(nk);
        match order {
            LoopOrder::QOuter => {
                t.read(Operand::Q, rows * d);
                t.read(Operand::K, keys * d);
                t.read(Operand::V, keys * dv);
                t.write(Operand::Out, rows * dv);
                t.write(Operand::Lse, rows);
            }
            LoopOrder::KvOuter => {
                let visits = rows * key_tiles;
                keys_read_once = keys_read_once.max(keys);
                t.read(Operand::Q, visits * d);
                t.read(Operand::Out, visits * dv);
                t.write(Operand::Out, visits * dv);
                for stat in [Operand::RowMax, Operand::RowSum] {
                    t.read(stat, visits);
                    t.write(stat, visits);
                }
            }
        }
    }
    if order == LoopOrder::KvOuter {
        t.read(Operand::K, keys_read_once * d);
        t.read(Operand::V, keys_read_once * dv);
        t.read(Operand::RowMax, nq);
        t.read(Operand::RowSum, nq);
        t.write(Operand::Lse, nq);
    }
    Ok(t.times((dims.batch * dims.heads) as u64))
}
// ANCHOR_END: tiled_model

/// One head, N queries and N keys of dim d: the sizes the paper's bounds speak of.
pub fn square_dims(n: usize, d: usize) -> Result<SdpaDims> {
    if n == 0 || d == 0 {
        return Err(Error::InvalidArgument(format!("N and d must be ≥ 1, got N = {n}, d = {d}")));
    }
    Ok(SdpaDims { batch: 1, heads: 1, nq: n, nk: n, head_dim: d, v_dim: d })
}

// ANCHOR: paper_tiles
/// The paper's tile sizes for on-chip memory of `m_onchip` elements and head dim d: the large
/// tile has ⌈M/4d⌉ rows (so its Q, K, V and O blocks take about M/4 each), the other
/// min(⌈M/4d⌉, d) rows (so the S tile takes at most M/4). The large tile is the one of the
/// inner loop's operand that is re-read: Bc for K/V outer (Algorithm 1: Bc = ⌈M/4d⌉,
/// Br = min(⌈M/4d⌉, d)), Br for Q outer.
pub fn paper_tiles(d: usize, m_onchip: usize, order: LoopOrder) -> Result<TileSizes> {
    if d == 0 || m_onchip < 4 * d {
        return Err(Error::InvalidArgument(format!(
            "on-chip memory M = {m_onchip} elements cannot hold one row each of Q, K, V and O \
             (4d = {} for d = {d})",
            4 * d
        )));
    }
    let large = m_onchip.div_ceil(4 * d);
    let small = large.min(d);
    Ok(match order {
        LoopOrder::KvOuter => TileSizes { br: small, bc: large },
        LoopOrder::QOuter => TileSizes { br: large, bc: small },
    })
}
// ANCHOR_END: paper_tiles

/// Elements on chip while one (Br × Bc) tile is processed: Q_i and O_i (Br·d, Br·dv), K_j
/// and V_j (Bc·d, Bc·dv), the score tile (Br·Bc) and m, l (2·Br).
pub fn on_chip_elements(tiles: TileSizes, d: usize, dv: usize) -> usize {
    tiles.br * (d + dv) + tiles.bc * (d + dv) + tiles.br * tiles.bc + 2 * tiles.br
}

/// Standard attention on one head of N × d: `4Nd + 4N² + N` elements.
pub fn standard_attention_hbm(n: usize, d: usize) -> Result<HbmTraffic> {
    Ok(standard_traffic(&square_dims(n, d)?))
}

/// FlashAttention as in the paper (Algorithm 1, K/V outer, its tile sizes) on one head of
/// N × d with M elements on chip.
pub fn flash_attention_hbm(n: usize, d: usize, m_onchip: usize) -> Result<HbmTraffic> {
    let tiles = paper_tiles(d, m_onchip, LoopOrder::KvOuter)?;
    tiled_traffic(&square_dims(n, d)?, tiles, false, LoopOrder::KvOuter)
}

/// FlashAttention-2's order (Q outer, Br = ⌈M/4d⌉) on one head of N × d, M elements on chip.
pub fn flash2_attention_hbm(n: usize, d: usize, m_onchip: usize) -> Result<HbmTraffic> {
    let tiles = paper_tiles(d, m_onchip, LoopOrder::QOuter)?;
    tiled_traffic(&square_dims(n, d)?, tiles, false, LoopOrder::QOuter)
}

/// The paper's bound for standard attention, `Nd + N²` (constant factor 1).
pub fn standard_bound(n: usize, d: usize) -> f64 {
    let (n, d) = (n as f64, d as f64);
    n * d + n * n
}

/// The paper's bound for FlashAttention, `Nd + N²d²/M` (constant factor 1). The paper writes
/// Θ(N²d²/M) for d ≤ M ≤ Nd; the `Nd` term (reading Q, K, V once) matters when M > Nd.
pub fn flash_bound(n: usize, d: usize, m_onchip: usize) -> f64 {
    let (n, d, m) = (n as f64, d as f64, m_onchip as f64);
    n * d + n * n * d * d / m
}

// ANCHOR: standard_counted
/// Standard attention with its HBM traffic counted: three passes over stored (Nq × Nk)
/// matrices. Returns (output, lse, traffic); the results equal chapter 2's.
pub fn standard_attention_counted(
    q: ArrayView4<f32>,
    k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    mask: &SdpaMask,
    options: &SdpaOptions,
) -> Result<(Array4<f32>, Array3<f32>, HbmTraffic)> {
    let dims = check_inputs(q.shape(), k.shape(), v.shape(), mask)?;
    let scale = options.scale_for(dims.head_dim)?;
    let mut out = Array4::<f32>::zeros(dims.out_shape());
    let mut lse = Array3::<f32>::zeros(dims.lse_shape());
    let mut t = HbmTraffic::default();
    for (b, h) in (0..dims.batch).flat_map(|b| (0..dims.heads).map(move |h| (b, h))) {
        // Pass 1: read Q and K, write S (scaled and masked) to HBM.
        let (q_bh, k_bh) = (q.slice(s![b, h, .., ..]), k.slice(s![b, h, .., ..]));
        t.read(Operand::Q, q_bh.len());
        t.read(Operand::K, k_bh.len());
        let mut scores_hbm: Array2<f32> = q_bh.dot(&k_bh.t()) * scale;
        for (i, mut row) in scores_hbm.axis_iter_mut(Axis(0)).enumerate() {
            for (j, x) in row.iter_mut().enumerate() {
                if !mask.is_visible(b, i, j, dims.nq, dims.nk) {
                    *x = f32::NEG_INFINITY;
                }
            }
        }
        t.write(Operand::Scores, scores_hbm.len());
        // Pass 2: read S, write P = softmax(S) (and each row's lse).
        t.read(Operand::Scores, scores_hbm.len());
        let mut weights_hbm = scores_hbm;
        for (i, mut row) in weights_hbm.axis_iter_mut(Axis(0)).enumerate() {
            let row = row
                .as_slice_mut()
                .ok_or_else(|| Error::InvalidArgument("score row not contiguous".into()))?;
            lse[[b, h, i]] = softmax_row_in_place(row);
        }
        t.write(Operand::Weights, weights_hbm.len());
        t.write(Operand::Lse, dims.nq);
        // Pass 3: read P and V, write O = P V.
        let v_bh = v.slice(s![b, h, .., ..]);
        t.read(Operand::Weights, weights_hbm.len());
        t.read(Operand::V, v_bh.len());
        out.slice_mut(s![b, h, .., ..]).assign(&weights_hbm.dot(&v_bh));
        t.write(Operand::Out, dims.nq * dims.v_dim);
    }
    Ok((out, lse, t))
}
// ANCHOR_END: standard_counted
