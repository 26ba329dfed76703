//! SVG plots of a soak run's series (plotters): the process's memory above, the plugins' own
//! memory (VM linear memory, shared-data bytes, queued audit bytes) below, in MiB over minutes.

use super::sample::Sample;
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

const MIB: f64 = 1024.0 * 1024.0;

fn process_series(name: &str) -> bool {
    name.starts_with("process.") || name.starts_with("server.memory_allocated")
}

fn plugin_series(name: &str) -> bool {
    name.starts_with("kea_") && name.ends_with("_bytes")
}

/// Writes the plot of `samples` to `path`.
pub fn write(path: &Path, title: &str, samples: &[Sample]) -> Result<()> {
    let root = SVGBackend::new(path, (960, 720)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let root = root
        .titled(title, ("sans-serif", 20))
        .map_err(|e| anyhow!("{e}"))?;
    let (top, bottom) = root.split_vertically(360);
    panel(&top, "Envoy process (MiB)", samples, process_series)?;
    panel(
        &bottom,
        "plugins: VM memory, shared data, queued records (MiB)",
        samples,
        plugin_series,
    )?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    samples: &[Sample],
    wanted: fn(&str) -> bool,
) -> Result<()> {
    let mut names: Vec<&String> = samples
        .iter()
        .flat_map(|s| s.values.keys())
        .filter(|name| wanted(name))
        .collect();
    names.sort();
    names.dedup();
    let minutes = samples.last().map_or(1.0, |s| s.at_secs / 60.0).max(1.0 / 60.0);
    let top = samples
        .iter()
        .flat_map(|s| names.iter().filter_map(|n| s.values.get(*n)))
        .fold(0.0f64, |a, b| a.max(*b))
        / MIB;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..minutes, 0.0..(top * 1.15).max(0.01))
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("minutes")
        .y_desc("MiB")
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for (i, name) in names.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = samples
            .iter()
            .filter_map(|s| Some((s.at_secs / 60.0, s.values.get(*name)? / MIB)))
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}
