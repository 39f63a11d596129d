"""The GRU-ODE vector field for one token: f, its analytic Jacobian and its analytic VJP.

Between two tokens the hidden state follows (De Brouwer et al. 2019, with the token's input frozen
into the drive c = W x + b):

    r = σ(c_r + U_r h),  z = σ(c_z + U_z h)
    g = tanh(c_h + U_h (r ⊙ h))                 reset_after=False (Cho et al. 2014, the seed)
    g = tanh(c_h + r ⊙ (U_h h + b_hn))          reset_after=True  (PyTorch / cuDNN)
    dh/dt = f(h) = (1 - z) ⊙ (g - h) / tau

U = [U_r; U_z; U_h] is (3H, H) and c = [c_r, c_z, c_h] is (B, 3H): the same row order as
torch.nn.GRU's weight_hh / bias (r, z, n). The engine sees only f, jac and vjp; they are written with
fused matmuls and no autograd graph so that the solver loop costs about one GRU cell per evaluation.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InputError
from ..ode.krylov import JacobianOperator
from ..ode.problem import OuterSum


class GRUODEField:
    """dh/dt = (1 - z) ⊙ (g - h) / tau with the drive c of one token held fixed.

    The object is a closure over the tensors it computes with; ``params`` lists them in the order
    ``vjp`` returns their cotangents, which is what ``odeint_adjoint(params=...)`` needs.

    Args:
        weight_hh: U, shape (3H, H), rows [U_r; U_z; U_h].
        drive: c = W x + b, shape (B, 3H) (or (3H,) for a single system), columns [c_r, c_z, c_h].
        b_hn: (H,) bias inside the reset product; only with ``reset_after=True`` (None: no bias).
        tau: time constant, a positive float, or a tensor of shape (H,) or () when it is learned.
        reset_after: False for the seed's candidate g = tanh(c_h + U_h (r ⊙ h)), True for PyTorch's.
    """

    def __init__(self, weight_hh: Tensor, drive: Tensor, b_hn: Tensor | None = None,
                 tau: float | Tensor = 1.0, reset_after: bool = False):
        H = weight_hh.shape[1]
        if weight_hh.shape != (3 * H, H):
            raise InputError(f"weight_hh must have shape (3H, H), got {tuple(weight_hh.shape)}")
        if drive.shape[-1] != 3 * H:
            raise InputError(f"drive must end in 3H = {3 * H} columns, got {tuple(drive.shape)}")
        if b_hn is not None and not reset_after:
            raise InputError("b_hn only exists with reset_after=True; fold the bias into the drive instead")
        self.U, self.c, self.b_hn, self.tau = weight_hh, drive, b_hn, tau
        self.reset_after, self.H = reset_after, H
        c2 = drive if drive.dim() == 2 else drive.unsqueeze(0)
        self._c_h = c2[:, 2 * H:]
        if reset_after:
            # addmm's additive term for the fused (B,H)@(H,3H) product: [c_r, c_z, b_hn]
            self._bias3 = c2.clone()
            if b_hn is None:
                self._bias3[:, 2 * H:] = 0
            else:
                self._bias3[:, 2 * H:] = b_hn
        self._inv_tau = None if _is_one(tau) else 1.0 / tau

    @property
    def params(self) -> tuple:
        """The tensors f depends on, in vjp's order: (U, c[, b_hn][, tau])."""
        p = (self.U, self.c)
        if self.b_hn is not None:
            p += (self.b_hn,)
        if isinstance(self.tau, Tensor):
            p += (self.tau,)
        return p

    # ------------------------------------------------------------------ gates
    def _gates(self, h: Tensor):
        """(r, z, g, m) at h (B, H); m is U_h h + b_hn (reset_after) or r ⊙ h (seed).

        Activations run in place on fresh buffers unless autograd is recording (direct backprop).
        """
        H, U = self.H, self.U
        fresh = not torch.is_grad_enabled()
        if self.reset_after:
            pre = torch.addmm(self._bias3, h, U.t())                    # (B, 3H)
            rz = pre[:, :2 * H].sigmoid()
            r, z = rz[:, :H], rz[:, H:]
            m = pre[:, 2 * H:]
            g = torch.addcmul(self._c_h, r, m)
        else:
            c = self.c if self.c.dim() == 2 else self.c.unsqueeze(0)
            rz = torch.addmm(c[:, :2 * H], h, U[:2 * H].t())            # (B, 2H)
            rz = rz.sigmoid_() if fresh else rz.sigmoid()
            r, z = rz[:, :H], rz[:, H:]
            m = r * h
            g = torch.addmm(self._c_h, m, U[2 * H:].t())
        g = g.tanh_() if fresh else g.tanh()
        return r, z, g, m

    # ------------------------------------------------------------------ f
    def __call__(self, t, h: Tensor) -> Tensor:
        """f(t, h): (B, H) or (H,) -> same shape. Autonomous in t."""
        if h.dim() == 1:
            return self(t, h.unsqueeze(0)).squeeze(0)
        _, z, g, _ = self._gates(h)
        if torch.is_grad_enabled():                     # direct backprop through the solver
            f = (1 - z) * (g - h)
            return f if self._inv_tau is None else f * self._inv_tau
        d = g.sub_(h)                                   # g - h, reusing g's storage
        f = torch.addcmul(d, z, d, value=-1.0)          # (1 - z) ⊙ (g - h)
        return f if self._inv_tau is None else f.mul_(self._inv_tau)

    # ------------------------------------------------------------------ Jacobian
    @torch.no_grad()
    def jac(self, t, h: Tensor) -> Tensor:
        """∂f/∂h: (B, H, H) for h (B, H), or (H, H) for h (H,), differentiated by hand from the gates."""
        if h.dim() == 1:
            return self.jac(t, h.unsqueeze(0)).squeeze(0)
        H, U = self.H, self.U
        r, z, g, m = self._gates(h)
        omz = 1 - z
        dg = omz * (1 - g * g)                          # ∂f/∂(tanh pre-activation), per row
        wz = z * omz * (h - g)                          # ∂f/∂(z pre-activation)
        U_r, U_z, U_h = U[:H], U[H:2 * H], U[2 * H:]
        if self.reset_after:
            # ∂pre_g/∂h = diag(r(1-r) m) U_r + diag(r) U_h: row scalings only, O(B H²)
            J = U_r * (dg * m * r * (1 - r)).unsqueeze(2)
            J.addcmul_(U_h, (dg * r).unsqueeze(2))
        else:
            # ∂pre_g/∂h = U_h (diag(r) + diag(h r (1-r)) U_r): one batched (H,H)@(H,H)
            inner = U_r * (h * r * (1 - r)).unsqueeze(2)
            inner.diagonal(dim1=1, dim2=2).add_(r)
            J = torch.matmul(U_h, inner).mul_(dg.unsqueeze(2))
        J.addcmul_(U_z, wz.unsqueeze(2))
        J.diagonal(dim1=1, dim2=2).sub_(omz)
        if self._inv_tau is not None:
            J.mul_(_col(self._inv_tau))
        return J

    @torch.no_grad()
    def jac_operator(self, t, h: Tensor) -> "GRUJacobian":
        """∂f/∂h at h as an operator (J v, Jᵀ v, diag J in O(B H²) each) for ``linsolve="krylov"``;
        pass ``jac=field.jac_operator``. ``dense()`` equals :meth:`jac`."""
        return GRUJacobian(self, h)

    # ------------------------------------------------------------------ VJP
    @torch.no_grad()
    def vjp(self, t, h: Tensor, a: Tensor, lazy: bool = False):
        """Cotangents of a·f: returns (a·∂f/∂h, (a·∂f/∂θ for θ in params)).

        Shapes: a·∂f/∂h like h; U -> (3H, H); c -> like c (per sample, not summed); b_hn -> (H,);
        tau -> like tau (summed over the batch). ``lazy=True`` returns U's cotangent as an
        :class:`~pyjlode.ode.problem.OuterSum` (its factors): a solve's quadrature then sums the
        stages' factors and pays one matmul per solve instead of one per evaluation.
        """
        if h.dim() == 1:
            dh, dp = self.vjp(t, h.unsqueeze(0), a.unsqueeze(0), lazy)
            return dh.squeeze(0), dp
        H, U = self.H, self.U
        r, z, g, m = self._gates(h)
        a_s = a if self._inv_tau is None else a * self._inv_tau
        omz = 1 - z
        a_g = a_s * omz                                 # a·∂f/∂g
        dc = h.new_empty(h.shape[0], 3 * H)             # a·∂f/∂c = cotangents of the pre-activations
        dpg = torch.mul(a_g, 1 - g * g, out=dc[:, 2 * H:])              # pre-activation of g
        torch.mul(a_s * (h - g), z * omz, out=dc[:, H:2 * H])           # pre-activation of z
        if self.reset_after:
            torch.mul(dpg * m, r * (1 - r), out=dc[:, :H])              # pre-activation of r
            dpre = dc.clone()
            dpre[:, 2 * H:].mul_(r)                                     # through r ⊙ (U_h h + b_hn)
            dh = torch.addmm(a_g, dpre, U, beta=-1)                     # dpre @ U - a_g
            dU = OuterSum.of(U.shape, (0, 3 * H, dpre, h)) if lazy else dpre.t().mm(h)
            grads = [dU, dc]
            if self.b_hn is not None:
                grads.append(dpre[:, 2 * H:].sum(0))
        else:
            d_m = dpg.mm(U[2 * H:])                                     # a·∂f/∂(r ⊙ h)
            torch.mul(d_m * h, r * (1 - r), out=dc[:, :H])
            dh = torch.addmm(torch.addcmul(a_g, d_m, r, value=-1), dc[:, :2 * H], U[:2 * H], beta=-1)
            if lazy:
                dU = OuterSum.of(U.shape, (0, 2 * H, dc[:, :2 * H], h), (2 * H, 3 * H, dpg, m))
            else:
                dU = U.new_empty(U.shape)
                torch.mm(dc[:, :2 * H].t(), h, out=dU[:2 * H])
                torch.mm(dpg.t(), m, out=dU[2 * H:])
            grads = [dU, dc]
        if isinstance(self.tau, Tensor):
            # ∂f/∂tau = -f / tau, with f = (1 - z)(g - h)/tau
            q = (a_g * (g - h)).mul_(-self._inv_tau)
            grads.append(q.sum(0) if self.tau.dim() else q.sum())
        if self.c.dim() == 1:
            grads[1] = dc.squeeze(0)
        return dh, tuple(grads)


