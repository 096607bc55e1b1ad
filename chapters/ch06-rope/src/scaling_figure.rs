//! The figure of the scalings: the wavelength of every pair, unscaled and under each
//! [`RopeScaling`], against the original and the extended context, and what each scaling
//! does to each pair's frequency (`θ_scaled / θ`); and the `ch06` binary's section that prints
//! the numbers behind it and saves it ([`scalings_section`]).

use crate::curves::{pairs_with_full_turn, wavelengths};
use crate::rope::{RopeConfig, RopeLayout};
use crate::scaling::RopeScaling;
use attn_support::plot::{Chart, Line, Panels, Scale, save};
use attn_support::plotters::prelude::SeriesLabelPosition;
use attn_support::report::{TextTable, heading};
use attn_support::{Error, Result};
use std::path::Path;

/// The figure's model: Llama 3's heads (d = 128, `rope_theta` 500 000), trained on 8192 tokens
/// and stretched by 8, Llama 3.1's own numbers.
pub const HEAD_DIM: usize = 128;
pub const BASE: f32 = 500_000.0;
pub const ORIGINAL_CONTEXT: usize = 8192;
pub const FACTOR: f64 = 8.0;

/// The scalings a Llama-3-8B-like model (`rope_theta` 500 000, trained on `original` tokens)
/// would use to reach `factor × original` tokens, with the names the figure gives them: linear,
/// dynamic NTK at the full extended length, YaRN with the paper's defaults, and Llama 3.1's own
/// (low 1, high 4).
pub fn llama3_like_scalings(factor: f64, original: usize) -> Vec<(String, RopeScaling)> {
    let extended = (factor * original as f64) as usize;
    vec![
        (format!("linear (s = {factor})"), RopeScaling::Linear { factor }),
        (
            format!("dynamic NTK at {extended} tokens"),
            RopeScaling::DynamicNtk { factor, max_position_embeddings: original, seq_len: extended },
        ),
        ("YaRN (β 32 / 1)".into(), RopeScaling::yarn(factor, original)),
        (
            "Llama 3 (low 1, high 4)".into(),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: original,
            },
        ),
    ]
}

/// Left: wavelength `2π/θ_i` per pair (log scale), unscaled and under each scaling, with the
/// original context `original` and the extended one `extended` as dashed lines. Right: the
/// ratio `θ_scaled / θ_unscaled` per pair — 1 where a scaling leaves the pair alone, `1/s`
/// where it interpolates it fully.
pub fn scaled_frequency_figure(
    head_dim: usize,
    base: f32,
    scalings: &[(String, RopeScaling)],
    original: usize,
    extended: usize,
) -> Result<Panels> {
    if scalings.is_empty() {
        return Err(Error::InvalidArgument("the scaled-frequency figure needs at least one scaling".into()));
    }
    let unscaled = RopeConfig::new(head_dim, base, RopeLayout::HalfRotation)?;
    let theta0 = unscaled.inv_freq();
    let per_pair = |values: Vec<f64>| values.into_iter().enumerate().map(|(i, v)| (i as f64, v)).collect();
    let mut wave_lines = vec![Line::solid("unscaled", per_pair(wavelengths(&unscaled)))];
    let mut ratio_lines =
        vec![Line::dashed("unscaled (1)", vec![(0.0, 1.0), ((theta0.len() - 1) as f64, 1.0)])];
    for (label, scaling) in scalings {
        let config = unscaled.clone().with_scaling(scaling.clone())?;
        let af = config.attention_factor();
        let label = if af != 1.0 { format!("{label}, cos/sin × {af:.3}") } else { label.clone() };
        wave_lines.push(Line::solid(label.clone(), per_pair(wavelengths(&config))));
        let ratios =
            config.inv_freq().iter().zip(&theta0).map(|(&t, &t0)| f64::from(t) / f64::from(t0)).collect();
        ratio_lines.push(Line::solid(label, per_pair(ratios)));
    }
    // The extended context for the scalings, then the trained one for the unscaled line: with
    // five solid lines before them, the trained context takes the unscaled line's colour (the
    // palette has six), so each dashed line wears the colour of what it is compared with.
    let max_factor = scalings.iter().map(|(_, s)| s.factor()).fold(1.0, f64::max);
    let last_pair = (theta0.len() - 1) as f64;
    let level = |length: usize| vec![(0.0, length as f64), (last_pair, length as f64)];
    wave_lines.push(Line::dashed(format!("extended context {extended} (for the scalings)"), level(extended)));
    wave_lines.push(Line::dashed(format!("trained context {original} (for unscaled)"), level(original)));
    let chart = |title: String, y_desc: &str, lines, legend| Chart {
        y_scale: Scale::Log10,
        lines,
        legend,
        ..Chart::new(title, "dimension pair i", y_desc)
    };
    Ok(Panels::new(
        (760, 560),
        vec![
            chart(
                format!(
                    "Wavelength 2π/θ_i, d = {head_dim}, base {}",
                    attn_support::plot::format_number(f64::from(base))
                ),
                "positions per full turn",
                wave_lines,
                SeriesLabelPosition::UpperLeft,
            ),
            chart(
                format!(
                    "θ_scaled / θ per pair: 1 kept, 1/{} interpolated",
                    attn_support::plot::format_number(max_factor)
                ),
                "θ_scaled / θ_unscaled",
                ratio_lines,
                SeriesLabelPosition::LowerLeft,
            ),
        ],
    ))
}

