"""Regenerates the miniature replay runs in tests/data/ with the peers' own script.

Usage: PEER_PYTHON make_replays.py PATH/TO/shared/peers

bench.py's W1 and W2 are scaled down (same activations, losses, optimizers and
constants; smaller widths and batches) so that the dumped files stay a few
kilobytes; each run's JSON line from PyTorch is kept as peer.json beside it.
"""
import contextlib
import io
import os
import sys

peers = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, peers)
os.environ["_BENCH_REEXEC"] = "1"  # bench.py re-executes itself otherwise
import bench  # noqa: E402

MINI = {
    "W1": (([32, 24, 16, 5], 16, "train", "ce", "adam"), 12),
    "W2": (([24, 32, 32, 8], 16, "train", "mse", "sgd"), 12),
}
for name, (cfg, steps) in MINI.items():
    bench.WORKLOADS[name] = cfg
    out_dir = os.path.join(here, f"replay-mini-{name.lower()}")
    sys.argv = ["bench.py", "--framework", "torch", "--workload", name, "--threads", "1",
                "--steps", str(steps), "--warmup", "0", "--dump", out_dir, "--no-pin"]
    line = io.StringIO()
    with contextlib.redirect_stdout(line):
        bench.main()
    with open(os.path.join(out_dir, "peer.json"), "w") as f:
        f.write(line.getvalue())
    print(name, line.getvalue().strip()[:200])
