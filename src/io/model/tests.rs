//! Model files: the same bytes for the same model, and every optimizer's
//! state back as it was written.

use super::*;
use crate::Activation::{Relu, Softmax};
use crate::optim::{AdagradConfig, Optimizer, RmsPropConfig};

/// Many metadata entries, so that a `HashMap`'s order would differ between
/// two maps (each has its own random hasher): the files must not.
#[test]
fn the_same_model_is_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = Network::builder(3)
        .dense(5, Relu)
        .dense(2, Softmax)
        .build()
        .unwrap();
    let x = ndarray::array![[0.5f32, -1.0, 2.0], [1.0, 0.25, -0.5]];
    net.train_step(x.view(), [1usize, 0].as_slice().into())
        .unwrap();
    let metadata: BTreeMap<String, String> = (0..40)
        .map(|i| (format!("user.key{i}"), format!("value {i}")))
        .collect();
    let options = SaveOptions {
        metadata,
        optimizer_state: true,
        ..SaveOptions::default()
    };
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    save(&a, &net, &options).unwrap();
    save(&b, &net, &options).unwrap();
    let (bytes_a, bytes_b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(bytes_a, bytes_b);
    let n = u64::from_le_bytes(bytes_a[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0, "header length {n} is padded to 8 bytes");
    let back = load(&a).unwrap();
    assert_eq!(back.network.parameters(), net.parameters());
    assert_eq!(back.metadata["user.key17"], "value 17");
    let (read, written) = (back.network.optimizer_state(), net.optimizer_state());
    assert_eq!(
        (read.step, &read.first, &read.second),
        (written.step, &written.first, &written.second)
    );
}

/// RMSprop (all three state buffers) and Adagrad (its settings in the
/// metadata) come back from a checkpoint as they were written.
#[test]
fn new_optimizers_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let x = ndarray::array![[0.5f32, -1.0, 2.0], [1.0, 0.25, -0.5]];
    for optimizer in [
        Optimizer::RmsProp(RmsPropConfig {
            lr: 0.01,
            momentum: 0.5,
            centered: true,
            alpha: 0.9,
            eps: 1e-6,
            weight_decay: 0.1,
        }),
        Optimizer::Adagrad(AdagradConfig {
            lr: 0.1,
            lr_decay: 0.01,
            eps: 1e-8,
            initial_accumulator: 0.2,
            weight_decay: 0.0,
        }),
    ] {
        let mut net = Network::builder(3)
            .dense(5, Relu)
            .dense(2, Softmax)
            .optimizer(optimizer)
            .build()
            .unwrap();
        for _ in 0..3 {
            net.train_step(x.view(), [1usize, 0].as_slice().into())
                .unwrap();
        }
        let path = dir.path().join("ckpt");
        let options = SaveOptions {
            optimizer_state: true,
            ..SaveOptions::default()
        };
        save(&path, &net, &options).unwrap();
        let back = load(&path).unwrap();
        assert_eq!(back.network.optimizer(), net.optimizer());
        assert_eq!(back.network.snapshot(), net.snapshot());
    }
}

/// The file written is not left private to its owner, as the temporary
/// file it starts as is: it gets what `fs::write` gives a new file.
#[cfg(unix)]
#[test]
fn atomic_writes_get_the_permissions_of_a_new_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (atomic, plain) = (dir.path().join("a"), dir.path().join("b"));
    write_atomically(&atomic, b"x").unwrap();
    std::fs::write(&plain, b"x").unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&atomic), mode(&plain));
}