/// Per scaling of [`llama3_like_scalings`]: the attention factor, how many pairs keep their
/// frequency, how many are divided by the factor (to f32 rounding), and how many turn at least
/// once within the extended context.
pub fn scalings_table() -> Result<TextTable> {
    let extended = (FACTOR * ORIGINAL_CONTEXT as f64) as usize;
    let unscaled = RopeConfig::new(HEAD_DIM, BASE, RopeLayout::HalfRotation)?;
    let theta0 = unscaled.inv_freq();
    let turning = format!("pairs turning within {extended}");
    let mut table = TextTable::new(&[
        ("scaling", 0),
        ("cos/sin ×", 0),
        ("pairs kept", 0),
        ("pairs ÷ s", 0),
        (turning.as_str(), 0),
    ])
    .left_aligned(0);
    let mut configs = vec![("unscaled".to_string(), unscaled.clone())];
    for (name, scaling) in llama3_like_scalings(FACTOR, ORIGINAL_CONTEXT) {
        configs.push((name, unscaled.clone().with_scaling(scaling)?));
    }
    for (name, config) in &configs {
        let theta = config.inv_freq();
        let kept = theta.iter().zip(&theta0).filter(|(t, t0)| t == t0).count();
        let divided = theta
            .iter()
            .zip(&theta0)
            .filter(|&(&t, &t0)| ((t / t0) as f64 - 1.0 / FACTOR).abs() <= 1e-6)
            .count();
        table.push([
            name.clone(),
            format!("{:.4}", config.attention_factor()),
            format!("{kept} of {}", config.pairs()),
            divided.to_string(),
            pairs_with_full_turn(config, extended).to_string(),
        ]);
    }
    Ok(table)
}

/// The `ch06` section: the table of [`scalings_table`] printed, the figure saved into `out` as
/// `rope_scaled_frequencies.{png,svg}`.
pub fn scalings_section(out: &Path) -> Result<()> {
    heading(&format!(
        "RoPE scalings, d = {HEAD_DIM}, base {BASE}, trained on {ORIGINAL_CONTEXT} tokens, factor {FACTOR} \
         (as transformers 5.17 computes them)"
    ));
    println!("{}", scalings_table()?.render());
    let extended = (FACTOR * ORIGINAL_CONTEXT as f64) as usize;
    let fig = scaled_frequency_figure(
        HEAD_DIM,
        BASE,
        &llama3_like_scalings(FACTOR, ORIGINAL_CONTEXT),
        ORIGINAL_CONTEXT,
        extended,
    )?;
    println!("wrote {:?}", save(&fig, out, "rope_scaled_frequencies")?);
    Ok(())
}
