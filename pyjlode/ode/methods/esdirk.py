"""ESDIRK tableaus: TRBDF2, KenCarp4 (implicit part), Kvaerno5 (coefficient data only).

All three have an explicit first stage, a constant diagonal ``gamma`` and are stiffly
accurate (the last row of A is b), so the new solution is the last stage value.

Error estimates. TRBDF2's embedded 3rd-order formula is not A-stable: its stability function
grows like |z| at infinity, so the plain difference of the pair grows like dt*lambda in stiff
components and must be filtered through ``W^-1`` (Hosea & Shampine 1996). KenCarp4's and
Kvaerno5's embedded formulas are A-stable (R_hat(-inf) = -0.15 and -0.75): their plain
difference is bounded and is the estimate the pairs were built for (Kennedy & Carpenter 2003;
Kvaerno 2004); filtering it as well divides stiff components by |gamma dt lambda| and hides
their error (measured: 2-18x below the true local error of HIRES's late phase).

``predictor[i]`` (i >= 1) holds the coefficients alpha_ij, j < i, of the Newton starting
guess ``z_i = sum_j alpha_ij z_j`` for the stage variable ``z_i = dt * k_i``
(``predictor[0]`` is empty: stage 0 is explicit).
"""
from __future__ import annotations

import math
from fractions import Fraction as F

from ..tableaus import ButcherTableau, DenseOutput

# Bank, Coughran, Fichtner, Grosse, Rose & Smith (1985), "Transient simulation of silicon devices
# and circuits", IEEE Trans. CAD 4:436; as an ESDIRK with the 3rd-order companion of Hosea &
# Shampine (1996), Appl. Numer. Math. 20:21. Values: OrdinaryDiffEq.jl
# lib/OrdinaryDiffEqSDIRK/src/sdirk_tableaus.jl@b211787 l.1-45 (irrational: sqrt(2)).
# Predictor (Shampine): z_2 = z_1; z_3 = -sqrt(2)/2 z_1 + (1 + sqrt(2)/2) z_2.
_SQ2 = math.sqrt(2.0)
_D = 1 - _SQ2 / 2          # diagonal gamma (TR stage to c = 2 - sqrt(2), then BDF2)
_W = _SQ2 / 4
TRBDF2 = ButcherTableau(
    name="TRBDF2",
    A=[[0, 0, 0],
       [_D, _D, 0],
       [_W, _W, _D]],
    b=[_W, _W, _D],
    b_hat=[(1 - _W) / 3, (3 * _W + 1) / 3, _D / 3],
    c=[0, 2 - _SQ2, 1],
    order=2, embedded_order=3, gamma=_D,
    predictor=((), (1.0,), (-_SQ2 / 2, 1 + _SQ2 / 2)),
    filtered_estimate=True,
    source="Bank et al. 1985; Hosea & Shampine 1996; OrdinaryDiffEq.jl sdirk_tableaus.jl@b211787",
)

# Kennedy & Carpenter (2003), "Additive Runge-Kutta schemes for convection-diffusion-reaction
# equations", Appl. Numer. Math. 44:139, ARK4(3)6L[2]SA, implicit (ESDIRK) part; exact rationals
# (also in OrdinaryDiffEq.jl sdirk_tableaus.jl@b211787 l.1154-1360 and diffrax kencarp4.py).
# Predictors: Hermite extrapolation of earlier stages, from the OrdinaryDiffEq derivation comments.
_KC4_B = [F(82889, 524892), 0, F(15625, 83664), F(69875, 102672), F(-2260, 8211), F(1, 4)]
# Dense output of ARK4(3)6L[2]SA (Kennedy & Carpenter 2003, b*_ij, 3rd order, shared by the explicit
# and implicit parts): b_i(theta) = sum_j b*_ij theta^j, j = 1..3; also diffrax kencarp4.py. Verified
# (continuous order conditions, observed order) but not KenCarp4's interpolant: on stiff problems its
# stage combination carries the stages' error amplified by dt*lambda, and the cubic Hermite of
# (y, f) at the step ends is 8-10x more accurate between steps (Prothero-Robinson, lambda = -1e4,
# tests/test_dense_output.py); it also would keep 5 stage tensors per step.
_KC4_BSTAR = [
    [F(6943876665148, 7220017795957), F(-54480133, 30881146), F(6818779379841, 7100303317025)],
    [0, 0, 0],
    [F(7640104374378, 9702883013639), F(-11436875, 14766696), F(2173542590792, 12501825683035)],
    [F(-20649996744609, 7521556579894), F(174696575, 18121608), F(-31592104683404, 5083833661969)],
    [F(8854892464581, 2390941311638), F(-12120380, 966161), F(61146701046299, 7138195549469)],
    [F(-11397109935349, 6675773540249), F(3843, 706), F(-17219254887155, 4939391667607)],
]
KENCARP4_DENSE = DenseOutput(name="Kennedy & Carpenter 2003 b*(theta)", P=_KC4_BSTAR, order=3,
                             source="Kennedy & Carpenter 2003, ARK4(3)6L[2]SA dense output; diffrax kencarp4.py")
