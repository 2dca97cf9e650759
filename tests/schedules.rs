//! Learning-rate schedules against PyTorch's `torch.optim.lr_scheduler`: the
//! same 40 steps from the same start and batches (`tests/data/schedules.json`,
//! made by `tests/data/make_schedules.py`) give the same rate at every step and
//! the same final parameters, within 1e-5 relative.

use feedforward::optim::PlateauState;
use feedforward::{Activation::*, Every, LrSchedule, Network, Optimizer, Schedule, SgdConfig};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use serde_json::Value;

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// `got` within `rel` of `want` (relative to `want`, or to 0.01 for a value
/// closer to 0 than that: 1e-7 absolute for the parameters).
fn close(what: &str, got: f32, want: f32, rel: f32) {
    assert!(
        (got - want).abs() <= rel * want.abs().max(1e-2),
        "{what}: {got} against PyTorch's {want}"
    );
}

#[test]
fn schedules_match_pytorch_step_by_step() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/schedules.json");
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
    assert_eq!(cases.len(), 10);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let lr = case["lr"].as_f64().unwrap() as f32;
        let optimizer = match case["optimizer"].as_str().unwrap() {
            "sgd" => Optimizer::Sgd(SgdConfig {
                lr,
                momentum: 0.9,
                ..SgdConfig::default()
            }),
            _ => Optimizer::adam(lr),
        };
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
            close(&format!("{name}: rate of step {s}"), rate, want, 1e-6);
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
        // Every case changes the rate, so that the comparison means something.
        assert!(distinct.len() >= 3, "{name}: rates {distinct:?}");
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
