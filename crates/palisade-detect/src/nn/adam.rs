//! Adam (Kingma & Ba) with bias correction, over the flat parameter vector.

/// Optimiser state.
#[derive(Debug, Clone)]
pub struct Adam {
    /// Learning rate.
    pub lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    /// State for `n` parameters, with the usual β₁ = 0.9, β₂ = 0.999, ε = 1e-8.
    pub fn new(n: usize, lr: f32) -> Self {
        Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, m: vec![0.0; n], v: vec![0.0; n], t: 0 }
    }

    /// One step along `grad`.
    pub fn step(&mut self, params: &mut [f32], grad: &[f32]) {
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.t);
        let c2 = 1.0 - b2.powi(self.t);
        let step = self.lr * c2.sqrt() / c1;
        let eps = self.eps * c2.sqrt();
        for i in 0..params.len() {
            let g = grad[i];
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g;
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g * g;
            params[i] -= step * self.m[i] / (self.v[i].sqrt() + eps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Adam;

    #[test]
    fn first_step_moves_each_parameter_by_about_lr_against_its_gradient_sign() {
        let mut p = vec![1.0f32, 1.0, 1.0];
        let mut adam = Adam::new(3, 0.01);
        adam.step(&mut p, &[2.0, -0.5, 0.0]);
        assert!((p[0] - 0.99).abs() < 1e-6, "{}", p[0]);
        assert!((p[1] - 1.01).abs() < 1e-6, "{}", p[1]);
        assert_eq!(p[2], 1.0);
    }

    #[test]
    fn minimises_a_quadratic() {
        let mut p = vec![5.0f32, -3.0];
        let mut adam = Adam::new(2, 0.1);
        for _ in 0..500 {
            let g = [2.0 * (p[0] - 1.0), 2.0 * (p[1] + 2.0)];
            adam.step(&mut p, &g);
        }
        assert!((p[0] - 1.0).abs() < 1e-2 && (p[1] + 2.0).abs() < 1e-2, "{p:?}");
    }
}