KENCARP4 = ButcherTableau(
    name="KenCarp4",
    A=[[0, 0, 0, 0, 0, 0],
       [F(1, 4), F(1, 4), 0, 0, 0, 0],
       [F(8611, 62500), F(-1743, 31250), F(1, 4), 0, 0, 0],
       [F(5012029, 34652500), F(-654441, 2922500), F(174375, 388108), F(1, 4), 0, 0],
       [F(15267082809, 155376265600), F(-71443401, 120774400), F(730878875, 902184768),
        F(2285395, 8070912), F(1, 4), 0],
       _KC4_B],
    b=_KC4_B,
    b_hat=[F(4586570599, 29645900160), 0, F(178811875, 945068544), F(814220225, 1159782912),
           F(-3700637, 11593932), F(61727, 225920)],
    c=[0, F(1, 2), F(83, 250), F(31, 50), F(17, 20), 1],
    order=4, embedded_order=3, gamma=F(1, 4),
    predictor=((), (1,), (F(42, 125), F(83, 125)), (F(-6, 25), F(31, 25), 0),
               (F(914470432, 2064665255), F(798813, 724780), F(-824765625, 372971788),
                F(49640, 29791)),
               (F(288521442795, 954204491116), F(2224881, 2566456), F(-1074821875, 905317354),
                F(-3360875, 8098936), F(7040, 4913))),
    source="Kennedy & Carpenter 2003, Appl. Numer. Math. 44:139 (ARK4(3)6L[2]SA, ESDIRK part)",
)

# Kvaerno (2004), "Singly diagonally implicit Runge-Kutta methods with an explicit first stage",
# BIT 44:489, the 5(4) pair; decimals as published (also OrdinaryDiffEq.jl sdirk_tableaus.jl@b211787
# l.1369-1505 and diffrax kvaerno5.py). Stage 6 is the embedded 4th-order solution.
# Stage 1 (0-based) is evaluated at c = 2*gamma = 0.52, its row sum: OrdinaryDiffEq uses gamma
# there (a known defect that only shows for non-autonomous f).
# Predictors: OrdinaryDiffEq.jl with alpha_21 = 1 (upstream had 0 by mistake, as diffrax notes);
# stage 6 starts from the embedded solution's increment.
_G5 = 0.26
_KV5_A6 = [0.13855640231268224, 0, -0.04245337201752043, 0.02446657898003141,
           0.61943039072480676, _G5, 0]
_KV5_B = [0.13659751177640291, 0, -0.05496908796538376, -0.04118626728321046,
          0.62993304899016403, 0.06962479448202728, _G5]
KVAERNO5 = ButcherTableau(
    name="Kvaerno5",
    A=[[0, 0, 0, 0, 0, 0, 0],
       [_G5, _G5, 0, 0, 0, 0, 0],
       [0.13, 0.84033320996790809, _G5, 0, 0, 0, 0],
       [0.22371961478320505, 0.47675532319799699, -0.06470895363112615, _G5, 0, 0, 0],
       [0.16648564323248321, 0.10450018841591720, 0.03631482272098715, -0.13090704451073998,
        _G5, 0, 0],
       _KV5_A6,
       _KV5_B],
    b=_KV5_B,
    b_hat=_KV5_A6,
    c=[0, 0.52, 1.230333209967908, 0.895765984350076, 0.436393609858648, 1, 1],
    order=5, embedded_order=4, gamma=_G5,
    predictor=((), (1.0,), (-1.366025403784441, 2.3660254037844357),
               (-0.19650552613122207, 0.8113579546496623, 0.38514757148155954),
               (0.10375304369958693, 0.937994698066431, -0.04174774176601781, 0),
               (-0.17281112873898072, 0.6235784481025847, 0.5492326806363959, 0, 0),
               tuple(_KV5_A6[:6])),
    source="Kvaerno 2004, BIT 44:489 (5(4) ESDIRK); predictors OrdinaryDiffEq.jl@b211787",
)

__all__ = ["TRBDF2", "KENCARP4", "KENCARP4_DENSE", "KVAERNO5"]
