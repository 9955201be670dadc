"""ref_adamw.py — the two-step AdamW example of tests/test_train.c, written from the formulas of
Loshchilov & Hutter (decoupled weight decay) in PyTorch's order, in float64 with plain Python.
Run: python3 tools/ref_adamw.py  (prints the expected parameters after steps 1 and 2)."""
import math

lr, b1, b2, eps, wd = 0.1, 0.9, 0.999, 1e-8, 0.01
p = [1.0, -2.0, 0.5]
grads = [[0.5, -1.0, 0.0], [-0.25, 2.0, 1e-3]]
m = [0.0] * 3
v = [0.0] * 3
for t, g in enumerate(grads, start=1):
    for i in range(3):
        p[i] *= 1 - lr * wd
        m[i] = b1 * m[i] + (1 - b1) * g[i]
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
        mh = m[i] / (1 - b1 ** t)
        vh = v[i] / (1 - b2 ** t)
        p[i] -= lr * mh / (math.sqrt(vh) + eps)
    print("step %d: %s" % (t, ", ".join("%.17g" % x for x in p)))
