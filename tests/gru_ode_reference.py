"""The GRU-ODE right-hand side written from its equations: an independent reference for the engines' fields."""
from __future__ import annotations

import torch


def reference_field(U, C, bhn, tau, reset_after):
    """f(t, h) of the GRU-ODE with weights U (3H, H), drive C (B, 3H), candidate bias bhn, time constant tau."""
    H = U.shape[1]

    def f(t, h):
        r = torch.sigmoid(C[:, :H] + h @ U[:H].T)
        z = torch.sigmoid(C[:, H:2 * H] + h @ U[H:2 * H].T)
        if reset_after:
            g = torch.tanh(C[:, 2 * H:] + r * (h @ U[2 * H:].T + bhn))
        else:
            g = torch.tanh(C[:, 2 * H:] + (r * h) @ U[2 * H:].T)
        return (1 - z) * (g - h) / tau
    return f