class GRUJacobian(JacobianOperator):
    """∂f/∂h of :class:`GRUODEField` at one state, kept as its factors (gates and U).

    J = S (-diag(1-z) + diag(dg) ∂pre_g/∂h + diag(wz) U_z) with S = diag(1/tau) and ∂pre_g/∂h as in
    ``jac``; every product is one or two (B, H)·(H, kH) matmuls, about one evaluation of f.
    """

    def __init__(self, field: GRUODEField, h: Tensor):
        self.field, self.squeeze = field, h.dim() == 1
        h = h.unsqueeze(0) if self.squeeze else h
        r, z, g, m = field._gates(h)
        self.h, self.r, self.omz = h, r, 1 - z
        self.dg = self.omz * (1 - g * g)
        self.wz = z * self.omz * (h - g)
        self.q = self.dg * (m * r * (1 - r) if field.reset_after else 1.0)
        self.s = 1.0 if field._inv_tau is None else field._inv_tau

    def _in(self, v):
        return v.unsqueeze(0) if self.squeeze else v

    def _out(self, v):
        return v.squeeze(0) if self.squeeze else v

    @torch.no_grad()
    def mv(self, v: Tensor) -> Tensor:
        f, H, U = self.field, self.field.H, self.field.U
        v = self._in(v)
        if f.reset_after:   # J v = S(diag(q) U_r v + diag(dg r) U_h v + diag(wz) U_z v - (1-z) v)
            p = v.mm(U.t())
            out = self.q * p[:, :H] + self.dg * self.r * p[:, 2 * H:] + self.wz * p[:, H:2 * H]
        else:               # ∂pre_g/∂h v = U_h (r v + h r (1-r) U_r v)
            p = v.mm(U[:2 * H].t())
            inner = self.r * v + self.h * self.r * (1 - self.r) * p[:, :H]
            out = self.dg * inner.mm(U[2 * H:].t()) + self.wz * p[:, H:]
        out = out.sub_(self.omz * v).mul_(self.s)
        return self._out(out)

    @torch.no_grad()
    def rmv(self, v: Tensor) -> Tensor:
        f, H, U = self.field, self.field.H, self.field.U
        u = self._in(v) * self.s
        if f.reset_after:
            out = torch.cat([self.q * u, self.wz * u, self.dg * self.r * u], dim=1).mm(U)
        else:
            p = (self.dg * u).mm(U[2 * H:])                       # U_hᵀ (dg u)
            rr = self.h * self.r * (1 - self.r)
            out = torch.cat([rr * p, self.wz * u], dim=1).mm(U[:2 * H]).add_(self.r * p)
        return self._out(out.sub_(self.omz * u))

    @torch.no_grad()
    def diagonal(self) -> Tensor:
        f, H, U = self.field, self.field.H, self.field.U
        U_r, U_z, U_h = U[:H], U[H:2 * H], U[2 * H:]
        d = self.wz * U_z.diagonal() - self.omz
        if f.reset_after:
            d = d + self.q * U_r.diagonal() + self.dg * self.r * U_h.diagonal()
        else:               # diag(U_h diag(x) U_r) = (U_h ⊙ U_rᵀ) x
            x = self.h * self.r * (1 - self.r)
            d = d + self.dg * (self.r * U_h.diagonal() + x.mm((U_h * U_r.t()).t()))
        return self._out(d * self.s)

    def dense(self) -> Tensor:
        return self.field.jac(None, self._out(self.h))


def _is_one(tau) -> bool:
    return not isinstance(tau, Tensor) and float(tau) == 1.0


def _col(x):
    """x (float, (), or (H,)) shaped to scale the rows of a (B, H, H) tensor."""
    return x.reshape(-1, 1) if isinstance(x, Tensor) and x.dim() else x
