"""Rosenbrock tableaus in W-transformed form: Rosenbrock23, Rodas4, Rodas5P (data only).

Form (OrdinaryDiffEq ``RodasTableau``; Hairer & Wanner II, Sec. IV.7, eq. (7.25)): with
``W = I - gamma dt J``, stage i solves ``W k_i = gamma dt (f(t + c_i dt, u_i) + dt d_i df/dt
+ sum_{j<i} C_ij/dt k_j)`` for ``u_i = y + sum_{j<i} A_ij k_j``; ``y1 = y + sum b_i k_i`` and
``err = sum (b - b_hat)_i k_i``. From a classical method (Gamma, alpha, b):
``A = alpha Gamma^-1``, ``C = diag(1/gamma) - Gamma^-1``, ``b = b_classical Gamma^-1``,
``d_i = sum_j Gamma_ij``.
"""
from __future__ import annotations

import math

from ..tableaus import DenseOutput, RosenbrockTableau

# Shampine & Reichelt (1997), "The MATLAB ODE suite", SIAM J. Sci. Comput. 18:1 (ode23s).
# Published form, with d = 1/(2 + sqrt 2), e32 = 6 + sqrt 2, Wt = I - h d J, T = df/dt:
#   k1 = Wt^-1 (F0 + h d T);  k2 = Wt^-1 (F1 - k1) + k1 with F1 = f(t + h/2, y + h/2 k1);
#   y1 = y + h k2;  k3 = Wt^-1 (F2 - e32 (k2 - F1) - 2 (k1 - F0) + h d T) with F2 = f(t + h, y1);
#   err = h/6 (k1 - 2 k2 + k3), which estimates y_3rd - y1 (the 3rd-order value minus the
#   advanced one), so b_hat = b + err weights here, where the engine's err is y1 - y_hat.
# (OrdinaryDiffEq adds dt T instead of h d T in k3: a known defect we do not copy.)
# As a classical 3-stage Rosenbrock method with K_i = h k_i this is Gamma = [[d], [-d, d],
# [(e32 - 2) d, -e32 d, d]], alpha = [[], [1/2], [0, 1]], b = [0, 1, 0], err weights
# [1, -2, 1]/6; Gamma^-1 = [[1], [1, 1], [2, e32, 1]]/d gives the transformed entries below.
# W-method: order 2 holds for any J; y1 is the last stage point, so F2 doubles as f(t+h, y1).
_D = 1 / (2 + math.sqrt(2))
_E32 = 6 + math.sqrt(2)
# Its interpolant (ode23s' ntrp23s; OrdinaryDiffEq's Rosenbrock23): y(s) = y + h (s(1-s) k1 + s(s-2d) k2)
# / (1 - 2d), order 2; with k1 = k~1/(d h), k2 = (k~1 + k~2)/(d h) in the transformed stages:
# b_1(s) = s/d, b_2(s) = s(s - 2d)/(d(1 - 2d)).
_R23_DENSE = DenseOutput(name="Shampine & Reichelt 1997 (ntrp23s)", order=2,
                         P=[[1 / _D, 0], [-2 / (1 - 2 * _D), 1 / (_D * (1 - 2 * _D))], [0, 0]],
                         source="Shampine & Reichelt 1997 (ode23s, ntrp23s); OrdinaryDiffEq.jl "
                                "rosenbrock_interpolants.jl@b211787")
_R23_B = [1 / _D, 1 / _D, 0]
_R23_ERR = [1 / (6 * _D), (_E32 - 2) / (6 * _D), 1 / (6 * _D)]
ROSENBROCK23 = RosenbrockTableau(
    name="Rosenbrock23",
    A=[[0, 0, 0],
       [1 / (2 * _D), 0, 0],
       [1 / _D, 1 / _D, 0]],
    C=[[0, 0, 0],
       [-1 / _D, 0, 0],
       [-2 / _D, -_E32 / _D, 0]],
    gamma=_D,
    c=[0, 0.5, 1],
    d=[_D, 0, -_D],
    b=_R23_B,
    b_hat=[bi + ei for bi, ei in zip(_R23_B, _R23_ERR)],
    order=2, embedded_order=3,
    dense=_R23_DENSE,
    source="Shampine & Reichelt 1997, SIAM J. Sci. Comput. 18:1 (ode23s), transformed here",
)

# Hairer & Wanner (1996), Solving ODEs II, Sec. VI.4 (RODAS, coefficient set of rodas.f);
# decimals as in OrdinaryDiffEq.jl lib/OrdinaryDiffEqRosenbrockTableaus rosenbrock_tableaus.jl
# (RODAS4, commit b211787). Stiffly accurate: b = [A_6., 1], err = k_6.
# Its 3rd-order stiffly accurate dense output: OrdinaryDiffEq.jl RODAS4H (rosenbrock_tableaus.jl@b211787),
# the H of DenseOutput.from_rodas.
_R4_H = [[10.12623508344586, -7.487995877610167, -34.80091861555747, -7.992771707568823, 1.025137723295662, 0],
         [-0.6762803392801253, 6.087714651680015, 16.43084320892478, 24.76722511418386, -6.594389125716872, 0]]
