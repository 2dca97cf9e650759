//! Training curves as a picture: loss, accuracy and learning rate per epoch,
//! training and validation, drawn with plotters to SVG or PNG. `train --plot
//! FILE` draws its own run; `plot LOG -o FILE` draws a `train --json` log.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::Args;
use feedforward::train::EpochStats;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::Result;

/// Options of `feedforward plot`.
#[derive(Args, Debug)]
pub struct PlotArgs {
    /// The log of a run: the JSON lines of `feedforward train --json`.
    log: PathBuf,
    /// The picture to write: .svg or .png.
    #[arg(short, long)]
    out: PathBuf,
    /// Title above the curves [default: the log's file name].
    #[arg(long)]
    title: Option<String>,
}

/// Draws the log `args.log` to `args.out`.
pub fn run(args: &PlotArgs) -> Result<()> {
    let format = prepare(&args.out)?;
    let text =
        std::fs::read_to_string(&args.log).map_err(|e| format!("{}: {e}", args.log.display()))?;
    let points = parse_log(&text).map_err(|e| format!("{}: {e}", args.log.display()))?;
    let title = args.title.clone().unwrap_or_else(|| {
        args.log
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    });
    draw(&points, &title, &args.out, format)
}

/// One epoch's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    epoch: f64,
    loss: f64,
    accuracy: Option<f64>,
    val_loss: Option<f64>,
    val_accuracy: Option<f64>,
    lr: f64,
}

impl Point {
    /// The figures of an epoch of the library's trainer.
    pub fn of(e: &EpochStats) -> Point {
        Point {
            epoch: e.epoch as f64,
            loss: f64::from(e.loss),
            accuracy: e.accuracy.map(f64::from),
            val_loss: e.val_loss.map(f64::from),
            val_accuracy: e.val_accuracy.map(f64::from),
            lr: f64::from(e.learning_rate),
        }
    }
}

/// Checks that curves can be drawn to `path` (its format, a font), before
/// any work whose result they would show; returns the format.
pub fn prepare(path: &Path) -> Result<Format> {
    let format = Format::of(path)?;
    register_font()?;
    Ok(format)
}

/// The picture formats, by the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

impl Format {
    /// The format `path` names, or an error saying which are drawn.
    pub fn of(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("svg") => Ok(Format::Svg),
            Some("png") => Ok(Format::Png),
            _ => Err(format!(
                "{}: curves are drawn as .svg or .png; give a file name ending in one of them",
                path.display()
            )
            .into()),
        }
    }
}

/// The epochs of a `train --json` log: every line with `"epoch"` and
/// `"loss"`; other lines (blank, or without them) are skipped.
fn parse_log(text: &str) -> Result<Vec<Point>> {
    let mut points = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: not JSON ({e})", i + 1))?;
        let number = |key: &str| v.get(key).and_then(serde_json::Value::as_f64);
        let (Some(epoch), Some(loss)) = (number("epoch"), number("loss")) else {
            continue;
        };
        points.push(Point {
            epoch,
            loss,
            accuracy: number("accuracy"),
            val_loss: number("val_loss"),
            val_accuracy: number("val_accuracy"),
            lr: number("lr").unwrap_or(f64::NAN),
        });
    }
    if points.is_empty() {
        return Err(
            "no epochs in it (write one with `feedforward train --json ... > run.jsonl`)".into(),
        );
    }
    Ok(points)
}

/// Width of the picture, and height of each of its panels, in pixels.
const WIDTH: u32 = 900;
const PANEL_HEIGHT: u32 = 300;

/// Draws `points` under `title` to `path` (atomically: a temporary file and a
/// rename, so an existing picture is replaced whole or not at all).
pub fn draw(points: &[Point], title: &str, path: &Path, format: Format) -> Result<()> {
    let curves = Curves::of(points);
    let size = (WIDTH, PANEL_HEIGHT * curves.panels() as u32 + 40);
    let failed = |e: String| format!("{}: drawing the curves failed: {e}", path.display());
    register_font()?;
    let bytes = match format {
        Format::Svg => {
            let mut svg = String::new();
            curves
                .render(
                    SVGBackend::with_string(&mut svg, size).into_drawing_area(),
                    title,
                )
                .map_err(failed)?;
            svg.into_bytes()
        }
        Format::Png => {
            let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
            curves
                .render(
                    BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area(),
                    title,
                )
                .map_err(failed)?;
            encode_png(&rgb, size).map_err(|e| failed(e.to_string()))?
        }
    };
    feedforward::io::model::write_atomically(path, &bytes)?;
    Ok(())
}

/// The panels of a run: loss, accuracy (when classified), learning rate.
struct Curves<'a> {
    points: &'a [Point],
    has_accuracy: bool,
}

