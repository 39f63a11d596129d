"""Explicit Runge-Kutta tableaus: Euler, RK4, Tsit5, DP5 (coefficient data only)."""
from __future__ import annotations

from fractions import Fraction as F

from ..tableaus import ButcherTableau, DenseOutput

# Forward Euler, order 1.
EULER = ButcherTableau(
    name="Euler", A=[[0]], b=[1], c=[0], order=1,
    source="Euler (1768); Hairer, Norsett & Wanner, Solving ODEs I, Sec. II.1",
)

# Classical fourth-order Runge-Kutta (Kutta 1901).
RK4 = ButcherTableau(
    name="RK4",
    A=[[0, 0, 0, 0],
       [F(1, 2), 0, 0, 0],
       [0, F(1, 2), 0, 0],
       [0, 0, 1, 0]],
    b=[F(1, 6), F(1, 3), F(1, 3), F(1, 6)],
    c=[0, F(1, 2), F(1, 2), 1],
    order=4,
    source="Kutta (1901); Hairer, Norsett & Wanner, Solving ODEs I, Table II.1.2",
)

# Tsitouras (2011), "Runge-Kutta pairs of order 5(4) satisfying only the first
# column simplifying assumption", Comput. Math. Appl. 62:770-775. Decimals as in
# OrdinaryDiffEq.jl lib/OrdinaryDiffEqTsit5/src/tsit_tableaus.jl (commit b211787),
# which publishes btilde = b_hat - b; b_hat is rebuilt from it below.
# Tsitouras's free 4th-order continuous extension, b_i(theta) = sum_m r_im theta^m, m = 1..4
# (r_i1 = 0 for i > 1); OrdinaryDiffEq.jl tsit_tableaus.jl@b211787 Tsit5Interp (Float64 branch).
_TSIT5_R = [
    [1.0, -2.763706197274826, 2.9132554618219126, -1.0530884977290216],
    [0, 0.13169999999999998, -0.2234, 0.1017],
    [0, 3.9302962368947516, -5.941033872131505, 2.490627285651253],
    [0, -12.411077166933676, 30.33818863028232, -16.548102889244902],
    [0, 37.50931341651104, -88.1789048947664, 47.37952196281928],
    [0, -27.896526289197286, 65.09189467479366, -34.87065786149661],
    [0, 1.5, -4, 2.5],
]
_TSIT5_B = [0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742,
            -3.290069515436081, 2.324710524099774, 0.0]
_TSIT5_BTILDE = [-0.00178001105222577714, -0.0008164344596567469, 0.007880878010261995,
                 -0.1447110071732629, 0.5823571654525552, -0.45808210592918697,
                 0.015151515151515152]
TSIT5 = ButcherTableau(
    name="Tsit5",
    A=[[0, 0, 0, 0, 0, 0, 0],
       [0.161, 0, 0, 0, 0, 0, 0],
       [-0.008480655492356989, 0.335480655492357, 0, 0, 0, 0, 0],
       [2.8971530571054935, -6.359448489975075, 4.3622954328695815, 0, 0, 0, 0],
       [5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525, 0, 0, 0],
       [5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401,
        -0.028269050394068383, 0, 0],
       _TSIT5_B],
    b=_TSIT5_B,
    b_hat=[bi + ti for bi, ti in zip(_TSIT5_B, _TSIT5_BTILDE)],
    c=[0, 0.161, 0.327, 0.9, 0.9800255409045097, 1, 1],
    order=5, embedded_order=4,
    dense=DenseOutput(name="Tsitouras 2011 free interpolant", P=_TSIT5_R, order=4,
                      source="Tsitouras 2011; OrdinaryDiffEq.jl tsit_tableaus.jl@b211787 Tsit5Interp"),
    source="Tsitouras 2011, Comput. Math. Appl. 62:770; OrdinaryDiffEq.jl tsit_tableaus.jl@b211787",
)

# Dormand & Prince (1980), "A family of embedded Runge-Kutta formulae",
# J. Comput. Appl. Math. 6:19-26, Table 2 (RK5(4)7M); exact rationals.
# Dense output of Dormand & Prince (1986) as printed in Hairer, Norsett & Wanner, Solving ODEs I,
# Sec. II.6 (the d_i of the 4th-order free continuous extension; d_2 = 0); exact rationals as in
# OrdinaryDiffEq.jl low_order_rk_tableaus.jl@b211787 DP5_dense_ds.
_DP5_D = [F(-12715105075, 11282082432), 0, F(87487479700, 32700410799), F(-10690763975, 1880347072),
          F(701980252875, 199316789632), F(-1453857185, 822651844), F(69997945, 29380423)]
_DP5_B = [F(35, 384), 0, F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84), 0]
DP5 = ButcherTableau(
    name="DP5",
    A=[[0, 0, 0, 0, 0, 0, 0],
       [F(1, 5), 0, 0, 0, 0, 0, 0],
       [F(3, 40), F(9, 40), 0, 0, 0, 0, 0],
       [F(44, 45), F(-56, 15), F(32, 9), 0, 0, 0, 0],
       [F(19372, 6561), F(-25360, 2187), F(64448, 6561), F(-212, 729), 0, 0, 0],
       [F(9017, 3168), F(-355, 33), F(46732, 5247), F(49, 176), F(-5103, 18656), 0, 0],
       _DP5_B],
    b=_DP5_B,
    b_hat=[F(5179, 57600), 0, F(7571, 16695), F(393, 640), F(-92097, 339200), F(187, 2100), F(1, 40)],
    c=[0, F(1, 5), F(3, 10), F(4, 5), F(8, 9), 1, 1],
    order=5, embedded_order=4,
    dense=DenseOutput.from_dopri(_DP5_B, _DP5_D, name="Dormand-Prince dense output (Hairer's d_i)", order=4,
                                 source="Hairer, Norsett & Wanner, Solving ODEs I, II.6; OrdinaryDiffEq.jl "
                                        "low_order_rk_tableaus.jl@b211787 DP5_dense_ds"),
    source="Dormand & Prince 1980, J. Comput. Appl. Math. 6:19, RK5(4)7M",
)

__all__ = ["EULER", "RK4", "TSIT5", "DP5"]
