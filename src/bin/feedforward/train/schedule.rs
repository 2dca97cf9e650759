//! `--schedule NAME[:KEY=VALUE,...]`: a learning-rate schedule from the command line.

use feedforward::{Every, LrSchedule, Schedule};

use crate::Result;

/// The schedule `text` names, counted in `every` (default: epochs, steps for
/// one-cycle), with a warm-up of `warmup` counts. `counts` is the length of
/// the run in those counts, the default period of `cosine` and length of
/// `one-cycle`; `lr` the base rate (one-cycle's default peak is 10 × it).
pub fn parse(
    text: &str,
    every: Option<Every>,
    warmup: usize,
    counts: impl Fn(Every) -> usize,
    lr: f32,
) -> Result<LrSchedule> {
    let (name, rest) = text.split_once(':').unwrap_or((text, ""));
    let mut keys = Keys::parse(rest)?;
    let name = name.trim().to_ascii_lowercase();
    let every = every.unwrap_or(if name == "one-cycle" {
        Every::Step
    } else {
        Every::Epoch
    });
    let schedule = shape(&name, &mut keys, every, warmup, &counts, lr)?;
    keys.finish(&name)?;
    let schedule = LrSchedule::new(schedule, every).with_warmup(warmup);
    schedule.validate()?;
    Ok(schedule)
}

/// The schedule `name` with its settings from `keys` (defaults for the rest).
fn shape(
    name: &str,
    keys: &mut Keys,
    every: Every,
    warmup: usize,
    counts: &impl Fn(Every) -> usize,
    lr: f32,
) -> Result<Schedule> {
    Ok(match name {
        "constant" => Schedule::Constant,
        "step" => Schedule::Step {
            size: keys.take("size", 10.0)? as usize,
            gamma: keys.take("gamma", 0.1)? as f32,
        },
        "multistep" => Schedule::MultiStep {
            milestones: keys.milestones()?,
            gamma: keys.take("gamma", 0.1)? as f32,
        },
        "exponential" => Schedule::Exponential {
            gamma: keys.take("gamma", 0.95)? as f32,
        },
        "cosine" | "cosine-restarts" => Schedule::Cosine {
            period: keys.take("period", counts(every).saturating_sub(warmup).max(1) as f64)?
                as usize,
            min_lr: keys.take("min_lr", 0.0)? as f32,
            restarts: name == "cosine-restarts",
            mult: keys.take("mult", 1.0)? as usize,
        },
        "one-cycle" => Schedule::OneCycle {
            total: keys.take("total", counts(every) as f64)? as usize,
            max_lr: keys.take("max_lr", f64::from(lr) * 10.0)? as f32,
            pct_start: keys.take("pct_start", 0.3)? as f32,
            div_factor: keys.take("div_factor", 25.0)? as f32,
            final_div_factor: keys.take("final_div_factor", 1e4)? as f32,
        },
        "plateau" => Schedule::Plateau {
            factor: keys.take("factor", 0.1)? as f32,
            patience: keys.take("patience", 10.0)? as usize,
            threshold: keys.take("threshold", 1e-4)? as f32,
            cooldown: keys.take("cooldown", 0.0)? as usize,
            min_lr: keys.take("min_lr", 0.0)? as f32,
        },
        "invscaling" => Schedule::InvScaling {
            power_t: keys.take("power_t", 0.5)? as f32,
        },
        other => {
            return Err(format!(
                "unknown schedule {other:?}: constant, step, multistep, exponential, cosine, \
                 cosine-restarts, one-cycle, plateau or invscaling"
            )
            .into());
        }
    })
}

/// `KEY=VALUE` pairs, taken one by one; those left over are an error.
struct Keys(Vec<(String, String)>);

impl Keys {
    fn parse(text: &str) -> Result<Keys> {
        let mut pairs = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("schedule setting {part:?} is not KEY=VALUE"))?;
            pairs.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        Ok(Keys(pairs))
    }

    /// The number given for `key`, else `default`.
    fn take(&mut self, key: &str, default: f64) -> Result<f64> {
        let Some(i) = self.0.iter().position(|(k, _)| k == key) else {
            return Ok(default);
        };
        let (_, v) = self.0.remove(i);
        let n: f64 = v
            .parse()
            .map_err(|_| format!("schedule setting {key}={v:?} is not a number"))?;
        if !(n.is_finite() && n >= 0.0) {
            return Err(format!("schedule setting {key}={v} must be a number >= 0").into());
        }
        Ok(n)
    }

    /// `milestones=3/6/9`.
    fn milestones(&mut self) -> Result<Vec<usize>> {
        let i = self
            .0
            .iter()
            .position(|(k, _)| k == "milestones")
            .ok_or("multistep needs milestones=A/B/C (counts at which the rate decays)")?;
        let (_, v) = self.0.remove(i);
        v.split('/')
            .map(|m| {
                m.trim()
                    .parse::<usize>()
                    .map_err(|_| format!("milestone {m:?} is not a whole number").into())
            })
            .collect()
    }

    fn finish(self, name: &str) -> Result<()> {
        match self.0.first() {
            Some((k, _)) => Err(format!("schedule {name} has no setting {k:?}").into()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(every: Every) -> usize {
        match every {
            Every::Epoch => 20,
            Every::Step => 200,
        }
    }

    #[test]
    fn names_settings_and_defaults() {
        let s = parse("step:size=5,gamma=0.5", None, 0, counts, 0.1).unwrap();
        assert_eq!(
            s.schedule,
            Schedule::Step {
                size: 5,
                gamma: 0.5
            }
        );
        assert_eq!(s.every, Every::Epoch);
        let s = parse("cosine", Some(Every::Step), 10, counts, 0.1).unwrap();
        assert_eq!(
            s.schedule,
            Schedule::Cosine {
                period: 190,
                min_lr: 0.0,
                restarts: false,
                mult: 1
            }
        );
        assert_eq!(s.warmup, 10);
        let s = parse("one-cycle", None, 0, counts, 0.01).unwrap();
        assert_eq!(s.every, Every::Step);
        assert!(
            matches!(s.schedule, Schedule::OneCycle { total: 200, max_lr, .. } if (max_lr - 0.1).abs() < 1e-7)
        );
        let s = parse("multistep:milestones=3/6,gamma=0.2", None, 0, counts, 0.1).unwrap();
        assert_eq!(
            s.schedule,
            Schedule::MultiStep {
                milestones: vec![3, 6],
                gamma: 0.2
            }
        );
    }

    #[test]
    fn mistakes_are_named() {
        let err = |t: &str| parse(t, None, 0, counts, 0.1).unwrap_err().to_string();
        assert!(
            err("cosinus").contains("unknown schedule"),
            "{}",
            err("cosinus")
        );
        assert!(
            err("step:gama=0.5").contains("no setting \"gama\""),
            "{}",
            err("step:gama=0.5")
        );
        assert!(
            err("step:gamma=x").contains("not a number"),
            "{}",
            err("step:gamma=x")
        );
        assert!(
            err("step:gamma=2").contains("gamma"),
            "{}",
            err("step:gamma=2")
        );
        assert!(
            err("multistep").contains("milestones"),
            "{}",
            err("multistep")
        );
        assert!(err("step:5").contains("KEY=VALUE"), "{}", err("step:5"));
    }
}
