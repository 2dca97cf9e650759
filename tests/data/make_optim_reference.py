"""Regenerates tests/data/optim_reference.json: optimizers and learning-rate
schedules run by PyTorch.

Usage: PEER_PYTHON tests/data/make_optim_reference.py   (the peers' environment:
../shared/peers/install.sh)

A small network (4 -> 6 tanh -> 3 softmax, cross-entropy) trains for 40 steps
on 8 fixed batches of 16 rows, cycled, with each schedule of
torch.optim.lr_scheduler (SGD with momentum 0.9, or Adam) and with RMSprop and
Adagrad at a constant rate; an "epoch" is 4 steps. For every case the file holds
the rate of each step (read from the optimizer before the step) and the final
parameters, so that `tests/optim_reference.rs` replays the same steps with the
crate's schedules and compares both, without Python.
"""
import json
import math
import os

import numpy as np
import torch

torch.set_default_dtype(torch.float32)
torch.set_num_threads(1)
STEPS, PER_EPOCH, BATCHES, ROWS = 40, 4, 8, 16
rng = np.random.default_rng(7)
xs = rng.standard_normal((BATCHES, ROWS, 4)).astype(np.float32)
ys = rng.integers(0, 3, (BATCHES, ROWS))
w0 = (rng.standard_normal((4, 6)) * 0.5).astype(np.float32)
b0 = (rng.standard_normal(6) * 0.1).astype(np.float32)
w1 = (rng.standard_normal((6, 3)) * 0.5).astype(np.float32)
b1 = (rng.standard_normal(3) * 0.1).astype(np.float32)
S = torch.optim.lr_scheduler


def run(case):
    l0, l1 = torch.nn.Linear(4, 6), torch.nn.Linear(6, 3)
    with torch.no_grad():
        # The crate's W is n_in x n_out (Z = A W + b); torch's weight is its transpose.
        l0.weight.copy_(torch.from_numpy(w0.T)); l0.bias.copy_(torch.from_numpy(b0))
        l1.weight.copy_(torch.from_numpy(w1.T)); l1.bias.copy_(torch.from_numpy(b1))
    model = torch.nn.Sequential(l0, torch.nn.Tanh(), l1)
    kind, lr, extra = case["optimizer"], case["lr"], case.get("args", {})
    if kind == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    elif kind == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    elif kind == "rmsprop":
        opt = torch.optim.RMSprop(model.parameters(), lr=lr, **extra)
    elif kind == "adagrad":
        opt = torch.optim.Adagrad(model.parameters(), lr=lr, **extra)
    else:
        # LARS and LAMB: numpy transcriptions of the papers' algorithms below;
        # torch only computes the gradients (a plain SGD holds the rate for
        # the scheduler and applies nothing).
        opt = torch.optim.SGD(model.parameters(), lr=lr)
    sched = case["make"](opt)
    per_step = case["every"] == "Step"
    lrs, epoch_losses, state = [], [], {}
    for s in range(STEPS):
        k = s % BATCHES
        lrs.append(opt.param_groups[0]["lr"])
        loss = torch.nn.functional.cross_entropy(
            model(torch.from_numpy(xs[k])), torch.from_numpy(ys[k]))
        epoch_losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        if kind in ("lars", "lamb"):
            numpy_step(kind, model, opt.param_groups[0]["lr"], extra, s + 1, state)
        else:
            opt.step()
        if per_step:
            sched.step()
        elif (s + 1) % PER_EPOCH == 0:
            if case.get("plateau"):
                # The mean loss of the epoch's batches (each before its update).
                sched.step(float(np.float32(np.mean(np.array(epoch_losses, dtype=np.float32)))))
            else:
                sched.step()
            epoch_losses = []
    params = [p.detach().numpy() for p in model.parameters()]
    return {
        "name": case["name"],
        "schedule": case["schedule"],
        "every": case["every"],
        "warmup": case.get("warmup", 0),
        "optimizer": kind,
        "args": extra,
        "lr": lr,
        "lrs": lrs,
        "final": {
            "w0": params[0].T.ravel().tolist(), "b0": params[1].tolist(),
            "w1": params[2].T.ravel().tolist(), "b1": params[3].tolist(),
        },
    }


