//! Optimizers and learning-rate schedules against PyTorch's `torch.optim` and
//! `torch.optim.lr_scheduler` (LARS and LAMB against numpy transcriptions of
//! their papers, on PyTorch's gradients): the same 40 steps from the same start and
//! batches (`tests/data/optim_reference.json`, made by
//! `tests/data/make_optim_reference.py`) give the same rate at every step and
//! the same final parameters, within 1e-5 relative.

use feedforward::optim::PlateauState;
use feedforward::{
    Activation::*, AdagradConfig, Every, LambConfig, LarsConfig, LrSchedule, Network, Optimizer,
    RmsPropConfig, Schedule, SgdConfig,
};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use serde_json::Value;

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// `got` within `rel` of `want`: relative to `want`, or to 0.05 for a value
/// closer to 0 than that (5e-7 absolute for the parameters, a few units in the
/// last place of the typical weight here; RMSprop's first steps, normalised by
/// a tiny square average, amplify the last-bit differences of two gradient
/// computations, and a weight that has just crossed 0 shows them as relative).
fn close(what: &str, got: f32, want: f32, rel: f32) {
    close_to(what, got, want, rel, 0.05);
}

/// `got` within `rel` of `want` relative to `want`, or to `floor` below it.
fn close_to(what: &str, got: f32, want: f32, rel: f32, floor: f32) {
    assert!(
        (got - want).abs() <= rel * want.abs().max(floor),
        "{what}: {got} against PyTorch's {want}"
    );
}

/// The optimizer of a case, with PyTorch's defaults where it gives no setting.
fn optimizer(kind: &str, lr: f32, args: &Value) -> Optimizer {
    let arg = |key: &str, default: f32| {
        args.get(key)
            .and_then(Value::as_f64)
            .map_or(default, |v| v as f32)
    };
    match kind {
        "sgd" => Optimizer::Sgd(SgdConfig {
            lr,
            momentum: 0.9,
            ..SgdConfig::default()
        }),
        "adam" => Optimizer::adam(lr),
        "rmsprop" => Optimizer::RmsProp(RmsPropConfig {
            lr,
            alpha: arg("alpha", 0.99),
            eps: arg("eps", 1e-8),
            momentum: arg("momentum", 0.0),
            centered: args
                .get("centered")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            weight_decay: arg("weight_decay", 0.0),
        }),
        "adagrad" => Optimizer::Adagrad(AdagradConfig {
            lr,
            lr_decay: arg("lr_decay", 0.0),
            eps: arg("eps", 1e-10),
            initial_accumulator: arg("initial_accumulator_value", 0.0),
            weight_decay: arg("weight_decay", 0.0),
        }),
        "lars" => Optimizer::Lars(LarsConfig {
            lr,
            momentum: arg("momentum", 0.9),
            weight_decay: arg("weight_decay", 0.0),
            trust: arg("trust", 0.001),
        }),
        "lamb" => Optimizer::Lamb(LambConfig {
            lr,
            beta1: arg("beta1", 0.9),
            beta2: arg("beta2", 0.999),
            eps: arg("eps", 1e-6),
            weight_decay: arg("weight_decay", 0.0),
        }),
        other => panic!("unknown optimizer {other}"),
    }
}

#[test]
fn optimizers_and_schedules_match_pytorch_step_by_step() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/optim_reference.json"
    );
    let data: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (steps, per_epoch) = (
        data["steps"].as_u64().unwrap() as usize,
        data["per_epoch"].as_u64().unwrap() as usize,
    );
    let (rows, batches) = (
        data["rows"].as_u64().unwrap() as usize,
        data["batches"].as_u64().unwrap() as usize,
    );
    let x = Array2::from_shape_vec((batches * rows, 4), floats(&data["x"])).unwrap();
    let y: Vec<usize> = data["y"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let init = &data["init"];
    let cases = data["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 16);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let lr = case["lr"].as_f64().unwrap() as f32;
        let optimizer = optimizer(case["optimizer"].as_str().unwrap(), lr, &case["args"]);
        let schedule = LrSchedule {
            schedule: serde_json::from_value::<Schedule>(case["schedule"].clone()).unwrap(),
            every: serde_json::from_value::<Every>(case["every"].clone()).unwrap(),
            warmup: case["warmup"].as_u64().unwrap() as usize,
            ..LrSchedule::default()
        };
        schedule.validate().unwrap();
        let mut net = Network::builder(4)
            .dense(6, Tanh)
            .dense(3, Softmax)
            .optimizer(optimizer)
            .build()
            .unwrap();
        for (layer, (w, b, n_in, n_out)) in
            [("w0", "b0", 4, 6), ("w1", "b1", 6, 3)].iter().enumerate()
        {
            let w = Array2::from_shape_vec((*n_in, *n_out), floats(&init[*w])).unwrap();
            let b = Array1::from(floats(&init[*b]));
            net.set_dense_parameters(layer, w.view(), b.view()).unwrap();
        }
        let want_lrs = floats(&case["lrs"]);
        let mut plateau = PlateauState::default();
        let mut epoch_losses = Vec::new();
        let mut distinct = Vec::<f32>::new();
        assert_eq!(want_lrs.len(), steps);
        for (s, &want) in want_lrs.iter().enumerate() {
            let (epoch, k) = (s / per_epoch, s % batches);
            let t = match schedule.every {
                Every::Epoch => epoch,
                Every::Step => s,
            };
            let rate = schedule.rate(lr, t, epoch * per_epoch * rows, plateau.factor);
            close_to(
                &format!("{name}: rate of step {s}"),
                rate,
                want,
                1e-6,
                1e-12,
            );
            if !distinct.contains(&rate) {
                distinct.push(rate);
            }
            net.set_learning_rate(rate).unwrap();
            let xb: ArrayView2<f32> = x.slice(ndarray::s![k * rows..(k + 1) * rows, ..]);
            let yb = ArrayView1::from(&y[k * rows..(k + 1) * rows]);
            epoch_losses.push(net.train_step(xb, yb.into()).unwrap());
            if (s + 1) % per_epoch == 0 {
                let mean = epoch_losses.iter().sum::<f32>() / epoch_losses.len() as f32;
                plateau.record(&schedule.schedule, lr, mean);
                epoch_losses.clear();
            }
        }
        // Every schedule changes the rate, so that the comparison means something.
        let constant = case["schedule"] == "Constant";
        assert!(
            constant || distinct.len() >= 3,
            "{name}: rates {distinct:?}"
        );
        let fin = &case["final"];
        for (layer, (w, b)) in [("w0", "b0"), ("w1", "b1")].iter().enumerate() {
            let (gw, gb) = net.dense_parameters(layer).unwrap();
            for (i, (g, want)) in gw.iter().zip(floats(&fin[*w])).enumerate() {
                close(&format!("{name}: {w}[{i}]"), *g, want, 1e-5);
            }
            for (i, (g, want)) in gb.iter().zip(floats(&fin[*b])).enumerate() {
                close(&format!("{name}: {b}[{i}]"), *g, want, 1e-5);
            }
        }
    }
}
