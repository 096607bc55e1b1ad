//! [`Panels`]: several figures in one image, side by side or in a grid.

use super::Figure;
use super::chart::Chart;
use super::plot_err;
use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Figures in a grid, row by row, `columns` to a row, each in a panel of `panel_size` pixels
/// (their own `size` is not used). [`Panels::new`] puts them all in one row, [`Panels::grid`]
/// wraps them after `columns` (four panels stay legible on a book page as 2 × 2).
/// `Panels<Heatmap>` puts heatmaps side by side.
#[derive(Clone, Debug)]
pub struct Panels<F = Chart> {
    pub figures: Vec<F>,
    pub panel_size: (u32, u32),
    /// Panels per row.
    pub columns: usize,
}

impl<F> Panels<F> {
    /// All the figures in one row.
    pub fn new(panel_size: (u32, u32), figures: Vec<F>) -> Panels<F> {
        Panels { columns: figures.len(), figures, panel_size }
    }

    /// The figures row by row, `columns` to a row.
    pub fn grid(panel_size: (u32, u32), columns: usize, figures: Vec<F>) -> Panels<F> {
        Panels { figures, panel_size, columns }
    }

    fn rows(&self) -> usize {
        self.figures.len().div_ceil(self.columns.max(1))
    }
}

impl<F: Figure> Figure for Panels<F> {
    fn size(&self) -> (u32, u32) {
        let columns = self.columns.clamp(1, self.figures.len().max(1));
        (self.panel_size.0 * columns as u32, self.panel_size.1 * self.rows().max(1) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        if self.figures.is_empty() || self.columns == 0 {
            return Err(Error::InvalidArgument("panels without a figure or a column".into()));
        }
        let (rows, columns) = (self.rows(), self.columns.min(self.figures.len()));
        if rows > 1 {
            // The last row may have empty cells: they show the background.
            area.fill(&WHITE).map_err(plot_err)?;
        }
        for (figure, panel) in self.figures.iter().zip(area.split_evenly((rows, columns))) {
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

    #[test]
    fn grids_wrap_after_their_columns() {
        let chart = || Chart { lines: vec![Line::solid("a", vec![(0.0, 1.0)])], ..Chart::new("c", "x", "y") };
        let three = Panels::grid((300, 200), 2, vec![chart(), chart(), chart()]);
        assert_eq!(three.size(), (600, 400));
        assert!(png_bytes(&three).is_ok());
        // More columns than figures: one row as wide as the figures.
        assert_eq!(Panels::grid((300, 200), 4, vec![chart()]).size(), (300, 200));
        assert!(png_bytes(&Panels::grid((300, 200), 0, vec![chart()])).is_err());
    }
}
