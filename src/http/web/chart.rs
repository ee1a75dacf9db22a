//! The week's chart, drawn on the server as SVG by plotters: billed hours per day,
//! stacked by client. No script draws it, so it shows before any script runs and in
//! screenshots, and its text is real text.

use std::collections::BTreeMap;

use chrono::Duration;
use plotters::prelude::*;

use crate::domain::{EntryStatus, TimeEntry, WorkDate};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 200;
/// Client colours, dark enough for white text and distinct for common colour blindness
/// (Okabe-Ito, darkened).
const COLOURS: [RGBColor; 7] = [
    RGBColor(0, 90, 160),
    RGBColor(200, 90, 0),
    RGBColor(0, 120, 90),
    RGBColor(170, 60, 120),
    RGBColor(90, 90, 90),
    RGBColor(150, 120, 0),
    RGBColor(60, 140, 190),
];

/// The SVG of the week starting `monday`: for each day, the billed hours of the
/// entries that count (all but rejected), one stacked segment per client.
pub fn hours_by_client(entries: &[TimeEntry], monday: WorkDate) -> Result<String, String> {
    let days: Vec<WorkDate> = (0..7)
        .map(|i| WorkDate(monday.0 + Duration::days(i)))
        .collect();
    let mut clients: Vec<String> = Vec::new();
    let mut hours: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.status != EntryStatus::Rejected) {
        let Some(day) = days.iter().position(|d| *d == e.work_date) else {
            continue;
        };
        let name = e.client.clone().unwrap_or_else(|| "No client".to_owned());
        let client = match clients.iter().position(|c| *c == name) {
            Some(i) => i,
            None => {
                clients.push(name);
                clients.len() - 1
            }
        };
        *hours.entry((day, client)).or_default() += f64::from(e.billed_minutes) / 60.0;
    }
    let most = (0..days.len())
        .map(|d| {
            (0..clients.len())
                .map(|c| hours.get(&(d, c)).copied().unwrap_or(0.0))
                .sum::<f64>()
        })
        .fold(0.0, f64::max);
    let top = (most * 1.15).max(1.0).ceil();

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(36)
            .build_cartesian_2d((0..days.len() as i32).into_segmented(), 0.0..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc("hours")
            .y_labels(5)
            .label_style(("sans-serif", 13).into_font().color(&BLACK))
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => days
                    .get(*i as usize)
                    .map(|d| d.0.format("%a %-d").to_string())
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(|e| e.to_string())?;
        for (c, name) in clients.iter().enumerate() {
            let colour = COLOURS[c % COLOURS.len()];
            let bars = (0..days.len()).filter_map(|d| {
                let h = hours.get(&(d, c)).copied()?;
                let below: f64 = (0..c)
                    .map(|b| hours.get(&(d, b)).copied().unwrap_or(0.0))
                    .sum();
                let d = d as i32;
                Some(Rectangle::new(
                    [
                        (SegmentValue::Exact(d), below),
                        (SegmentValue::Exact(d + 1), below + h),
                    ],
                    colour.filled(),
                ))
            });
            chart
                .draw_series(bars)
                .map_err(|e| e.to_string())?
                .label(name.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled())
                });
        }
        if !clients.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .label_font(("sans-serif", 13).into_font().color(&BLACK))
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::fixtures::entry;

    #[test]
    fn each_client_gets_a_bar_and_a_legend_entry() {
        let monday = WorkDate::parse("2026-11-30").unwrap();
        let mut a = entry("e1", 90, 300.0);
        a.work_date = monday;
        let mut b = a.clone();
        b.client = Some("Globex".into());
        b.work_date = WorkDate::parse("2026-12-01").unwrap();
        let mut rejected = a.clone();
        rejected.client = Some("Hidden Co".into());
        rejected.status = EntryStatus::Rejected;
        let svg = hours_by_client(&[a, b, rejected], monday).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("Acme") && svg.contains("Globex"), "{svg}");
        assert!(!svg.contains("Hidden Co"), "rejected time is not charted");
        assert!(svg.contains("Mon 30"), "{svg}");
    }
}
