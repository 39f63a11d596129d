"""
    PyJlODE

The Julia engine of pyjlode: GRU-ODE solves over one token interval with
OrdinaryDiffEq v7 solvers, and their adjoints with SciMLSensitivity, driven by the
field's analytic Jacobian and vector-Jacobian products.

The Python bridge (`pyjlode/backends/_julia_solve.py`) calls `forward!`, `backward!`,
`forward_stats`, `failure_info`, `solver_names` and `sensealg_names`. Arrays arrive
with the torch dimensions reversed (a torch `(B, H)` tensor is a Julia `(H, B)` array
over the same memory), so no transposes are needed at the boundary.
"""
module PyJlODE

using ADTypes: AutoFiniteDiff
using LinearAlgebra: I, issuccess, ldiv!, lu!, mul!
using SparseArrays: SparseMatrixCSC, nnz, nonzeros, rowvals
using SciMLBase: SciMLBase, FullSpecialize, ODEFunction, ODEProblem, ReturnCode, init, solve!,
    successful_retcode
using LinearSolve: LinearSolve
using OrdinaryDiffEqLowOrderRK: Euler, RK4, DP5, AutoDP5
using OrdinaryDiffEqTsit5: Tsit5, AutoTsit5
using OrdinaryDiffEqRosenbrock: Rosenbrock23, Rodas4, Rodas5P
using OrdinaryDiffEqSDIRK: TRBDF2, KenCarp4, Kvaerno5
using SciMLSensitivity:
    adjoint_sensitivities,
    ZygoteVJP,
    InterpolatingAdjoint,
    BacksolveAdjoint,
    QuadratureAdjoint,
    GaussAdjoint
using PrecompileTools: @setup_workload, @compile_workload

include("rhs.jl")
include("vjp.jl")
include("linsolve.jl")
include("solvers.jl")
include("failures.jl")
include("forward.jl")
include("backward.jl")
include("precompile.jl")

end # module PyJlODE
