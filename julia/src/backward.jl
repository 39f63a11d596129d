# Backward pass: SciMLSensitivity's continuous adjoint of one forward solve.
#
# The VJP is chosen explicitly (EnzymeVJP): the automatic choice probes several AD
# systems and has picked crashing ones (SciMLSensitivity #1512). The field is
# in place with scratch buffers; Enzyme differentiates through them because
# SciMLSensitivity passes the function itself as `Duplicated`.

const SENSEALGS = (
    interpolating = (rtol, atol) -> InterpolatingAdjoint(; autojacvec = EnzymeVJP()),
    backsolve = (rtol, atol) -> BacksolveAdjoint(; autojacvec = EnzymeVJP()),
    # Quadrature uses its own tolerances for the reverse ODE and for quadgk alike.
    quadrature = (rtol, atol) -> QuadratureAdjoint(;
        autojacvec = EnzymeVJP(),
        abstol = atol,
        reltol = rtol,
    ),
    gauss = (rtol, atol) -> GaussAdjoint(; autojacvec = EnzymeVJP()),
)

"""Names accepted as `sensealg` by `backward!`."""
sensealg_names() = [string(name) for name in keys(SENSEALGS)]

function make_sensealg(name::AbstractString, rtol, atol)
    key = Symbol(lowercase(name))
    haskey(SENSEALGS, key) && return SENSEALGS[key](rtol, atol)
    throw(ArgumentError(
        "unknown sensealg '$name'; choose one of: $(join(sensealg_names(), ", "))",
    ))
end

"""`dgdu_discrete` for a loss seen only at the end of the interval: +∂L/∂h(t1)."""
struct TerminalCotangent{A}
    λ::A
end

function (c::TerminalCotangent)(out, u, p, t, i)
    copyto!(out, c.λ)
    return nothing
end

"""Copy the gradient of the flat parameter vector into (gUt, gC, gbhn)."""
function unpack_gradient!(gUt, gC, gbhn, dp::AbstractVector, H::Int, B::Int)
    Ut, C, bhn = parameter_views(dp, H, B)
    copyto!(gUt, Ut)
    copyto!(gC, C)
    copy_bias!(gbhn, bhn)
    return nothing
end

"""
    backward!(gh0, gUt, gC, gbhn, fwd, gh1; solver, sensealg, rtol, atol)

Given ∂L/∂h1 in `gh1` (H, B), write ∂L/∂h0, ∂L/∂Uᵀ (H, 3H), ∂L/∂C (3H, B) and
∂L/∂b_hn (H; skipped when `gbhn === nothing`). `solver` integrates the adjoint ODE
backwards; `sensealg` is one of `sensealg_names()`.
"""
function backward!(
    gh0,
    gUt,
    gC,
    gbhn,
    fwd::ForwardSolve,
    gh1;
    solver::AbstractString,
    sensealg::AbstractString,
    rtol,
    atol,
)
    sol = fwd.sol
    T = eltype(sol.prob.u0)
    spec = solver_spec(solver)
    λ = similar(sol.prob.u0)
    copyto!(λ, gh1)
    t0, t1 = first(sol.t), last(sol.t)
    du0, dp = adjoint_sensitivities(
        sol,
        spec.make();
        t = [t1],
        dgdu_discrete = TerminalCotangent(λ),
        sensealg = make_sensealg(sensealg, T(rtol), T(atol)),
        step_options(spec, t1 - t0, T(rtol), T(atol))...,
    )
    # adjoint_sensitivities reports no retcode: a failed reverse solve shows as non-finite λ.
    all(isfinite, du0) || throw(SolveFailure("adjoint", spec.name, "non-finite gradient"))
    # du0 comes back flat (length H·B) and dp as a 1×np row: reshape both.
    copyto!(gh0, reshape(du0, size(gh0)))
    unpack_gradient!(gUt, gC, gbhn, vec(dp'), fwd.H, fwd.B)
    device_sync(gh0)
    return nothing
end
