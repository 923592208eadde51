//! Line charts as inline SVG, written by hand so the HTML report needs no script or network.
//!
//! Owns scales, ticks, axes, polylines and a legend. Knows nothing of latencies or runs.

use std::fmt::Write as _;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 56.0;
/// Colour-blind-safe palette (Okabe-Ito).
const COLOURS: [&str; 6] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
];

/// One line.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    /// In axis units (already transformed when an axis is logarithmic).
    pub points: Vec<(f64, f64)>,
}

/// One axis: its range and labelled ticks, in the same units as the points.
#[derive(Debug, Clone)]
pub struct Axis {
    pub label: String,
    pub min: f64,
    pub max: f64,
    pub ticks: Vec<(f64, String)>,
}

impl Axis {
    /// A linear axis from 0 to a round value at or above `max`, with about five ticks.
    pub fn linear_from_zero(label: &str, max: f64, unit: &str) -> Axis {
        let max = if max.is_finite() && max > 0.0 {
            max
        } else {
            1.0
        };
        let raw_step = max / 5.0;
        let magnitude = 10f64.powf(raw_step.log10().floor());
        let step = [1.0, 2.0, 2.5, 5.0, 10.0]
            .iter()
            .map(|m| m * magnitude)
            .find(|s| *s >= raw_step)
            .unwrap_or(magnitude * 10.0);
        let top = (max / step).ceil() * step;
        let ticks = (0..=((top / step).round() as u64))
            .map(|i| {
                let v = i as f64 * step;
                (v, format!("{}{unit}", trim_number(v)))
            })
            .collect();
        Axis {
            label: label.to_owned(),
            min: 0.0,
            max: top,
            ticks,
        }
    }

    /// A base-10 logarithmic axis covering `[min, max]` (data units, above zero). Points on it
    /// are given as `log10` of the data. Ticks sit at 1, 2 and 5 times each power of ten when
    /// the range spans at most three decades, at the powers only otherwise; `format` labels a
    /// tick from its data value.
    pub fn log10(label: &str, min: f64, max: f64, format: impl Fn(f64) -> String) -> Axis {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let min = if positive(min) { min } else { 1.0 };
        let max = if positive(max) && max >= min {
            max
        } else {
            min
        };
        let low = min.log10().floor();
        let mut high = max.log10().ceil();
        if high <= low {
            high = low + 1.0;
        }
        let steps: &[f64] = if high - low <= 3.0 {
            &[1.0, 2.0, 5.0]
        } else {
            &[1.0]
        };
        let mut ticks = Vec::new();
        let mut decade = low;
        while decade <= high {
            for step in steps {
                let value = step * 10f64.powf(decade);
                let at = value.log10();
                if at <= high + 1e-9 {
                    ticks.push((at, format(value)));
                }
            }
            decade += 1.0;
        }
        Axis {
            label: label.to_owned(),
            min: low,
            max: high,
            ticks,
        }
    }
}

/// A number without trailing zeros (`0.25`, `3`, `12.5`).
pub fn trim_number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// Escapes text for HTML and SVG.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A line chart; `shade` greys an x range (the warm-up).
pub fn line_chart(
    title: &str,
    x: &Axis,
    y: &Axis,
    series: &[Series],
    shade: Option<(f64, f64, &str)>,
) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let span = |a: &Axis| if a.max > a.min { a.max - a.min } else { 1.0 };
    let sx = |v: f64| LEFT + (v.clamp(x.min, x.max) - x.min) / span(x) * plot_w;
    let sy = |v: f64| TOP + plot_h - (v.clamp(y.min, y.max) - y.min) / span(y) * plot_h;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{t}" font-family="sans-serif" font-size="12">"#,
        t = escape(title)
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="20" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    if let Some((from, to, label)) = shade {
        let (a, b) = (sx(from), sx(to));
        if b > a {
            let _ = write!(
                svg,
                r##"<rect x="{a:.1}" y="{TOP}" width="{:.1}" height="{plot_h}" fill="#eeeeee"/><text x="{:.1}" y="{}" text-anchor="middle" fill="#777">{}</text>"##,
                b - a,
                f64::midpoint(a, b),
                // At the bottom: the legend sits at the top left.
                TOP + plot_h - 8.0,
                escape(label)
            );
        }
    }
    for (v, label) in &y.ticks {
        let py = sy(*v);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#dddddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            py + 4.0,
            escape(label)
        );
    }
    for (v, label) in &x.ticks {
        let px = sx(*v);
        let _ = write!(
            svg,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#eeeeee"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 16.0,
            escape(label)
        );
    }
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>"##
    );
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 12.0,
        escape(&x.label)
    );
    let _ = write!(
        svg,
        r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        escape(&y.label)
    );
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = s
            .points
            .iter()
            .filter(|(a, b)| a.is_finite() && b.is_finite())
            .map(|(a, b)| format!("{:.1},{:.1}", sx(*a), sy(*b)))
            .collect();
        if !points.is_empty() {
            let _ = write!(
                svg,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                points.join(" ")
            );
        }
        let ly = TOP + 16.0 + i as f64 * 16.0;
        let lx = LEFT + 12.0;
        let _ = write!(
            svg,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            lx + 18.0,
            lx + 24.0,
            ly + 4.0,
            escape(&s.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_axes_have_round_ticks() {
        let axis = Axis::linear_from_zero("ops/s", 1234.0, "");
        // Step 250 (the first of 1, 2, 2.5, 5 x 10^k at or above a fifth of the range); the top
        // is the first step at or above the maximum.
        assert!((axis.max - 1250.0).abs() < 1e-9);
        let labels: Vec<&str> = axis.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["0", "250", "500", "750", "1000", "1250"]);
        let tiny = Axis::linear_from_zero("ms", 0.0, " ms");
        assert!((tiny.max - 1.0).abs() < 1e-9);
    }

    #[test]
    fn log_axes_tick_at_round_values() {
        let axis = Axis::log10("latency", 0.3, 45.0, |v| format!("{} ms", trim_number(v)));
        assert!((axis.min - -1.0).abs() < 1e-9 && (axis.max - 2.0).abs() < 1e-9);
        let labels: Vec<&str> = axis.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(
            labels,
            [
                "0.1 ms", "0.2 ms", "0.5 ms", "1 ms", "2 ms", "5 ms", "10 ms", "20 ms", "50 ms",
                "100 ms"
            ]
        );
        let wide = Axis::log10("latency", 0.01, 5000.0, trim_number);
        assert_eq!(wide.ticks.len(), 7);
        let flat = Axis::log10("latency", 0.0, f64::NAN, trim_number);
        assert!(flat.max > flat.min);
    }

    #[test]
    fn charts_are_well_formed_svg_with_escaped_text() {
        let x = Axis::linear_from_zero("time (s)", 10.0, "");
        let y = Axis::linear_from_zero("ops/s", 100.0, "");
        let svg = line_chart(
            "a <b> & c",
            &x,
            &y,
            &[Series {
                name: "A <x>".to_owned(),
                points: vec![(0.0, 10.0), (5.0, 50.0), (10.0, f64::NAN)],
            }],
            Some((0.0, 2.0, "warm-up")),
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
        assert!(svg.contains("A &lt;x&gt;"));
        assert!(svg.contains("<polyline"));
        assert!(!svg.contains("NaN"));
        assert!(svg.contains("warm-up"));
        assert_eq!(svg.matches("<svg").count(), svg.matches("</svg>").count());
    }
}