def numpy_step(kind, model, lr, args, t, state):
    """One step of LARS (You, Gitman & Ginsburg 2017, Algorithm 1) or LAMB
    (You et al. 2019, Algorithm 2 with bias correction), in numpy: weights are
    adapted layer by layer, biases take the plain update (ratio 1, no decay)."""
    for i, p in enumerate(model.parameters()):
        w = p.detach().numpy().astype(np.float32)
        g = p.grad.detach().numpy().astype(np.float32)
        adapt = p.dim() == 2
        wd = np.float32(args.get("weight_decay", 0.0) if adapt else 0.0)
        w_norm = np.linalg.norm(w.astype(np.float64))
        if kind == "lars":
            mu, eta = np.float32(args.get("momentum", 0.9)), args.get("trust", 0.001)
            g_norm = np.linalg.norm(g.astype(np.float64))
            trust = eta * w_norm / (g_norm + float(wd) * w_norm) if adapt and w_norm > 0 and g_norm > 0 else 1.0
            v = state.get(i, np.zeros_like(w))
            v = mu * v + np.float32(lr * trust) * (g + wd * w)
            state[i] = v
            w = w - v
        else:
            b1, b2 = np.float32(args.get("beta1", 0.9)), np.float32(args.get("beta2", 0.999))
            eps = np.float32(args.get("eps", 1e-6))
            m, v = state.get(("m", i), np.zeros_like(w)), state.get(("v", i), np.zeros_like(w))
            m = b1 * m + (np.float32(1) - b1) * g
            v = b2 * v + (np.float32(1) - b2) * g * g
            state[("m", i)], state[("v", i)] = m, v
            bc1, bc2 = np.float32(1 - float(b1) ** t), np.float32(1 - float(b2) ** t)
            r = (m / bc1) / (np.sqrt(v / bc2) + eps) + wd * w
            r_norm = np.linalg.norm(r.astype(np.float64))
            trust = w_norm / r_norm if adapt and w_norm > 0 and r_norm > 0 else 1.0
            w = w - np.float32(lr * trust) * r
        with torch.no_grad():
            p.copy_(torch.from_numpy(w.astype(np.float32)))


def warm_then(opt, w, second):
    return S.SequentialLR(opt, [S.LinearLR(opt, start_factor=1 / 3, total_iters=w), second(opt)], milestones=[w])


