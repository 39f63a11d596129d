# Solver names, identical to pyjlode's native registry (pyjlode.ode.methods.SOLVERS):
# the same canonical spellings and aliases, looked up case-insensitively.

"""
    SolverSpec(name, make, stiff, adaptive, aliases)

One registry entry: `make()` builds the OrdinaryDiffEq algorithm. Implicit methods use
`AutoFiniteDiff()` so no ForwardDiff duals reach the adjoint's Enzyme VJP; the forward
solve never differentiates the field (analytic `jac` and `tgrad`). Fixed-step methods
(`adaptive = false`) take one step per token interval, as the native engine does.
"""
struct SolverSpec
    name::String
    make::Function
    stiff::Bool
    adaptive::Bool
    aliases::Tuple{Vararg{String}}
end

const SOLVERS = (
    SolverSpec("Euler", () -> Euler(), false, false, ()),
    SolverSpec("RK4", () -> RK4(), false, false, ()),
    SolverSpec("Tsit5", () -> Tsit5(), false, true, ()),
    SolverSpec("DP5", () -> DP5(), false, true, ("dopri5",)),
    SolverSpec(
        "Rosenbrock23",
        () -> Rosenbrock23(; autodiff = AutoFiniteDiff()),
        true,
        true,
        (),
    ),
    SolverSpec("Rodas4", () -> Rodas4(; autodiff = AutoFiniteDiff()), true, true, ()),
    SolverSpec("Rodas5P", () -> Rodas5P(; autodiff = AutoFiniteDiff()), true, true, ()),
    SolverSpec("TRBDF2", () -> TRBDF2(; autodiff = AutoFiniteDiff()), true, true, ()),
    SolverSpec("KenCarp4", () -> KenCarp4(; autodiff = AutoFiniteDiff()), true, true, ()),
    SolverSpec("Kvaerno5", () -> Kvaerno5(; autodiff = AutoFiniteDiff()), true, true, ()),
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
    index = findfirst(spec -> matches(spec, key), SOLVERS)
    index === nothing || return SOLVERS[index]
    throw(ArgumentError(
        "unknown solver '$name'; choose one of: $(join(solver_names(), ", "))",
    ))
end

"""Keyword arguments for `solve` that depend on the method: tolerances or a fixed step."""
function step_options(spec::SolverSpec, dt, rtol, atol)
    spec.adaptive && return (; reltol = rtol, abstol = atol)
    return (; adaptive = false, dt = abs(dt))
end
