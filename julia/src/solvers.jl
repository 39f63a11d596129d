# Solver names, mirroring pyjlode's native registry (pyjlode.ode.SOLVERS): the same
# canonical spellings, aliases, stiffness and fixed-step methods, looked up
# case-insensitively. A static test checks the two tables agree.

"""
    SolverSpec(name, make, stiff, adaptive, aliases)

One registry entry: `make()` builds the OrdinaryDiffEq algorithm. Fixed-step methods
(`adaptive = false`) take one step per token interval, as the native engine does.
"""
struct SolverSpec
    name::String
    make::Function
    stiff::Bool
    adaptive::Bool
    aliases::Tuple{Vararg{String}}
end

# Implicit methods: the forward field has an analytic `jac` (and the Gauss/Quadrature
# adjoints reuse it as -Jᵀ), so `autodiff` only differentiates in t — the adjoint ODE
# that SciMLSensitivity builds carries no `tgrad`, so Rosenbrock methods solving it
# finite-difference t; central differences keep that error near eps^(2/3) instead of
# √eps (≈ 3e-4 in Float32). W is solved block by block (`BlockDiagonalLU`).
implicit_options() = (; autodiff = AutoFiniteDiff(; fdtype = Val(:central)), linsolve = BlockDiagonalLU())

const SOLVERS = (
    SolverSpec("Euler", () -> Euler(), false, false, ()),
    SolverSpec("RK4", () -> RK4(), false, false, ()),
    SolverSpec("Tsit5", () -> Tsit5(), false, true, ()),
    SolverSpec("DP5", () -> DP5(), false, true, ("dopri5",)),
    SolverSpec("Rosenbrock23", () -> Rosenbrock23(; implicit_options()...), true, true, ()),
    SolverSpec("Rodas4", () -> Rodas4(; implicit_options()...), true, true, ()),
    SolverSpec("Rodas5P", () -> Rodas5P(; implicit_options()...), true, true, ()),
    SolverSpec("TRBDF2", () -> TRBDF2(; implicit_options()...), true, true, ()),
    SolverSpec("KenCarp4", () -> KenCarp4(; implicit_options()...), true, true, ()),
    SolverSpec("Kvaerno5", () -> Kvaerno5(; implicit_options()...), true, true, ()),
)

# Automatic stiffness switching, mirroring the native engine's composites (pyjlode.ode.methods.COMPOSITES;
# "auto" is AutoTsit5(KenCarp4)): OrdinaryDiffEq's AutoTsit5/AutoDP5 around each stiff method. Julia
# switches by OrdinaryDiffEq's own rule (its stiffness estimates and counters), not the native one.
const COMPOSITES = (
    SolverSpec("AutoTsit5(Rosenbrock23)", () -> AutoTsit5(Rosenbrock23(; implicit_options()...)), true, true, ()),
    SolverSpec("AutoTsit5(Rodas4)", () -> AutoTsit5(Rodas4(; implicit_options()...)), true, true, ()),
    SolverSpec("AutoTsit5(Rodas5P)", () -> AutoTsit5(Rodas5P(; implicit_options()...)), true, true, ()),
    SolverSpec("AutoTsit5(TRBDF2)", () -> AutoTsit5(TRBDF2(; implicit_options()...)), true, true, ()),
    SolverSpec("AutoTsit5(KenCarp4)", () -> AutoTsit5(KenCarp4(; implicit_options()...)), true, true, ("auto",)),
    SolverSpec("AutoTsit5(Kvaerno5)", () -> AutoTsit5(Kvaerno5(; implicit_options()...)), true, true, ()),
    SolverSpec("AutoDP5(Rosenbrock23)", () -> AutoDP5(Rosenbrock23(; implicit_options()...)), true, true, ()),
    SolverSpec("AutoDP5(Rodas4)", () -> AutoDP5(Rodas4(; implicit_options()...)), true, true, ()),
    SolverSpec("AutoDP5(Rodas5P)", () -> AutoDP5(Rodas5P(; implicit_options()...)), true, true, ()),
    SolverSpec("AutoDP5(TRBDF2)", () -> AutoDP5(TRBDF2(; implicit_options()...)), true, true, ()),
    SolverSpec("AutoDP5(KenCarp4)", () -> AutoDP5(KenCarp4(; implicit_options()...)), true, true, ()),
    SolverSpec("AutoDP5(Kvaerno5)", () -> AutoDP5(Kvaerno5(; implicit_options()...)), true, true, ()),
)

"""Canonical solver names in registry order."""
solver_names() = [spec.name for spec in SOLVERS]

matches(spec::SolverSpec, key::AbstractString) = lowercase(spec.name) == key ||
    key in spec.aliases

"""
    solver_spec(name)

Case-insensitive lookup by canonical name or alias; an unknown name throws an
`ArgumentError` listing the choices.
"""
function solver_spec(name::AbstractString)
    key = lowercase(name)
    specs = (SOLVERS..., COMPOSITES...)
    index = findfirst(spec -> matches(spec, key), specs)
    index === nothing || return specs[index]
    throw(ArgumentError(
        "unknown solver '$name'; choose one of: $(join(solver_names(), ", ")), or a composite such as " *
        "AutoTsit5(KenCarp4) (auto)",
    ))
end

"""Keyword arguments for `solve` that depend on the method: tolerances or a fixed step."""
function step_options(spec::SolverSpec, dt, rtol, atol)
    spec.adaptive && return (; reltol = rtol, abstol = atol)
    return (; adaptive = false, dt = abs(dt))
end