CASES = [
    {"name": "step", "optimizer": "sgd", "lr": 0.1, "every": "Epoch",
     "schedule": {"Step": {"size": 2, "gamma": 0.5}},
     "make": lambda o: S.StepLR(o, step_size=2, gamma=0.5)},
    {"name": "multistep", "optimizer": "adam", "lr": 0.02, "every": "Epoch",
     "schedule": {"MultiStep": {"milestones": [3, 6, 8], "gamma": 0.3}},
     "make": lambda o: S.MultiStepLR(o, milestones=[3, 6, 8], gamma=0.3)},
    {"name": "exponential", "optimizer": "sgd", "lr": 0.1, "every": "Epoch",
     "schedule": {"Exponential": {"gamma": 0.8}},
     "make": lambda o: S.ExponentialLR(o, gamma=0.8)},
    {"name": "cosine", "optimizer": "adam", "lr": 0.02, "every": "Epoch",
     "schedule": {"Cosine": {"period": 10, "min_lr": 0.001, "restarts": False, "mult": 1}},
     "make": lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.001)},
    {"name": "cosine-restarts", "optimizer": "sgd", "lr": 0.1, "every": "Step",
     "schedule": {"Cosine": {"period": 5, "min_lr": 0.0, "restarts": True, "mult": 2}},
     "make": lambda o: S.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=0.0)},
    {"name": "one-cycle", "optimizer": "sgd", "lr": 0.1, "every": "Step",
     "schedule": {"OneCycle": {"total": 40, "max_lr": 0.2, "pct_start": 0.3,
                               "div_factor": 25.0, "final_div_factor": 1e4}},
     "make": lambda o: S.OneCycleLR(o, max_lr=0.2, total_steps=40, cycle_momentum=False)},
    {"name": "warmup-cosine", "optimizer": "adam", "lr": 0.02, "every": "Step", "warmup": 5,
     "schedule": {"Cosine": {"period": 35, "min_lr": 0.0, "restarts": False, "mult": 1}},
     "make": lambda o: warm_then(o, 5, lambda p: S.CosineAnnealingLR(p, T_max=35))},
    {"name": "warmup-step", "optimizer": "sgd", "lr": 0.1, "every": "Epoch", "warmup": 2,
     "schedule": {"Step": {"size": 3, "gamma": 0.5}},
     "make": lambda o: warm_then(o, 2, lambda p: S.StepLR(p, step_size=3, gamma=0.5))},
    {"name": "plateau", "optimizer": "sgd", "lr": 0.5, "every": "Epoch", "plateau": True,
     "schedule": {"Plateau": {"factor": 0.5, "patience": 1, "threshold": 0.05,
                              "cooldown": 1, "min_lr": 0.01}},
     "make": lambda o: S.ReduceLROnPlateau(o, factor=0.5, patience=1, threshold=0.05,
                                           cooldown=1, min_lr=0.01)},
    # scikit-learn's invscaling: lr0 / (samples seen + 1)^power_t, once per epoch.
    {"name": "invscaling", "optimizer": "sgd", "lr": 0.5, "every": "Epoch",
     "schedule": {"InvScaling": {"power_t": 0.25}},
     "make": lambda o: S.LambdaLR(o, lambda e: 1.0 / math.pow(e * PER_EPOCH * ROWS + 1, 0.25))},
    # Optimizers at a constant rate.
    {"name": "rmsprop", "optimizer": "rmsprop", "lr": 0.01, "every": "Epoch",
     "schedule": "Constant", "make": lambda o: S.LambdaLR(o, lambda e: 1.0)},
    {"name": "rmsprop-centered-momentum", "optimizer": "rmsprop", "lr": 0.005, "every": "Epoch",
     "args": {"alpha": 0.9, "eps": 1e-6, "momentum": 0.8, "centered": True, "weight_decay": 0.01},
     "schedule": "Constant", "make": lambda o: S.LambdaLR(o, lambda e: 1.0)},
    {"name": "adagrad", "optimizer": "adagrad", "lr": 0.1, "every": "Epoch",
     "schedule": "Constant", "make": lambda o: S.LambdaLR(o, lambda e: 1.0)},
    {"name": "adagrad-decay", "optimizer": "adagrad", "lr": 0.2, "every": "Epoch",
     "args": {"lr_decay": 0.05, "eps": 1e-8, "initial_accumulator_value": 0.1, "weight_decay": 0.01},
     "schedule": "Constant", "make": lambda o: S.LambdaLR(o, lambda e: 1.0)},
    # LARS and LAMB, from numpy transcriptions of the papers, with warm-up.
    {"name": "lars", "optimizer": "lars", "lr": 0.5, "every": "Step", "warmup": 5,
     "args": {"momentum": 0.9, "weight_decay": 0.0005, "trust": 0.02},
     "schedule": "Constant",
     "make": lambda o: warm_then(o, 5, lambda p: S.LambdaLR(p, lambda e: 1.0))},
    {"name": "lamb", "optimizer": "lamb", "lr": 0.02, "every": "Step", "warmup": 5,
     "args": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-6, "weight_decay": 0.01},
     "schedule": "Constant",
     "make": lambda o: warm_then(o, 5, lambda p: S.LambdaLR(p, lambda e: 1.0))},
]

out = {
    "steps": STEPS, "per_epoch": PER_EPOCH,
    "x": xs.ravel().tolist(), "y": ys.ravel().tolist(), "rows": ROWS, "batches": BATCHES,
    "init": {"w0": w0.ravel().tolist(), "b0": b0.tolist(), "w1": w1.ravel().tolist(), "b1": b1.tolist()},
    "torch": torch.__version__,
    "cases": [run(c) for c in CASES],
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim_reference.json")
with open(path, "w") as f:
    json.dump(out, f)
print("wrote", path, [(c["name"], len(set(c["lrs"]))) for c in out["cases"]])
