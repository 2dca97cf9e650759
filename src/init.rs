//! Seeded weight initialisation.
//!
//! | scheme          | distribution of each weight                          | suits          |
//! |-----------------|------------------------------------------------------|----------------|
//! | He normal       | `N(0, 2/n_in)`                                       | ReLU           |
//! | He uniform      | `U(−√(6/n_in), √(6/n_in))`                           | ReLU           |
//! | Xavier normal   | `N(0, 2/(n_in + n_out))`                             | tanh, sigmoid  |
//! | Xavier uniform  | `U(−√(6/(n_in + n_out)), √(6/(n_in + n_out)))`       | tanh, sigmoid  |
//!
//! Biases start at zero; batch-norm `γ` at one and `β` at zero.

use rand::RngExt;
use rand::rngs::Xoshiro256PlusPlus;
use rand_distr::{Distribution, Normal};

use crate::activation::Activation;

/// How the weights of dense layers are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Init {
    /// He normal for ReLU layers, Xavier uniform for the others.
    #[default]
    Auto,
    /// `N(0, 2/n_in)` (He et al., 2015).
    HeNormal,
    /// `U(±√(6/n_in))`.
    HeUniform,
    /// `N(0, 2/(n_in + n_out))` (Glorot & Bengio, 2010).
    XavierNormal,
    /// `U(±√(6/(n_in + n_out)))`.
    XavierUniform,
}

impl Init {
    /// Fills `w` (an `n_in × n_out` weight matrix) for a layer with `activation`.
    pub(crate) fn fill(
        self,
        w: &mut [f32],
        n_in: usize,
        n_out: usize,
        activation: Activation,
        rng: &mut Xoshiro256PlusPlus,
    ) {
        let scheme = match self {
            Init::Auto if activation == Activation::Relu => Init::HeNormal,
            Init::Auto => Init::XavierUniform,
            other => other,
        };
        let (fan_in, fan_sum) = (n_in.max(1) as f32, (n_in + n_out).max(1) as f32);
        match scheme {
            Init::HeNormal | Init::XavierNormal => {
                let var = if scheme == Init::HeNormal {
                    2.0 / fan_in
                } else {
                    2.0 / fan_sum
                };
                let normal =
                    Normal::new(0.0f32, var.sqrt()).expect("a positive finite standard deviation");
                w.iter_mut().for_each(|x| *x = normal.sample(rng));
            }
            _ => {
                let limit = if scheme == Init::HeUniform {
                    (6.0 / fan_in).sqrt()
                } else {
                    (6.0 / fan_sum).sqrt()
                };
                w.iter_mut()
                    .for_each(|x| *x = rng.random_range(-limit..limit));
            }
        }
    }
}
