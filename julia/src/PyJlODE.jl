"""
    PyJlODE

The Julia engine of pyjlode: GRU-ODE solves over one token interval with
OrdinaryDiffEq v7 solvers, and their adjoints with SciMLSensitivity.

The Python bridge (`pyjlode/backends/julia.py`) calls `forward!`, `backward!`,
`forward_stats`, `solver_names` and `sensealg_names`. Arrays arrive with the
torch dimensions reversed (a torch `(B, H)` tensor is a Julia `(H, B)` array
over the same memory), so no transposes are needed at the boundary.
"""
module PyJlODE

using ADTypes: AutoFiniteDiff
using LinearAlgebra: mul!
using SparseArrays: SparseMatrixCSC, nonzeros
using SciMLBase: ODEFunction, ODEProblem, FullSpecialize, solve, successful_retcode
using OrdinaryDiffEqLowOrderRK: Euler, RK4, DP5
using OrdinaryDiffEqTsit5: Tsit5
using OrdinaryDiffEqRosenbrock: Rosenbrock23, Rodas4, Rodas5P
using OrdinaryDiffEqSDIRK: TRBDF2, KenCarp4, Kvaerno5
using SciMLSensitivity:
    adjoint_sensitivities,
    EnzymeVJP,
    InterpolatingAdjoint,
    BacksolveAdjoint,
    QuadratureAdjoint,
    GaussAdjoint
using PrecompileTools: @setup_workload, @compile_workload

include("rhs.jl")
include("solvers.jl")
include("forward.jl")
include("backward.jl")
include("precompile.jl")

end # module PyJlODE
