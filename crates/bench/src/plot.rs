//! Plots for benchmark reports: SVG files written next to the Markdown that embeds them.

use std::path::Path;

use anyhow::Context as _;
use plotters::prelude::*;

/// One series: a name and `(x, [panel values])` points.
pub type Series = (String, Vec<(f64, [Option<f64>; 4])>);

const COLORS: [RGBColor; 8] = [
    RGBColor(228, 26, 28),
    RGBColor(255, 127, 0),
    RGBColor(152, 78, 163),
    RGBColor(55, 126, 184),
    RGBColor(77, 175, 74),
    RGBColor(0, 0, 0),
    RGBColor(166, 86, 40),
    RGBColor(247, 129, 191),
];

/// Four panels (2 × 2) sharing the x axis; the first panel's y axis is logarithmic.
pub fn ladder_svg(
    path: &Path,
    series: &[Series],
    titles: [&str; 4],
    x_label: &str,
) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let root = SVGBackend::new(path, (1100, 800)).into_drawing_area();
    root.fill(&WHITE).context("plot")?;
    let panels = root.split_evenly((2, 2));
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
        .collect();
    let x_max = xs.iter().copied().fold(0.0, f64::max) * 1.05;
    let x_min = xs.iter().copied().fold(f64::INFINITY, f64::min).min(x_max) * 0.9;
    for (k, area) in panels.iter().enumerate() {
        let values: Vec<f64> = series
            .iter()
            .flat_map(|(_, p)| p.iter().filter_map(|(_, v)| v[k]))
            .filter(|v| v.is_finite())
            .collect();
        let y_max = values.iter().copied().fold(0.0, f64::max).max(1e-3) * 1.15;
        let mut builder = ChartBuilder::on(area);
        builder
            .caption(titles[k], ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60);
        if k == 0 {
            let y_min = values
                .iter()
                .copied()
                .filter(|v| *v > 0.0)
                .fold(f64::INFINITY, f64::min)
                .min(y_max)
                .max(1e-3)
                * 0.8;
            let mut chart = builder
                .build_cartesian_2d(x_min..x_max, (y_min..y_max).log_scale())
                .context("plot")?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_label_formatter(&|v| format!("{v:.2}"))
                .draw()
                .context("plot")?;
            for (i, (name, pts)) in series.iter().enumerate() {
                let c = COLORS[i % COLORS.len()];
                let line: Vec<(f64, f64)> = pts
                    .iter()
                    .filter_map(|(x, v)| v[k].filter(|y| *y > 0.0).map(|y| (*x, y)))
                    .collect();
                chart
                    .draw_series(LineSeries::new(line.clone(), c.stroke_width(2)))
                    .context("plot")?
                    .label(name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                    });
                chart
                    .draw_series(line.iter().map(|p| Circle::new(*p, 3, c.filled())))
                    .context("plot")?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .context("plot")?;
        } else {
            let mut chart = builder
                .build_cartesian_2d(x_min..x_max, 0.0..y_max)
                .context("plot")?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .draw()
                .context("plot")?;
            for (i, (_, pts)) in series.iter().enumerate() {
                let c = COLORS[i % COLORS.len()];
                let line: Vec<(f64, f64)> = pts
                    .iter()
                    .filter_map(|(x, v)| v[k].map(|y| (*x, y)))
                    .collect();
                chart
                    .draw_series(LineSeries::new(line.clone(), c.stroke_width(2)))
                    .context("plot")?;
                chart
                    .draw_series(line.iter().map(|p| Circle::new(*p, 3, c.filled())))
                    .context("plot")?;
            }
        }
    }
    root.present().context("write the plot")?;
    Ok(())
}