_R4_A5 = [1.221224509226641, 6.019134481288629, 12.53708332932087, -0.687886036105895]
RODAS4 = RosenbrockTableau(
    name="Rodas4",
    A=[[0, 0, 0, 0, 0, 0],
       [1.544, 0, 0, 0, 0, 0],
       [0.9466785280815826, 0.2557011698983284, 0, 0, 0, 0],
       [3.314825187068521, 2.896124015972201, 0.9986419139977817, 0, 0, 0],
       [*_R4_A5, 0, 0],
       [*_R4_A5, 1, 0]],
    C=[[0, 0, 0, 0, 0, 0],
       [-5.6688, 0, 0, 0, 0, 0],
       [-2.430093356833875, -0.2063599157091915, 0, 0, 0, 0],
       [-0.1073529058151375, -9.594562251023355, -20.47028614809616, 0, 0, 0],
       [7.496443313967647, -10.24680431464352, -33.99990352819905, 11.7089089320616, 0, 0],
       [8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136,
        -6.058818238834054, 0]],
    gamma=0.25,
    c=[0, 0.386, 0.21, 0.63, 1, 1],
    d=[0.25, -0.1043, 0.1035, -0.0362, 0, 0],
    b=[*_R4_A5, 1, 1],
    b_hat=[*_R4_A5, 1, 0],
    order=4, embedded_order=3,
    dense=DenseOutput.from_rodas([*_R4_A5, 1, 1], _R4_H, name="Rodas4 dense output (H)", order=3,
                                 source="Hairer & Wanner 1996 (rodas.f CONTRO); OrdinaryDiffEq.jl RODAS4H@b211787"),
    source="Hairer & Wanner 1996, Solving ODEs II (RODAS); OrdinaryDiffEq.jl RODAS4@b211787",
)

# Steinebach (2023), "Construction of Rosenbrock-Wanner method Rodas5P and numerical benchmarks
# within the Julia Differential Equations package", BIT 63:27; decimals as in OrdinaryDiffEq.jl
# lib/OrdinaryDiffEqRosenbrock/src/rosenbrock_tableaus.jl (RODAS5PA/C/c/d, commit b211787).
# Stiffly accurate: b = [A_8., 1], err = k_8.
# Its 4th-order stiffly accurate dense output (Steinebach 2023): OrdinaryDiffEq.jl RODAS5PH
# (lib/OrdinaryDiffEqRosenbrock/src/rosenbrock_tableaus.jl@b211787).
_R5_H = [[25.948786856663858, -2.5579724845846235, 10.433815404888879, -2.3679251022685204,
          0.524948541321073, 1.1241088310450404, 0.4272876194431874, -0.17202221070155493],
         [-9.91568850695171, -0.9689944594115154, 3.0438037242978453, -24.495224566215796,
          20.176138334709044, 15.98066361424651, -6.789040303419874, -6.710236069923372],
         [11.419903575922262, 2.8879645146136994, 72.92137995996029, 80.12511834622643,
          -52.072871366152654, -59.78993625266729, -0.15582684282751913, 4.883087185713722]]
_R5_A6 = [-7.502846399306121, 2.561846144803919, -11.627539656261098, -0.18268767659942256,
          0.030198172008377946]
RODAS5P = RosenbrockTableau(
    name="Rodas5P",
    A=[[0, 0, 0, 0, 0, 0, 0, 0],
       [3.0, 0, 0, 0, 0, 0, 0, 0],
       [2.849394379747939, 0.45842242204463923, 0, 0, 0, 0, 0, 0],
       [-6.954028509809101, 2.489845061869568, -10.358996098473584, 0, 0, 0, 0, 0],
       [2.8029986275628964, 0.5072464736228206, -0.3988312541770524, -0.04721187230404641,
        0, 0, 0, 0],
       [*_R5_A6, 0, 0, 0],
       [*_R5_A6, 1, 0, 0],
       [*_R5_A6, 1, 1, 0]],
    C=[[0, 0, 0, 0, 0, 0, 0, 0],
       [-14.155112264123755, 0, 0, 0, 0, 0, 0, 0],
       [-17.97296035885952, -2.859693295451294, 0, 0, 0, 0, 0, 0],
       [147.12150275711716, -1.41221402718213, 71.68940251302358, 0, 0, 0, 0, 0],
       [165.43517024871676, -0.4592823456491126, 42.90938336958603, -5.961986721573306,
        0, 0, 0, 0],
       [24.854864614690072, -3.0009227002832186, 47.4931110020768, 5.5814197821558125,
        -0.6610691825249471, 0, 0, 0],
       [30.91273214028599, -3.1208243349937974, 77.79954646070892, 34.28646028294783,
        -19.097331116725623, -28.087943162872662, 0, 0],
       [37.80277123390563, -3.2571969029072276, 112.26918849496327, 66.9347231244047,
        -40.06618937091002, -54.66780262877968, -9.48861652309627, 0]],
    gamma=0.21193756319429014,
    c=[0, 0.6358126895828704, 0.4095798393397535, 0.9769306725060716, 0.4288403609558664, 1, 1, 1],
    d=[0.21193756319429014, -0.42387512638858027, -0.3384627126235924, 1.8046452872882734,
       2.325825639765069, 0, 0, 0],
    b=[*_R5_A6, 1, 1, 1],
    b_hat=[*_R5_A6, 1, 1, 0],
    order=5, embedded_order=4,
    dense=DenseOutput.from_rodas([*_R5_A6, 1, 1, 1], _R5_H, name="Rodas5P dense output (H)", order=4,
                                 source="Steinebach 2023; OrdinaryDiffEq.jl RODAS5PH@b211787"),
    source="Steinebach 2023, BIT 63:27 (Rodas5P); OrdinaryDiffEq.jl RODAS5P@b211787",
)

__all__ = ["ROSENBROCK23", "RODAS4", "RODAS5P"]