impl<'a> Curves<'a> {
    fn of(points: &'a [Point]) -> Curves<'a> {
        let has_accuracy = points
            .iter()
            .any(|p| p.accuracy.is_some() || p.val_accuracy.is_some());
        Curves {
            points,
            has_accuracy,
        }
    }

    fn panels(&self) -> usize {
        2 + usize::from(self.has_accuracy)
    }

    /// Everything onto `root`.
    fn render<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, Shift>,
        title: &str,
    ) -> std::result::Result<(), String> {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(err)?;
        let root = root.titled(title, ("sans-serif", 22)).map_err(err)?;
        let panels = root.split_evenly((self.panels(), 1));
        let p = self.points;
        let series = |f: fn(&Point) -> Option<f64>| -> Vec<(f64, f64)> {
            p.iter()
                .filter_map(|q| f(q).filter(|v| v.is_finite()).map(|v| (q.epoch, v)))
                .collect()
        };
        let mut panel = panels.iter();
        let mut next = || panel.next().expect("one area per panel");
        draw_panel(
            next(),
            "loss",
            SeriesLabelPosition::UpperRight,
            &[
                ("training", series(|q| Some(q.loss))),
                ("validation", series(|q| q.val_loss)),
            ],
        )
        .map_err(err)?;
        if self.has_accuracy {
            draw_panel(
                next(),
                "accuracy",
                SeriesLabelPosition::LowerRight,
                &[
                    ("training", series(|q| q.accuracy)),
                    ("validation", series(|q| q.val_accuracy)),
                ],
            )
            .map_err(err)?;
        }
        draw_panel(
            next(),
            "learning rate",
            SeriesLabelPosition::UpperRight,
            &[("learning rate", series(|q| Some(q.lr)))],
        )
        .map_err(err)?;
        root.present().map_err(err)
    }
}

/// One panel: `lines` (name, (epoch, value) points) against the epoch, with
/// a legend; an empty line is left out.
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    what: &str,
    legend: SeriesLabelPosition,
    lines: &[(&str, Vec<(f64, f64)>)],
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let all = lines.iter().flat_map(|(_, l)| l.iter());
    let (x0, x1) = bounds(all.clone().map(|&(x, _)| x));
    let (y0, y1) = bounds(all.map(|&(_, y)| y));
    let pad = (y1 - y0) * 0.05;
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(what)
        .x_labels(10)
        .x_label_formatter(&whole_epochs)
        .y_labels(6)
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let colours = [RGBColor(31, 119, 180), RGBColor(255, 127, 14)];
    for ((name, line), colour) in lines.iter().zip(colours) {
        if line.is_empty() {
            continue;
        }
        let style = colour.stroke_width(2);
        chart
            .draw_series(LineSeries::new(line.iter().copied(), style))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart.draw_series(
            line.iter()
                .map(|&(x, y)| Circle::new((x, y), 3, colour.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
}

/// An epoch axis label: whole epochs only.
fn whole_epochs(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round())
    } else {
        String::new()
    }
}

/// The range of `values`, widened when it is a single value (one epoch).
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 * lo.abs().max(1e-30) {
        let d = lo.abs().max(1e-3) * 0.5;
        return (lo - d, hi + d);
    }
    (lo, hi)
}

/// An RGB buffer as PNG bytes.
fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> std::result::Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

/// Where a TrueType font for the text is looked for, after `FEEDFORWARD_FONT`.
const FONT_PATHS: [&str; 6] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// The variable naming a TrueType font file to draw text with.
const FONT_VARIABLE: &str = "FEEDFORWARD_FONT";

/// Makes a system TrueType font plotters' `sans-serif` (once): ab_glyph needs
/// one to measure text for SVG and to draw it for PNG.
fn register_font() -> Result<()> {
    static FONT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let wanted = std::env::var_os(FONT_VARIABLE).map(PathBuf::from);
        let candidates = wanted
            .iter()
            .cloned()
            .chain(FONT_PATHS.iter().map(PathBuf::from));
        for path in candidates {
            let Ok(bytes) = std::fs::read(&path) else {
                if wanted.as_ref() == Some(&path) {
                    return Err(format!("{FONT_VARIABLE}={}: cannot read it", path.display()));
                }
                continue;
            };
            // plotters keeps the font for the life of the program.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            return plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("{}: not a TrueType font plotters can use", path.display()));
        }
        Err(format!(
            "no TrueType font to draw the curves' text with: set {FONT_VARIABLE}=/path/to/font.ttf, \
             or install one (Debian: apt-get install fonts-dejavu-core)"
        ))
    })
    .clone()
    .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_gives_its_epoch_lines() {
        let log = r#"
{"epoch":1,"loss":1.5,"accuracy":0.5,"val_loss":1.6,"val_accuracy":null,"lr":0.01}
not an epoch but valid: {"x":1}
"#;
        let err = parse_log(log).unwrap_err().to_string();
        assert!(err.starts_with("line 3: not JSON"), "{err}");
        let log = "{\"epoch\":1,\"loss\":1.5,\"accuracy\":0.5,\"val_loss\":1.6,\"val_accuracy\":null,\"lr\":0.01}\n{\"summary\":true}\n{\"epoch\":2,\"loss\":0.5,\"lr\":0.005}\n";
        let points = parse_log(log).unwrap();
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].val_loss, Some(1.6));
        assert_eq!(points[0].val_accuracy, None);
        assert_eq!(points[1].accuracy, None);
        assert_eq!(points[1].lr, 0.005);
        let err = parse_log("{\"x\":1}\n").unwrap_err().to_string();
        assert!(err.starts_with("no epochs in it"), "{err}");
    }

    #[test]
    fn formats_by_extension() {
        assert_eq!(Format::of(Path::new("a/b.SVG")).unwrap(), Format::Svg);
        assert_eq!(Format::of(Path::new("c.png")).unwrap(), Format::Png);
        let err = Format::of(Path::new("c.jpg")).unwrap_err().to_string();
        assert_eq!(
            err,
            "c.jpg: curves are drawn as .svg or .png; give a file name ending in one of them"
        );
    }

    #[test]
    fn one_epoch_still_has_a_range() {
        assert_eq!(bounds([2.0].into_iter()), (1.0, 3.0));
        assert_eq!(bounds(std::iter::empty()), (0.0, 1.0));
        assert_eq!(bounds([0.5, 0.25].into_iter()), (0.25, 0.5));
    }
}
