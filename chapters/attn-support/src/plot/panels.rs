//! [`Panels`]: several figures side by side in one image.

use super::Figure;
use super::chart::Chart;
use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Figures side by side, left to right, each in a panel of `panel_size` pixels (their own
/// `size` is not used). `Panels<Heatmap>` puts heatmaps side by side.
#[derive(Clone, Debug)]
pub struct Panels<F = Chart> {
    pub figures: Vec<F>,
    pub panel_size: (u32, u32),
}

impl<F> Panels<F> {
    pub fn new(panel_size: (u32, u32), figures: Vec<F>) -> Panels<F> {
        Panels { figures, panel_size }
    }
}

impl<F: Figure> Figure for Panels<F> {
    fn size(&self) -> (u32, u32) {
        (self.panel_size.0 * self.figures.len().max(1) as u32, self.panel_size.1)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        if self.figures.is_empty() {
            return Err(Error::InvalidArgument("panels without a figure".into()));
        }
        for (figure, panel) in self.figures.iter().zip(area.split_evenly((1, self.figures.len()))) {
            figure.draw(&panel)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Heatmap, Line, png_bytes};
    use super::*;

    #[test]
    fn draws_each_panel_and_passes_errors_on() {
        let chart = |points| Chart { lines: vec![Line::solid("a", points)], ..Chart::new("c", "x", "y") };
        let two = Panels::new((300, 200), vec![chart(vec![(0.0, 1.0), (1.0, 2.0)]), chart(vec![(1.0, 1.0)])]);
        assert_eq!(two.size(), (600, 200));
        assert!(png_bytes(&two).is_ok());
        let one_empty = Panels::new((300, 200), vec![chart(vec![(0.0, 1.0)]), chart(Vec::new())]);
        assert!(png_bytes(&one_empty).is_err());
        assert!(png_bytes(&Panels::<Heatmap>::new((300, 200), Vec::new())).is_err());
    }
}
