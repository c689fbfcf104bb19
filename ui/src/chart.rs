//! Usage against a limit over time, as the coordinates of a server-side
//! SVG chart (the template draws the `<svg>`; numbers only come from here,
//! so nothing needs escaping and no script is needed).

/// A chart's geometry in SVG user units.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub width: u32,
    pub height: u32,
    /// `x,y x,y ...` of the usage line.
    pub points: String,
    /// The limit's y, when there is one.
    pub limit_y: Option<f64>,
    /// The value at the top of the chart.
    pub top: f64,
    /// Samples drawn.
    pub samples: usize,
    /// The last value.
    pub last: f64,
}

/// Plots `values` (oldest first, evenly spaced) under `limit`; the scale
/// is the largest of the values and the limit, so both fit.
pub fn chart(values: &[f64], limit: Option<f64>, width: u32, height: u32) -> Chart {
    let top = values
        .iter()
        .copied()
        .chain(limit)
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let (w, h) = (f64::from(width), f64::from(height));
    let y = |v: f64| h - (v / top * h).clamp(0.0, h);
    let step = if values.len() > 1 {
        w / (values.len() - 1) as f64
    } else {
        0.0
    };
    let points = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, y(*v)))
        .collect::<Vec<_>>()
        .join(" ");
    Chart {
        width,
        height,
        points,
        limit_y: limit.map(y),
        top: if top == f64::MIN_POSITIVE { 0.0 } else { top },
        samples: values.len(),
        last: values.last().copied().unwrap_or(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_limit_share_one_scale() {
        let c = chart(&[0.0, 2.0, 4.0], Some(8.0), 100, 50);
        assert_eq!(c.points, "0.0,50.0 50.0,37.5 100.0,25.0");
        assert_eq!(c.limit_y, Some(0.0));
        assert_eq!((c.top, c.samples, c.last), (8.0, 3, 4.0));
        let c = chart(&[2.0, 4.0], None, 10, 10);
        assert_eq!(c.points, "0.0,5.0 10.0,0.0");
    }

    #[test]
    fn nothing_to_draw_is_an_empty_line() {
        let c = chart(&[], None, 10, 10);
        assert_eq!((c.points.as_str(), c.top, c.samples), ("", 0.0, 0));
    }
}
